# Quickstart targets. Each installs what it needs into .venv first (Python 3.11, 3.12 or 3.13:
# PYTHON=python3.13 make install).
PYTHON ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
TEST_STAMP := $(VENV)/.installed-test

# torch is installed first, pinned, so that `pip install -e .` keeps the build chosen here.
# From the package index, torch==2.13.0 on Linux x86_64 is the CUDA 13.0 build (NVIDIA driver
# >= 580; it also runs on CPU, but brings ~3 GB of CUDA libraries). Another build comes from
# PyTorch's own wheel index, e.g. CPU-only:
#   make install TORCH_INDEX=https://download.pytorch.org/whl/cpu
# or a CUDA 12.6 build for older drivers: TORCH_INDEX=https://download.pytorch.org/whl/cu126
TORCH_INDEX ?=

.PHONY: install demo demo-paws test test-slurm dry-run demo-sweep bench report clean-demo clean-demo-paws

# What running the workflow needs
$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet torch==2.13.0 $(if $(TORCH_INDEX),--index-url $(TORCH_INDEX))
	$(BIN)/python -m pip install --quiet -e .
	touch $@

# ... and what the tests need (pytest, the notebook's kernel, Trainer for the benchmark)
$(TEST_STAMP): $(STAMP)
	$(BIN)/python -m pip install --quiet -e '.[test,notebook]'
	touch $@

## The virtual environment: what running the workflow needs
install: $(STAMP)

## The embedded offline demo: synthetic testbed, CPU, outputs under results/demo/
demo: $(STAMP)
	$(BIN)/snakemake --profile profiles/demo

## The PAWS-like task on a larger testbed (about an hour on 2 cores), under results/demo-paws/
demo-paws: $(STAMP)
	$(BIN)/snakemake --profile profiles/demo-paws

## The test suite (unit tests, full-study dry-run, demo end to end at CI size)
test: $(TEST_STAMP)
	$(BIN)/python -m pytest tests

## profiles/slurm on a real one-node SLURM (Debian's 22.05 packages, installed here; needs root)
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)
test-slurm: $(TEST_STAMP)
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
bench: $(TEST_STAMP)
	$(BIN)/python -m alignprune.bench

## HTML report of the demo run
report: $(STAMP)
	$(BIN)/snakemake --profile profiles/demo --report results/demo/report.html

clean-demo:
	rm -rf results/demo resources/demo logs/demo benchmarks/demo checkpoints/demo tensorboard/demo

## Remove the PAWS-like demo's outputs (about an hour to remake)
clean-demo-paws:
	rm -rf results/demo-paws resources/demo-paws logs/demo-paws benchmarks/demo-paws checkpoints/demo-paws tensorboard/demo-paws
