"""What the benchmarks share: a throwaway PostgreSQL database with a user and an API token."""

from __future__ import annotations

import contextlib
import sys
from collections.abc import Iterator
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from api import create_app
from api.config import TestConfig
from api.extensions import db
from tests.conftest import scratch_database
from tests.tokens.conftest import make_account


@contextlib.contextmanager
def bench_database(
    scopes: tuple[str, ...] = ("batch", "embed", "generate"),
) -> Iterator[tuple[str, str]]:
    """A migrated database of its own with one user and API token: yields (url, token)."""
    with scratch_database("modelgate_bench") as url:
        app = create_app(TestConfig(SQLALCHEMY_DATABASE_URI=url))
        token = make_account(app, "bench@example.org").mint("bench", scopes)["token"]
        with app.app_context():
            db.engine.dispose()
        yield url, token


def percentile(sorted_values: list[float], fraction: float) -> float:
    index = min(len(sorted_values) - 1, max(0, round(fraction * len(sorted_values)) - 1))
    return sorted_values[index]
