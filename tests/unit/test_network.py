"""The test processes' shared TLS context (`tests/network.share_tls_contexts`)."""

from __future__ import annotations

import ssl

import httpx


def _context_of(client: httpx.Client) -> ssl.SSLContext:
    return client._transport._pool._ssl_context  # type: ignore[attr-defined]  # httpx's own  # noqa: SLF001


def test_verifying_clients_share_one_context_and_other_clients_keep_their_own() -> None:
    # tests/conftest.py shares them for every process of the suite (pytest_configure).
    plain = [httpx.Client(), httpx.Client(timeout=2)]
    assert _context_of(plain[0]) is _context_of(plain[1])
    assert _context_of(plain[0]).verify_mode == ssl.CERT_REQUIRED and _context_of(plain[0]).check_hostname
    unverified = httpx.Client(verify=False)
    assert _context_of(unverified) is not _context_of(plain[0])
    assert _context_of(unverified).verify_mode == ssl.CERT_NONE
    for client in (*plain, unverified):
        client.close()
