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

test: $(STAMP)
	$(PY) -m pytest -q

test-fast: $(STAMP)
	$(PY) -m pytest -q -m "not slow"

lint: $(STAMP)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

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
