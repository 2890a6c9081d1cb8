"""Flask extensions, created unbound here and bound to an app in `create_app`.

Nothing here connects to anything: each extension reads its settings in `init_app`.
"""

from __future__ import annotations

import redis
from flask import Flask, current_app
from flask_cors import CORS
from flask_jwt_extended import JWTManager
from flask_limiter import Limiter
from flask_limiter.util import get_remote_address
from flask_mail import Mail
from flask_migrate import Migrate
from flask_smorest import Api
from flask_sqlalchemy import SQLAlchemy
from sqlalchemy import MetaData
from sqlalchemy.orm import DeclarativeBase

# Explicit constraint names keep Alembic migrations identical on SQLite and PostgreSQL.
NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


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

    @property
    def client(self) -> redis.Redis | None:
        return current_app.extensions.get("redis")


db = SQLAlchemy(model_class=Base)
migrate = Migrate()
jwt = JWTManager()
limiter = Limiter(key_func=get_remote_address)
mail = Mail()
cors = CORS()
redis_client = RedisClient()
openapi = Api()
