"""Platform configuration: every field can be set from an ``INSPECT_*`` environment variable."""

from __future__ import annotations

import ipaddress
import os
from functools import lru_cache
from pathlib import Path
from typing import Literal

from pydantic import Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="INSPECT_", extra="ignore")

    host: str = "127.0.0.1"
    port: int = 8000
    data_dir: Path = Path("./data")
    # Any SQLAlchemy URL; empty means SQLite inside data_dir.
    database_url: str = ""

    # Object storage: "local" (a folder under data_dir) or "s3".
    storage_backend: str = Field(default="local", pattern="^(local|s3)$")
    s3_endpoint_url: str | None = None
    s3_bucket: str = "geti-inspect"
    s3_prefix: str = ""
    s3_region: str | None = None

    # Uploads: the whole multipart request may not exceed this many bytes (413 otherwise).
    max_upload_bytes: int = 256 * 1024 * 1024
    # An image with more pixels is refused from its header, before decoding (40 Mpx: 160 MB as RGBA).
    max_image_pixels: int = Field(default=40_000_000, gt=0)
    # Images the API decodes at once (uploads, captures, thumbnails); more wait their turn. Peak decode
    # memory is about this many times the largest allowed image.
    max_concurrent_decodes: int = Field(default=2, ge=1)
    # Longest side of the thumbnails of uploaded, captured and collected media.
    thumbnail_size: int = Field(default=256, ge=16, le=4096)
    # Dataset imports (POST /projects/{id}/imports): at most this many bytes once unpacked and this many files,
    # so a zip bomb or a runaway folder is refused before anything is read. One file is bounded by max_upload_bytes.
    max_import_bytes: int = Field(default=8 * 1024**3, gt=0)
    max_import_files: int = Field(default=200_000, gt=0)

    # Orchestration and tracking (the supervised stack started by `serve`).
    prefect_port: int = 4200
    mlflow_port: int = 5000
    # Address the supervised Prefect and MLflow servers bind (`resolved_services_host`). Unset: loopback, or,
    # once the platform is exposed, the API's own address (every interface with INSPECT_EXPOSE=1 alone).
    services_host: str | None = None
    # Serve other hosts: the supervised Prefect and MLflow bind beyond loopback and, like them whenever anything
    # binds beyond loopback (`exposed`), require the credentials `serve` keeps in the data dir (docs/deployment.md).
    expose: bool = False
    # Which workers `serve` runs itself: "none" when every job runs on hosts that joined with `geti-inspect worker`.
    serve_workers: Literal["none", "training", "inference", "all"] = "all"
    # A job whose flow process stopped heart-beating (its worker or its machine died) is crashed after this many
    # seconds of silence. Flows heart-beat every 30 s (Prefect's minimum), so less than 45 s would crash live jobs.
    job_crash_after_s: float = Field(default=90.0, ge=45)
    prefect_api_url: str | None = None  # external Prefect API: nothing is started locally
    mlflow_tracking_uri: str | None = None  # external MLflow server: nothing is started locally
    # Browser addresses of the Prefect and MLflow UIs, for the links in API responses and the start-up
    # banner. Unset: the external server's address when one is configured, else the supervised port on
    # the host the client used to reach the API.
    prefect_ui_url: str | None = None
    mlflow_ui_url: str | None = None
    min_normal_images: int = 8
    # The API's jobs index follows Prefect this often (seconds) after a run's state event, or while Prefect's
    # event stream is down: how late a run made outside the API (a schedule, the Prefect UI) appears in a jobs
    # list. 0 turns the poller off (lists then know only the jobs this API submitted or read).
    job_index_poll_s: float = Field(default=1.0, ge=0)
    # With the event stream up and no event, a pass this often (seconds): the safety net for what sends no
    # event (a run deleted in Prefect). The idle API's Prefect reads (docs/architecture.md, "Jobs index").
    job_index_idle_poll_s: float = Field(default=10.0, gt=0)
    # The API's Prefect client tries a refused connection again this many times (backoff 0.5 s, then 1 s: about
    # 1.5 s at Prefect's own default of 3) before a job route answers 503: a Prefect restart is ridden out.
    prefect_connect_retries: int = Field(default=3, ge=0)
    # Workers keep a spare flow process with the flows' imports (torch, anomalib) done: jobs start in
    # about a second instead of spending 10-20 s importing. Costs one idle process per worker (~0.8 GB training).
    # How a worker gets a flow process with the flows' imports done (docs/architecture.md, "Workers"):
    # "fork" (a fork server forks each run), "spare" (one waiting spare, replaced after each run) or "cold".
    worker_start: Literal["fork", "spare", "cold"] = "fork"
    # Flow runs a training-pool worker runs at once (`prefect worker start --limit`): training, snapshot and
    # export jobs share the pool. More wait `pending` with a "waiting for a worker" message. 1 suits 2 cores.
    training_concurrency: int = Field(default=1, ge=1)

    # Live pipelines: each flow run serves a small control endpoint (captures, WebRTC signalling) that the
    # API calls. It binds this host on a random port; a worker on another machine binds an interface the
    # API can reach and, where that address differs (NAT, 0.0.0.0), advertises the reachable one.
    pipeline_control_host: str = "127.0.0.1"
    pipeline_control_advertise_host: str | None = None
    # Ports ("first-last") the control endpoints bind: one per running pipeline, so the range caps the lines
    # per machine. A fixed range lets sinks and cameras be refused them (infra/configs/outbound.py); the
    # default lies below Linux's ephemeral ports (32768-60999), so other programs' random ports never land in it.
    pipeline_control_ports: str = Field(default="29100-29299", pattern=r"^\d{1,5}-\d{1,5}$")
    # Data collection: a project keeps at most this many collected media; the oldest collected go first
    # (uploaded media are never removed).
    max_collected_media: int = Field(default=5000, ge=1)
    # Lines on one worker that run the same model share one compiled copy in the worker's model host
    # (pipelines/model_host.py); off: each line compiles its own (about 160 MiB more per line for PaDiM).
    share_models: bool = True
    # PatchCore: up to this many training patches (1,024 per 256x256 image) the coreset is anomalib's exact
    # k-center greedy; above it, greedy within chunks (flows/training/patchcore.py). Exact grows with the
    # square of the training set.
    patchcore_exact_coreset_limit: int = Field(default=65_536, ge=1)

    # Access control (docs/operations.md, threat model). Unset: no authentication, for a loopback-only
    # install. Set: every endpoint but GET /api/health wants `Authorization: Bearer <key>` or `X-API-Key`.
    api_key: SecretStr | None = None
    # Folders (os.pathsep-separated) that video_file / images_folder sources and filesystem sinks may use;
    # empty: the data dir's `line/` folder. Relative config paths are taken inside the first one.
    allowed_paths: str = ""
    # Comma-separated host names that webhook / MQTT sinks and IP cameras may reach; empty: any host
    # (link-local and cloud-metadata addresses are refused either way).
    outbound_allow: str = ""
    # JSON (any non-multipart) request bodies over this many bytes are refused with 413 before parsing.
    max_json_bytes: int = Field(default=1024 * 1024, gt=0)

    @field_validator("pipeline_control_ports")
    @classmethod
    def _port_range(cls, ports: str) -> str:
        first, last = (int(port) for port in ports.split("-"))
        if not 1024 <= first <= last <= 65535:
            raise ValueError("INSPECT_PIPELINE_CONTROL_PORTS must be 'first-last' with 1024 <= first <= last <= 65535")
        return ports

    @field_validator("api_key")
    @classmethod
    def _key_not_blank(cls, key: SecretStr | None) -> SecretStr | None:
        if key is not None and not key.get_secret_value().strip():
            raise ValueError("INSPECT_API_KEY is set but blank; unset it to run without a key")
        return key

    @property
    def exposed(self) -> bool:
        """Anything `serve` starts listens beyond loopback: Prefect, MLflow and the API then want credentials."""
        return self.expose or not is_loopback(self.host) or (
            self.services_host is not None and not is_loopback(self.services_host))

    @property
    def resolved_services_host(self) -> str:
        if self.services_host is not None:
            return self.services_host
        if not is_loopback(self.host):
            return self.host
        return "0.0.0.0" if self.expose else "127.0.0.1"  # noqa: S104 - INSPECT_EXPOSE=1 asks for other hosts

    @property
    def services_address(self) -> str:
        """Where clients on this machine reach the supervised servers: their address, loopback for a wildcard."""
        host = self.resolved_services_host
        if host in ("0.0.0.0", "::", ""):  # noqa: S104 - a bind address, compared
            return "127.0.0.1"
        return f"[{host}]" if ":" in host and not host.startswith("[") else host

    @property
    def resolved_allowed_paths(self) -> tuple[Path, ...]:
        entries = [entry for entry in self.allowed_paths.split(os.pathsep) if entry.strip()]
        roots = [Path(entry).expanduser() for entry in entries] or [self.resolved_data_dir / "line"]
        return tuple(root.resolve() for root in roots)

    @property
    def pipeline_control_port_range(self) -> range:
        first, last = (int(port) for port in self.pipeline_control_ports.split("-"))
        return range(first, last + 1)

    @property
    def outbound_hosts(self) -> frozenset[str] | None:
        hosts = {host.strip().lower().rstrip(".") for host in self.outbound_allow.split(",") if host.strip()}
        return frozenset(hosts) or None

    @property
    def resolved_data_dir(self) -> Path:
        return self.data_dir.expanduser().resolve()

    @property
    def resolved_database_url(self) -> str:
        if self.database_url:
            return self.database_url
        return f"sqlite:///{self.resolved_data_dir / 'inspect.db'}"


def is_loopback(host: str) -> bool:
    """True for loopback addresses and `localhost`; a wildcard (0.0.0.0, ::) or any other address is not."""
    if host.strip("[]").lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False  # a host name: it may resolve to anything


@lru_cache
def get_settings() -> Settings:
    return Settings()
