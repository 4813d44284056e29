"""Where source and sink configs may point: server paths and outbound hosts (docs/operations.md).

- Paths (video files, image folders, filesystem sink outputs) must lie inside one of
  ``INSPECT_ALLOWED_PATHS`` after ``~``, ``..`` and symlinks are resolved; a relative path is
  taken inside the first allowed folder.
- Outbound URLs (webhooks, MQTT brokers, IP cameras) may not lead to the platform's own services
  by any alias, nor to link-local or cloud-metadata addresses (:mod:`infra.configs.outbound`), and
  with ``INSPECT_OUTBOUND_ALLOW`` set their host must be one of its hosts.

The API checks a config when it is written, and the pipeline runtime again when it builds the
source and sinks (another machine, another time: the folder or DNS may have changed); IP cameras,
MQTT brokers and webhooks are checked again where they connect, and connect to the address that
was checked. A host that does not resolve where it is checked passes there; the machine that
connects checks it too.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar
from urllib.parse import urlsplit

from infra.configs import outbound
from infra.configs.base import ConfigModel
from infra.settings import Settings, get_settings

ConfigT = TypeVar("ConfigT", bound=ConfigModel)


class NotAllowed(ValueError):
    """A config points outside what the operator allows; the message names the setting."""


@dataclass(frozen=True)
class Confinement:
    roots: tuple[Path, ...]
    outbound_hosts: frozenset[str] | None = None  # None: any host that is not refused
    endpoints: tuple[outbound.Endpoint, ...] = ()  # the platform's own services (outbound.platform_endpoints)

    @classmethod
    def from_settings(cls, settings: Settings) -> Confinement:
        return cls(settings.resolved_allowed_paths, settings.outbound_hosts, outbound.platform_endpoints(settings))

    @classmethod
    def here(cls) -> Confinement:
        """The limits of this process (a pipeline's flow process: the worker's INSPECT_* settings)."""
        return cls.from_settings(get_settings())

    def path(self, value: str) -> Path:
        """``value`` resolved (relative to the first allowed folder), or NotAllowed."""
        candidate = Path(value).expanduser()
        if not candidate.is_absolute():
            candidate = self.roots[0] / candidate
        resolved = candidate.resolve()
        if not any(resolved.is_relative_to(root) for root in self.roots):
            allowed = ", ".join(str(root) for root in self.roots)
            raise NotAllowed(f"path {value!r} is outside INSPECT_ALLOWED_PATHS ({allowed}); "
                             "move it there or add its folder to that setting")
        return resolved

    def host(self, url: str) -> None:
        """NotAllowed when the URL's host is not in INSPECT_OUTBOUND_ALLOW or leads to a refused address."""
        self._named(url)
        try:
            outbound.check(url, self.endpoints)
        except outbound.OutboundRefused as error:
            raise NotAllowed(str(error)) from None

    def pinned(self, url: str) -> outbound.IpAddress:
        """The checked address to connect to for ``url``, resolved once (NotAllowed, or OSError when the
        host does not resolve): connecting to it defeats a name that resolves elsewhere a moment later."""
        self._named(url)
        try:
            return outbound.pinned_address(url, self.endpoints)
        except outbound.OutboundRefused as error:
            raise NotAllowed(str(error)) from None

    def _named(self, url: str) -> None:
        host = (urlsplit(url).hostname or "").rstrip(".").lower()
        if self.outbound_hosts is not None and host not in self.outbound_hosts:
            allowed = ", ".join(sorted(self.outbound_hosts))
            raise NotAllowed(f"host {host!r} is not in INSPECT_OUTBOUND_ALLOW ({allowed})")

    def confine(self, config: ConfigT) -> ConfigT:
        """``config`` checked, with its server paths replaced by their resolved, allowed form."""
        for field in config.outbound_url_fields:
            self.host(getattr(config, field))
        paths = {field: str(self.path(getattr(config, field))) for field in config.server_path_fields}
        return config.model_copy(update=paths) if paths else config
