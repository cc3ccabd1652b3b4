# The two commands of the README. Both create .venv if needed and install the locked stack
# (configs/constraints.txt) with the package. PYTHON defaults to the first of python3.11 / python3.12
# that runs; override with `make test PYTHON=/path/to/python3.12`.
PYTHON ?= $(shell for p in python3.11 python3.12; do $$p -c 'import sys' >/dev/null 2>&1 && { echo $$p; break; }; done)
VENV   ?= .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed
LOCK   := configs/constraints.txt
PYTEST_ARGS ?=

.PHONY: run test install clean

run: $(STAMP)
	$(VENV)/bin/benchmark run --config configs/default.yaml

test: $(STAMP)
	$(PY) -m pytest $(PYTEST_ARGS)

install: $(STAMP)

# Re-install when the pins change. One pip call: the lock pins torch (the CPU wheel where it lies on
# disk) together with everything else, so nothing can pull another torch first.
$(STAMP): setup.cfg pyproject.toml $(LOCK)
	@test -n "$(PYTHON)" || { echo "error: neither python3.11 nor python3.12 runs here; pass PYTHON=..." >&2; exit 2; }
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --disable-pip-version-check -c $(LOCK) -e ".[lite,test]"
	-$(VENV)/bin/benchmark run --help >/dev/null  # fills the help cache (benchmark/help_cache.py)
	touch $(STAMP)

clean:
	rm -rf $(VENV) build *.egg-info .pytest_cache runs wandb lightning_logs
