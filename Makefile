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

# Benchmarks (benchmarks/README.md). bench: every script's full mode (about an hour on 2 cores;
# publishes to benchmarks/published/); bench-quick: every script's CI smoke mode (under 2 minutes each).
BENCH_SCRIPTS := sample_efficiency overhead suggestion_latency scale async_utilization async_quality dead_job_notice multi_fidelity asha_bound
.PHONY: bench
bench: install
	set -e; for s in $(BENCH_SCRIPTS); do $(PY) benchmarks/$$s.py; done

bench-quick: install
	set -e; for s in $(BENCH_SCRIPTS); do $(PY) benchmarks/$$s.py --quick; done
