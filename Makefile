# Two commands: `make demo` runs the main job on embedded defaults; `make test` runs the tests.
# Both set themselves up on a fresh machine that has only Python 3.11+.
PYTHON ?= python3
UV_VERSION := 0.13.8
UV := .uvtool/bin/uv
VENV := .venv
export UV_COMPILE_BYTECODE := 1
export DO_NOT_TRACK := 1
export PREFECT_SERVER_ANALYTICS_ENABLED := false

.PHONY: setup demo test lint bench-m4 mutation soak clean

$(UV):
	$(PYTHON) -m venv .uvtool
	.uvtool/bin/pip install --quiet uv==$(UV_VERSION)

$(VENV)/.synced: $(UV) pyproject.toml uv.lock
	$(UV) sync --frozen
	touch $@

setup: $(VENV)/.synced

demo: setup
	$(VENV)/bin/fleetcast demo

# Test files run in parallel on 3 workers (pytest-xdist; each worker starts its own moto and
# Prefect servers on free ports, each test has its own folder); -n 0 runs them one by one.
PYTEST_WORKERS ?= 3
test: setup
	$(VENV)/bin/pytest -q -n $(PYTEST_WORKERS) --dist loadfile --no-loadscope-reorder

lint: setup
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy

# Mutation score per safety-critical module, survivors listed (slow, CPU heavy: not in CI).
# One module: make mutation MODULES=models/policy.py
mutation: setup
	$(VENV)/bin/python benchmarks/mutation.py $(MODULES)

# 200 forecast-and-scale cycles for 20 fleets against moto with faults injected (fixed seed).
soak: setup
	nice -n 10 $(VENV)/bin/python benchmarks/soak.py

bench-m4: setup
	$(VENV)/bin/python benchmarks/m4_hourly.py ../shared/data/m4-hourly

clean:
	rm -rf .fleetcast fleetcast.duckdb landing
