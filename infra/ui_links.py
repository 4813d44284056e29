"""Browser addresses of the Prefect and MLflow pages that belong to a job or a model.

The API puts them in its responses so a user can jump from a model to its MLflow run and from a
job to its Prefect flow run; `serve` prints the UI addresses at start-up.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass

from infra.settings import Settings

_ANY_ADDRESS = {"0.0.0.0", "::", ""}


@dataclass(frozen=True)
class UiLinks:
    prefect_ui: str
    mlflow_ui: str
    api: str  # the REST API's base, ending in /api

    def api_model(self, model_id: uuid.UUID | str) -> str:
        return f"{self.api}/models/{model_id}"

    def prefect_flow_run(self, flow_run_id: uuid.UUID | str) -> str:
        return f"{self.prefect_ui}/runs/flow-run/{flow_run_id}"

    def mlflow_run(self, run_id: str) -> str:
        # MLflow's UI redirects /runs/<id> to the run's page inside its experiment.
        return f"{self.mlflow_ui}/#/runs/{run_id}"


def ui_links(settings: Settings, api_host: str | None = None) -> UiLinks:
    """The UIs' addresses: configured ones first, else the supervised ports on `api_host`.

    `api_host` is the host name a client used to reach the API; without it, the API's bind address
    (loopback when it binds every interface).
    """
    host = api_host or (settings.host if settings.host not in _ANY_ADDRESS else "127.0.0.1")
    host = f"[{host}]" if ":" in host and not host.startswith("[") else host
    prefect = settings.prefect_ui_url or (settings.prefect_api_url.removesuffix("/").removesuffix("/api")
                                          if settings.prefect_api_url else f"http://{host}:{settings.prefect_port}")
    external_mlflow = settings.mlflow_tracking_uri if (settings.mlflow_tracking_uri or "").startswith("http") else None
    mlflow = settings.mlflow_ui_url or external_mlflow or f"http://{host}:{settings.mlflow_port}"
    return UiLinks(prefect.rstrip("/"), mlflow.rstrip("/"), f"http://{host}:{settings.port}/api")
