"""Memory and fps of 1 and 3 lines on one model: each line compiling its own copy vs sharing the model host.

Lines are started the way the inference worker starts them: a parent imports the inference flow's
modules once (``warm_engine.preload``, as the fork server does), then forks one process per line. Each
line runs ``PipelineRuntime.from_config`` as the inference flow builds it (THROUGHPUT hint, no sinks) on
a looping video at the highest fps a pipeline config allows, so every line is saturated and the lines
split the machine's throughput; ``--fps`` paces them instead (a line then should keep its fps).

Two modes, same run: ``own`` (``model_host=None``: today's behaviour, each line compiles the IR) and
``shared`` (``model_host=<scratch>/run/model-host.sock``: the first line starts the worker's model host,
every line scores through its one compiled model). Memory is PSS (``/proc/PID/smaps_rollup``): pages
shared by k processes count 1/k in each, so the sum over processes is what the stack really holds. The
total is the lines plus, in ``shared`` mode, the host. All lines report fps over the same window.

With ``--platform`` the lines run through the real platform instead: a fresh stack (Prefect, MLflow,
workers; temporary data dir) per mode, ``INSPECT_SHARE_MODELS=0`` vs ``1``, lines started with
``POST /api/active-pipelines`` on a looping video at ``--fps`` (default there: 10, a camera's pace); PSS
of every process of the stack (servers, workers, fork servers, line processes, model host), idle and
with 1 and 3 lines; fps per line from the lines' own metrics. The added-per-line column also gives the
lines' own private memory (USS): PSS splits a page among every process that maps it, other programs'
too, so the stack figure also moves with what else runs on the machine (library pages shared with it),
while USS does not. ``--smaps`` adds one line's largest private mappings and the PSS of each part of the
stack (a flow run forked for some other job while the figures are taken shows as ``forked_run``).

    .venv/bin/python benchmarks/shared_model.py --lines 1 3 --window 8
    .venv/bin/python benchmarks/shared_model.py --platform
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import signal
import statistics
import sys
import tempfile
import time
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO_ROOT))

from benchmarks.pipeline import prepare  # noqa: E402
from benchmarks.support import wait_until  # noqa: E402
from infra.orchestration.warm_engine import preload  # noqa: E402

MAX_FPS = 120.0  # a pipeline config's highest fps


def pss_mib(pid: int) -> float:
    with open(f"/proc/{pid}/smaps_rollup") as rollup:
        for line in rollup:
            if line.startswith("Pss:"):
                return int(line.split()[1]) / 1024
    raise LookupError(f"no Pss for {pid}")


def line_process(model_dir: Path, video: Path, host: Path | None, fps: float, warmup_s: float,
                 commands: int, replies: int) -> None:
    """A forked line: start, warm up, report 'ready'; on 'go' measure a window and report; on 'stop' end."""
    from pipelines.metrics import MetricsTracker
    from pipelines.runtime import PipelineRuntime

    metrics = MetricsTracker()
    runtime = PipelineRuntime.from_config(
        pipeline_id=f"line-{os.getpid()}", active_pipeline_id=f"line-{os.getpid()}", source_type="video_file",
        source_name="bench", source_config={"path": str(video)}, sinks=[], model_dir=model_dir,
        config={"threshold": 0.5, "fps": fps}, metrics=metrics, model_host=host)
    runtime.start()
    time.sleep(warmup_s)
    model = runtime._model  # noqa: SLF001 - which way it loaded, for the report
    say = os.fdopen(replies, "w", buffering=1)
    say.write(json.dumps({"ready": True, "host_pid": getattr(model, "host_pid", None)}) + "\n")
    listen = os.fdopen(commands)
    for command in listen:
        if command.strip() == "go":
            frames, started = metrics.frames_processed, time.monotonic()
        elif command.startswith("mark"):
            seconds = time.monotonic() - started
            say.write(json.dumps({"fps": (metrics.frames_processed - frames) / seconds,
                                  "state": runtime.state}) + "\n")
        elif command.strip() == "stop":
            break
    runtime.stop()
    os._exit(0)


class Lines:
    def __init__(self, count: int, model_dir: Path, video: Path, host: Path | None, args: argparse.Namespace) -> None:
        self.children: list[tuple[int, object, object]] = []
        for _ in range(count):
            command_read, command_write = os.pipe()
            reply_read, reply_write = os.pipe()
            pid = os.fork()
            if pid == 0:
                try:
                    os.close(command_write)
                    os.close(reply_read)
                    line_process(model_dir, video, host, args.fps, args.warmup, command_read, reply_write)
                finally:
                    os._exit(1)
            os.close(command_read)
            os.close(reply_write)
            self.children.append((pid, os.fdopen(command_write, "w", buffering=1), os.fdopen(reply_read)))
        self.ready = [self._read(index) for index in range(count)]

    def _read(self, index: int) -> dict:
        line = self.children[index][2].readline()  # type: ignore[attr-defined]
        if not line:
            raise RuntimeError(f"line {index} ended early")
        return json.loads(line)

    def send(self, command: str) -> None:
        for _, commands, _ in self.children:
            commands.write(command + "\n")  # type: ignore[attr-defined]

    def stop(self) -> None:
        self.send("stop")
        for pid, commands, replies in self.children:
            os.waitpid(pid, 0)
            commands.close()  # type: ignore[attr-defined]
            replies.close()  # type: ignore[attr-defined]


def measure(mode: str, count: int, model_dir: Path, video: Path, scratch: Path, args: argparse.Namespace) -> dict:
    host = scratch / f"{mode}-{count}" / "run" / "model-host.sock" if mode == "shared" else None
    lines = Lines(count, model_dir, video, host, args)
    host_pid = lines.ready[0]["host_pid"]
    try:
        lines.send("go")
        time.sleep(args.window)
        lines.send("mark")
        reports = [lines._read(index) for index in range(count)]
        line_pss = [pss_mib(pid) for pid, _, _ in lines.children]
        host_pss = pss_mib(host_pid) if host_pid else 0.0
    finally:
        lines.stop()
        if host_pid:
            os.kill(host_pid, signal.SIGTERM)  # it would leave by itself after its idle time
    if mode == "shared" and not host_pid:
        raise RuntimeError("shared mode but the lines compiled their own models (see the log)")
    return {"mode": mode, "count": count, "fps": [report["fps"] for report in reports],
            "states": {report["state"] for report in reports}, "line_pss": line_pss, "host_pss": host_pss,
            "total": sum(line_pss) + host_pss, "load": os.getloadavg()[0]}


def stack_pss(stack: object, data_dir: Path, lines: set[int]) -> dict[str, float]:
    """PSS of every process of the stack and their descendants, plus a model host of its data dir: in all,
    of the line processes (`lines`), of the host."""
    import psutil

    pids: set[int] = set()
    for managed in stack.processes():  # type: ignore[attr-defined]
        if managed.pid is None:
            continue
        with contextlib.suppress(psutil.Error):
            root = psutil.Process(managed.pid)
            pids.update([root.pid, *(child.pid for child in root.children(recursive=True))])
    hosts = set()
    for process in psutil.process_iter(["cmdline"]):
        command = process.info["cmdline"] or []
        if "pipelines.model_host" in command and any(str(data_dir) in part for part in command):
            hosts.add(process.pid)  # its own session: no descendant of the worker once its line has gone
    figures = {"total": 0.0, "lines": 0.0, "host": 0.0, "lines_uss": 0.0}
    for pid in pids | hosts:
        with contextlib.suppress(OSError, psutil.Error):
            pss = pss_mib(pid)
            figures["total"] += pss
            figures["lines"] += pss if pid in lines else 0.0
            figures["host"] += pss if pid in hosts else 0.0
            figures["lines_uss"] += psutil.Process(pid).memory_full_info().uss / 2**20 if pid in lines else 0.0
            role = "role:line" if pid in lines else f"role:{_role(pid)}"
            figures[role] = figures.get(role, 0.0) + pss
    return figures


ROLES = ("prefect_server", "mlflow", "uvicorn", "warm_worker", "warm_engine", "model_host")


def _role(pid: int) -> str:
    """Which part of the stack a process is (for --smaps's per-part figures); a flow run forked by a fork
    server (not a line) is `forked_run`."""
    import psutil

    role = next((role for role in ROLES if role in " ".join(psutil.Process(pid).cmdline())), "other")
    parent = psutil.Process(pid).parent()
    if role == "warm_engine" and parent is not None and "warm_engine" in " ".join(parent.cmdline()):
        return "forked_run"
    return role


def print_private(pid: int) -> None:
    """The largest private (dirty) mappings of one line process: where a line's own memory goes."""
    sizes: dict[str, int] = {}
    name = ""
    with open(f"/proc/{pid}/smaps") as smaps:
        for line in smaps:
            fields = line.split()
            if "-" in fields[0] and len(fields) >= 5 and ":" in fields[3]:
                name = fields[5] if len(fields) > 5 else "[anon]"
            elif fields[0] == "Private_Dirty:":
                sizes[name] = sizes.get(name, 0) + int(fields[1])
    top = sorted(sizes.items(), key=lambda item: -item[1])[:8]
    print(f"    line {pid} private dirty {sum(sizes.values()) / 1024:.0f} MiB: "
          + ", ".join(f"{Path(key).name or key} {value / 1024:.0f}" for key, value in top), flush=True)


def line_pids(client: object, actives: list[str]) -> set[int]:
    """The flow-run processes of the active pipelines: the owners of their control endpoints' ports."""
    import uuid
    from urllib.parse import urlsplit

    import psutil

    from infra.database.models import ActivePipeline

    with client.app.state.sessionmaker() as session:  # type: ignore[attr-defined]
        ports = {urlsplit(session.get(ActivePipeline, uuid.UUID(active)).control_url).port for active in actives}
    return {conn.pid for conn in psutil.net_connections("tcp")
            if conn.pid and conn.status == psutil.CONN_LISTEN and conn.laddr.port in ports}


def platform_mode(share: bool, counts: list[int], model_dir: Path, args: argparse.Namespace) -> list[dict]:
    """One fresh stack; lines added up to each count; PSS of the stack and fps per line at each."""
    from fastapi.testclient import TestClient

    from api.app import create_app
    from infra.model_files import openvino_prefix, upload_folder
    from infra.settings import Settings
    from infra.supervisor import Stack
    from tests.integration.pipeline_helpers import class_images, frames_from, write_video
    from tests.integration.pipeline_support import insert_model
    from tests.machines import online_workers
    from tests.network import free_port

    rows = []
    with tempfile.TemporaryDirectory(prefix="bench-shared-") as tmp:
        scratch = Path(tmp)
        settings = Settings(data_dir=scratch / "data", prefect_port=free_port(), mlflow_port=free_port(),
                            share_models=share)
        stack = Stack(settings)
        stack.start()
        try:
            with TestClient(create_app(settings, health_checks=stack.health_checks())) as client:
                wait_until(lambda: online_workers(stack.prefect_api_url, "inference"), 300, "the inference worker")
                project = client.post("/api/projects", json={"name": "Shared model"}).json()["id"]
                model_id = insert_model(client, project)
                assert upload_folder(client.app.state.store, next(model_dir.rglob("model.xml")).parent,
                                     openvino_prefix(model_id))
                line_dir = settings.resolved_data_dir / "line"
                line_dir.mkdir(parents=True, exist_ok=True)
                from tests.synthetic_parts import write_parts

                parts = write_parts(scratch / "parts", {"MT_Free": 12})
                video = write_video(line_dir / "line.avi", frames_from(class_images(parts, "MT_Free", 12)))
                source = client.post(f"/api/projects/{project}/sources", json={
                    "type": "video_file", "name": "Video", "config": {"path": str(video), "loop": True}})
                sink = client.post(f"/api/projects/{project}/sinks", json={
                    "type": "filesystem", "name": "Folder", "config": {"output_dir": str(line_dir / "events")}})
                source, sink = source.raise_for_status().json(), sink.raise_for_status().json()
                time.sleep(args.warmup)
                rows.append({"share": share, "count": 0, "pss": stack_pss(stack, settings.resolved_data_dir, set()),
                             "fps": []})
                actives: list[str] = []
                for count in counts:
                    while len(actives) < count:
                        pipeline = client.post(f"/api/projects/{project}/pipelines", json={
                            "name": f"Line {len(actives) + 1}", "source_id": source["id"], "sink_id": sink["id"],
                            "model_id": model_id, "config": {"fps": args.fps, "threshold": 1.0}}).json()
                        active = client.post("/api/active-pipelines", json={"pipeline_id": pipeline["id"]})
                        active.raise_for_status()
                        actives.append(active.json()["id"])
                    for active_id in actives:
                        wait_until(lambda a=active_id: client.get(f"/api/active-pipelines/{a}").json()["status"]
                                   == "running", 180, "a line to run")
                    time.sleep(args.warmup + args.window)
                    fps = [client.get(f"/api/active-pipelines/{a}").json()["metrics"].get("fps", 0.0)
                           for a in actives]
                    lines = line_pids(client, actives)
                    assert len(lines) == count, lines
                    rows.append({"share": share, "count": count, "fps": fps,
                                 "pss": stack_pss(stack, settings.resolved_data_dir, lines)})
                    print(f"  share_models={int(share)} {count} line(s): PSS {rows[-1]['pss']}, "
                          f"fps {', '.join(f'{value:.1f}' for value in fps)}", flush=True)
                    if args.smaps:
                        print_private(max(lines))
                        pss = rows[-1]["pss"]
                        parts = sorted((key[5:], value) for key, value in pss.items() if key.startswith("role:"))
                        print("    PSS by part: " + ", ".join(f"{name} {value:.0f}" for name, value in parts))
                for active_id in actives:
                    client.delete(f"/api/active-pipelines/{active_id}")
        finally:
            stack.stop()
    return rows


def platform_main(args: argparse.Namespace) -> None:
    with tempfile.TemporaryDirectory() as scratch:
        model_dir, _, _ = prepare(args.model_dir, args.mtd_dir, Path(scratch), 48, (640, 480))
        os.environ.pop("INSPECT_ALLOWED_PATHS", None)  # prepare's; each stack's lines read its own data dir
        rows = [row for share in args.share for row in platform_mode(bool(share), args.lines, model_dir, args)]
    print(f"\nWhole stack PSS in MiB (every process, model host included); lines at {args.fps:g} fps; "
          f"load {os.getloadavg()[0]:.1f}\n")
    print("INSPECT_SHARE_MODELS | lines | stack PSS | lines + host PSS | added per line over the first: stack "
          "(lines + host; lines' USS) | fps per line")
    print("--- | --- | --- | --- | --- | ---")
    for row in rows:
        first = next(other for other in rows if other["share"] == row["share"] and other["count"] == min(args.lines))
        pss, base = row["pss"], first["pss"]
        mine, theirs = pss["lines"] + pss["host"], base["lines"] + base["host"]
        added = "-"
        if row["count"] > first["count"]:
            span = row["count"] - first["count"]
            added = (f"{(pss['total'] - base['total']) / span:.0f} ({(mine - theirs) / span:.0f}; "
                     f"{(pss['lines_uss'] - base['lines_uss']) / span:.0f})")
        print(f"{int(row['share'])} | {row['count']} | {pss['total']:.0f} | {mine:.0f} | {added} | "
              f"{', '.join(f'{fps:.1f}' for fps in row['fps']) or '-'}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--lines", type=int, nargs="+", default=[1, 3], help="line counts (default 1 3)")
    parser.add_argument("--window", type=float, default=8, help="seconds over which fps is measured (default 8)")
    parser.add_argument("--warmup", type=float, default=4, help="seconds each line runs before (default 4)")
    parser.add_argument("--fps", type=float, default=None,
                        help=f"each line's fps setting (default {MAX_FPS:g}; with --platform 10)")
    parser.add_argument("--platform", action="store_true", help="through the real platform (a stack per mode)")
    parser.add_argument("--smaps", action="store_true", help="with --platform: where one line's memory goes")
    parser.add_argument("--share", type=int, nargs="+", default=[0, 1], choices=[0, 1],
                        help="with --platform: INSPECT_SHARE_MODELS values to run (default 0 1)")
    parser.add_argument("--rounds", type=int, default=1, help="own/shared repetitions, alternating (default 1)")
    parser.add_argument("--model-dir", type=Path, default=None, help="anomalib OpenVINO export (default: tiny PaDiM)")
    parser.add_argument("--mtd-dir", type=Path, default=REPO_ROOT.parent / "shared" / "data" / "mtd")
    parser.add_argument("--frame-size", default="640x480", help="video frame size WxH (default 640x480)")
    args = parser.parse_args()
    if args.platform:
        args.fps = args.fps or 10.0
        platform_main(args)
        return
    args.fps = args.fps or MAX_FPS
    width, height = (int(part) for part in args.frame_size.lower().split("x"))
    preload(["flows.inference", "pipelines.runtime"])  # what the inference worker's fork server imports
    rows = []
    with tempfile.TemporaryDirectory() as scratch:
        model_dir, video, _ = prepare(args.model_dir, args.mtd_dir, Path(scratch), 48, (width, height))
        for _ in range(args.rounds):
            for count in args.lines:
                for mode in ("own", "shared"):
                    row = measure(mode, count, model_dir, video, Path(scratch), args)
                    rows.append(row)
                    print(f"  {mode:6s} {count} line(s): PSS {row['total']:.0f} MiB, fps per line "
                          f"{', '.join(f'{fps:.1f}' for fps in row['fps'])}; load {row['load']:.1f}", flush=True)

    print(f"\nPSS in MiB (lines + model host); fps over {args.window:g} s with every line running "
          f"(line fps setting {args.fps:g}); median of {args.rounds} round(s)\n")
    header = ("mode", "lines", "PSS total", "PSS per line", "PSS host", "fps per line", "aggregate fps", "states")
    print(" | ".join(header))
    print(" | ".join("---" for _ in header))
    summary: dict[tuple[str, int], float] = {}
    for mode in ("own", "shared"):
        for count in args.lines:
            runs = [row for row in rows if row["mode"] == mode and row["count"] == count]
            total = statistics.median(row["total"] for row in runs)
            summary[(mode, count)] = total
            fps = [statistics.median(row["fps"][i] for row in runs) for i in range(count)]
            print(" | ".join([mode, str(count), f"{total:.0f}",
                              ", ".join(f"{statistics.median(row['line_pss'][i] for row in runs):.0f}"
                                        for i in range(count)),
                              f"{statistics.median(row['host_pss'] for row in runs):.0f}",
                              ", ".join(f"{value:.1f}" for value in fps), f"{sum(fps):.1f}",
                              ",".join(sorted(set().union(*(row["states"] for row in runs))))]))
    if len(args.lines) >= 2:
        low, high = min(args.lines), max(args.lines)
        print()
        for mode in ("own", "shared"):
            added = (summary[(mode, high)] - summary[(mode, low)]) / (high - low)
            print(f"{mode}: each line after the first adds {added:.0f} MiB PSS")


if __name__ == "__main__":
    main()
