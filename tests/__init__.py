"""The test suite. Importing it (before any test module or conftest, so before torch loads libgomp) sets the
OpenMP wait policy the platform gives its workers' flow processes (`infra.supervisor.environment.threading_env`):
threads sleep at a barrier instead of spinning. The suite trains in its own processes too, on two workers
at once; with the default spin, 2 test files that train took 6-10 % more CPU and 8-12 % more time."""

import os

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
