"""Job status comes from the Prefect state type; progress only moves forward."""

from __future__ import annotations

import uuid
from types import SimpleNamespace

from prefect.client.schemas.objects import StateType

from flows.common import JobProgress
from infra.model_files import archive_key
from infra.orchestration.client import _job_from_run
from infra.orchestration.jobs import JobStatus, JobType, state_types_for, status_of

EXPECTED = {
    StateType.SCHEDULED: "pending", StateType.PENDING: "pending", StateType.PAUSED: "pending",
    StateType.RUNNING: "running", StateType.CANCELLING: "running", StateType.COMPLETED: "completed",
    StateType.FAILED: "failed", StateType.CRASHED: "failed", StateType.CANCELLED: "cancelled",
}


def test_every_state_type_maps_to_a_status_and_back():
    assert {state: status_of(state).value for state in StateType} == EXPECTED
    assert status_of(None) is JobStatus.PENDING
    for status in JobStatus:
        assert {status_of(state) for state in state_types_for(status)} == {status}


def _run(state_type: StateType, message: str | None = None, tags=("project:p", "job:training")) -> SimpleNamespace:
    project = uuid.uuid4()
    return SimpleNamespace(id=uuid.uuid4(), state_type=state_type, state=SimpleNamespace(message=message),
                           tags=[tag.replace("project:p", f"project:{project}") for tag in tags], created=None,
                           start_time=None, end_time=None, project=project)


def test_job_view_of_a_flow_run():
    crashed = _job_from_run(_run(StateType.CRASHED, "No heartbeat for 90 s"), 40.0,
                            '[{"stage": "training", "epoch": 2, "loss": 0.5}]')
    assert crashed.status is JobStatus.FAILED and crashed.error == "No heartbeat for 90 s"
    assert crashed.type is JobType.TRAINING and crashed.progress == 0.4
    assert crashed.metrics == {"stage": "training", "epoch": 2, "loss": 0.5}
    completed = _job_from_run(_run(StateType.COMPLETED, "All states completed."), 99.0, None)
    assert completed.progress == 1.0 and completed.error is None and completed.metrics == {}
    assert _job_from_run(_run(StateType.RUNNING), None, "not json").progress == 0.0


def test_progress_outside_a_flow_run_is_monotonic_and_clamped():
    progress = JobProgress("test")
    progress.update(0.5, stage="training", epoch=1)
    progress.update(0.3, epoch=2)
    assert progress.value == 0.5 and progress.metrics == {"stage": "training", "epoch": 2}
    progress.update(7.0)
    assert progress.value == 1.0
    progress.done(loss=float("nan"))
    assert progress.metrics["stage"] == "done" and progress.metrics["loss"] is None


def test_archive_keys_validate_format_and_compression():
    model_id = uuid.uuid4()
    assert archive_key(model_id, "openvino", "int8") == f"models/{model_id}/exports/openvino-int8.zip"
    assert archive_key(model_id, "onnx") == f"models/{model_id}/exports/onnx.zip"
    for bad in (("tflite", None), ("onnx", "fp16"), ("openvino", "fp8")):
        try:
            archive_key(model_id, *bad)
        except ValueError:
            continue
        raise AssertionError(f"{bad} accepted")


def test_rows_of_finished_jobs_are_settled(tmp_path, sqlite_template):
    import shutil

    from infra.database.engine import session_scope
    from infra.database.models import Model, Project, Snapshot
    from infra.orchestration.jobs import Job
    from infra.orchestration.reconcile import settle_rows, waiting_job_ids

    shutil.copyfile(sqlite_template, tmp_path / "db.sqlite")  # a database at the newest schema
    url = f"sqlite:///{tmp_path / 'db.sqlite'}"
    crashed, running, completed = uuid.uuid4(), uuid.uuid4(), uuid.uuid4()
    with session_scope(url) as session:
        project = Project(name="p")
        session.add(project)
        session.flush()
        session.add_all([
            Model(project_id=project.id, name="crashed", architecture="padim", job_id=crashed),
            Model(project_id=project.id, name="running", architecture="padim", job_id=running),
            Model(project_id=project.id, name="done", architecture="padim", job_id=completed, status="ready"),
            Snapshot(project_id=project.id, name="auto", job_id=crashed),
        ])
    jobs = [Job(crashed, JobType.TRAINING, JobStatus.FAILED, None, 0.3, message="No heartbeat for 90 s"),
            Job(running, JobType.TRAINING, JobStatus.RUNNING, None, 0.5),
            Job(completed, JobType.TRAINING, JobStatus.COMPLETED, None, 1.0)]
    with session_scope(url) as session:
        assert waiting_job_ids(session) == {crashed, running}
        assert settle_rows(session, jobs) == 2
    with session_scope(url) as session:
        states = {model.name: (model.status, model.error) for model in session.query(Model)}
        snapshot = session.query(Snapshot).one()
        assert states == {"crashed": ("failed", "No heartbeat for 90 s"), "running": ("training", None),
                          "done": ("ready", None)}
        assert (snapshot.status, snapshot.error) == ("failed", "No heartbeat for 90 s")
        assert settle_rows(session, jobs) == 0
