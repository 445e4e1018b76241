# Every target bootstraps .venv itself (scripts/setup.sh) on a fresh machine.
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.setup-done
export PREFECT_SERVER_ANALYTICS_ENABLED := false
export PYTHONDONTWRITEBYTECODE := 1

.PHONY: setup demo test test-fast lint format bench bench-deps dashboard clean

$(STAMP): pyproject.toml scripts/setup.sh
	bash scripts/setup.sh
	touch $(STAMP)

setup: $(STAMP)

demo: $(STAMP)
	bash scripts/demo.sh

# Two test processes, each taking whole files (module fixtures such as a built library stay in
# one process): many tests wait on subprocesses (Prefect server, Dask workers, PostgreSQL), so
# two processes on two cores finish sooner (283 s against 382 s in one, on a 2-core machine).
TEST_PROCS ?= 2

test: $(STAMP)
	$(PY) -m pytest -q -n $(TEST_PROCS) --dist loadfile

test-fast: $(STAMP)
	$(PY) -m pytest -q -n $(TEST_PROCS) --dist loadfile -m "not slow"

lint: $(STAMP)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/lint-imports

format: $(STAMP)
	$(VENV)/bin/ruff format .
	$(VENV)/bin/ruff check --fix .

bench-deps: $(STAMP)
	$(PY) -m pip install -qq -e ".[bench]"
	$(PY) -m pip install -qq --no-deps openunmix demucs

bench: bench-deps
	for b in bench/*.py; do $(PY) $$b || exit 1; done

dashboard: $(STAMP)
	$(VENV)/bin/vocalmine dashboard

clean:
	rm -rf $(VENV) demo-output .pytest_cache .ruff_cache
