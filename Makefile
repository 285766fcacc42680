# Headroom's developer entry points. `make test` is the whole suite, on a fresh Debian machine with
# Python 3.11: it installs what is missing (system packages, the virtualenv, the control plane).
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
CACHE  ?= $(HOME)/.cache/headroom

.PHONY: test demo venv control-plane lint unit e2e cluster-up cluster-down clean

test: venv control-plane
	$(BIN)/pytest

# Headroom's whole loop on this machine; another story with `make demo SCENARIO=path.yaml`.
SCENARIO ?= headroom/demo/scenarios/default.yaml
demo: venv control-plane
	$(BIN)/headroom demo --scenario $(SCENARIO)

venv: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml scripts/install-system-deps.sh
	bash scripts/install-system-deps.sh
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[test]'
	touch $@

control-plane:
	bash scripts/build-control-plane.sh

# Faster loops while developing: everything but e2e, or only e2e.
unit: venv
	$(BIN)/pytest -m 'not e2e'

e2e: venv control-plane
	$(BIN)/pytest -m e2e

# The test harness by hand: a local etcd + kube-apiserver + kube-controller-manager on loopback.
cluster-up: venv control-plane
	$(BIN)/python -m headroom.localcluster up

cluster-down:
	$(BIN)/python -m headroom.localcluster down

clean:
	rm -rf $(VENV) .mypy_cache .pytest_cache .ruff_cache .hypothesis
