"""Settings read from environment variables, checked once at start.

One class, `Config`, reads every setting from the environment (a `.env` file is
loaded first in development). `TestConfig` is the subclass the test suite uses.
Production (`MODELGATE_ENV=production`) refuses to start with a missing, short or
placeholder secret and says which one.
"""

from __future__ import annotations

import os
import secrets
from collections.abc import Mapping
from datetime import timedelta
from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parent.parent
MIN_SECRET_BYTES = 32
PLACEHOLDER_SECRETS = {"changeme", "change-me", "secret", "dev", "development", "test"}


class ConfigError(RuntimeError):
    """A setting is missing or invalid; the message names the variable."""


def _int(environ: Mapping[str, str], name: str, default: int) -> int:
    raw = environ.get(name)
    if raw is None or raw == "":
        return default
    try:
        return int(raw)
    except ValueError:
        raise ConfigError(f"{name} must be an integer, got {raw!r}") from None


def _bool(environ: Mapping[str, str], name: str, default: bool) -> bool:
    raw = environ.get(name)
    if raw is None or raw == "":
        return default
    return raw.strip().lower() in {"1", "true", "yes", "on"}


def _list(environ: Mapping[str, str], name: str, default: str) -> list[str]:
    return [item.strip() for item in environ.get(name, default).split(",") if item.strip()]


def _delays(environ: Mapping[str, str], name: str, default: str) -> tuple[float, ...]:
    try:
        delays = tuple(float(item) for item in _list(environ, name, default))
    except ValueError:
        raise ConfigError(f"{name} must be seconds separated by commas") from None
    if any(not 0 <= delay <= 86400 for delay in delays):
        raise ConfigError(f"{name}: each delay must be 0 to 86400 seconds")
    return delays


def served_url(bind: str | None) -> str:
    """The base URL a browser on this host uses for gunicorn's `bind` (HOST:PORT).

    A wildcard host is reached on loopback; a Unix socket or no bind gives gunicorn's
    default address.
    """
    host, _, port = (bind or "").rpartition(":")
    if not host or not port.isdigit() or host.startswith("unix"):
        return "http://127.0.0.1:8000"
    if host in {"0.0.0.0", "[::]"}:  # noqa: S104 - a wildcard bind, reached on loopback
        host = "127.0.0.1"
    return f"http://{host}:{port}"


