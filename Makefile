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

.PHONY: lab test quick lint bench workbooks refresh-outputs lock doctor clean

# The environment's scripts go first on the PATH, so `prodready ...` works as typed in
# JupyterLab's terminals and in `!prodready ...` cells, without activating anything. The
# prodready._lab extension lets the course's notebooks open without unsaved changes.
lab: $(STAMP)
	PATH="$(abspath $(BIN)):$$PATH" $(BIN)/jupyter lab $(LAB_FLAGS) \
		--ServerApp.root_dir="$(CURDIR)" \
		--ServerApp.jpserver_extensions='{"prodready._lab": True}' \
		--LabApp.default_url=/lab/tree/notebooks/00_start_here.ipynb

# The package's bytecode first: where PYTHONDONTWRITEBYTECODE is set, each of the suite's
# hundreds of kernels would compile it again (a fraction of a second each, minutes in all).
test: $(STAMP) lint
	@$(BIN)/python -m compileall -q src tests >/dev/null
	$(BIN)/pytest -n $(JOBS) --dist loadscope $(NBVAL) tests notebooks solutions

# The author's loop, under a minute: lint, the package's tests but the class-sized ones
# (marked slow), and one module's self-tests and nbval. `make test` before committing.
MODULE ?= 01
quick: $(STAMP) lint
	@module="$$(cd notebooks && ls $(MODULE)_*.ipynb 2>/dev/null | head -n 1)"; \
	if [ -z "$$module" ]; then echo "make quick: no module $(MODULE) (MODULE=NN, as in notebooks/NN_*.ipynb)"; exit 2; fi; \
	class="TestModule$(MODULE)_$$(basename "$$module" .ipynb | cut -d_ -f2-)"; \
	$(BIN)/pytest -n $(JOBS) --dist loadscope -m "not slow" $(NBVAL) \
		--ignore=tests/course/test_course_grading.py tests \
		"tests/course/test_course_grading.py::$$class" \
		"notebooks/$$module" "solutions/$$module"

# The learner's loop in JupyterLab, in a real browser: headless Chromium from Debian's
# package, driven by Playwright (which never downloads a browser of its own here).
# Without Chromium it says so and succeeds; `make test` does not run it.
.PHONY: browser-test
browser-test: $(STAMP)
	@chromium=""; for c in /usr/bin/chromium chromium chromium-browser; do \
		command -v "$$c" >/dev/null 2>&1 && { chromium="$$(command -v "$$c")"; break; }; \
	done; \
	if [ -z "$$chromium" ]; then \
		echo "browser test not run: no Chromium (install Debian's chromium package)"; \
	else \
		echo "prodready: browser test with $$chromium; installing its packages into $(VENV) ..."; \
		if [ -x $(BIN)/uv ]; then \
			$(BIN)/uv pip install --quiet --compile-bytecode --python $(BIN)/python \
				-c constraints.txt -e '.[browser]'; \
		else \
			$(BIN)/python -m pip install --quiet --disable-pip-version-check \
				-c constraints.txt -e '.[browser]'; \
		fi && PRODREADY_BROWSER_TEST=1 $(BIN)/pytest tests/browser -v; \
	fi

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

# uv installs the same pins several times faster than pip, with a progress display; where
# uv cannot be had, pip does the same job (slower). Both compile the bytecode at install
# (pip always does; uv when asked): where PYTHONDONTWRITEBYTECODE is set, as in many
# container images, Python never writes it, and every process would compile FastAPI,
# SQLAlchemy and pytest from source again (an import of the stack 3.7 s instead of 1.3).
INSTALL_DEPS := -c constraints.txt -e '.[dev]'
$(STAMP): pyproject.toml constraints.txt
	@$(PYTHON) tools/check_python.py
	@echo "prodready: setting up $(VENV) with the pinned stack (first run only, under a minute) ..."
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	@if $(BIN)/python -m pip install --quiet --disable-pip-version-check \
			"uv==$$(sed -n 's/^uv==//p' constraints.txt)"; then \
		$(BIN)/uv pip install --compile-bytecode --python $(BIN)/python $(INSTALL_DEPS); \
	else \
		echo "prodready: uv is not available here; installing with pip instead"; \
		$(BIN)/python -m pip install --disable-pip-version-check --progress-bar on $(INSTALL_DEPS); \
	fi
	@touch $(STAMP)
	@echo "prodready: environment ready in $(VENV) ($$($(BIN)/python --version))"
