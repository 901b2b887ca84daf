# The front door. `make lab` and `make test` create the environment on first use.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
NBVAL  := --nbval --nbval-current-env --nbval-sanitize-with src/prodready/nbval_sanitize.cfg \
          --nbval-cell-timeout 600
JOBS   ?= 2
# JupyterLab refuses to start as root unless told; containers often run as root.
LAB_FLAGS := $(if $(filter 0,$(shell id -u)),--allow-root)

.PHONY: lab test lint bench workbooks refresh-outputs lock doctor clean

lab: $(STAMP)
	$(BIN)/jupyter lab $(LAB_FLAGS) --ServerApp.root_dir="$(CURDIR)" \
		--LabApp.default_url=/lab/tree/notebooks/00_start_here.ipynb

test: $(STAMP) lint
	$(BIN)/pytest -n $(JOBS) --dist loadscope $(NBVAL) tests notebooks solutions

lint: $(STAMP)
	$(BIN)/ruff check src tests tools benchmarks
	$(BIN)/ruff format --check src tests tools benchmarks
	$(BIN)/mypy --strict

bench: $(STAMP)
	$(BIN)/python benchmarks/run.py

doctor: $(STAMP)
	$(BIN)/prodready doctor

# Authoring: rebuild exercises/ from solutions/ (answer cells become their stubs).
workbooks: $(STAMP)
	$(BIN)/python tools/make_workbooks.py

# Authoring: re-execute lessons and solutions in place, storing fresh outputs.
refresh-outputs: $(STAMP)
	$(BIN)/python tools/refresh_outputs.py $(NOTEBOOKS)

# Re-pin every package to what is installed now (run after changing dependencies).
lock: $(STAMP)
	$(BIN)/python tools/lock.py

clean:
	rm -rf $(VENV) build src/*.egg-info

$(STAMP): pyproject.toml constraints.txt
	@$(PYTHON) tools/check_python.py
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check --upgrade pip
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -c constraints.txt -e '.[dev]'
	@touch $(STAMP)
	@echo "prodready: environment ready in $(VENV) ($$($(BIN)/python --version))"
