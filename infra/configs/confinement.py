"""Where source and sink configs may point: server paths and outbound hosts (docs/operations.md).

- Paths (video files, image folders, filesystem sink outputs) must lie inside one of
  ``INSPECT_ALLOWED_PATHS`` after ``~``, ``..`` and symlinks are resolved; a relative path is
  taken inside the first allowed folder.
- Outbound hosts (webhooks, MQTT brokers, IP cameras) may not resolve to link-local or
  cloud-metadata addresses, and with ``INSPECT_OUTBOUND_ALLOW`` set must be one of its hosts.

The API checks a config when it is written, and the pipeline runtime again when it builds the
source and sinks (another machine, another time: the folder or DNS may have changed); IP cameras
and webhooks are checked again before each connection. A host
that does not resolve where it is checked passes there; the machine that connects checks it too.
"""

from __future__ import annotations

import ipaddress
import socket
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar
from urllib.parse import urlsplit

from infra.configs.base import ConfigModel
from infra.settings import Settings, get_settings

# 169.254.169.254 (AWS, GCP, Azure, ...) and fd00:ec2::254 (AWS over IPv6) serve cloud credentials.
BLOCKED_NETWORKS = (
    ipaddress.ip_network("169.254.0.0/16"),
    ipaddress.ip_network("fe80::/10"),
    ipaddress.ip_network("fd00:ec2::254/128"),
)

ConfigT = TypeVar("ConfigT", bound=ConfigModel)


class NotAllowed(ValueError):
    """A config points outside what the operator allows; the message names the setting."""


def blocked(address: str) -> bool:
    ip = ipaddress.ip_address(address.split("%", 1)[0])
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    return any(ip in network for network in BLOCKED_NETWORKS)


def resolved_addresses(host: str) -> list[str]:
    """The addresses ``host`` stands for here: itself when it is a literal, else what DNS answers (maybe none)."""
    try:
        return [str(ipaddress.ip_address(host.split("%", 1)[0]))]
    except ValueError:
        pass
    try:
        return sorted({str(info[4][0]) for info in socket.getaddrinfo(host, None)})
    except (OSError, UnicodeError):
        return []


@dataclass(frozen=True)
class Confinement:
    roots: tuple[Path, ...]
    outbound_hosts: frozenset[str] | None = None  # None: any host that is not blocked

    @classmethod
    def from_settings(cls, settings: Settings) -> Confinement:
        return cls(settings.resolved_allowed_paths, settings.outbound_hosts)

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
        """NotAllowed when the URL's host is not in INSPECT_OUTBOUND_ALLOW or resolves to a blocked address."""
        host = (urlsplit(url).hostname or "").rstrip(".").lower()
        if self.outbound_hosts is not None and host not in self.outbound_hosts:
            allowed = ", ".join(sorted(self.outbound_hosts))
            raise NotAllowed(f"host {host!r} is not in INSPECT_OUTBOUND_ALLOW ({allowed})")
        for address in resolved_addresses(host):
            if blocked(address):
                raise NotAllowed(f"host {host!r} resolves to {address}, a link-local or cloud-metadata address; "
                                 "sinks and cameras may not reach it")

    def confine(self, config: ConfigT) -> ConfigT:
        """``config`` checked, with its server paths replaced by their resolved, allowed form."""
        for field in config.outbound_url_fields:
            self.host(getattr(config, field))
        paths = {field: str(self.path(getattr(config, field))) for field in config.server_path_fields}
        return config.model_copy(update=paths) if paths else config
