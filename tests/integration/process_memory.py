"""The resident memory of a server process the tests started, found by the port it listens on."""

from __future__ import annotations

import threading
from urllib.parse import urlsplit

import psutil


def listening_process(base_url: str) -> psutil.Process:
    """The process that listens on ``base_url``'s port (the uvicorn child of ``api_server``)."""
    port = urlsplit(base_url).port
    for connection in psutil.net_connections(kind="tcp"):
        if connection.status == psutil.CONN_LISTEN and connection.laddr.port == port and connection.pid:
            return psutil.Process(connection.pid)
    raise LookupError(f"no process listens on port {port}")


class PeakRss:
    """Samples a process's RSS every ``interval_s`` on a thread while in the ``with`` block; ``peak`` in bytes."""

    def __init__(self, process: psutil.Process, interval_s: float = 0.02) -> None:
        self.process = process
        self.interval_s = interval_s
        self.peak = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)

    def _sample(self) -> None:
        while True:
            self.peak = max(self.peak, self.process.memory_info().rss)
            if self._stop.wait(self.interval_s):
                return

    def __enter__(self) -> PeakRss:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
        self.peak = max(self.peak, self.process.memory_info().rss)
