# The two commands of the README:
#   make up    installs everything and brings the local ML environment up (mlenv up)
#   make test  installs everything and runs the whole test suite (CI runs this)
SHELL := /bin/bash
.SHELLFLAGS := -euo pipefail -c
.DEFAULT_GOAL := help

ROOT := $(CURDIR)
VENV := $(ROOT)/.venv
export PATH := $(VENV)/bin:$(PATH)
export CONTAINERS_CONF ?= $(ROOT)/.config/containers/containers.conf
export ANSIBLE_CONFIG := $(ROOT)/ansible.cfg
export ANSIBLE_FORCE_COLOR := 0
PYTEST_ARGS ?=
# Workers of `make test`: the e2e stack on one, the role scenarios and quick tests beside it.
# The hosts mostly wait on installs and start-ups, so two workers fit two cores.
TEST_WORKERS ?= 2

.PHONY: help up test test-system install venv system image lint unit scenarios benchmark lock service-locks clean

help:  ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-10s %s\n", $$1, $$2}'

up: install  ## install, then bring the local profile up with mlenv up
	mlenv up

test: install test-system lint  ## install, lint, then run every test (unit, role scenarios, e2e, k8s)
	pytest --numprocesses $(TEST_WORKERS) --dist loadscope --no-loadscope-reorder $(PYTEST_ARGS)

install: system venv image  ## Debian packages, the venv and the host image (each cached)

system:  ## the Debian packages (podman, debootstrap, ...) that are missing
	scripts/install-system-packages

test-system:  ## the Debian packages only the tests need (chromium and its driver, certutil)
	scripts/install-system-packages --tests

venv:  ## the virtualenv, reused while pyproject.toml and the lock do not change
	scripts/bootstrap-venv >/dev/null

image: venv  ## the Debian systemd host image, rebuilt only when its recipe changes
	scripts/build-host-image >/dev/null

lint: venv  ## ruff, yamllint, ansible-lint (production profile)
	ruff check .
	ruff format --check .
	yamllint --strict -c .config/yamllint.yml .
	ansible-lint --profile production

unit: venv  ## only the fast tests (no test hosts)
	pytest tests/unit $(PYTEST_ARGS)

scenarios: install  ## only the molecule role scenarios
	pytest tests/roles $(PYTEST_ARGS)

benchmark: install  ## time cold converge and re-converge of a role (benchmarks/results/)
	python -m benchmarks.converge --role postgresql

lock: venv  ## refresh requirements/lock.txt from the venv
	{ echo "# Versions the test suite last passed with; used as constraints by scripts/bootstrap-venv."; \
	  echo "# Refresh: make lock"; pip freeze --exclude-editable | grep -v '^-e' | sort -f; } > requirements/lock.txt

service-locks: venv  ## lock each service virtualenv's requirements with hashes (requirements/services/)
	scripts/lock-service-requirements

clean:  ## remove caches in the work tree (not the shared venv or image caches)
	rm -rf .cache .pytest_cache .ruff_cache
