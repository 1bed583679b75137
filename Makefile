# make run          create .venv from uv.lock, print the demo's commands, serve on 127.0.0.1:8080 (embedded Redis); CLI: .venv/bin/procengine
# make test         create .venv from uv.lock with the test extras, run ruff, mypy --strict, the layer contracts (import-linter) and pytest
# make bench        create .venv with the test and bench extras, run bench/ (ARGS="--quick": a smoke run under a minute)
#                   ARGS=--peers: procengine beside Restate, Temporal, DBOS, SpiffWorkflow (installs them in bench/peers/)
# make fuzz         the generated tests (schemathesis, the hypothesis model) run longer: FUZZ_LONG=1 pytest -m fuzz
# make chaos        3 nodes, 300 executions, kill -9 for 2 minutes, then the audit (ARGS="--mode rolling|failover")
# make lock         re-resolve uv.lock to the newest versions pyproject.toml's ranges allow (then run make test)
# make test-latest  the suite on the newest versions the ranges allow, in .venv-latest: drift, seen on purpose
# make clean        remove the venvs and the caches (not .procengine/, the embedded Redis's data)
#
# Extra flags for serve: make run ARGS="--port 9000 --log-level DEBUG". Another interpreter: make test PYTHON=python3.12
# Everything is installed from uv.lock (exact versions, hashes checked); uv itself comes pinned with its hashes from
# deploy/uv-requirements.txt. Nothing is needed beforehand but Python 3.11+ and make.

SHELL := /bin/bash
.DEFAULT_GOAL := help

VENV := .venv
BIN := $(VENV)/bin
TOOLS := .tools
UV := $(TOOLS)/bin/uv
# python3.11 if there is one, else python3 if it is 3.11 or newer (checked when a venv is created).
PYTHON ?= $(shell command -v python3.11 >/dev/null 2>&1 && echo python3.11 || echo python3)
ARGS ?=
# uv uses the interpreter named here and never downloads one; .venv is the project's environment.
export UV_PYTHON_DOWNLOADS := never
export UV_PROJECT_ENVIRONMENT := $(VENV)
SYNC := $(UV) sync --frozen --python $(PYTHON) --quiet

.PHONY: help run test fuzz bench chaos lock test-latest clean check-python

help:
	@sed -n '1,12s/^# \{0,1\}//p' Makefile

check-python:
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else "procengine needs Python 3.11+, $(PYTHON) is " + sys.version.split()[0] + ": make ... PYTHON=python3.11")'

$(UV): deploy/uv-requirements.txt | check-python
	$(PYTHON) -m venv $(TOOLS)
	$(TOOLS)/bin/python -m pip install --quiet --require-hashes -r deploy/uv-requirements.txt
	@touch $@

# uv sync is a no-op when .venv already matches uv.lock, so every target syncs: no stamps to go stale.
run: $(UV)
	$(SYNC) --inexact
	@deploy/demo-commands.sh $(ARGS)
	$(BIN)/procengine serve --register examples/demo.yaml $(ARGS)

test: $(UV)
	$(SYNC) --extra test
	$(MAKE) --no-print-directory checks BIN=$(BIN)

# What `make test` runs, on the venv in BIN.
.PHONY: checks
checks:
	$(BIN)/ruff check procengine tests bench
	$(BIN)/mypy --strict procengine
	$(BIN)/lint-imports --no-cache
	$(BIN)/pytest -n auto -m 'not alone'
	$(BIN)/pytest -m alone

fuzz: $(UV)
	$(SYNC) --extra test
	FUZZ_LONG=1 $(BIN)/pytest -m fuzz -n auto

# --peers: the peers comparison instead of the suite, with its own environment (bench/peers/.venv from
# bench/peers/requirements.txt, and Restate's server from npm); nothing else ever installs or needs it.
PEERS_DIR := bench/peers
bench: $(UV)
	$(SYNC) --extra test --extra bench
ifneq (,$(filter --peers,$(ARGS)))
	$(MAKE) --no-print-directory peers-env
	$(BIN)/python -m bench.peers $(filter-out --peers,$(ARGS))
else
	$(BIN)/python -m bench $(ARGS)
endif

.PHONY: peers-env
peers-env: $(UV)
	$(UV) venv --quiet --allow-existing --python $(PYTHON) $(PEERS_DIR)/.venv
	VIRTUAL_ENV=$(PEERS_DIR)/.venv $(UV) pip install --quiet -r $(PEERS_DIR)/requirements.txt
	@if command -v npm >/dev/null 2>&1; then cd $(PEERS_DIR) && npm ci --no-audit --no-fund --loglevel=error; \
	else echo "no npm: the Restate server cannot be installed, Restate will be skipped"; fi

chaos: $(UV)
	$(SYNC) --extra test
	$(BIN)/python -m bench.chaos $(ARGS)

lock: $(UV)
	$(UV) lock --upgrade

test-latest: $(UV)
	$(UV) venv --quiet --allow-existing --python $(PYTHON) .venv-latest
	VIRTUAL_ENV=.venv-latest $(UV) pip install --quiet --upgrade --resolution highest -e '.[test]'
	@VIRTUAL_ENV=.venv-latest $(UV) pip list --quiet 2>/dev/null | grep -iE '^(redis|aiohttp|pydantic|mypy|pytest) ' || true
	$(MAKE) --no-print-directory checks BIN=.venv-latest/bin

clean:
	rm -rf $(VENV) .venv-latest $(TOOLS) $(PEERS_DIR)/.venv $(PEERS_DIR)/node_modules build dist *.egg-info .mypy_cache .ruff_cache .pytest_cache
	find procengine tests examples -type d -name __pycache__ -prune -exec rm -rf {} +
