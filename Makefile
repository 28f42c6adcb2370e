# Entry points: `make demo` (the whole job against the simulator) and `make test` (every test and linter).
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
BUILD := .build
COLL := $(BUILD)/collections
COLL_DIR := $(COLL)/ansible_collections/gnss/pointperfect
COLL_LINK := $(VENV)/collections/ansible_collections/gnss/pointperfect
VERSION := $(shell sed -n 's/^version: *//p' galaxy.yml)
APT_PACKAGES := python3-venv openssh-client mosquitto rtklib stunnel4 debootstrap systemd-container iproute2 \
	chromium prometheus default-jre-headless
PYTEST_ARGS ?=
SOAK_MINUTES ?= 30

.PHONY: help deps venv build lint sanity test unit soak demo demo-down clean

help:
	@echo "make demo       simulator + broker + caster + 3 gateways, provision, status report"
	@echo "make demo-down  stop what make demo left running"
	@echo "make test       install what is missing, lint, then run every test"
	@echo "make soak       forwarders at 10x the real rate with random faults (SOAK_MINUTES=30)"

# System packages the tests and the demo run for real (root on Debian/Ubuntu).
deps: $(BUILD)/.apt-stamp
$(BUILD)/.apt-stamp: Makefile
	@mkdir -p $(BUILD)
	@missing=$$(for p in $(APT_PACKAGES); do dpkg-query -W -f='$${Status}\n' $$p 2>/dev/null | grep -q 'ok installed' || echo $$p; done); \
	if [ -n "$$missing" ]; then \
		if [ "$$(id -u)" != 0 ]; then echo "missing Debian packages (run as root or install them): $$missing" >&2; exit 1; fi; \
		echo "installing: $$missing"; \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $$missing >/dev/null; \
	fi
	@touch $@

# The venv: the test requirements, the forwarder and the simulator (with its pytest plugin) installed editable, and
# this checkout linked as ansible_collections/gnss/pointperfect (pytest.ini's pythonpath names the link's tree).
venv: $(VENV)/.stamp $(COLL_LINK)
$(VENV)/.stamp: requirements.txt requirements-test.txt forwarder/pyproject.toml simulator/pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -r requirements-test.txt
	$(BIN)/pip install -q --no-deps -e forwarder -e simulator
	@touch $@
$(COLL_LINK): | $(VENV)/.stamp
	mkdir -p $(@D)
	ln -sfn ../../../.. $@

# The collection as users get it: built with ansible-galaxy and installed into a private tree.
build: venv
	rm -rf $(BUILD)/dist $(COLL)
	$(BIN)/ansible-galaxy collection build --force --output-path $(BUILD)/dist . >/dev/null
	$(BIN)/ansible-galaxy collection install --force -p $(COLL) $(BUILD)/dist/gnss-pointperfect-$(VERSION).tar.gz >/dev/null
	@echo "installed $(COLL_DIR)"

lint: venv
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/ansible-lint --profile production -q
	$(BIN)/antsibull-changelog lint

# ansible-test sanity over the installed collection: every test it has (see README, Development).
sanity: build
	scripts/sanity.sh $(COLL_DIR)
	ANSIBLE_COLLECTIONS_PATH=$(CURDIR)/$(COLL) $(BIN)/ansible-doc gnss.pointperfect.ztp >/dev/null
	ANSIBLE_COLLECTIONS_PATH=$(CURDIR)/$(COLL) $(BIN)/ansible-doc -t role gnss.pointperfect.gateway >/dev/null
	PATH=$(CURDIR)/$(BIN):$$PATH ANSIBLE_COLLECTIONS_PATH=$(CURDIR)/$(COLL) $(BIN)/antsibull-docs lint-collection-docs \
		--plugin-docs --skip-rstcheck --validate-collection-refs=all --disallow-unknown-collection-refs $(COLL_DIR)

test: deps venv lint sanity
	PP_COLLECTIONS_PATH=$(CURDIR)/$(COLL) $(BIN)/python -m pytest -p no:cacheprovider $(PYTEST_ARGS) \
		tests simulator/tests forwarder/tests

unit: venv
	$(BIN)/python -m pytest -p no:cacheprovider -q tests/unit simulator/tests forwarder/tests -m "not lab"

# Long-running reliability check (issue 7): RSS must stay flat, frames delivered whole; results in .build/soak/.
soak: deps venv
	$(BIN)/python scripts/soak.py --minutes $(SOAK_MINUTES) --dir $(BUILD)/soak

demo: deps venv build
	ANSIBLE_COLLECTIONS_PATH=$(CURDIR)/$(COLL) $(BIN)/python scripts/demo.py up

demo-down: venv
	$(BIN)/python scripts/demo.py down

# Without a venv nothing of the demo can be running: clean does not build one just to remove it.
clean:
	if [ -x $(BIN)/python ]; then $(BIN)/python scripts/demo.py down; fi
	rm -rf $(BUILD) $(VENV)
