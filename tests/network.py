"""Loopback ports for the servers tests and benchmarks start. No pytest here: benchmarks use it too."""

from __future__ import annotations

import socket
import ssl
from typing import Any


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def port_open(host: str, port: int, timeout: float = 0.5) -> bool:
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


def share_tls_contexts() -> None:
    """Every HTTP client this process builds shares one verifying TLS context: for the suite's processes.

    Tests poll servers with `httpx.get(...)` and Prefect clients (a client each call), and every client built its
    own context from certifi's CA bundle, about 20 ms of CPU each: the suite's own processes spent a tenth of
    their CPU on it (py-spy) though all their traffic is plain HTTP on loopback. A verifying context is not
    changed after it is built, so one serves every client; a client asking for anything else (no
    verification, a client certificate, its own CA file) still gets its own.
    """
    import httpx._transports.default as transports  # httpx builds a transport's context through this name

    from infra.orchestration.warm_engine import share_client_tls_contexts

    share_client_tls_contexts()  # Prefect's clients, as a warm flow process shares them
    build = transports.create_ssl_context
    shared = build()

    def create_ssl_context(verify: ssl.SSLContext | str | bool = True, cert: Any = None,
                           trust_env: bool = True) -> ssl.SSLContext:
        if verify is True and cert is None and trust_env:
            return shared
        return build(verify=verify, cert=cert, trust_env=trust_env)

    transports.create_ssl_context = create_ssl_context  # type: ignore[assignment]
