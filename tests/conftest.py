"""Fixtures: a fresh app and database per test, on SQLite and on PostgreSQL, and real Redis.

Every test that takes `app` (or `client`) runs twice: once on a SQLite file copied
from a migrated template, once on a PostgreSQL database migrated once per session
and emptied after each test.
"""

from __future__ import annotations

import contextlib
import shutil
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import flask_migrate
import psycopg
import pytest
import redis
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy.engine import make_url

from api import MIGRATIONS_DIR, create_app
from api.config import TestConfig
from api.extensions import db
from tests.services import PG_SERVER_URL, REDIS_URL, gunicorn, require


def migrate(database_url: str) -> None:
    """Bring a database to the newest revision with Flask-Migrate, as `flask db upgrade` does."""
    app = create_app(TestConfig(SQLALCHEMY_DATABASE_URI=database_url))
    with app.app_context():
        flask_migrate.upgrade(directory=MIGRATIONS_DIR)
        db.engine.dispose()


def _libpq(url: str) -> str:
    return make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)


@contextlib.contextmanager
def scratch_database(prefix: str) -> Iterator[str]:
    """A migrated PostgreSQL database of its own (for benchmarks and fuzzing), dropped after."""
    name = f"{prefix}_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(_libpq(PG_SERVER_URL), autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    url = make_url(PG_SERVER_URL).set(database=name).render_as_string(hide_password=False)
    try:
        migrate(url)
        yield url
    finally:
        with psycopg.connect(_libpq(PG_SERVER_URL), autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture(scope="session")
def sqlite_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("sqlite") / "template.db"
    migrate(f"sqlite:///{path}")
    return path


@pytest.fixture(scope="session")
def postgres_database() -> Iterator[str]:
    """A PostgreSQL database of our own for this session, migrated once, dropped at the end."""
    try:
        with psycopg.connect(_libpq(PG_SERVER_URL), autocommit=True, connect_timeout=3) as conn:
            name = f"modelgate_test_{uuid.uuid4().hex[:12]}"
            conn.execute(f'CREATE DATABASE "{name}"')
    except psycopg.Error as error:
        require("PostgreSQL", error)
    url = make_url(PG_SERVER_URL).set(database=name).render_as_string(hide_password=False)
    migrate(url)
    yield url
    with psycopg.connect(_libpq(PG_SERVER_URL), autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def empty_postgres(url: str) -> None:
    with psycopg.connect(_libpq(url), autocommit=True) as conn:
        tables = [
            row[0]
            for row in conn.execute(
                "SELECT tablename FROM pg_tables WHERE schemaname = 'public' "
                "AND tablename <> 'alembic_version'"
            )
        ]
        if tables:
            conn.execute(
                "TRUNCATE " + ", ".join(f'"{t}"' for t in tables) + " RESTART IDENTITY CASCADE"
            )


@pytest.fixture(params=["sqlite", "postgresql"])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """An empty, migrated database for one test."""
    if request.param == "sqlite":
        path = tmp_path / "test.db"
        shutil.copy(request.getfixturevalue("sqlite_template"), path)
        yield f"sqlite:///{path}"
        return
    url = request.getfixturevalue("postgres_database")
    yield url
    empty_postgres(url)


@pytest.fixture(scope="session")
def redis_url() -> str:
    try:
        redis.Redis.from_url(REDIS_URL, socket_connect_timeout=2).ping()
    except redis.RedisError as error:
        require("Redis", error)
    return REDIS_URL


@pytest.fixture
def redis_db(redis_url: str) -> Iterator[redis.Redis]:
    """The test Redis database, emptied before and after the test."""
    client = redis.Redis.from_url(redis_url, decode_responses=True)
    client.flushdb()
    yield client
    client.flushdb()
    client.close()


@pytest.fixture
def make_app(database_url: str, tmp_path: Path) -> Iterator[Callable[..., Flask]]:
    """Build apps on this test's database; keyword arguments override TestConfig."""
    apps: list[Flask] = []

    def build(**overrides: Any) -> Flask:
        settings: dict[str, Any] = {
            "SQLALCHEMY_DATABASE_URI": database_url,
            "LOG_FILE": str(tmp_path / "app.log"),
            "FILES_DIR": str(tmp_path / "files"),
        }
        settings.update(overrides)
        app = create_app(TestConfig(**settings))
        apps.append(app)
        return app

    yield build
    for app in apps:
        with app.app_context():
            db.session.remove()
            db.engine.dispose()


@pytest.fixture
def app(make_app: Callable[..., Flask]) -> Flask:
    return make_app()


@pytest.fixture
def client(app: Flask) -> FlaskClient:
    return app.test_client()


@pytest.fixture
def log_lines(tmp_path: Path) -> Callable[[], list[dict[str, Any]]]:
    """Read back the JSON log lines the app under test wrote."""
    import json

    def read() -> list[dict[str, Any]]:
        path = tmp_path / "app.log"
        if not path.exists():
            return []
        return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]

    return read


@pytest.fixture
def live_database(postgres_database: str) -> Iterator[str]:
    """The session's PostgreSQL database for a test that runs gunicorn against it."""
    yield postgres_database
    empty_postgres(postgres_database)


# A server shared by several modules lives from its first user to its last: the helpers
# below close it after the last test that takes its fixture, not at the end of the session
# (it holds its models in memory while the rest of the suite starts servers of its own).
_shared_servers: dict[str, contextlib.ExitStack] = {}
_last_users: dict[str, str] = {}  # fixture name -> node id of the last test that takes it


@contextlib.contextmanager
def shared_server(name: str) -> Iterator[contextlib.ExitStack]:
    """An ExitStack for a session fixture's server, closed early by the hook below."""
    with contextlib.ExitStack() as stack:
        _shared_servers[name] = stack
        yield stack
    _shared_servers.pop(name, None)


def pytest_collection_finish(session: pytest.Session) -> None:
    for item in session.items:
        for name in getattr(item, "fixturenames", ()):
            _last_users[name] = item.nodeid


@pytest.hookimpl(trylast=True)
def pytest_runtest_teardown(item: pytest.Item, nextitem: pytest.Item | None) -> None:
    for name, stack in list(_shared_servers.items()):
        if _last_users.get(name) == item.nodeid:
            del _shared_servers[name]
            stack.close()


OPENAI_MODELS = "all-minilm-l6-v2,storyteller"


@pytest.fixture(scope="session")
def openai_server(
    tmp_path_factory: pytest.TempPathFactory, postgres_database: str, redis_url: str
) -> Iterator[tuple[str, str]]:
    """One gunicorn (1 worker, the embedding model and the storyteller) for every module that
    calls it as the `openai` clients do: tests/contract/test_openai_client.py and the
    Responses modules. Its database is its own (the session database is emptied by other
    tests while it runs), so each module signs up users of its own; yields (url, database)."""
    with shared_server("openai_server") as stack:
        database = stack.enter_context(scratch_database("modelgate_openai"))
        env = {
            "DATABASE_URL": database,
            "REDIS_URL": redis_url,
            "MODELS": OPENAI_MODELS,
            "RATE_LIMIT_DEFAULT": "10000/minute",
        }
        folder = tmp_path_factory.mktemp("openai")
        yield stack.enter_context(gunicorn(env, folder, workers=1)), database


BATCH_BROKER = REDIS_URL.rsplit("/", 1)[0] + "/14"  # a queue of its own
BATCH_ENV = {
    "MODELS": "all-minilm-l6-v2,storyteller",
    "RATE_LIMIT_DEFAULT": "10000/minute",
    "CELERY_BROKER_URL": BATCH_BROKER,
    "BATCH_LEASE_S": "3",
    "BATCH_RECOVER_S": "1",
    "BATCH_SLICE_S": "2",
}


@pytest.fixture(scope="session")
def batch_stack(
    tmp_path_factory: pytest.TempPathFactory, postgres_database: str, redis_url: str
) -> Iterator[tuple[str, dict[str, str], Path]]:
    """gunicorn (1 worker, PostgreSQL, Redis, the Redis broker) for the modules that run
    batches through Celery workers of their own: tests/batches/test_worker.py and
    tests/inference/test_responses_batch.py. Its database is its own, so each module signs
    up users of its own; yields (url, env, folder), the env's DATABASE_URL the database."""
    with shared_server("batch_stack") as stack:
        database = stack.enter_context(scratch_database("modelgate_batches"))
        stack.callback(lambda: redis.Redis.from_url(BATCH_BROKER).flushdb())
        redis.Redis.from_url(BATCH_BROKER).flushdb()
        folder = tmp_path_factory.mktemp("batches")
        env = {**BATCH_ENV, "DATABASE_URL": database, "REDIS_URL": redis_url}
        yield stack.enter_context(gunicorn(env, folder, workers=1)), env, folder
