"""`geti-inspect worker` names what in its settings reaches only the machine it runs on."""

from __future__ import annotations

from pathlib import Path

from api.serve import machine_local_settings
from infra.settings import Settings
from infra.supervisor.stack import StackOptions, worker_name, worker_spec


def test_defaults_are_all_machine_local():
    found = machine_local_settings(Settings(data_dir=Path("/srv/inspect")))
    assert len(found) == 4
    assert any("/srv/inspect/inspect.db" in item for item in found)
    assert any("/srv/inspect/storage" in item for item in found)


def test_shared_settings_are_not():
    shared = Settings(data_dir=Path("/srv/w2"), prefect_api_url="http://ops:4200/api", mlflow_tracking_uri="http://ops:5000",
                      database_url="postgresql+psycopg://inspect@ops/inspect", storage_backend="s3")
    assert machine_local_settings(shared) == []


def test_worker_names_tell_machines_and_processes_apart():
    spec = worker_spec(Settings(data_dir=Path("/tmp/x")), "training", None, prefect_api="http://p/api",
                       mlflow_uri="http://m", options=StackOptions())
    assert spec.argv[spec.argv.index("--name") + 1] == worker_name("training")
    assert worker_name("training", 41) != worker_name("training", 42) != worker_name("inference", 42)


def test_prefect_and_mlflow_bind_loopback_unless_the_platform_is_exposed(tmp_path):
    from infra.supervisor.stack import Stack

    def hosts(**settings) -> set[str]:
        stack = Stack(Settings(data_dir=tmp_path, **settings))
        specs = (stack._prefect_server_spec(), stack._mlflow_server_spec())  # noqa: SLF001
        return {spec.argv[spec.argv.index("--host") + 1] for spec in specs}

    assert hosts() == {"127.0.0.1"}
    assert hosts(host="localhost") == {"127.0.0.1"}
    assert hosts(services_host="0.0.0.0") == {"0.0.0.0"}  # noqa: S104 - what another machine needs
    assert hosts(host="10.1.2.3") == {"10.1.2.3"}  # the API's interface
    assert hosts(expose=True) == {"0.0.0.0"}  # noqa: S104
    assert hosts(expose=True, services_host="10.1.2.3") == {"10.1.2.3"}


def test_serve_runs_the_workers_it_is_told_to(tmp_path):
    from infra.supervisor.stack import Stack

    def pools(**settings) -> tuple[str, ...]:
        return Stack(Settings(data_dir=tmp_path, **settings)).local_pools

    assert pools() == ("training", "inference")
    assert pools(serve_workers="none") == ()
    assert pools(serve_workers="inference") == ("inference",)
    assert pools(prefect_api_url="http://ops:4200/api") == (), "an external Prefect's workers are other hosts'"
