"""Shared pieces of every source/sink/pipeline config: strict models and text/URL checks.

The API validates configs with these models when they are written, and the live pipeline
runtime parses the stored dicts with the same models, so both sides agree on one schema.
"""

from __future__ import annotations

import re
from collections.abc import Collection
from typing import ClassVar
from urllib.parse import urlsplit

from pydantic import BaseModel, ConfigDict

# Control characters (NUL, CR, LF, ...) have no place in a path, URL or header.
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


class ConfigModel(BaseModel):
    """Strict and closed: a typo in a field name or a "1" for an int is an error, not a guess."""

    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)

    # Fields naming a path on the pipeline's machine / a URL it connects to: infra.configs.confinement checks them.
    server_path_fields: ClassVar[tuple[str, ...]] = ()
    outbound_url_fields: ClassVar[tuple[str, ...]] = ()


def clean_text(value: str, what: str, max_length: int = 4096) -> str:
    """Operator-supplied text (paths, topics, names) that must be non-blank and free of control characters."""
    if not value.strip():
        raise ValueError(f"{what} must not be blank")
    if len(value) > max_length:
        raise ValueError(f"{what} is longer than {max_length} characters")
    if _CONTROL.search(value):
        raise ValueError(f"{what} must not contain control characters")
    return value


def check_url(value: str, schemes: Collection[str], *, allow_credentials: bool = True) -> str:
    """A URL with one of ``schemes``, a host, a valid port and no whitespace or control characters."""
    clean_text(value, "URL")
    if any(char.isspace() for char in value):
        raise ValueError("URL must not contain whitespace")
    parts = urlsplit(value)
    if parts.scheme.lower() not in schemes:
        raise ValueError(f"URL scheme must be one of {', '.join(sorted(schemes))}")
    if not parts.hostname:
        raise ValueError("URL must name a host")
    try:
        parts.port  # noqa: B018 - parsing the port validates it
    except ValueError as error:
        raise ValueError(f"URL has an invalid port: {error}") from None
    if not allow_credentials and "@" in parts.netloc:
        raise ValueError("URL must not contain credentials; use the username and password fields")
    return value
