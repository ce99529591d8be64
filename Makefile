# Quickstart targets. Each installs what it needs into .venv first (Python 3.11).
PYTHON ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: install demo test test-slurm dry-run demo-sweep bench report clean-demo

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	# torch first and pinned: an unpinned torch would pull the CUDA build.
	$(BIN)/python -m pip install --quiet torch==2.13.0
	$(BIN)/python -m pip install --quiet -e '.[test]'
	touch $@

## The virtual environment alone
install: $(STAMP)

## The embedded offline demo: synthetic testbed, CPU, outputs under results/demo/
demo: $(STAMP)
	$(BIN)/snakemake --profile profiles/demo

## The test suite (unit tests, full-study dry-run, demo end to end at CI size)
test: $(STAMP)
	$(BIN)/python -m pytest tests

## profiles/slurm on a real one-node SLURM (Debian's 22.05 packages, installed here; needs root)
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)
test-slurm: $(STAMP)
	command -v slurmctld >/dev/null || ($(SUDO) apt-get update -q && \
	  $(SUDO) env DEBIAN_FRONTEND=noninteractive apt-get install -y -q slurmctld slurmd slurm-client munge)
	$(BIN)/python -m pytest -m slurm tests/test_slurm.py

## Plan the full study without running it
dry-run: $(STAMP)
	$(BIN)/snakemake -n --quiet rules

## The demo's regularizer-weight sweep (results/demo/sweep/xnli/regularizer_weights.md)
demo-sweep: $(STAMP)
	$(BIN)/snakemake --profile profiles/demo sweep

## Side-by-side benchmarks (CPU: a small XLM-R shape; GPU: XLM-R base)
bench: $(STAMP)
	$(BIN)/python -m alignprune.bench

## HTML report of the demo run
report: $(STAMP)
	$(BIN)/snakemake --profile profiles/demo --report results/demo/report.html

clean-demo:
	rm -rf results/demo resources/demo logs/demo benchmarks/demo checkpoints/demo