class Config:
    """Every setting of the service, read from `environ` (defaults suit development)."""

    SERVICE_NAME = "modelgate"
    API_TITLE = "modelgate"
    API_VERSION = "v1"
    OPENAPI_VERSION = "3.0.3"
    OPENAPI_URL_PREFIX = "/"
    OPENAPI_JSON_PATH = "v1/openapi.json"
    OPENAPI_SWAGGER_UI_PATH = "docs"
    OPENAPI_SWAGGER_UI_URL = "/docs/assets/"
    JSON_SORT_KEYS = False

    def __init__(self, environ: Mapping[str, str] | None = None) -> None:
        env = os.environ if environ is None else environ
        self.MODELGATE_ENV = env.get("MODELGATE_ENV", "development")
        self.TESTING = False
        generated = self.MODELGATE_ENV != "production"
        self.SECRET_KEY = env.get("SECRET_KEY") or (secrets.token_urlsafe(48) if generated else "")
        self.JWT_SECRET_KEY = env.get("JWT_SECRET_KEY") or (
            secrets.token_urlsafe(48) if generated else ""
        )
        default_db = f"sqlite:///{PROJECT_ROOT / 'instance' / 'modelgate.db'}"
        self.SQLALCHEMY_DATABASE_URI = env.get("DATABASE_URL") or default_db
        # One connection per gunicorn thread, so a busy worker never waits for the pool.
        threads = _int(env, "GUNICORN_THREADS", 8)
        self.SQLALCHEMY_ENGINE_OPTIONS = {
            # Bound values (password hashes, token hashes, prompts) never reach an
            # exception's text, and so never a log line.
            "hide_parameters": True,
            "pool_pre_ping": True,
            "pool_size": threads,
            "max_overflow": 4,
        }
        self.REDIS_URL = env.get("REDIS_URL") or None
        self.CORS_ORIGINS = _list(env, "CORS_ORIGINS", "http://localhost:5173")
        # Links in emails. In development they point at what gunicorn serves (`make run`'s
        # HOST:PORT), where the built web app answers them.
        frontend = served_url(env.get("GUNICORN_BIND")) if generated else "http://localhost:5173"
        self.FRONTEND_URL = (env.get("FRONTEND_URL") or frontend).rstrip("/")
        # The built web app, served at / when present (Nginx serves it in production).
        self.WEB_DIST: str | None = env.get("WEB_DIST", str(PROJECT_ROOT / "web" / "dist"))
        # Kibana's base URL: the admin pages link each trace id to Discover when set.
        self.KIBANA_URL = env.get("KIBANA_URL", "").rstrip("/")

        self.MAIL_SERVER = env.get("MAIL_SERVER") or None
        self.MAIL_PORT = _int(env, "MAIL_PORT", 25)
        self.MAIL_USE_TLS = _bool(env, "MAIL_USE_TLS", False)
        self.MAIL_USE_SSL = _bool(env, "MAIL_USE_SSL", False)
        self.MAIL_USERNAME = env.get("MAIL_USERNAME") or None
        self.MAIL_PASSWORD = env.get("MAIL_PASSWORD") or None
        self.MAIL_DEFAULT_SENDER = env.get("MAIL_DEFAULT_SENDER", "modelgate <noreply@localhost>")
        self.MAIL_TIMEOUT = _int(env, "MAIL_TIMEOUT", 10)
        self.MAIL_SUPPRESS_SEND = False  # Flask-Mail would skip sending under TESTING
        # After a failed send, wait this long before each new try (seconds; then give up).
        self.MAIL_RETRY_DELAYS_S = _delays(env, "MAIL_RETRY_DELAYS_S", "10,60,300,1800")

        self.LOG_FORMAT = env.get("LOG_FORMAT", "json")
        self.LOG_LEVEL = env.get("LOG_LEVEL", "INFO").upper()
        self.LOG_FILE = env.get("LOG_FILE") or None

        self.MODELS = env.get("MODELS", "all-minilm-l6-v2,storyteller")
        self.RATE_LIMIT_DEFAULT = env.get("RATE_LIMIT_DEFAULT", "60/minute;5000/day")
        self.RATE_LIMIT_AUTH = env.get("RATE_LIMIT_AUTH", "10/minute")
        self.RATELIMIT_STORAGE_URI = self.REDIS_URL or "memory://"
        self.RATELIMIT_STORAGE_OPTIONS = {"socket_timeout": 0.5, "socket_connect_timeout": 0.5}
        self.RATELIMIT_HEADERS_ENABLED = True
        self.RATELIMIT_IN_MEMORY_FALLBACK_ENABLED = True
        self.RATELIMIT_SWALLOW_ERRORS = True
        self.RATELIMIT_KEY_PREFIX = "mg"
        # Wrong passwords per account and address, and per account from anywhere.
        self.LOGIN_FAILURE_LIMIT = env.get("LOGIN_FAILURE_LIMIT", "10 per 15 minutes")
        self.LOGIN_ACCOUNT_FAILURE_LIMIT = env.get("LOGIN_ACCOUNT_FAILURE_LIMIT", "100 per hour")
        # Mail to one address past this is not sent (the answer stays 202).
        self.EMAIL_ACTION_LIMIT = env.get("EMAIL_ACTION_LIMIT", "5 per hour")
        self.EMAIL_ACCOUNT_LIMIT = env.get("EMAIL_ACCOUNT_LIMIT", "20 per hour")
        # Invalid API tokens or JWTs per client address before it gets 429 at once.
        self.AUTH_FAILURE_LIMIT = env.get("AUTH_FAILURE_LIMIT", "30/minute")
        self.TOKEN_CREATE_LIMIT = env.get("TOKEN_CREATE_LIMIT", "10/hour")
        self.TRUSTED_PROXIES = _int(env, "TRUSTED_PROXIES", 0)
        self.MAX_CONTENT_LENGTH = _int(env, "MAX_BODY_BYTES", 1024 * 1024)

        # Inference engine (api/inference): micro-batching, queue bound, deadline, generation slots.
        self.BATCH_MAX_SIZE = _int(env, "BATCH_MAX_SIZE", 32)
        self.BATCH_MAX_WAIT_MS = _int(env, "BATCH_MAX_WAIT_MS", 5)
        self.INFERENCE_QUEUE_SIZE = _int(env, "INFERENCE_QUEUE_SIZE", 256)
        self.INFERENCE_TIMEOUT_S = _int(env, "INFERENCE_TIMEOUT_S", 30)
        # Set by gunicorn.conf.py: the model server's socket, the handler models' folder.
        self.MODEL_SERVER_SOCKET = env.get("MODEL_SERVER_SOCKET") or None
        self.HANDLER_SOCKET_DIR = env.get("HANDLER_SOCKET_DIR") or None
        self.PREDICT_MAX_BYTES = _int(env, "PREDICT_MAX_BYTES", 16 * 1024 * 1024)
        self.MODEL_SERVER_WAIT_S = _int(env, "MODEL_SERVER_WAIT_S", 120)
        # The model server's connections: one per worker thread, twice over for a reload's
        # old and new workers, and spare; past it a connection is closed at once. A frame
        # must arrive whole in FRAME seconds; a connection idle for IDLE is closed (the
        # workers open a new one).
        workers = _int(env, "GUNICORN_WORKERS", 2)
        self.MODEL_SERVER_MAX_CONNECTIONS = _int(
            env, "MODEL_SERVER_MAX_CONNECTIONS", 2 * workers * threads + 16
        )
        self.MODEL_SERVER_FRAME_TIMEOUT_S = _int(env, "MODEL_SERVER_FRAME_TIMEOUT_S", 10)
        self.MODEL_SERVER_IDLE_TIMEOUT_S = _int(env, "MODEL_SERVER_IDLE_TIMEOUT_S", 300)
        # Generations running and waiting stay below the server's threads, so health
        # checks and other calls always find a free thread.
        self.GENERATION_SLOTS = _int(env, "GENERATION_SLOTS", 4)
        self.GENERATION_QUEUE_SIZE = _int(env, "GENERATION_QUEUE_SIZE", 2)
        self.INFERENCE_PER_USER = _int(env, "INFERENCE_PER_USER", 4)
        self.STREAMS_PER_USER = _int(env, "STREAMS_PER_USER", 2)
        self.SERVER_THREADS = threads
        # Who may read /metrics and /readyz's details: loopback and private networks.
        self.OPERATOR_NETWORKS = _list(
            env, "OPERATOR_NETWORKS", "127.0.0.0/8,::1/128,10.0.0.0/8,172.16.0.0/12,192.168.0.0/16"
        )
        self.EMBEDDING_CACHE_TTL_S = _int(env, "EMBEDDING_CACHE_TTL_S", 86400)
        # Usage rows go through a local spool and reach the database in bulk (api/usage/spool.py).
        spool = env.get("USAGE_SPOOL_DIR") or str(PROJECT_ROOT / "instance" / "usage-spool")
        self.USAGE_SPOOL_DIR: str | None = spool
        self.USAGE_FLUSH_INTERVAL_MS = _int(env, "USAGE_FLUSH_INTERVAL_MS", 200)
        # Files and batches (api/files, api/batches): storage, caps, and the Celery worker.
        self.FILES_DIR = env.get("FILES_DIR") or str(PROJECT_ROOT / "instance" / "files")
        self.FILE_MAX_BYTES = _int(env, "FILE_MAX_BYTES", 64 * 1024 * 1024)
        self.FILES_QUOTA_BYTES = _int(env, "FILES_QUOTA_BYTES", 1024 * 1024 * 1024)
        self.FILE_EXPIRY_DAYS = _int(env, "FILE_EXPIRY_DAYS", 30)
        self.BATCH_DAILY_LINES = _int(env, "BATCH_DAILY_LINES", 100_000)
        self.BATCH_LEASE_S = _int(env, "BATCH_LEASE_S", 30)
        self.BATCH_RECOVER_S = _int(env, "BATCH_RECOVER_S", 10)
        # How long a queued batch may wait for a worker before the recovery queues it again
        # (its message may be lost: Redis restarted without persistence, a broker down).
        self.BATCH_QUEUE_GRACE_S = _int(env, "BATCH_QUEUE_GRACE_S", 300)
        self.BATCH_WORKER_NICE = _int(env, "BATCH_WORKER_NICE", 10)
        # Fairness and bounds (docs/decisions.md): a user's unfinished batches at once; a
        # batch gives its worker up after a slice of this long when another user's waits;
        # a batch claimed this often without ending (a worker crashing on it) fails.
        self.BATCH_ACTIVE_PER_USER = _int(env, "BATCH_ACTIVE_PER_USER", 5)
        self.BATCH_SLICE_S = _int(env, "BATCH_SLICE_S", 5)
        self.BATCH_MAX_ATTEMPTS = _int(env, "BATCH_MAX_ATTEMPTS", 5)
        # Celery's broker: Redis when there is one; else a folder (development, no server).
        self.CELERY_BROKER_URL = env.get("CELERY_BROKER_URL") or self.REDIS_URL or "filesystem://"
        self.CELERY_BROKER_DIR = env.get("CELERY_BROKER_DIR") or str(
            PROJECT_ROOT / "instance" / "celery"
        )
        self.JWT_COOKIE_SECURE = self.MODELGATE_ENV == "production"
        self.JWT_ACCESS_TOKEN_EXPIRES = timedelta(seconds=_int(env, "ACCESS_TOKEN_SECONDS", 900))

    # Sessions: short access JWTs in headers, refresh JWTs in an httpOnly cookie with CSRF.
    JWT_ALGORITHM = "HS256"
    JWT_DECODE_ALGORITHMS = ["HS256"]
    JWT_ENCODE_ISSUER = JWT_DECODE_ISSUER = "modelgate"
    JWT_ENCODE_AUDIENCE = JWT_DECODE_AUDIENCE = "modelgate-api"
    JWT_REFRESH_TOKEN_EXPIRES = timedelta(days=30)
    JWT_TOKEN_LOCATION = ["headers", "cookies"]
    JWT_REFRESH_COOKIE_NAME = "mg_refresh"
    JWT_REFRESH_COOKIE_PATH = "/v1/auth"
    JWT_REFRESH_CSRF_COOKIE_NAME = "mg_csrf"
    JWT_REFRESH_CSRF_COOKIE_PATH = "/"
    JWT_COOKIE_CSRF_PROTECT = True
    JWT_CSRF_IN_COOKIES = True
    JWT_COOKIE_SAMESITE = "Strict"
    JWT_SESSION_COOKIE = False

    @property
    def is_production(self) -> bool:
        return self.MODELGATE_ENV == "production"

    def validate(self) -> None:
        """Raise ConfigError naming the first setting production cannot run with."""
        if self.MODELGATE_ENV not in {"development", "production", "testing"}:
            raise ConfigError(
                f"MODELGATE_ENV must be development, production or testing, "
                f"got {self.MODELGATE_ENV!r}"
            )
        if self.LOG_FORMAT not in {"json", "text"}:
            raise ConfigError(f"LOG_FORMAT must be json or text, got {self.LOG_FORMAT!r}")
        if self.TRUSTED_PROXIES < 0:
            raise ConfigError("TRUSTED_PROXIES must be 0 or more")
        if self.GENERATION_SLOTS + self.GENERATION_QUEUE_SIZE >= self.SERVER_THREADS:
            raise ConfigError(
                "GENERATION_SLOTS + GENERATION_QUEUE_SIZE must stay below GUNICORN_THREADS "
                f"({self.GENERATION_SLOTS} + {self.GENERATION_QUEUE_SIZE} >= "
                f"{self.SERVER_THREADS}), or generations can take every thread"
            )
        for name in (
            "INFERENCE_PER_USER",
            "STREAMS_PER_USER",
            "MODEL_SERVER_MAX_CONNECTIONS",
            "MODEL_SERVER_FRAME_TIMEOUT_S",
            "MODEL_SERVER_IDLE_TIMEOUT_S",
        ):
            if getattr(self, name) < 1:
                raise ConfigError(f"{name} must be 1 or more")
        if not self.is_production:
            return
        for name in ("SECRET_KEY", "JWT_SECRET_KEY"):
            value = getattr(self, name)
            if not value:
                raise ConfigError(f"{name} is missing: production needs a random secret")
            if value.lower() in PLACEHOLDER_SECRETS or len(value.encode()) < MIN_SECRET_BYTES:
                raise ConfigError(
                    f"{name} is too weak: production needs at least {MIN_SECRET_BYTES} "
                    "random bytes (python -c 'import secrets; print(secrets.token_urlsafe(48))')"
                )
        if self.SECRET_KEY == self.JWT_SECRET_KEY:
            raise ConfigError("JWT_SECRET_KEY must differ from SECRET_KEY")
        if self.SQLALCHEMY_DATABASE_URI.startswith("sqlite"):
            raise ConfigError("DATABASE_URL is missing: production runs on PostgreSQL")
        if not self.REDIS_URL:
            raise ConfigError("REDIS_URL is missing: production needs Redis")
        if not self.MAIL_SERVER:
            raise ConfigError("MAIL_SERVER is missing: production must send account emails")


class TestConfig(Config):
    """Settings for the test suite: fixed secrets, the database and Redis given by the caller."""

    def __init__(self, environ: Mapping[str, str] | None = None, **overrides: object) -> None:
        super().__init__(environ if environ is not None else {})
        self.MODELGATE_ENV = "testing"
        self.TESTING = True
        self.SECRET_KEY = "test-secret-key-" + "x" * 32
        self.JWT_SECRET_KEY = "test-jwt-secret-" + "y" * 32
        self.LOG_FORMAT = "json"
        self.MODELS = ""
        self.RATE_LIMIT_AUTH = "1000/minute"
        self.RATELIMIT_STORAGE_URI = "memory://"
        self.USAGE_SPOOL_DIR = None  # rows straight to the database: tests read them at once
        self.WEB_DIST = None  # unknown paths stay JSON 404s; the web tests set it
        self.CELERY_BROKER_URL = "memory://"  # tasks are queued, never run, unless a test runs them
        self.MAIL_RETRY_DELAYS_S = ()  # a failed send gives up at once unless a test asks
        for key, value in overrides.items():
            setattr(self, key, value)
