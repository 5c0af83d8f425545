# Two commands matter: `make demo` (the main job) and `make test` (every check).
# Both create and use the project-local virtual environment in .venv.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp

export PREFECT_SERVER_ANALYTICS_ENABLED := false

.PHONY: venv demo demo-stop test lint typecheck pytest benchmark emulator clean

venv: $(STAMP)

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e ".[dev]" --config-settings editable_mode=strict
	touch $(STAMP)

demo: venv
	$(BIN)/python deployments/demo.py

demo-stop: venv
	$(BIN)/python deployments/demo.py --stop

lint: venv
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

typecheck: venv
	$(BIN)/mypy prefect_venice blocks tasks flows deployments

pytest: venv
	$(BIN)/python -m pytest -q

test: lint typecheck pytest

benchmark: venv
	$(BIN)/python -m benchmarks

emulator: venv
	$(BIN)/prefect-venice emulator

clean:
	rm -rf $(VENV) .prefect-home .demo test-output build *.egg-info
