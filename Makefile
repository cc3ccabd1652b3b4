# The two commands of the README. Both create .venv if needed and install the pinned stack.
PYTHON ?= python3.11
VENV   ?= .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed
PYTEST_ARGS ?=

.PHONY: run test install clean

run: $(STAMP)
	$(VENV)/bin/benchmark run --config configs/default.yaml

test: $(STAMP)
	$(PY) -m pytest $(PYTEST_ARGS)

install: $(STAMP)

# Re-install when the pins change. torch is installed first and alone: its pinned CPU wheel must
# win before anything that depends on torch asks pip for a version.
$(STAMP): setup.cfg pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --disable-pip-version-check "torch==2.13.0"
	$(PY) -m pip install --quiet --disable-pip-version-check -e ".[test]"
	touch $(STAMP)

clean:
	rm -rf $(VENV) build *.egg-info .pytest_cache runs wandb lightning_logs
