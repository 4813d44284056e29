"""A pytest plugin (registered by ``tests/conftest.py``): with three xdist workers or more, only the first two run
tests that need the session platform, so the suite starts two platforms however many workers it has.

Every worker that runs a test using ``platform`` starts its own (``tests/platform_fixtures.py``: a Prefect server,
an MLflow server, two Prefect workers with their fork servers, the session's trained model): about 75 s of CPU
on this 2-core machine, a fifteenth of the whole suite. The other files (unit tests, API processes of their own,
the multi-host and ``serve`` scenarios) keep the other workers busy meanwhile.

The workers find which files need the platform (an item's fixture closure) and write them where the controller
said (``pytest_configure_node``); the controller's scheduler reads them before it hands out the first file. It is
xdist's ``loadfile`` scheduler otherwise: whole files, in collection order (``tests/slow_first.py``).
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any

import pytest
from xdist.scheduler import LoadFileScheduling

from tests.slow_first import package_of

PLATFORM_FIXTURE = "platform"
FILES_INPUT = "platform_files_path"  # the key of the workers' input that names the file
_FOLDER = pytest.StashKey[Path]()
PLATFORM_WORKERS = 2  # gw0 and gw1 may run platform files; the others, when there are three or more, do not


def platform_files(items: list[pytest.Item]) -> list[str]:
    """The files (node id prefixes) holding a test that uses the platform, directly or through other fixtures, and
    the other files of their package where it has package-scoped fixtures (``tests/console``: a Chromium, an API
    process), which a worker would otherwise start again for the files it is given."""
    def file_of(item: pytest.Item) -> str:
        return item.nodeid.split("::", 1)[0]

    files = {file_of(item) for item in items if PLATFORM_FIXTURE in item.fixturenames}
    packages = {package_of(item) for item in items if file_of(item) in files} - {None}
    return sorted(files | {file_of(item) for item in items if package_of(item) in packages})


class PlatformAwareScheduling(LoadFileScheduling):
    """`loadfile` scheduling where, of three workers or more, only gw0 and gw1 are given files that need the
    platform."""

    def __init__(self, config: pytest.Config, log: Any = None, files_path: Path | None = None) -> None:
        super().__init__(config, log)
        self._files_path = files_path
        self._platform_files: set[str] = set()
        # With fewer workers than three, every worker may run them.
        self._platform_free_workers = {f"gw{index}" for index in range(PLATFORM_WORKERS, self.numnodes)
                                       } if self.numnodes > PLATFORM_WORKERS else set()

    def _platform_free(self, node: Any) -> bool:
        return node.gateway.id in self._platform_free_workers

    def _may_run(self, node: Any, scope: str) -> bool:
        return scope not in self._platform_files or not self._platform_free(node)

    def schedule(self) -> None:
        if self._files_path is not None and self._files_path.exists():
            self._platform_files = set(json.loads(self._files_path.read_text()))
        super().schedule()

    def _assign_work_unit(self, node: Any) -> None:
        scope = next((scope for scope in self.workqueue if self._may_run(node, scope)), None)
        if scope is None:
            return
        self.workqueue.move_to_end(scope, last=False)  # xdist hands out the first unit of the queue
        super()._assign_work_unit(node)

    def _reschedule(self, node: Any) -> None:
        idle = self._pending_of(self.assigned_work[node]) == 0
        if (not node.shutting_down and idle and self.workqueue
                and not any(self._may_run(node, scope) for scope in self.workqueue)):
            node.shutdown()  # what is left needs the platform: this worker is done (the queue only shrinks)
            return
        super()._reschedule(node)


def pytest_configure(config: pytest.Config) -> None:
    if not hasattr(config, "workerinput") and config.getoption("dist", "no") == "loadfile":
        config.stash[_FOLDER] = Path(tempfile.mkdtemp(prefix="platform-files-"))


def pytest_unconfigure(config: pytest.Config) -> None:
    folder = config.stash.get(_FOLDER, None)
    if folder is not None:
        shutil.rmtree(folder, ignore_errors=True)


def pytest_configure_node(node: Any) -> None:
    folder = node.config.stash.get(_FOLDER, None)
    if folder is not None:
        node.workerinput[FILES_INPUT] = str(folder / "platform-files.json")


def pytest_xdist_make_scheduler(config: pytest.Config, log: Any) -> PlatformAwareScheduling | None:
    folder = config.stash.get(_FOLDER, None)
    if folder is None:
        return None
    return PlatformAwareScheduling(config, log, folder / "platform-files.json")


@pytest.hookimpl(trylast=True)
def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    path = getattr(config, "workerinput", {}).get(FILES_INPUT)
    if path is None:
        return
    # Every worker collects the same items and writes the same list; a rename makes each write whole.
    partial = Path(f"{path}.{os.getpid()}")
    partial.write_text(json.dumps(platform_files(items)))
    partial.replace(path)
