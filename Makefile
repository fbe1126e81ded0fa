# CreatorPulse: the two commands a new user needs, and the steps they are made of.
#   make demo   install what is missing, start the whole stack, say where everything is
#   make test   install what is missing, start the stack, run unit then integration tests
# Everything is idempotent: run either command again at any time.

SHELL := /bin/bash
.SHELLFLAGS := -eu -o pipefail -c
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
CP := $(BIN)/creatorpulse
# Simulated creators the demo links per platform (each is one influencer across the five).
DEMO_ACCOUNTS ?= 200
# Debian packages the stack needs; installed only when running as root and missing.
DEBIAN_PACKAGES := postgresql redis-server openjdk-17-jre-headless maven python3-venv

.DEFAULT_GOAL := help
.PHONY: help demo test unit jobs integration bench install system-packages jars up down status logs lint clean

help: ## list the targets
	@grep -hE '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-16s %s\n", $$1, $$2}'

demo: install up ## the whole system: stack, engagement job, simulators, sources, webhooks, API
	$(CP) jobs submit engagement --if-not-running
	$(CP) stack up --apps
	$(CP) enrol --accounts $(DEMO_ACCOUNTS)
	@echo
	$(CP) api demo
	@echo "CreatorPulse is up. Flink web UI: http://localhost:8081 (job creatorpulse-engagement)"
	@echo "  status: $(CP) stack status    logs: $(CP) stack logs [part]    stop: make down"

test: install up unit jobs integration ## install, start the stack, run unit, job-logic and integration tests

unit: $(VENV)/.installed ## unit tests only (no network, seconds)
	$(BIN)/pytest tests/unit

jobs: $(VENV)/.installed ## the Flink jobs' logic in a local batch Flink against the oracle (no services)
	$(BIN)/pytest tests/jobs

integration: $(VENV)/.installed ## integration tests against the running stack
	$(BIN)/pytest tests/integration

bench: $(VENV)/.installed ## benchmark against the running stack (4-5 min; BENCH_ARGS="--observations N ...")
	$(BIN)/python -m bench.pipeline $(BENCH_ARGS)

install: system-packages $(VENV)/.installed jars ## Debian packages (as root), the virtualenv, Maven jars

system-packages:
	@missing=$$(for p in $(DEBIAN_PACKAGES); do dpkg-query -W -f='$${Status}' $$p 2>/dev/null | grep -q 'ok installed' || echo $$p; done); \
	if [ -z "$$missing" ]; then echo "Debian packages: all present"; \
	elif [ "$$(id -u)" = 0 ]; then echo "Debian packages: installing $$missing"; \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $$missing >/dev/null; \
	else echo "Debian packages missing (run as root, or install them): $$missing"; fi

$(VENV)/.installed: setup.cfg pyproject.toml
	@echo "Python environment: $(VENV)"
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e '.[test]'
	@touch $@

jars: $(VENV)/.installed ## fetch the Kafka broker and Flink connector jars with Maven
	$(CP) stack install

up: $(VENV)/.installed ## start (or check) the local stack and apply migrations
	$(CP) stack up

down: ## stop what `make up` started
	@test -x $(CP) && $(CP) stack down || true

status: ## health of each part
	$(CP) stack status

logs: ## the end of each part's log
	$(CP) stack logs

lint: $(VENV)/.installed ## ruff over the code
	$(BIN)/ruff check .

clean: down ## stop the stack and delete its state (data, logs, jars) and the virtualenv
	rm -rf .creatorpulse $(VENV)
