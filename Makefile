# DDSP Morph — `make help` lists the targets.
SHELL := /bin/bash
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed-stamp
ARGS ?=
RUN ?=
SOURCE ?=

.DEFAULT_GOAL := help

help: ## Show this help
	@grep -hE '^[a-zA-Z_-]+:.*?## ' $(MAKEFILE_LIST) | awk 'BEGIN {FS = ":.*?## "}; {printf "  \033[36m%-10s\033[0m %s\n", $$1, $$2}'

$(STAMP): pyproject.toml
	@if [ ! -x $(PY) ]; then \
		echo "creating $(VENV)"; \
		$(PYTHON) -c "import sys; assert sys.version_info[:2] == (3, 11)" 2>/dev/null || { echo "error: Python 3.11 is required ($(PYTHON) is not 3.11)"; exit 1; }; \
		$(PYTHON) -m venv $(VENV); \
	fi
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[dev]'
	$(PY) -m pip install --quiet --no-deps tinysoundfont==0.3.7
	# neutone-sdk declares numpy<2.3; the project pins numpy 2.4.6, with which its export works
	$(PY) -m pip install --quiet --no-deps neutone-sdk==1.5.2
	@touch $(STAMP)

venv: $(STAMP) ## Create .venv and install the project (reused when up to date)
	@echo ".venv is up to date"

# SOURCE reaches the shell as written (single-quoted, not expanded by make): spaces, quotes
# and '$' in a folder name pass through
SOURCE_ARG = $(if $(value SOURCE),--source '$(subst ','\'',$(value SOURCE))',)

data: $(STAMP) ## Render the default corpus (or import SOURCE=<folder>) and cache features; resumes
	$(PY) -m ddsp_morph.prepare $(SOURCE_ARG) $(ARGS)

# tcmalloc where installed (apt install libtcmalloc-minimal4): a lower peak and faster steps
# than glibc's malloc for a training step (make bench measures both); optional.
TCMALLOC := $(firstword $(wildcard /usr/lib/x86_64-linux-gnu/libtcmalloc_minimal.so.4 /usr/lib/*/libtcmalloc_minimal.so.4))

# make train's clock starts when make reads this file, before the set-up: training stops in time
# for the whole job to end within trainer.budget.minutes (25), however long the set-up took
JOB_START := $(shell date +%s)

train: data ## Set everything up, then train with the default config (ARGS="synth=harmonic ...")
	$(if $(TCMALLOC),LD_PRELOAD=$(TCMALLOC) )$(PY) train.py trainer.budget.start=$(JOB_START) $(ARGS)

eval: $(STAMP) ## Evaluate a run on its test split: make eval RUN=runs/<run> (default: the latest run)
	@run="$(RUN)"; \
	if [ -z "$$run" ]; then run=$$(ls -d runs/*/checkpoints 2>/dev/null | sort | tail -1 | xargs -r dirname); fi; \
	if [ -z "$$run" ]; then echo "error: no trained run under runs/; run make train, or give RUN=<run dir>" >&2; exit 2; fi; \
	echo "evaluating $$run"; \
	$(PY) -m ddsp_morph.evaluate "run='$${run%/}'" $(ARGS)

realtime: $(STAMP) ## Play the latest run from MIDI (ARGS="--port NAME", "--virtual", "--midi-file in.mid --out out.wav")
	$(PY) -m ddsp_morph.realtime $(ARGS)

play: $(STAMP) ## Play the latest run from a web page: http://127.0.0.1:8765/ (ARGS="--run runs/<run>", "--no-audio --out take.wav")
	$(PY) -m ddsp_morph.play $(ARGS)

test: $(STAMP) ## Run the default test suite (not slow, not gpu; under 5 minutes on 2 cores)
	$(PY) -m pytest -q

test-all: $(STAMP) ## Run every test but the GPU ones, slow ones included
	$(PY) -m pytest -q -m "not gpu"

test-slow: $(STAMP) ## Run only the slow tests: with `make test`, what test-all runs (CI runs both)
	$(PY) -m pytest -q -m "slow and not gpu"

bench: $(STAMP) ## DSP + training-step benchmark against reference implementations (CPU, < 5 min)
	$(PY) experiments/benchmarks/dsp_bench.py $(ARGS)

lint: $(STAMP) ## ruff lint + format check
	$(VENV)/bin/ruff check src tests train.py experiments
	$(VENV)/bin/ruff format --check src tests train.py experiments

clean: ## Remove runs and logs (keeps data and .venv)
	rm -rf runs logs outputs

.PHONY: help venv data train eval realtime play test test-all test-slow bench lint clean
