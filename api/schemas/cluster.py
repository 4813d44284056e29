"""What a host that joins the platform (`geti-inspect worker --server`) receives from the API."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, Field


class PrefectAccess(BaseModel):
    api_url: str = Field(description="Prefect API the worker polls, as reachable from the host that asked")
    auth_string: str | None = Field(description="`user:password` for Prefect's basic auth (PREFECT_API_AUTH_STRING); "
                                                "null when Prefect has no login")


class MlflowAccess(BaseModel):
    tracking_uri: str
    username: str | None
    password: str | None


class ObjectStoreAccess(BaseModel):
    backend: Literal["s3"]
    endpoint_url: str | None = Field(description="S3 API endpoint; null: AWS")
    bucket: str
    prefix: str
    region: str | None
    access_key_id: str | None = Field(description="The server's resolved S3 credentials; null: the worker uses its own "
                                                  "(AWS variables, config files or instance role)")
    secret_access_key: str | None
    session_token: str | None


class WorkerConfigOut(BaseModel):
    """Everything a worker host needs to run the platform's flows, and nothing from the server's disk."""

    server_version: str
    prefect: PrefectAccess
    mlflow: MlflowAccess
    database_url: str = Field(description="SQLAlchemy URL of the platform database, credentials included")
    object_store: ObjectStoreAccess
    settings: dict[str, str | int | float | bool] = Field(
        description="Platform-wide settings (INSPECT_* names) the flows apply, e.g. INSPECT_OUTBOUND_ALLOW")
    heartbeat_seconds: int = Field(description="How often flow runs heart-beat (a silent one is crashed)")
