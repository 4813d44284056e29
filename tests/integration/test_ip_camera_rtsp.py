"""RTSP goes over TCP without the process-wide ``OPENCV_FFMPEG_CAPTURE_OPTIONS``.

The IP camera source relies on OpenCV's FFmpeg backend asking for RTP over the RTSP connection
(TCP, interleaved) when that variable is unset; UDP, FFmpeg's own default, loses frames on factory
networks. A scripted RTSP server on loopback answers OPTIONS and DESCRIBE, records the transport the
client asks for in SETUP and refuses it, so the capture fails fast (no camera needed, nothing
mocked on our side). This fails when an OpenCV release changes that default.
"""

from __future__ import annotations

import os
import socket
import threading

import pytest

from infra.configs.sources import IpCameraConfig
from pipelines.sources.base import SourceError
from pipelines.sources.ip_camera import IpCameraSource

SDP = (
    "v=0\r\no=- 0 0 IN IP4 127.0.0.1\r\ns=test\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n"
    "m=video 0 RTP/AVP 26\r\na=control:track1\r\n"
)


class ScriptedRtspServer:
    """Answers one client's OPTIONS and DESCRIBE, records each SETUP's Transport header, refuses it (461)."""

    def __init__(self) -> None:
        self._listener = socket.create_server(("127.0.0.1", 0))
        self._listener.settimeout(10)
        self.url = f"rtsp://127.0.0.1:{self._listener.getsockname()[1]}/line"
        self.transports: list[str] = []
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    def _serve(self) -> None:
        try:
            connection, _ = self._listener.accept()
        except OSError:
            return
        with connection:
            connection.settimeout(10)
            buffer = b""
            for _ in range(8):  # bounded: a handful of requests is all a client sends before giving up
                while b"\r\n\r\n" not in buffer:
                    chunk = connection.recv(4096)
                    if not chunk:
                        return
                    buffer += chunk
                head, buffer = buffer.split(b"\r\n\r\n", 1)
                lines = head.decode("latin-1").split("\r\n")
                method = lines[0].split(" ", 1)[0]
                fields = (line.split(":", 1) for line in lines[1:] if ":" in line)
                headers = {name.strip().lower(): value.strip() for name, value in fields}
                cseq = headers.get("cseq", "0")
                if method == "OPTIONS":
                    reply = f"RTSP/1.0 200 OK\r\nCSeq: {cseq}\r\nPublic: OPTIONS, DESCRIBE, SETUP, TEARDOWN\r\n\r\n"
                elif method == "DESCRIBE":
                    reply = (f"RTSP/1.0 200 OK\r\nCSeq: {cseq}\r\nContent-Base: {self.url}/\r\n"
                             f"Content-Type: application/sdp\r\nContent-Length: {len(SDP)}\r\n\r\n{SDP}")
                elif method == "SETUP":
                    self.transports.append(headers.get("transport", ""))
                    reply = f"RTSP/1.0 461 Unsupported Transport\r\nCSeq: {cseq}\r\n\r\n"
                else:
                    reply = f"RTSP/1.0 200 OK\r\nCSeq: {cseq}\r\n\r\n"
                connection.sendall(reply.encode("latin-1"))

    def close(self) -> None:
        self._listener.close()
        self._thread.join(10)


def test_rtsp_cameras_are_asked_for_tcp_transport_without_touching_the_environment() -> None:
    if os.environ.get("OPENCV_FFMPEG_CAPTURE_OPTIONS"):
        pytest.skip("OPENCV_FFMPEG_CAPTURE_OPTIONS is set here; OpenCV's default does not apply")
    server = ScriptedRtspServer()
    source = IpCameraSource(IpCameraConfig(url=server.url, reconnect=False))
    try:
        with pytest.raises(SourceError, match="cannot connect"):
            source.open()
    finally:
        source.close()
        server.close()
    assert server.transports, "the client never sent SETUP"
    assert server.transports[0].startswith("RTP/AVP/TCP"), server.transports
    assert "OPENCV_FFMPEG_CAPTURE_OPTIONS" not in os.environ  # opening a camera changes nothing process-wide
