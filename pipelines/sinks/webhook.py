"""POSTs (or PUTs/PATCHes) each event as JSON to a URL, retrying transient failures with backoff."""

from __future__ import annotations

import logging

import httpx

from infra.configs.confinement import Confinement
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
        # Raises NotAllowed (counted as a sink error) if the host now resolves to a refused address.
        Confinement.here().host(self.config.url)
        body = event.to_json(self.config.include_image)
        headers = {"Content-Type": "application/json", **self.config.headers}
        attempts = self.config.retries + 1
        for attempt in range(attempts):
            try:
                response = self._client.request(self.config.method, self.config.url, content=body, headers=headers)
            except httpx.HTTPError as error:
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
