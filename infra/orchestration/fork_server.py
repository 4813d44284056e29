"""The engine side of the fork server: a process that has done the imports forks one child per flow run.

The worker (`infra.orchestration.engine_launchers.ForkServer`) talks to it over a private socket,
one JSON object per line:

    worker → server   {"id": "<order id>", "env": {...}, "cwd": "...", "module": "prefect.engine"}
    server → worker   {"ready": <server pid>}                 once, after the imports
                      {"id": "<order id>", "pid": <child pid>} right after each fork
                      {"pid": <child pid>, "exit": <code>}    when that child ends (negative: its signal)

The server itself runs no job code: it imports, then only forks and reaps, so it never competes
with a running job for the CPU and a fork costs milliseconds at any time. A child starts with every
page of the server shared copy-on-write (`gc.freeze` keeps the collector from touching, and so
copying, the imported objects). When the worker goes away (socket closed) the server takes no more
orders and ends once its children have.
"""

from __future__ import annotations

import contextlib
import gc
import json
import os
import random
import selectors
import signal
import socket
from typing import Any


class ForkServer:
    """The loop of the server process; `serve` returns only in a forked child, with its order."""

    def __init__(self, channel: socket.socket) -> None:
        self._channel = channel
        self._received = b""
        self._children: set[int] = set()
        self._wake_read, self._wake_write = os.pipe()
        for fd in (self._wake_read, self._wake_write):
            os.set_blocking(fd, False)
        self._selector = selectors.DefaultSelector()

    def _send(self, message: dict[str, Any]) -> None:
        # The worker is gone when this fails; the children still run to their end.
        with contextlib.suppress(OSError):
            self._channel.sendall(json.dumps(message).encode() + b"\n")

    def serve(self) -> dict[str, Any] | None:
        gc.collect()
        gc.freeze()
        signal.set_wakeup_fd(self._wake_write)
        signal.signal(signal.SIGCHLD, lambda *_: None)  # a handler, so that the wakeup fd hears of it
        self._selector.register(self._wake_read, selectors.EVENT_READ)
        self._selector.register(self._channel, selectors.EVENT_READ)
        self._send({"ready": os.getpid()})
        listening = True
        while listening or self._children:
            for key, _ in self._selector.select():
                if key.fileobj == self._wake_read:
                    self._reap()
                    continue
                data = self._channel.recv(1 << 16)
                if not data:
                    listening = False
                    self._selector.unregister(self._channel)
                    continue
                self._received += data
                while b"\n" in self._received:
                    line, _, self._received = self._received.partition(b"\n")
                    order = json.loads(line)
                    pid = os.fork()
                    if pid == 0:
                        self._become_child()
                        return order
                    self._children.add(pid)
                    self._send({"id": order["id"], "pid": pid})
        return None

    def _reap(self) -> None:
        with contextlib.suppress(BlockingIOError):
            while os.read(self._wake_read, 512):
                pass
        while self._children:
            try:
                pid, status = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                return
            if pid == 0:
                return
            self._children.discard(pid)
            self._send({"pid": pid, "exit": os.waitstatus_to_exitcode(status)})

    def _become_child(self) -> None:
        """Drop what belongs to the server; the child is then an ordinary process with the imports done."""
        signal.set_wakeup_fd(-1)
        signal.signal(signal.SIGCHLD, signal.SIG_DFL)
        self._selector.close()
        os.close(self._wake_read)
        os.close(self._wake_write)
        self._channel.close()
        random.seed()  # each run its own random sequence, not a copy of the server's
