"""modelgate: PyTorch models behind an authenticated, rate-limited, metered, traced HTTP API.

`create_app` wires the application; it does no work itself. Settings come from
environment variables (see `api/config.py` and the README's table): MODELGATE_ENV,
SECRET_KEY, JWT_SECRET_KEY, DATABASE_URL, REDIS_URL, CORS_ORIGINS, FRONTEND_URL,
MAIL_*, LOG_FORMAT, LOG_LEVEL, LOG_FILE, MODELS, RATE_LIMIT_DEFAULT,
RATE_LIMIT_AUTH, LOGIN_FAILURE_LIMIT, LOGIN_ACCOUNT_FAILURE_LIMIT, EMAIL_ACTION_LIMIT,
EMAIL_ACCOUNT_LIMIT, AUTH_FAILURE_LIMIT, TOKEN_CREATE_LIMIT, TRUSTED_PROXIES,
OPERATOR_NETWORKS, MAX_BODY_BYTES, BATCH_MAX_SIZE, BATCH_MAX_WAIT_MS,
INFERENCE_QUEUE_SIZE, INFERENCE_TIMEOUT_S, GENERATION_SLOTS, GENERATION_QUEUE_SIZE,
INFERENCE_PER_USER, STREAMS_PER_USER, EMBEDDING_CACHE_TTL_S, USAGE_SPOOL_DIR,
USAGE_FLUSH_INTERVAL_MS, TORCH_THREADS, FILES_DIR, FILE_MAX_BYTES, FILES_QUOTA_BYTES,
FILE_EXPIRY_DAYS, BATCH_DAILY_LINES, BATCH_LEASE_S, BATCH_RECOVER_S, BATCH_WORKER_NICE,
CELERY_BROKER_URL, CELERY_BROKER_DIR.
"""

from __future__ import annotations

import os

from flask import Flask
from werkzeug.middleware.proxy_fix import ProxyFix

from api import models, observability, web
from api.admin.routes import blueprint as admin
from api.auth.routes import blueprint as auth
from api.auth.sessions import init_jwt
from api.batches import tasks as batch_tasks  # noqa: F401 - Celery tasks, for jobs.init_app
from api.batches.routes import blueprint as batches
from api.cli import register_commands
from api.config import Config
from api.edge import guards, validation
from api.edge import openapi as openapi_docs
from api.edge.errors import register_error_handlers
from api.edge.openapi import openapi
from api.extensions import cors, db, jwt, limiter, mail, migrate, redis_client
from api.files.routes import blueprint as files
from api.health.metrics import blueprint as health_metrics
from api.health.routes import blueprint as health
from api.inference.completions import blueprint as completions
from api.inference.predict import blueprint as predict
from api.inference.routes import blueprint as inference
from api.oip.routes import blueprint as oip
from api.process import jobs
from api.responses.routes import blueprint as responses
from api.runtime.registry import models as model_registry
from api.tokens.routes import blueprint as tokens
from api.usage.routes import blueprint as usage

MIGRATIONS_DIR = os.path.join(
    os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "migrations"
)
EXPOSED_HEADERS = [
    "X-Trace-Id",
    "traceparent",
    "X-RateLimit-Limit",
    "X-RateLimit-Remaining",
    "X-RateLimit-Reset",
    "x-ratelimit-limit-requests",
    "x-ratelimit-remaining-requests",
    "x-ratelimit-reset-requests",
    "Retry-After",
]


def create_app(config: Config | None = None) -> Flask:
    """Build the Flask app from `config` (default: read from the environment)."""
    config = config or Config()
    config.validate()
    app = Flask(__name__, instance_relative_config=True)
    app.config.from_object(config)
    app.json.sort_keys = False  # type: ignore[attr-defined]
    register_proxy_fix(app)
    models.register()
    register_extensions(app)
    register_blueprints(app)
    register_error_handlers(app)
    register_commands(app)
    return app


def register_proxy_fix(app: Flask) -> None:
    """Trust X-Forwarded-For/-Proto only from the configured number of proxy hops."""
    hops = app.config["TRUSTED_PROXIES"]
    if hops:
        app.wsgi_app = ProxyFix(app.wsgi_app, x_for=hops, x_proto=hops)  # type: ignore[method-assign]


def register_extensions(app: Flask) -> None:
    observability.init_app(app)
    guards.init_app(app)
    uri = app.config["SQLALCHEMY_DATABASE_URI"]
    if uri.startswith("sqlite:///"):
        os.makedirs(os.path.dirname(uri.removeprefix("sqlite:///")) or ".", exist_ok=True)
    db.init_app(app)
    migrate.init_app(app, db, directory=MIGRATIONS_DIR, render_as_batch=True)
    jwt.init_app(app)
    init_jwt(jwt)
    mail.init_app(app)
    redis_client.init_app(app)
    model_registry.init_app(app)
    limiter.init_app(app)
    cors.init_app(
        app,
        origins=app.config["CORS_ORIGINS"],
        supports_credentials=True,
        expose_headers=EXPOSED_HEADERS,
        allow_headers=["Authorization", "Content-Type", "X-Trace-Id", "X-CSRF-TOKEN"],
        max_age=600,
    )
    openapi_docs.init_app(app)
    validation.init_app(app, openapi)
    jobs.init_app(app)


def register_blueprints(app: Flask) -> None:
    features = (health, auth, admin, tokens, usage, inference, predict, completions, files, batches)
    for blueprint in features:
        openapi.register_blueprint(blueprint)
    app.register_blueprint(health_metrics)  # /metrics: for operators, not in the document
    openapi.register_blueprint(responses)
    app.register_blueprint(oip)  # /v2: the Open Inference Protocol, documented by its own spec
    web.init_app(app)  # last: its catch-all must not shadow the API
