# Headroom's developer entry points. `make test` is the whole suite, on a fresh Debian machine with
# Python 3.11: it installs what is missing (system packages, the virtualenv, the control plane).
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
CACHE  ?= $(HOME)/.cache/headroom

.PHONY: test demo docs venv lock control-plane mock-nvml helm manifests lint unit e2e cluster-up cluster-down clean

test: lint control-plane mock-nvml helm
	$(BIN)/pytest

# The static checks: lint and format (ruff), types (mypy --strict, files from pyproject.toml) and
# the layering (import-linter's contracts in pyproject.toml). `make test` runs them first.
lint: venv
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy
	$(BIN)/lint-imports

# Headroom's whole loop on this machine; another story with `make demo SCENARIO=path.yaml`.
SCENARIO ?= tooling/demo/scenarios/default.yaml
demo: venv control-plane
	$(BIN)/python -m tooling.demo --scenario $(SCENARIO)

# The documentation site (mkdocs.yml, docs/) into site/. --strict makes every warning fatal, and
# mkdocs.yml's validation makes a broken link or anchor a warning; tests/test_docs.py builds it too.
# `$(BIN)/mkdocs serve` serves it while you edit.
docs: venv
	$(BIN)/mkdocs build --strict -d site/

# The venv holds exactly the test lock's versions (every file checked against its sha256), then
# the project itself without resolving anything more; a new lock reinstalls.
venv: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml requirements/test.lock scripts/install-system-deps.sh
	bash scripts/install-system-deps.sh
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet --require-hashes -r requirements/test.lock
	$(BIN)/pip install --quiet --no-deps -e .
	touch $@

# Rewrite requirements/test.lock and requirements/runtime.lock from pyproject.toml's dependencies
# and requirements/constraints.txt (scripts/lock.py), with pip-tools in a venv of its own: it is
# not a project dependency. Existing pins stay unless asked: `make lock UPGRADE=1` moves every
# pin to the newest version allowed, `make lock UPGRADE_PACKAGES='kubernetes flask'` only those.
PIP_TOOLS_VERSION := 7.7.0
LOCK_TOOLS := $(CACHE)/pip-tools-$(PIP_TOOLS_VERSION)
lock: $(LOCK_TOOLS)/.installed
	$(LOCK_TOOLS)/bin/python -m scripts.lock $(if $(UPGRADE),--upgrade) $(UPGRADE_PACKAGES:%=-P %)

$(LOCK_TOOLS)/.installed:
	$(PYTHON) -m venv $(LOCK_TOOLS)
	$(LOCK_TOOLS)/bin/pip install --quiet pip==26.3 pip-tools==$(PIP_TOOLS_VERSION)
	touch $@

control-plane:
	bash tooling/controlplane/build.sh

# helm, built from Go modules once per machine (tooling/helm/build.sh): the chart's tests lint,
# render and install charts/headroom with it, and `make manifests` renders manifests/ with it.
helm:
	bash tooling/helm/build.sh

# manifests/ is rendered from charts/headroom: run this after editing the chart
# (tests/manifests/test_chart.py fails while they differ).
manifests: venv helm
	$(BIN)/python -m tooling.helm.manifests

# NVIDIA's mock libnvidia-ml.so for tests/nodeagent/test_mocknvml.py, built once per machine. Exit 3
# is "its module cannot be had here" (the Go proxy does not serve it): those tests then skip and say
# why, so it does not stop the suite; any other failure does.
mock-nvml: venv
	bash tooling/mocknvml/build.sh >/dev/null || [ $$? -eq 3 ]

# Faster loops while developing: everything but e2e, or only e2e.
unit: venv
	$(BIN)/pytest -m 'not e2e'

e2e: venv control-plane
	$(BIN)/pytest -m e2e

# The test harness by hand: a local etcd + kube-apiserver + kube-controller-manager on loopback.
cluster-up: venv control-plane
	$(BIN)/python -m tooling.clusterctl up

cluster-down:
	$(BIN)/python -m tooling.clusterctl down

clean:
	rm -rf $(VENV) .mypy_cache .pytest_cache .ruff_cache .hypothesis
