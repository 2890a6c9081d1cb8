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

from bench.common import bench_database, percentile
from tests.services import REDIS_URL, gunicorn


def run(url: str, headers: dict[str, str], count: int, concurrency: int) -> dict[str, float]:
    """Send `count` GETs from `concurrency` keep-alive clients; figures after a warm-up."""
    local = threading.local()

    def one(_: int) -> tuple[float, int]:
        session = getattr(local, "session", None)
        if session is None:
            session = local.session = requests.Session()
        start = time.perf_counter()
        status = session.get(url, headers=headers, timeout=30).status_code
        return time.perf_counter() - start, status

    with ThreadPoolExecutor(concurrency) as pool:
        list(pool.map(one, range(min(100, count))))
        started = time.perf_counter()
        results = list(pool.map(one, range(count)))
        wall = time.perf_counter() - started
    latencies = sorted(latency for latency, _ in results)
    return {
        "rps": count / wall,
        "p50_ms": statistics.median(latencies) * 1000,
        "p99_ms": percentile(latencies, 0.99) * 1000,
        "errors": sum(1 for _, status in results if status != 200),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=2000)
    parser.add_argument("--concurrency", type=int, default=8)
    args = parser.parse_args()

    with bench_database() as (database, token):
        env = {
            "DATABASE_URL": database,
            "REDIS_URL": REDIS_URL,
            "RATE_LIMIT_DEFAULT": "1000000/minute",
            "LOG_LEVEL": "WARNING",
            "MODELS": "",
        }
        with tempfile.TemporaryDirectory() as tmp, gunicorn(env, Path(tmp), workers=2) as base:
            plain = run(f"{base}/healthz", {}, args.requests, args.concurrency)
            auth = {"Authorization": f"Bearer {token}"}
            full = run(f"{base}/v1/models", auth, args.requests, args.concurrency)

    print(
        f"gunicorn 2 workers x 8 threads, {args.requests} requests per endpoint, "
        f"{args.concurrency} keep-alive clients"
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
