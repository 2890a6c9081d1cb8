"""Prometheus metrics of the inference engine, labelled by model.

Under gunicorn every worker writes its samples to `PROMETHEUS_MULTIPROC_DIR` and
`/metrics` sums them (the queue-depth gauge counts live workers only). `ModelMetrics`
binds the labels once per model so the hot paths stay one call each.
"""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

_SECONDS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30)

BATCH_SIZE = Histogram(
    "inference_batch_size",
    "Items run together in one model call, by model.",
    ["model"],
    buckets=(1, 2, 4, 8, 16, 32, 64, 128),
)
QUEUE_WAIT = Histogram(
    "inference_queue_wait_seconds",
    "Time an item waited before its model call started, by model.",
    ["model"],
    buckets=_SECONDS,
)
DURATION = Histogram(
    "inference_duration_seconds",
    "Time spent in the model: one batch, or one whole generation, by model.",
    ["model"],
    buckets=_SECONDS,
)
QUEUE_DEPTH = Gauge(
    "inference_queue_depth",
    "Items waiting for the model, by model.",
    ["model"],
    multiprocess_mode="livesum",
)
TOKENS_GENERATED = Counter(
    "inference_tokens_generated",
    "Tokens generated, by model.",
    ["model"],
)
TIME_TO_FIRST_TOKEN = Histogram(
    "inference_time_to_first_token_seconds",
    "Time from a generation's start (after its wait for a slot) to its first token, by model.",
    ["model"],
    buckets=_SECONDS,
)


class ModelMetrics:
    """The inference metrics of one model; satisfies `batcher.BatchObserver`."""

    def __init__(self, model_id: str) -> None:
        self._batch_size = BATCH_SIZE.labels(model_id)
        self._queue_wait = QUEUE_WAIT.labels(model_id)
        self._duration = DURATION.labels(model_id)
        self._queue_depth = QUEUE_DEPTH.labels(model_id)
        self._tokens = TOKENS_GENERATED.labels(model_id)
        self._first_token = TIME_TO_FIRST_TOKEN.labels(model_id)

    def observe_batch(self, size: int, seconds: float) -> None:
        self._batch_size.observe(size)
        self._duration.observe(seconds)

    def observe_queue_wait(self, seconds: float) -> None:
        self._queue_wait.observe(seconds)

    def set_queue_depth(self, depth: int) -> None:
        self._queue_depth.set(depth)

    def observe_generation(self, seconds: float, tokens: int) -> None:
        self._duration.observe(seconds)
        self._tokens.inc(tokens)

    def observe_first_token(self, seconds: float) -> None:
        self._first_token.observe(seconds)
