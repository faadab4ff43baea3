# Two commands on a fresh machine with Python 3.11 (see README.md):
#   make verify   -> virtual environment, pinned install, `ntkpde verify --quick --out reports/`
#   make test     -> virtual environment, pinned install, the test suite
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: verify test install benchmarks

$(STAMP): requirements.lock setup.cfg
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -r requirements.lock
	# neural-tangents without its dependencies: they would install TensorFlow.
	$(BIN)/python -m pip install -q --no-deps neural-tangents==0.6.5
	$(BIN)/python -m pip install -q --no-deps -e .
	touch $(STAMP)

install: $(STAMP)

verify: $(STAMP)
	$(BIN)/ntkpde verify --quick --out reports/

test: $(STAMP)
	$(BIN)/python -m pytest -n 2 -q tests

benchmarks: $(STAMP)
	$(BIN)/python benchmarks/operator_kernel_speed.py
