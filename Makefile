# The two commands of the README. Both create .venv if needed and install the locked stack
# (configs/constraints.txt) with the package and its lite, test and docs extras. PYTHON defaults to the
# first of python3.11 / python3.12 that runs; override with `make test PYTHON=/path/to/python3.12`.
# `make docs` builds the documentation site into docs/_build/html (the tests build it too, -W).
PYTHON ?= $(shell for p in python3.11 python3.12; do $$p -c 'import sys' >/dev/null 2>&1 && { echo $$p; break; }; done)
VENV   ?= .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed
LOCK   := configs/constraints.txt
PYTEST_ARGS ?=

.PHONY: run test docs install clean

run: $(STAMP)
	$(VENV)/bin/benchmark run --config configs/default.yaml

test: $(STAMP)
	$(PY) -m pytest $(PYTEST_ARGS)

docs: $(STAMP)
	$(VENV)/bin/sphinx-build -W --keep-going -b html docs docs/_build/html
	@echo "the site: docs/_build/html/index.html"

install: $(STAMP)

# Re-install when the pins change. One pip call: the lock pins torch (the CPU wheel where it lies on
# disk) together with everything else, so nothing can pull another torch first.
$(STAMP): setup.cfg pyproject.toml $(LOCK)
	@test -n "$(PYTHON)" || { echo "error: neither python3.11 nor python3.12 runs here; pass PYTHON=..." >&2; exit 2; }
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --disable-pip-version-check -c $(LOCK) -e ".[lite,test,docs]"
	-$(VENV)/bin/benchmark run --help >/dev/null  # fills the help cache (benchmark/help_cache.py)
	touch $(STAMP)

clean:
	rm -rf $(VENV) build *.egg-info .pytest_cache runs wandb lightning_logs docs/_build docs/_generated
