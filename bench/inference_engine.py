"""Raw in-process throughput of the embedding model: the ceiling the HTTP benchmark compares to.

Embeds fixed batches of short sentences straight through `EmbeddingModel.embed`
(no HTTP, no queue, no batcher) at batch sizes 1, 8 and 32 and prints sentences
per second. Each size runs for `--seconds` (default 5) after one warm-up batch, so
the whole run stays well under a minute. Torch threads follow `GUNICORN_WORKERS`
as in the service (default 1 worker: all cores).

    .venv/bin/python bench/inference_engine.py [--seconds 5] [--sizes 1,8,32]
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
os.environ.setdefault("HF_HUB_OFFLINE", "1")

if TYPE_CHECKING:
    from api.runtime.models.embedding import EmbeddingModel

SENTENCES = [
    "A man is playing a guitar on the street corner.",
    "The central bank raised interest rates by half a point.",
    "Our new API returns embeddings for every sentence you send.",
    "She walked her dog along the beach at sunset.",
    "How do I reset my password if I no longer have the email?",
    "The train to Lyon leaves at seven from platform four.",
    "Quantum computers may one day break today's encryption.",
    "Add two cups of flour and stir until the batter is smooth.",
]


def measure_batch_size(
    model: EmbeddingModel, size: int, seconds: float
) -> tuple[float, float, float]:
    """Sentences per second, median and p95 milliseconds per batch, over `seconds`."""
    batch = [SENTENCES[i % len(SENTENCES)] for i in range(size)]
    model.embed(batch)
    timings: list[float] = []
    started = time.perf_counter()
    while time.perf_counter() - started < seconds:
        begin = time.perf_counter()
        model.embed(batch)
        timings.append(time.perf_counter() - begin)
    total = time.perf_counter() - started
    timings.sort()
    p95 = timings[min(len(timings) - 1, int(len(timings) * 0.95))]
    return size * len(timings) / total, statistics.median(timings) * 1000, p95 * 1000


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seconds", type=float, default=5.0, help="time per batch size")
    parser.add_argument("--sizes", default="1,8,32", help="comma-separated batch sizes")
    args = parser.parse_args()
    sizes = [int(size) for size in args.sizes.split(",")]

    import torch

    from api.runtime.devices import configure_torch
    from api.runtime.models.embedding import EmbeddingModel
    from api.runtime.specs import locate_minilm

    configure_torch()
    loading = time.perf_counter()
    model = EmbeddingModel.load("all-minilm-l6-v2", locate_minilm())
    print(
        f"all-minilm-l6-v2 on {model.device}, torch {torch.__version__}, "
        f"{torch.get_num_threads()} threads, loaded in {time.perf_counter() - loading:.1f} s"
    )
    print(f"{'batch':>5}  {'sentences/s':>11}  {'ms/batch p50':>12}  {'p95':>7}")
    for size in sizes:
        rate, median_ms, p95_ms = measure_batch_size(model, size, args.seconds)
        print(f"{size:>5}  {rate:>11.1f}  {median_ms:>12.1f}  {p95_ms:>7.1f}")


if __name__ == "__main__":
    main()
