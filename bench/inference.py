"""Embeddings over HTTP with dynamic batching on and off, against the raw model, and streaming.

For each mode (batching on: `BATCH_MAX_SIZE=32`; off: `BATCH_MAX_SIZE=1`) it starts
gunicorn (1 worker, 32 threads, PostgreSQL, Redis, embedding cache off) and sends
N requests of one short sentence each to `/v1/embeddings` from C concurrent
clients: requests/second, p50/p95/p99, mean batch size (from /metrics), errors.
The ceiling is the same sentences through the model in this process at the
observed batch size. Then streamed completions: time to first token and
tokens/second. Every figure comes from this one run; ratios are printed.

    python bench/inference.py [--requests 640] [--concurrency 32] [--streams 8]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import requests

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
os.environ.setdefault("HF_HUB_OFFLINE", "1")

from bench.common import bench_database, percentile
from bench.inference_engine import SENTENCES, measure_batch_size
from tests.services import REDIS_URL, gunicorn

MODELS = "all-minilm-l6-v2,storyteller"


def batch_totals(base: str) -> tuple[float, float]:
    """(sum, count) of the embedding model's batch-size histogram."""
    total = count = 0.0
    for line in requests.get(f"{base}/metrics", timeout=10).text.splitlines():
        if 'model="all-minilm-l6-v2"' in line:
            if line.startswith("inference_batch_size_sum"):
                total = float(line.rsplit(" ", 1)[1])
            elif line.startswith("inference_batch_size_count"):
                count = float(line.rsplit(" ", 1)[1])
    return total, count


def embed_load(base: str, token: str, count: int, concurrency: int) -> dict[str, float]:
    local = threading.local()
    headers = {"Authorization": f"Bearer {token}"}

    def one(i: int) -> tuple[float, int]:
        session = getattr(local, "session", None)
        if session is None:
            session = local.session = requests.Session()
        body = {"input": f"{SENTENCES[i % len(SENTENCES)]} ({i})"}
        start = time.perf_counter()
        status = session.post(
            f"{base}/v1/embeddings", json=body, headers=headers, timeout=60
        ).status_code
        return time.perf_counter() - start, status

    with ThreadPoolExecutor(concurrency) as pool:
        list(pool.map(one, range(concurrency)))  # warm up every client and thread
        before = batch_totals(base)
        started = time.perf_counter()
        results = list(pool.map(one, range(count)))
        wall = time.perf_counter() - started
        after = batch_totals(base)
    latencies = sorted(latency for latency, _ in results)
    batches = after[1] - before[1]
    return {
        "rps": count / wall,
        "p50": statistics.median(latencies) * 1000,
        "p95": percentile(latencies, 0.95) * 1000,
        "p99": percentile(latencies, 0.99) * 1000,
        "batch": (after[0] - before[0]) / batches if batches else 0.0,
        "errors": sum(1 for _, status in results if status != 200),
    }


def stream_load(base: str, token: str, count: int, max_tokens: int) -> dict[str, float]:
    """Streamed completions one after another: time to first token, tokens/second."""
    headers = {"Authorization": f"Bearer {token}"}
    first_tokens, rates = [], []
    for i in range(count):
        body = {
            "prompt": "Once upon a time",
            "max_tokens": max_tokens,
            "stream": True,
            "seed": i,
            "stream_options": {"include_usage": True},
        }
        start = time.perf_counter()
        first = None
        tokens = 0
        with requests.post(
            f"{base}/v1/completions", json=body, headers=headers, stream=True, timeout=60
        ) as response:
            for line in response.iter_lines():
                if not line.startswith(b"data: ") or line == b"data: [DONE]":
                    continue
                event = json.loads(line[6:])
                if first is None and event["choices"] and event["choices"][0]["text"]:
                    first = time.perf_counter()
                if event.get("usage"):
                    tokens = event["usage"]["completion_tokens"]
        end = time.perf_counter()
        first = first or end
        first_tokens.append(first - start)
        rates.append(tokens / (end - start))
    return {
        "ttft_ms": statistics.median(first_tokens) * 1000,
        "tokens_per_s": statistics.median(rates),
    }


def raw_ceiling(batch_size: int, seconds: float) -> float:
    from api.inference.embedding import EmbeddingModel
    from api.inference.runtime import configure_torch
    from api.inference.specs import locate_minilm

    configure_torch()
    model = EmbeddingModel("all-minilm-l6-v2", locate_minilm())
    return measure_batch_size(model, batch_size, seconds)[0]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=640)
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument("--streams", type=int, default=8)
    parser.add_argument("--max-tokens", type=int, default=64)
    args = parser.parse_args()

    figures: dict[str, dict[str, float]] = {}
    with bench_database() as (database, token):
        for mode, batch_max in (("batching on", 32), ("batching off", 1)):
            env = {
                "DATABASE_URL": database,
                "REDIS_URL": REDIS_URL,
                "MODELS": MODELS,
                "RATE_LIMIT_DEFAULT": "1000000/minute",
                "EMBEDDING_CACHE_TTL_S": "0",
                "BATCH_MAX_SIZE": str(batch_max),
                "GUNICORN_THREADS": str(args.concurrency),
                # One benchmark user plays many clients: lift the per-user concurrency cap.
                "INFERENCE_PER_USER": str(args.concurrency),
                "LOG_LEVEL": "WARNING",
            }
            with tempfile.TemporaryDirectory() as tmp, gunicorn(env, Path(tmp), workers=1) as base:
                figures[mode] = embed_load(base, token, args.requests, args.concurrency)
                if mode == "batching on":
                    streaming = stream_load(base, token, args.streams, args.max_tokens)

    on, off = figures["batching on"], figures["batching off"]
    observed = max(1, round(on["batch"]))
    ceiling = raw_ceiling(observed, 5.0)
    single = raw_ceiling(1, 5.0)

    print(
        f"/v1/embeddings, 1 gunicorn worker, {args.requests} requests, {args.concurrency} clients"
    )
    columns = ("req/s", 7), ("p50 ms", 8), ("p95 ms", 8), ("p99 ms", 8), ("batch", 6), ("errors", 7)
    print(f"{'mode':<14} " + " ".join(f"{name:>{width}}" for name, width in columns))
    for mode, row in figures.items():
        print(
            f"{mode:<14} {row['rps']:>7.1f} {row['p50']:>8.1f} {row['p95']:>8.1f} "
            f"{row['p99']:>8.1f} {row['batch']:>6.1f} {row['errors']:>7.0f}"
        )
    print(
        f"raw model in-process: {ceiling:.1f} sentences/s at batch {observed}, "
        f"{single:.1f} at batch 1"
    )
    print(f"ratio batching on / off:          {on['rps'] / off['rps']:.2f}")
    print(f"ratio batching on / raw ceiling:  {on['rps'] / ceiling:.2f}")
    print(f"ratio batching off / raw batch 1: {off['rps'] / single:.2f}")
    print(
        f"streamed completions ({args.streams} x {args.max_tokens} tokens, storyteller): "
        f"time to first token p50 {streaming['ttft_ms']:.1f} ms, "
        f"{streaming['tokens_per_s']:.1f} tokens/s"
    )


if __name__ == "__main__":
    main()
