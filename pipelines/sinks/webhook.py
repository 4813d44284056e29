"""POSTs (or PUTs/PATCHes) each event as JSON to a URL, retrying transient failures with backoff.

Each send resolves the host once, checks every address against the outbound rule
(infra/configs/outbound.py) and connects to the checked address itself (``Host`` header and TLS
name stay the URL's), so a name that resolves elsewhere after the check reaches nothing new.
Redirects are never followed: a 3xx is a failure, whatever it points at.
"""

from __future__ import annotations

import logging
from urllib.parse import urlsplit

import httpx

from infra.configs.confinement import Confinement
from infra.configs.outbound import with_host
from infra.configs.sinks import WebhookConfig
from pipelines.events import AnomalyEvent
from pipelines.sinks.base import Sink

log = logging.getLogger(__name__)

# Worth another try: the receiver may be restarting, overloaded or rate-limiting us.
RETRYABLE_STATUS = frozenset({408, 425, 429, 500, 502, 503, 504})


class WebhookSink(Sink):
    type = "webhook"

    def __init__(self, config: WebhookConfig) -> None:
        super().__init__()
        self.config = config
        self._client = httpx.Client(timeout=config.timeout_s, follow_redirects=False)

    def send(self, event: AnomalyEvent) -> None:
        body = event.to_json(self.config.include_image)
        parts = urlsplit(self.config.url)
        host = parts.hostname or ""
        # The request goes to the checked address; the receiver still sees the URL's host name.
        host_header = (f"[{host}]" if ":" in host else host) + (f":{parts.port}" if parts.port else "")
        headers = {"Content-Type": "application/json",
                   **{name: value for name, value in self.config.headers.items() if name.lower() != "host"},
                   "Host": host_header}
        attempts = self.config.retries + 1
        for attempt in range(attempts):
            try:
                # NotAllowed (counted as a sink error) when the host now resolves to a refused address.
                address = Confinement.here().pinned(self.config.url)
                response = self._client.request(self.config.method, with_host(self.config.url, address),
                                                content=body, headers=headers, extensions={"sni_hostname": host})
            except (httpx.HTTPError, OSError) as error:  # OSError: the name does not resolve
                problem = f"{type(error).__name__}: {error}"
            else:
                if response.is_success:
                    return
                problem = f"HTTP {response.status_code}"
                if response.status_code not in RETRYABLE_STATUS:
                    raise RuntimeError(f"webhook answered {problem}")
            if attempt + 1 < attempts:
                delay = self.config.backoff_s * (2**attempt)
                log.info("webhook attempt %d/%d failed (%s); retrying in %.1f s", attempt + 1, attempts, problem, delay)
                self.wait_before_retry(delay, problem)
        raise RuntimeError(f"webhook failed after {attempts} attempt(s): {problem}")

    def close(self) -> None:
        self._client.close()
