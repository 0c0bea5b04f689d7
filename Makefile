# ATR — the two commands that matter:  make demo  |  make test
# Each sets up (or refreshes) the local virtual environment itself.
SHELL := /bin/bash
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: venv demo data pipeline test test-fast lint bench clean-runtime

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e '.[dev]'
	touch $(STAMP)

venv: $(STAMP)

# The main job: the closed loop (atr/demo.py) -- DVC pipeline -> v1 -> serve -> line on
# scanner A, then scanner B -> drift -> frontline labels -> retrain v2 -> gate -> swap.
demo: data
	$(BIN)/atr demo

# One pass of the DVC pipeline (synthesize -> prepare -> train -> evaluate -> register).
pipeline: data
	cd pipelines && PATH=$(CURDIR)/$(BIN):$$PATH ../$(BIN)/dvc repro

# data/ as data.dvc records it: the gold set is regenerated bit for bit from its seed
# (no remote holds it on a fresh clone), then added and pushed to the local remote.
data: $(STAMP)
	test -f data/gold/manifest.parquet || $(BIN)/atr data synth preset=gold
	$(BIN)/dvc add -q data
	$(BIN)/dvc push -q

# Debian's chromium drives the real-browser test of the MLflow UI (no browser download).
CHROMIUM := /usr/bin/chromium
$(CHROMIUM):
	apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium

test: $(STAMP) $(CHROMIUM)
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
