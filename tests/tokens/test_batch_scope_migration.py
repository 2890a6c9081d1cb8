"""Migration 0009 gives the new `batch` scope to the tokens that could already run batches."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path

import flask_migrate
import psycopg
import pytest
import sqlalchemy as sa
from sqlalchemy.engine import make_url

from api import MIGRATIONS_DIR, create_app
from api.config import TestConfig
from api.extensions import db
from tests.services import PG_SERVER_URL, require

BEFORE, ADDED = "0008", "0009"
# A token's scopes before the migration, and after it.
SCOPES = {
    "embedder": (["embed"], ["batch", "embed"]),
    "teller": (["generate"], ["batch", "generate"]),
    "everything": (["embed", "generate", "usage"], ["batch", "embed", "generate", "usage"]),
    "reader": (["usage"], ["usage"]),
}
# The tables as they stand at BEFORE (not the models, which follow the newest revision).
users = sa.table(
    "users",
    sa.column("id", sa.Integer()),
    sa.column("email", sa.String()),
    sa.column("password_hash", sa.String()),
    sa.column("role", sa.String()),
    sa.column("created_at", sa.DateTime()),
    sa.column("updated_at", sa.DateTime()),
)
tokens = sa.table(
    "api_tokens",
    sa.column("user_id", sa.Integer()),
    sa.column("name", sa.String()),
    sa.column("token_hash", sa.String()),
    sa.column("prefix", sa.String()),
    sa.column("last_four", sa.String()),
    sa.column("scopes", sa.JSON()),
    sa.column("created_at", sa.DateTime()),
)


@pytest.fixture(params=["sqlite", "postgresql"])
def bare_database(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """An empty database of this test's own, at no revision yet."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'bare.db'}"
        return
    server = make_url(PG_SERVER_URL)
    libpq = server.set(drivername="postgresql").render_as_string(hide_password=False)
    name = f"modelgate_migration_{uuid.uuid4().hex[:8]}"
    try:
        with psycopg.connect(libpq, autocommit=True, connect_timeout=3) as conn:
            conn.execute(f'CREATE DATABASE "{name}"')
    except psycopg.Error as error:
        require("PostgreSQL", error)
    yield server.set(database=name).render_as_string(hide_password=False)
    with psycopg.connect(libpq, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def _scopes() -> dict[str, list[str]]:
    with db.engine.connect() as connection:
        rows = connection.execute(sa.select(tokens.c.name, tokens.c.scopes)).all()
    return {name: sorted(scopes) for name, scopes in rows}


def test_tokens_that_could_run_batches_get_the_batch_scope(bare_database):
    app = create_app(TestConfig(SQLALCHEMY_DATABASE_URI=bare_database))
    now = datetime(2026, 12, 1)
    with app.app_context():
        flask_migrate.upgrade(directory=MIGRATIONS_DIR, revision=BEFORE)
        db.session.execute(
            users.insert().values(
                id=1, email="dev@example.org", password_hash="x", role="user",
                created_at=now, updated_at=now,
            )
        )  # fmt: skip
        db.session.execute(
            tokens.insert(),
            [
                {
                    "user_id": 1,
                    "name": name,
                    "token_hash": f"{number:064d}",
                    "prefix": "mg_abcd",
                    "last_four": "wxyz",
                    "scopes": before,
                    "created_at": now,
                }
                for number, (name, (before, _)) in enumerate(SCOPES.items())
            ],
        )
        db.session.commit()

        flask_migrate.upgrade(directory=MIGRATIONS_DIR, revision=ADDED)
        assert _scopes() == {name: after for name, (_, after) in SCOPES.items()}
        flask_migrate.downgrade(directory=MIGRATIONS_DIR, revision=BEFORE)
        assert _scopes() == {name: before for name, (before, _) in SCOPES.items()}
        db.engine.dispose()
