"""Flask extensions, created unbound here and bound to an app in `create_app`.

Nothing here connects to anything: each extension reads its settings in `init_app`.
"""

from __future__ import annotations

import logging
import time

import redis
from flask import Flask, current_app
from flask_cors import CORS
from flask_jwt_extended import JWTManager
from flask_limiter import Limiter
from flask_limiter.util import get_remote_address
from flask_mail import Mail
from flask_migrate import Migrate
from flask_sqlalchemy import SQLAlchemy
from prometheus_client import Counter
from sqlalchemy import MetaData
from sqlalchemy.orm import DeclarativeBase

from api.observability.metrics import count_rate_limit_rejection

# Explicit constraint names keep Alembic migrations identical on SQLite and PostgreSQL.
NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


log = logging.getLogger(__name__)

REDIS_ERRORS = Counter(
    "redis_errors", "Redis operations that failed, by the component that degraded.", ["component"]
)


class Base(DeclarativeBase):
    """Declarative base of every model."""

    metadata = MetaData(naming_convention=NAMING_CONVENTION)


class RedisClient:
    """The app's Redis client, or None when `REDIS_URL` is unset (development)."""

    def init_app(self, app: Flask) -> None:
        url = app.config.get("REDIS_URL")
        client = None
        if url:
            # Short timeouts: a Redis that hangs must degrade a request, not stall it.
            client = redis.Redis.from_url(
                url,
                socket_timeout=0.5,
                socket_connect_timeout=0.5,
                health_check_interval=30,
                decode_responses=True,
            )
        app.extensions["redis"] = client
        app.extensions["redis_failures_logged"] = {}

    @property
    def client(self) -> redis.Redis | None:
        return current_app.extensions.get("redis")

    def report_failure(self, component: str, error: Exception) -> None:
        """Count a Redis failure; log it at most once a minute per component and process."""
        REDIS_ERRORS.labels(component).inc()
        now = time.monotonic()
        last_logged: dict[str, float] = current_app.extensions["redis_failures_logged"]
        if now - last_logged.get(component, -60.0) >= 60.0:
            last_logged[component] = now
            log.warning(
                "redis unavailable: %s degraded",
                component,
                extra={"error.type": type(error).__name__, "event.reason": component},
            )


db = SQLAlchemy(model_class=Base)
migrate = Migrate()
jwt = JWTManager()
limiter = Limiter(key_func=get_remote_address, on_breach=count_rate_limit_rejection)
mail = Mail()
cors = CORS()
redis_client = RedisClient()
