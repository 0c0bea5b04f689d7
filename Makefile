# ATR — the two commands that matter:  make demo  |  make test
# Each sets up (or refreshes) the local virtual environment itself.
SHELL := /bin/bash
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: venv demo data test test-fast lint bench clean-runtime

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e '.[dev]'
	touch $(STAMP)

venv: $(STAMP)

# The main job. Until the closed loop (serving + monitoring) exists it runs the
# longest pipeline that does: simulate data -> DVC pipeline (prepare, train,
# evaluate, register) -> gate against the champion.
demo: data
	cd pipelines && PATH=$(CURDIR)/$(BIN):$$PATH ../$(BIN)/dvc repro
	$(BIN)/atr gate

# data/ as data.dvc records it: the gold set is regenerated bit for bit from its seed
# (no remote holds it on a fresh clone), then added and pushed to the local remote.
data: $(STAMP)
	test -f data/gold/manifest.parquet || $(BIN)/atr data synth preset=gold
	$(BIN)/dvc add -q data
	$(BIN)/dvc push -q

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
