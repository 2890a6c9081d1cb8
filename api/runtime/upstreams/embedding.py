"""An upstream embedding model, standing where a local `EmbeddingModel` and its batcher stand.

`UpstreamEmbeddingModel` answers what the inference service asks of a model (its id,
window, `count_tokens`, its `/v1/models` info); `UpstreamBatcher.run` sends the texts
to the upstream in one `POST {base}/embeddings` and returns a vector and a token count
per text. Token counts: the upstream's `usage.prompt_tokens` when it gives one (split
across the texts in proportion to their local counts, or their lengths, so the sum is
exact), else counted here with the configured tokenizer, else 0 (docs/upstreams.md).
"""

from __future__ import annotations

import os
import time
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from api.runtime.errors import DeadlineExceeded
from api.runtime.specs import ModelInfo, locate_minilm
from api.runtime.upstreams.config import UpstreamConfig
from api.runtime.upstreams.openai import OpenAIUpstream, UpstreamFailed

if TYPE_CHECKING:
    from tokenizers import Tokenizer


def load_tokenizer(config: UpstreamConfig) -> Tokenizer | None:
    """The tokenizer `config` names (the built-in model's, or a directory's), or None."""
    if not config.tokenizer:
        return None
    from tokenizers import Tokenizer

    folder = locate_minilm() if config.tokenizer == "all-minilm-l6-v2" else config.tokenizer
    tokenizer = Tokenizer.from_file(os.path.join(folder, "tokenizer.json"))
    tokenizer.no_truncation()
    tokenizer.no_padding()
    return tokenizer


class UpstreamEmbeddingModel:
    """What the worker knows of an embedding model served upstream."""

    task = "embedding"

    def __init__(self, config: UpstreamConfig) -> None:
        self.id = config.model_id
        self.config = config
        self.client = OpenAIUpstream(config)
        self.tokenizer = load_tokenizer(config)
        self.max_input = config.max_input
        created = int(time.time())
        self._info = ModelInfo(self.id, "embedding", 0, self.max_input, "upstream", created)

    @property
    def info(self) -> ModelInfo:
        return self._info

    def count_tokens(self, text: str) -> int:
        """Tokens of `text` by the configured tokenizer; 0 without one (the upstream judges)."""
        if self.tokenizer is None:
            return 0
        return len(self.tokenizer.encode(text, add_special_tokens=True).ids)


class UpstreamBatcher:
    """Stands for the model's `MicroBatcher`: `run` sends one request upstream."""

    def __init__(self, model: UpstreamEmbeddingModel, max_queue: int) -> None:
        self.name = model.id
        self.max_queue = max_queue
        self._model = model

    def run(self, items: Sequence[str], *, deadline: float) -> list[tuple[list[float], int]]:
        if deadline <= time.monotonic():
            raise DeadlineExceeded()
        texts = list(items)
        body = {"model": self._model.config.model, "input": texts, "encoding_format": "float"}
        answer = self._model.client.post("/embeddings", body, deadline=deadline)
        vectors = _vectors(answer, len(texts))
        return list(zip(vectors, self._counts(texts, answer.get("usage")), strict=True))

    def _counts(self, texts: list[str], usage: Any) -> list[int]:
        local = [self._model.count_tokens(text) for text in texts]
        total = usage.get("prompt_tokens") if isinstance(usage, dict) else None
        if not isinstance(total, int) or total < 0:
            return local
        weights = local if sum(local) else [max(1, len(text)) for text in texts]
        return split(total, weights)

    def close(self) -> None:
        """Nothing to stop: each request is its own HTTP call."""


def _vectors(answer: dict[str, Any], count: int) -> list[list[float]]:
    """The answer's embeddings in input order; UpstreamFailed (502) when malformed."""
    try:
        data = sorted(answer["data"], key=lambda item: item["index"])
        vectors = [[float(value) for value in item["embedding"]] for item in data]
    except (KeyError, TypeError, ValueError):
        raise UpstreamFailed("The upstream model's answer is not a list of embeddings.") from None
    if len(vectors) != count:
        raise UpstreamFailed(f"The upstream model answered {len(vectors)} embeddings for {count}.")
    return vectors


def split(total: int, weights: list[int]) -> list[int]:
    """`total` in whole parts proportional to `weights` (largest remainders), summing to it."""
    whole = sum(weights)
    shares = [total * weight / whole for weight in weights]
    parts = [int(share) for share in shares]
    by_remainder = sorted(range(len(parts)), key=lambda i: parts[i] - shares[i])
    for index in by_remainder[: total - sum(parts)]:
        parts[index] += 1
    return parts
