# Two commands matter: `make demo` (the main job) and `make test` (every check).
# Both create and use the project-local virtual environment in .venv.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
# Strict editable installs link each module at install time: a new module file
# changes this hash, and with it the stamp, so `make` reinstalls.
MODULES := $(shell find prefect_venice blocks tasks flows -name '*.py' 2>/dev/null | sort | cksum | cut -d' ' -f1)
# Two installs: the demo needs only the package and its runtime dependencies (RUNTIME);
# tests, lint and type checks add the dev extra (STAMP: Playwright, mypy, ruff, ...).
STAMP := $(VENV)/.installed-$(MODULES)
RUNTIME := $(VENV)/.runtime-$(MODULES)

export PREFECT_SERVER_ANALYTICS_ENABLED := false

.PHONY: venv demo demo-stop test lint typecheck pytest benchmark emulator clean

venv: $(STAMP)

$(STAMP): pyproject.toml
	@echo "Installing prefect-venice and its dev tools into $(VENV) (log: $(VENV)/install.log) ..."
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	@( $(BIN)/python -m pip install --upgrade pip \
	  && $(BIN)/python -m pip install -e ".[dev]" --config-settings editable_mode=strict \
	) > $(VENV)/install.log 2>&1 || { tail -n 40 $(VENV)/install.log; exit 1; }
	@rm -f $(VENV)/.installed-* $(VENV)/.runtime-*
	@touch $(STAMP) $(RUNTIME)

# The runtime alone (no dev extra): what `make demo` needs. A dev install covers it too.
$(RUNTIME): pyproject.toml
	@echo "Installing prefect-venice into $(VENV) (log: $(VENV)/install.log) ..."
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	@( $(BIN)/python -m pip install --upgrade pip \
	  && $(BIN)/python -m pip install -e . --config-settings editable_mode=strict \
	) > $(VENV)/install.log 2>&1 || { tail -n 40 $(VENV)/install.log; exit 1; }
	@rm -f $(VENV)/.runtime-*
	@touch $(RUNTIME)

demo: $(RUNTIME)
	@$(BIN)/python deployments/demo.py

demo-stop: $(RUNTIME)
	@$(BIN)/python deployments/demo.py --stop

lint: venv
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

typecheck: venv
	# From inside .venv mypy sees the installed package, with blocks/tasks/flows mapped in.
	cd $(VENV) && bin/mypy --config-file ../pyproject.toml -p prefect_venice
	$(BIN)/mypy deployments benchmarks tests/conftest.py
	# Test folders are not packages (pytest's rootdir imports), so each is checked on its
	# own: tests/core/test_cli.py and tests/emulator/test_cli.py are both "test_cli".
	for dir in tests/*/; do MYPYPATH=deployments $(BIN)/mypy "$$dir" || exit 1; done

pytest: venv
	# bin/pytest, not python -m pytest: the latter puts the repo root on sys.path,
	# and its prefect_venice/ folder lacks the mapped blocks/tasks/flows packages.
	# -rs: every skipped test is listed with its reason.
	$(BIN)/pytest -q -rs

test: lint typecheck pytest

benchmark: venv
	$(BIN)/python benchmarks/run.py

emulator: venv
	$(BIN)/prefect-venice emulator

clean:
	rm -rf $(VENV) .prefect-home .demo test-output build *.egg-info

# Issue 7's reliability suite, kept out of `make test` (its tests skip unless
# VENICE_RELIABILITY=1): faults, kills, lost answers, bad inputs and a secrets scan, every
# figure counted from the emulator's ledger (docs/reliability.md). 6 to 9 minutes on two
# cores; figures printed at the end and kept in test-output/reliability/figures.json.
.PHONY: reliability
reliability: venv
	VENICE_RELIABILITY=1 $(BIN)/pytest -q -rxXs --durations=8 tests/reliability
