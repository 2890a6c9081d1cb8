"""Issue 14's figure: a 10,000-line embeddings batch against the raw model at batch 32, one run.

Measures, side by side on this machine:

1. the raw model in this process, embedding the batch's 10,000 sentences 32 at a
   time (sentences/s), before and after the batch, so machine drift shows;
2. the same sentences as a batch: uploaded with the official `openai` client to
   gunicorn (PostgreSQL, Redis), run by `celery -A wsgi:celery_app worker` on the
   Redis broker, from `batches.create` until the poller sees `completed`
   (validation, 10,000 metered lines, the output file and its 10,000 vectors included).

The worker is warmed first with a 10-line batch (its model loads on first use).

    python bench/batch.py [--lines 10000]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import openai
import redis

from bench.common import bench_database
from bench.hotpath import load_raw_model
from tests.services import REDIS_URL, celery_worker, gunicorn

GOAL = 0.80
BROKER = REDIS_URL.rsplit("/", 1)[0] + "/13"
WORDS = ["frog", "king", "well", "golden", "ball", "princess", "castle", "forest", "witch", "bread"]


def sentences(count: int) -> list[str]:
    """Distinct sentences of 6 to 16 words, like readers' texts."""
    return [
        " ".join(WORDS[(i * 7 + j * 3) % len(WORDS)] for j in range(6 + i % 11)) + f" {i}."
        for i in range(count)
    ]


def raw_rate(model, texts: list[str]) -> float:  # type: ignore[no-untyped-def]
    """Sentences/s of the raw model over `texts` at batch 32."""
    model.embed(texts[:32])
    started = time.perf_counter()
    for start in range(0, len(texts), 32):
        model.embed(texts[start : start + 32])
    return len(texts) / (time.perf_counter() - started)


def run_batch(api: openai.OpenAI, texts: list[str], tag: str) -> tuple[float, object]:
    """Seconds from create to completed, and the finished batch."""
    lines = [
        json.dumps(
            {
                "custom_id": f"{tag}-{i}",
                "method": "POST",
                "url": "/v1/embeddings",
                "body": {"input": text},
            }
        )
        for i, text in enumerate(texts)
    ]
    file_id = api.files.create(file=("bench.jsonl", "\n".join(lines).encode()), purpose="batch").id
    started = time.perf_counter()
    batch = api.batches.create(
        input_file_id=file_id, endpoint="/v1/embeddings", completion_window="24h"
    )
    while batch.status not in {"completed", "failed", "cancelled", "expired"}:
        time.sleep(1.0)  # the poller and gunicorn take a little CPU too
        batch = api.batches.retrieve(batch.id)
    return time.perf_counter() - started, batch


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--lines", type=int, default=10_000)
    args = parser.parse_args()
    texts = sentences(args.lines)
    model = load_raw_model()
    before = raw_rate(model, texts)
    redis.Redis.from_url(BROKER).flushdb()
    with bench_database() as (database, token), tempfile.TemporaryDirectory() as tmp:
        env = {
            "DATABASE_URL": database,
            "REDIS_URL": REDIS_URL,
            "CELERY_BROKER_URL": BROKER,
            "RATE_LIMIT_DEFAULT": "100000000/minute",
            "BATCH_DAILY_LINES": str(10 * args.lines),
            "LOG_LEVEL": "WARNING",
        }
        with (
            gunicorn(env, Path(tmp), workers=1) as base,
            celery_worker({**env, "MODELS": "all-minilm-l6-v2"}, Path(tmp)),
        ):
            api = openai.OpenAI(base_url=f"{base}/v1", api_key=token, max_retries=2)
            run_batch(api, texts[:10], "warm")
            seconds, batch = run_batch(api, texts, "bench")
    after = raw_rate(model, texts)
    counts = batch.request_counts  # type: ignore[attr-defined]
    assert batch.status == "completed" and counts.completed == args.lines, batch  # type: ignore[attr-defined]
    rate = args.lines / seconds
    raw = (before + after) / 2
    ratio = rate / raw
    print(f"machine: {os.cpu_count()} cores; torch threads as configured (TORCH_THREADS)")
    print(f"raw model, batch 32, in process  {before:8.1f} sentences/s before, {after:.1f} after")
    print(f"batch of {args.lines} lines, create->completed  {seconds:6.1f} s  {rate:8.1f} lines/s")
    verdict = "met" if ratio >= GOAL else "NOT MET"
    print(f"batch / raw batch 32                 {ratio:8.2f}  ≥ {GOAL:.2f}  {verdict}")
    return 0 if ratio >= GOAL else 1


if __name__ == "__main__":
    sys.exit(main())
