# ATR — the two commands that matter:  make demo  |  make test
# Each sets up (or refreshes) the local virtual environment itself.
SHELL := /bin/bash
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: venv demo test test-fast lint data pipeline bench clean-runtime

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e '.[dev]'
	touch $(STAMP)

venv: $(STAMP)

# The main job. Until the closed loop (serving + monitoring) exists it runs the
# longest pipeline that does: simulate data -> DVC pipeline (prepare, train,
# evaluate, register) -> gate against the champion.
demo: $(STAMP)
	$(BIN)/atr data synth synth.name=gold synth.count=2000 synth.seed=20261125 \
	    'synth.splits={test:1.0}' synth.save_raw=false synth.overwrite=true
	$(BIN)/dvc add -q data && $(BIN)/dvc push -q
	cd pipelines && PATH=$(CURDIR)/$(BIN):$$PATH ../$(BIN)/dvc repro
	$(BIN)/atr gate

test: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/pytest -q --durations=15

test-fast: $(STAMP)
	$(BIN)/pytest -q -m "not slow"

lint: $(STAMP)
	$(BIN)/ruff check .

bench: $(STAMP)
	$(BIN)/python benchmarks/simulator_speed.py

clean-runtime:
	rm -rf runtime artifacts
