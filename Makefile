# One entry point for people and CI. `make test` is the command the README and .ci/run use.
SHELL := /bin/bash
.DEFAULT_GOAL := help

VENV ?= venv
PYTHON := $(VENV)/bin/python
POLICY_VENV := policies/venv
STACK ?= dev

.PHONY: help venv host-packages engine-and-cli up preview destroy test lint plan check docs conformance bench \
	restore

help: ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-12s %s\n", $$1, $$2}'

venv: $(VENV)/.installed ## create ./venv with the program, policy and test requirements

$(VENV)/.installed: requirements.txt requirements-dev.txt policies/requirements.txt
	python3 -m venv $(VENV)
	$(VENV)/bin/pip install --quiet --upgrade pip
	$(VENV)/bin/pip install --quiet -r requirements-dev.txt
	touch $@

host-packages: ## the Debian packages the tests run for real (installed when root, else named)
	scripts/host-packages.sh

$(POLICY_VENV)/.installed: policies/requirements.txt
	python3 -m venv $(POLICY_VENV)
	$(POLICY_VENV)/bin/pip install --quiet -r policies/requirements.txt
	touch $@

# Before building the virtualenvs: a missing CLI or engine is said at once, not minutes later.
engine-and-cli:
	@scripts/pulumi-local.sh $(STACK) check

up: engine-and-cli venv $(POLICY_VENV)/.installed ## pulumi up for STACK (default dev) on the local Docker engine
	scripts/pulumi-local.sh $(STACK) up

preview: engine-and-cli venv $(POLICY_VENV)/.installed ## pulumi preview for STACK with the policy pack
	scripts/pulumi-local.sh $(STACK) preview

destroy: engine-and-cli venv ## pulumi destroy for STACK (prod volumes are retained)
	scripts/pulumi-local.sh $(STACK) destroy

test: venv host-packages ## unit, policy and backup tests (no Docker engine needed)
	$(PYTHON) -m pytest -m "not conformance" tests

lint: venv ## ruff format check and lint
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/ruff check .

plan: venv ## offline preview of STACK as a resource tree (FORMAT=json for the recording)
	$(PYTHON) -m tools plan --stack $(STACK) --format $(or $(FORMAT),text)

readme: venv ## renew the settings reference in README.md from the settings models
	$(PYTHON) -m tools settings-reference --write README.md

check: venv ## policy gate over the offline preview of STACK (exit 1 on mandatory violations)
	$(PYTHON) -m tools check --stack $(STACK)

docs: venv ## write docs/STACK.md from the offline preview
	$(PYTHON) -m tools docs --stack $(STACK)

conformance: venv ## run the recorded stacks on a real Docker engine with real clients
	conformance/engine.sh
	$(PYTHON) -m pytest -m conformance tests/conformance

restore: venv ## restore STACK from BACKUP with the age IDENTITY file (EXPORTS=outputs.json, DRY_RUN=1)
	@if [ -z "$(BACKUP)" ] || [ -z "$(IDENTITY)" ]; then \
	  echo "usage: make restore STACK=prod BACKUP=<backup directory> IDENTITY=<age identity file>" \
	       "[EXPORTS=<pulumi stack output --json file>] [DRY_RUN=1]" >&2; exit 2; fi
	$(PYTHON) backup/restore_stack.py --stack $(STACK) --backup $(BACKUP) --identity $(IDENTITY) \
	  $(if $(EXPORTS),--exports $(EXPORTS)) $(if $(DRY_RUN),--dry-run)

bench: venv ## benchmarks: preview, policy check, clinical path, backup (figures + JSON)
	mkdir -p build/bench
	for bench in tests/bench/bench_*.py; do \
	  $(PYTHON) $$bench --out build/bench/$$(basename $$bench .py).json || exit 1; \
	done
