"""What the benchmarks share: a throwaway PostgreSQL database with a user and an API token."""

from __future__ import annotations

import contextlib
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import psycopg
from sqlalchemy.engine import make_url

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from api import create_app
from api.config import TestConfig
from api.extensions import db
from tests.conftest import migrate
from tests.services import PG_SERVER_URL
from tests.tokens.conftest import make_account


def _admin_url() -> str:
    return (
        make_url(PG_SERVER_URL).set(drivername="postgresql").render_as_string(hide_password=False)
    )


@contextlib.contextmanager
def bench_database() -> Iterator[tuple[str, str]]:
    """A migrated database of its own with one user and API token: yields (url, token)."""
    name = f"modelgate_bench_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(_admin_url(), autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    url = make_url(PG_SERVER_URL).set(database=name).render_as_string(hide_password=False)
    try:
        migrate(url)
        app = create_app(TestConfig(SQLALCHEMY_DATABASE_URI=url))
        token = make_account(app, "bench@example.org").mint("bench")["token"]
        with app.app_context():
            db.engine.dispose()
        yield url, token
    finally:
        with psycopg.connect(_admin_url(), autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def percentile(sorted_values: list[float], fraction: float) -> float:
    index = min(len(sorted_values) - 1, max(0, round(fraction * len(sorted_values)) - 1))
    return sorted_values[index]
