"""Secret masking for stored configs.

Configs are stored as given (the runtime needs the real credentials) and masked in every API
response. A client that sends a masked value back (the usual edit form round trip) keeps the
stored secret: ``restore_masked`` puts it back before validation.

What counts as secret: any value under a key whose name looks like a credential (password,
tokens, ``Authorization``/``Cookie``/``X-Api-Key`` headers, ...), the user-info part of any URL,
and URL query parameters with such names.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any
from urllib.parse import SplitResult, unquote, urlsplit, urlunsplit

MASK = "********"

_SECRET_NAME = re.compile(r"auth|token|key|secret|cookie|passw|credential", re.IGNORECASE)


class MaskedSecretError(ValueError):
    """A masked value was sent back for a secret that has no stored value to keep."""


def is_secret_name(name: str) -> bool:
    return bool(_SECRET_NAME.search(name))


def mask_config(config: Mapping[str, Any]) -> dict[str, Any]:
    """A copy of ``config`` with every secret replaced by MASK (nested mappings included)."""
    return {key: _mask_value(key, value) for key, value in config.items()}


def _mask_value(name: str, value: Any) -> Any:
    if isinstance(value, Mapping):
        return mask_config(value)
    if value is None or value == "":
        return value
    if is_secret_name(name):
        return MASK
    if isinstance(value, str) and "://" in value:
        return mask_url(value)
    return value


def _split_netloc(parts: SplitResult) -> tuple[str | None, str | None, str]:
    """(user, password, host[:port]) from the raw netloc, keeping the original percent-encoding."""
    userinfo, at, hostport = parts.netloc.rpartition("@")
    if not at:
        return None, None, parts.netloc
    user, colon, password = userinfo.partition(":")
    return user, (password if colon else None), hostport


def _join_netloc(user: str | None, password: str | None, hostport: str) -> str:
    if user is None:
        return hostport
    return f"{user}:{password}@{hostport}" if password is not None else f"{user}@{hostport}"


def _query_pairs(query: str) -> list[tuple[str, str | None]]:
    pairs: list[tuple[str, str | None]] = []
    for item in query.split("&") if query else []:
        name, equals, value = item.partition("=")
        pairs.append((name, value if equals else None))
    return pairs


def _join_query(pairs: list[tuple[str, str | None]]) -> str:
    return "&".join(name if value is None else f"{name}={value}" for name, value in pairs)


def mask_url(url: str) -> str:
    """Mask the password of ``user:pass@`` (or a lone user-info, often a token) and secret query parameters."""
    parts = urlsplit(url)
    user, password, hostport = _split_netloc(parts)
    if user is not None:
        user, password = (user, MASK) if password is not None else (MASK, None)
    query = [(name, MASK if value and is_secret_name(unquote(name)) else value)
             for name, value in _query_pairs(parts.query)]
    return urlunsplit(parts._replace(netloc=_join_netloc(user, password, hostport), query=_join_query(query)))


def restore_masked(new: Mapping[str, Any], stored: Mapping[str, Any], path: str = "") -> dict[str, Any]:
    """``new`` with every MASK replaced by the matching stored secret.

    Keys match exactly, else case-insensitively (HTTP header names). A MASK with nothing stored
    behind it raises MaskedSecretError rather than storing the mask itself as a credential.
    """
    restored: dict[str, Any] = {}
    for key, value in new.items():
        old = _lookup(stored, key)
        where = f"{path}{key}"
        if isinstance(value, Mapping):
            restored[key] = restore_masked(value, old if isinstance(old, Mapping) else {}, f"{where}.")
        elif value == MASK:
            if old is None:
                raise MaskedSecretError(f"{where} is masked but has no stored value to keep; send the real value")
            restored[key] = old
        elif isinstance(value, str) and MASK in value and "://" in value:
            restored[key] = _restore_url(value, old if isinstance(old, str) else None, where)
        else:
            restored[key] = value
    return restored


def _lookup(stored: Mapping[str, Any], key: str) -> Any:
    if key in stored:
        return stored[key]
    folded = key.lower()
    return next((value for name, value in stored.items() if name.lower() == folded), None)


def _restore_url(url: str, old_url: str | None, where: str) -> str:
    parts = urlsplit(url)
    old_parts = urlsplit(old_url) if old_url else None
    user, password, hostport = _split_netloc(parts)
    old_user, old_password, _ = _split_netloc(old_parts) if old_parts else (None, None, "")
    old_query = dict(_query_pairs(old_parts.query)) if old_parts else {}

    def keep(value: str | None, old: str | None, what: str) -> str | None:
        if value != MASK:
            return value
        if old is None:
            raise MaskedSecretError(f"{where}: the masked {what} has no stored value to keep; send the real value")
        return old

    user = keep(user, old_user, "user name")
    password = keep(password, old_password, "password")
    query = [(name, keep(value, old_query.get(name), f"query parameter {name!r}"))
             for name, value in _query_pairs(parts.query)]
    return urlunsplit(parts._replace(netloc=_join_netloc(user, password, hostport), query=_join_query(query)))
