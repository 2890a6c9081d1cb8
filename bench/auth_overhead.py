"""What authentication, rate limiting and metering cost per request.

Starts one gunicorn (2 workers, gthread) on PostgreSQL and Redis, then sends the
same number of requests to `/healthz` (nothing) and to `GET /v1/models` with an
API token (token lookup via Redis, user row, rate limit in Redis, one usage row
written), side by side in one run, and prints requests/second, p50 and p99 of
each and their ratio. Bounded: N requests per endpoint, C concurrent clients.

    python bench/auth_overhead.py [--requests 2000] [--concurrency 8]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import requests

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from api import create_app
from api.config import TestConfig
from tests.conftest import migrate
from tests.services import PG_SERVER_URL, REDIS_URL, gunicorn
from tests.tokens.conftest import make_account


def create_database() -> str:
    import uuid

    import psycopg
    from sqlalchemy.engine import make_url

    name = f"modelgate_bench_{uuid.uuid4().hex[:8]}"
    admin = (
        make_url(PG_SERVER_URL).set(drivername="postgresql").render_as_string(hide_password=False)
    )
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    url = make_url(PG_SERVER_URL).set(database=name).render_as_string(hide_password=False)
    migrate(url)
    return url


def drop_database(url: str) -> None:
    import psycopg
    from sqlalchemy.engine import make_url

    name = make_url(url).database
    admin = (
        make_url(PG_SERVER_URL).set(drivername="postgresql").render_as_string(hide_password=False)
    )
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def run(url: str, headers: dict[str, str], count: int, concurrency: int) -> dict[str, float]:
    local = threading.local()

    def one(_: int) -> tuple[float, int]:
        session = getattr(local, "session", None)
        if session is None:
            session = local.session = requests.Session()  # keep-alive per client thread
        start = time.perf_counter()
        status = session.get(url, headers=headers, timeout=30).status_code
        return time.perf_counter() - start, status

    with ThreadPoolExecutor(concurrency) as pool:
        list(pool.map(one, range(min(100, count))))  # warm up
        started = time.perf_counter()
        results = list(pool.map(one, range(count)))
        wall = time.perf_counter() - started
    latencies = sorted(latency for latency, _ in results)
    errors = sum(1 for _, status in results if status != 200)
    return {
        "rps": count / wall,
        "p50_ms": statistics.median(latencies) * 1000,
        "p99_ms": latencies[int(len(latencies) * 0.99) - 1] * 1000,
        "errors": errors,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=2000)
    parser.add_argument("--concurrency", type=int, default=8)
    args = parser.parse_args()

    database = create_database()
    try:
        app = create_app(TestConfig(SQLALCHEMY_DATABASE_URI=database))
        token = make_account(app, "bench@example.org").mint("bench")["token"]
        env = {
            "DATABASE_URL": database,
            "REDIS_URL": REDIS_URL,
            "RATE_LIMIT_DEFAULT": "1000000/minute",
            "LOG_LEVEL": "WARNING",
        }
        with tempfile.TemporaryDirectory() as tmp, gunicorn(env, Path(tmp), workers=2) as base:
            plain = run(f"{base}/healthz", {}, args.requests, args.concurrency)
            full = run(
                f"{base}/v1/models",
                {"Authorization": f"Bearer {token}"},
                args.requests,
                args.concurrency,
            )
    finally:
        drop_database(database)

    print(
        f"gunicorn 2 workers x 8 threads, {args.requests} requests per endpoint, "
        f"{args.concurrency} clients"
    )
    print(f"{'endpoint':<40} {'req/s':>8} {'p50 ms':>8} {'p99 ms':>8} {'errors':>7}")
    for name, figures in (("GET /healthz", plain), ("GET /v1/models (token, limit, meter)", full)):
        print(
            f"{name:<40} {figures['rps']:>8.0f} {figures['p50_ms']:>8.2f} "
            f"{figures['p99_ms']:>8.2f} {figures['errors']:>7}"
        )
    print(f"throughput ratio models/healthz: {full['rps'] / plain['rps']:.2f}")
    print(f"p50 latency ratio models/healthz: {full['p50_ms'] / plain['p50_ms']:.2f}")


if __name__ == "__main__":
    main()
