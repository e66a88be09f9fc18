# The README's two commands: `make example` (run the example sweep) and `make test` (run the tests).
# Both set up .venv on first use (about 1-2 minutes with a warm pip cache).
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed-$(shell cat setup.py Makefile | cksum | cut -d' ' -f1)

.PHONY: install example test lint slurm-up slurm-down bench-quick

install: $(STAMP)

$(STAMP): setup.py Makefile
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	# compat mode: Hydra discovers plugins by walking the hydra_plugins namespace on disk.
	$(PY) -m pip install --quiet -e '.[lite,plot,test,dev,bench]' --config-settings editable_mode=compat
	$(VENV)/bin/hydra-sigopt install-engine
	rm -f $(VENV)/.installed-*
	touch $@

example: install
	cd example_app && ../$(PY) train.py -m

lint: install
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy

test: install lint
	$(PY) -m pytest $(PYTEST_ARGS)

slurm-up:
	bash scripts/slurm-up.sh

slurm-down:
	bash scripts/slurm-down.sh
