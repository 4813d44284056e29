"""An IP camera (RTSP or HTTP(S) MJPEG) through OpenCV's FFmpeg backend, with reconnects."""

from __future__ import annotations

from urllib.parse import quote, urlsplit, urlunsplit

import cv2

from infra.configs.confinement import Confinement, NotAllowed
from infra.configs.secrets import mask_url
from infra.configs.sources import IpCameraConfig
from pipelines.sources.base import SourceError
from pipelines.sources.live import LiveCaptureSource

# FFmpeg waits this long to connect and for each frame before giving up (then we reconnect).
OPEN_TIMEOUT_MS = 5000
READ_TIMEOUT_MS = 5000


def url_with_credentials(url: str, username: str | None, password: str | None) -> str:
    """Put the configured username/password into the URL, percent-encoded, as FFmpeg expects them."""
    if not username:
        return url
    parts = urlsplit(url)
    host = parts.netloc.rsplit("@", 1)[-1]
    userinfo = quote(username, safe="") + (f":{quote(password, safe='')}" if password else "")
    return urlunsplit((parts.scheme, f"{userinfo}@{host}", parts.path, parts.query, parts.fragment))


class IpCameraSource(LiveCaptureSource):
    def __init__(self, config: IpCameraConfig) -> None:
        super().__init__(
            reconnect=config.reconnect,
            initial_backoff_s=config.reconnect_delay_s,
            max_attempts=config.max_reconnect_attempts,
        )
        self.config = config
        self._url = url_with_credentials(config.url, config.username, config.password)

    def describe(self) -> str:
        return f"IP camera {mask_url(self.config.url)}"

    def _open_capture(self) -> cv2.VideoCapture:
        try:
            Confinement.here().host(self.config.url)  # DNS may have changed since the pipeline started
        except NotAllowed as error:
            raise SourceError(str(error)) from error
        # RTSP runs over TCP: OpenCV asks FFmpeg for it whenever OPENCV_FFMPEG_CAPTURE_OPTIONS is unset
        # (tests/integration/test_ip_camera_rtsp.py checks it); TCP survives lossy networks far better
        # than FFmpeg's UDP default. Operators who need other FFmpeg options set that variable themselves.
        capture = cv2.VideoCapture(
            self._url,
            cv2.CAP_FFMPEG,
            [cv2.CAP_PROP_OPEN_TIMEOUT_MSEC, OPEN_TIMEOUT_MS, cv2.CAP_PROP_READ_TIMEOUT_MSEC, READ_TIMEOUT_MS],
        )
        if not capture.isOpened():
            capture.release()
            raise SourceError(f"cannot connect to {self.describe()}")
        return capture
