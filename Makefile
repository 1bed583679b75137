# make run    create .venv, install, print the demo's curl commands, serve on 127.0.0.1:8080 (embedded Redis)
# make test   create .venv, install with the test extras, run ruff, mypy --strict and pytest (a worker per core, then the chaos tests alone)
# make bench  create .venv, install with the test extras, run bench/ (ARGS="--quick": a smoke run under a minute)
# make fuzz   the generated tests (schemathesis, the hypothesis model) run longer: FUZZ_LONG=1 pytest -m fuzz
# make chaos  3 nodes, 300 executions, kill -9 for 2 minutes, then the audit (ARGS="--mode rolling|failover")
# make clean  remove the venv and the caches (not .procengine/, the embedded Redis's data)
#
# Extra flags for serve: make run ARGS="--port 9000 --log-level DEBUG". Another interpreter: make test PYTHON=python3.12

SHELL := /bin/bash
.DEFAULT_GOAL := help

VENV := .venv
BIN := $(VENV)/bin
# python3.11 if there is one, else python3 if it is 3.11 or newer (checked when the venv is created).
PYTHON ?= $(shell command -v python3.11 >/dev/null 2>&1 && echo python3.11 || echo python3)
ARGS ?=

# The stamps are newer than pyproject.toml once it has been installed: editing it installs again.
STAMP_RUN := $(VENV)/.installed-run
STAMP_TEST := $(VENV)/.installed-test

.PHONY: help run test fuzz bench chaos clean

help:
	@sed -n '1,8s/^# \{0,1\}//p' Makefile

$(BIN)/python:
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else "procengine needs Python 3.11+, $(PYTHON) is " + sys.version.split()[0] + ": make ... PYTHON=python3.11")'
	$(PYTHON) -m venv $(VENV)

$(STAMP_RUN): pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet -e .
	@touch $@

$(STAMP_TEST): pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet -e '.[test]'
	@touch $@ $(STAMP_RUN)

run: $(STAMP_RUN)
	@deploy/demo-commands.sh $(ARGS)
	$(BIN)/procengine serve --register examples/demo.yaml $(ARGS)

test: $(STAMP_TEST)
	$(BIN)/ruff check procengine tests bench
	$(BIN)/mypy --strict procengine
	$(BIN)/pytest -n auto -m 'not alone'
	$(BIN)/pytest -m alone

fuzz: $(STAMP_TEST)
	FUZZ_LONG=1 $(BIN)/pytest -m fuzz -n auto

bench: $(STAMP_TEST)
	$(BIN)/python -m bench $(ARGS)

chaos: $(STAMP_TEST)
	$(BIN)/python -m bench.chaos $(ARGS)

clean:
	rm -rf $(VENV) build dist *.egg-info .mypy_cache .ruff_cache .pytest_cache
	find procengine tests examples -type d -name __pycache__ -prune -exec rm -rf {} +
