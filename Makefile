# Two entry points for a fresh machine: `make demo` and `make test`.
# Each creates or updates the virtual environment it needs (.venv) from pyproject.toml.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.cellprobe-installed
export HF_HUB_OFFLINE ?= 1

.PHONY: install demo layers test test-all lint clean

$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --upgrade --quiet pip
	$(PY) -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

install: $(STAMP)

demo: $(STAMP)
	$(VENV)/bin/cellprobe demo

# The layer contracts (pyproject.toml, [tool.importlinter]): an upward import fails the tests.
layers: $(STAMP)
	$(VENV)/bin/lint-imports

# Fast default selection (every module covered); slow tests are excluded.
test: layers
	$(PY) -m pytest -m "not slow" -q

test-all: layers
	$(PY) -m pytest -q

lint: $(STAMP)
	$(VENV)/bin/ruff check src tests benchmarks

clean:
	rm -rf $(VENV) build *.egg-info
