# Two commands: `make demo` runs the main job on embedded defaults; `make test` runs the tests.
# Both set themselves up on a fresh machine that has only Python 3.11+.
PYTHON ?= python3
UV_VERSION := 0.13.8
UV := .uvtool/bin/uv
VENV := .venv
export UV_COMPILE_BYTECODE := 1
export DO_NOT_TRACK := 1
export PREFECT_SERVER_ANALYTICS_ENABLED := false

.PHONY: setup demo test lint bench-m4 clean

$(UV):
	$(PYTHON) -m venv .uvtool
	.uvtool/bin/pip install --quiet uv==$(UV_VERSION)

$(VENV)/.synced: $(UV) pyproject.toml uv.lock
	$(UV) sync --frozen
	touch $@

setup: $(VENV)/.synced

demo: setup
	$(VENV)/bin/fleetcast demo

test: setup
	$(VENV)/bin/pytest -q

lint: setup
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy

bench-m4: setup
	$(VENV)/bin/python benchmarks/m4_hourly.py ../shared/data/m4-hourly

clean:
	rm -rf .fleetcast fleetcast.duckdb landing
