# Two commands matter: `make run` and `make test`. Both create .venv and install what they need.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
# checkov pins an old boto3, so it lives in a virtualenv of its own (tests/infra runs it from there).
CHECKOV_VENV := $(VENV)/checkov

.PHONY: run test unit integration lint typecheck bench clean deploy destroy package

$(STAMP): requirements.txt requirements-dev.txt requirements-checkov.txt
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -r requirements-dev.txt
	test -x $(CHECKOV_VENV)/bin/python || $(PY) -m venv $(CHECKOV_VENV)
	$(CHECKOV_VENV)/bin/python -m pip install --quiet -r requirements-checkov.txt
	touch $(STAMP)

run: $(STAMP)
	$(PY) -m local.stack

test: $(STAMP) lint typecheck
	$(PY) -m pytest

unit: $(STAMP)
	$(PY) -m pytest tests/unit

integration: $(STAMP)
	$(PY) -m pytest tests/integration

lint: $(STAMP)
	$(PY) -m ruff check .

typecheck: $(STAMP)
	$(PY) -m mypy

# Deploy a stage to AWS (docs/DEPLOY.md): make deploy STAGE=dev [FRONTEND_ORIGIN=https://app.example.com]
deploy: $(STAMP)
	$(PY) -m infra.deploy deploy --stage "$(STAGE)"

# Remove a stage's app; its data stays unless PURGE=1.
destroy: $(STAMP)
	$(PY) -m infra.deploy destroy --stage "$(STAGE)" $(if $(filter 1 yes true,$(PURGE)),--purge)

# Terraform instead of Chalice's deployer: make package STAGE=dev OUT=build/terraform
package: $(STAMP)
	$(PY) -m infra.deploy package --stage "$(STAGE)" --out "$(or $(OUT),build/terraform)"

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache .coverage coverage.xml htmlcov .local
