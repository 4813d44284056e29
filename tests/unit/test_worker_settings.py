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


def test_prefect_runs_calm_with_the_services_the_platform_does_not_use_off(tmp_path, monkeypatch):
    from infra.supervisor.stack import Stack

    monkeypatch.setenv("PREFECT_SERVER_SERVICES_REPOSSESSOR_ENABLED", "true")  # the operator's word wins
    spec = Stack(Settings(data_dir=tmp_path))._prefect_server_spec()  # noqa: SLF001
    assert spec.argv[1:5] == ["-m", "infra.orchestration.prefect_server", "server", "start"]
    assert spec.env["PREFECT_SERVER_SERVICES_LATE_RUNS_ENABLED"] == "false"
    assert spec.env["PREFECT_SERVER_SERVICES_PAUSE_EXPIRATIONS_ENABLED"] == "false"
    assert spec.env["PREFECT_SERVER_SERVICES_REPOSSESSOR_ENABLED"] == "true"
    assert "PREFECT_SERVER_SERVICES_SCHEDULER_ENABLED" not in spec.env, "retraining schedules need the scheduler"


def test_the_calm_server_checks_its_task_queue_every_second():
    import docket

    from infra.orchestration.prefect_server import CHECK_INTERVAL, CalmDocketWorker

    worker = CalmDocketWorker(docket.Docket(name="calm-test", url="memory://"))
    assert worker.minimum_check_interval == worker.scheduling_resolution == CHECK_INTERVAL


def test_the_calm_servers_pub_sub_still_delivers_and_still_times_out(monkeypatch):
    """Longer waiting slices (infra/orchestration/prefect_server.py) change how often it looks, not what it returns."""
    import asyncio

    import burner_redis
    from burner_redis.pubsub import PubSub

    from infra.orchestration import prefect_server

    monkeypatch.setattr(PubSub, "_queue_get", prefect_server._queue_get)  # noqa: SLF001

    async def exchange() -> list:
        redis = burner_redis.BurnerRedis()
        pubsub = redis.pubsub()
        await pubsub.psubscribe("cancel:*")
        received = [await pubsub.get_message(ignore_subscribe_messages=True, timeout=0.1)]  # nothing yet
        await redis.publish("cancel:task-1", "now")
        received.append(await pubsub.get_message(ignore_subscribe_messages=True, timeout=0.1))
        return received

    nothing, message = asyncio.run(exchange())
    assert nothing is None
    assert message["channel"] == b"cancel:task-1" and message["data"] == b"now"
