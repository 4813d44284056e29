"""A loopback HTTP server that records every connection and request, and answers as a test tells it.

For tests that must show a request did (or did not) reach an address: ``connections`` counts TCP
connections accepted, before any HTTP is parsed, so even a TLS attempt or a preflight counts.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


@dataclass
class Recorded:
    method: str
    path: str
    headers: dict[str, str]


@dataclass
class Answer:
    status: int
    body: bytes = b""
    headers: dict[str, str] = field(default_factory=dict)


Responder = Callable[[Recorded], Answer]


class RecordingServer:
    def __init__(self, respond: Responder, host: str = "127.0.0.1", port: int = 0) -> None:
        self.connections = 0
        self.requests: list[Recorded] = []
        recorder = self

        class Handler(BaseHTTPRequestHandler):
            def _any(self) -> None:
                self.rfile.read(int(self.headers.get("Content-Length") or 0))
                request = Recorded(self.command, self.path, dict(self.headers.items()))
                recorder.requests.append(request)
                answer = respond(request)
                self.send_response(answer.status)
                for name, value in {**answer.headers, "Content-Length": str(len(answer.body))}.items():
                    self.send_header(name, value)
                self.end_headers()
                self.wfile.write(answer.body)

            do_GET = do_POST = do_PUT = do_PATCH = do_OPTIONS = _any  # noqa: N815

            def log_message(self, *args: object) -> None:
                pass

        class Server(ThreadingHTTPServer):
            def verify_request(self, request, client_address) -> bool:  # noqa: ANN001 - socketserver's signature
                recorder.connections += 1
                return True

        self.server = Server((host, port), Handler)
        self.port = self.server.server_address[1]
        self.netloc = f"{host}:{self.port}"
        self.origin = f"http://{self.netloc}"
        threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.1}, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()
