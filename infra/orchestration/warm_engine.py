"""A spare flow process: imports the flows' modules ahead of time, then runs one flow run.

`python -m prefect.engine` spends most of a short job importing torch, anomalib and Prefect.
The warm worker (`infra.orchestration.warm_worker`) keeps one of these processes waiting with
those imports done; when a flow run arrives it writes one JSON line on our stdin, the run's
environment and working directory, and from then on this process *is* Prefect's engine process
for that run: same environment, same `prefect.engine` entry point, same exit code, same signals.

    python -m infra.orchestration.warm_engine flows.training.flow flows.export ...
"""

from __future__ import annotations

import importlib
import json
import logging
import os
import runpy
import sys
import warnings

log = logging.getLogger(__name__)


def preload(modules: list[str]) -> None:
    """Import what the runs will need; a module that fails is left for the run to report.

    A flow module keeps its heavy imports inside the flow function (deployments and the API import
    it cheaply) and names them in `WARM_START_IMPORTS`; those are imported here too.
    """
    pending = list(modules)
    while pending:
        name = pending.pop(0)
        try:
            module = importlib.import_module(name)
        except Exception:  # noqa: BLE001 - the flow run itself will fail with the real error
            log.exception("warm engine could not preload %s", name)
            continue
        pending.extend(getattr(module, "WARM_START_IMPORTS", ()))


def run_engine(environment: dict[str, str], cwd: str) -> None:
    """Become `python -m prefect.engine` for the flow run named in `environment`."""
    os.environ.clear()
    os.environ.update(environment)
    os.chdir(cwd)
    sys.argv = [sys.argv[0]]  # the engine reads the flow run id from PREFECT__FLOW_RUN_ID
    from prefect.context import SettingsContext, get_settings_context
    from prefect.settings import Settings

    # Prefect read its settings at import time, from the worker's environment: re-read them from
    # the run's, as Prefect's own subprocess launcher does.
    with SettingsContext(profile=get_settings_context().profile, settings=Settings()), warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*found in sys.modules", category=RuntimeWarning)
        runpy.run_module("prefect.engine", run_name="__main__", alter_sys=True)


def main(argv: list[str]) -> int:
    preload(argv)
    line = sys.stdin.readline()
    if not line.strip():
        return 0  # the worker stopped (stdin closed) before handing us a run
    order = json.loads(line)
    sys.stdin.close()
    run_engine(order["env"], order["cwd"])
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
