"""An upstream embedding model, standing where a local `EmbeddingModel` and its batcher stand.

`UpstreamEmbeddingModel` answers what the inference service asks of a model (its id,
window, `count_tokens`, its `/v1/models` info); `UpstreamBatcher.run` sends the texts
to the upstream in one `POST {base}/embeddings`, shared with the calls that wait while
the worker's POSTs are busy, and returns a vector and a token count per text. Token
counts: the upstream's `usage.prompt_tokens` when it gives one (split across the POST's
texts in proportion to their local counts, or their lengths, so the sum is exact), else
counted here with the configured tokenizer, else 0 (docs/upstreams.md).
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from api.edge.errors import Unprocessable
from api.observability.tracing import current_trace_id
from api.runtime.errors import DeadlineExceeded
from api.runtime.specs import ModelInfo, locate_minilm
from api.runtime.upstreams.config import UpstreamConfig
from api.runtime.upstreams.openai import OpenAIUpstream, UpstreamFailed

if TYPE_CHECKING:
    from tokenizers import Tokenizer

log = logging.getLogger(__name__)
EmbeddedText = tuple[list[float], int]  # one text's vector and its token count


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


@dataclass(eq=False)
class _Call:
    """One caller's texts, waiting to be sent or in flight; its outcome once done."""

    texts: list[str]
    deadline: float
    trace_id: str | None
    alone: bool = False  # sent by itself (a merged POST the upstream refused)
    left: bool = False  # its caller gave up waiting (its deadline passed)
    done: bool = False
    results: list[EmbeddedText] | None = None
    error: BaseException | None = None


class UpstreamBatcher:
    """Stands for the model's `MicroBatcher`: concurrent calls share one upstream POST.

    A call goes out at once, in its own thread, while fewer than `concurrency` POSTs
    of this model are in flight from this worker (the `concurrency` setting times the
    replicas), so a lone caller never waits; otherwise it waits, and the first waiting
    caller to get a free place sends its own texts together with those of the calls
    waiting before it, up to `max_batch` texts (a call of more texts goes alone), in
    one `POST {base}/embeddings`. Each call gets its own vectors and token counts back;
    a failure of that POST is every one of its calls' error, with the client's retry
    rules unchanged (a POST that may have run is not repeated). When the upstream
    refuses a merged POST (4xx: nothing ran), each of its calls whose caller still
    waits is sent again by itself, so that only the faulty input is refused.
    """

    def __init__(
        self, model: UpstreamEmbeddingModel, max_queue: int, *, concurrency: int, max_batch: int
    ) -> None:
        self.name = model.id
        self.max_queue = max_queue
        self.concurrency = concurrency
        self.max_batch = max_batch
        self._model = model
        self._condition = threading.Condition()
        self._waiting: deque[_Call] = deque()
        self._in_flight = 0

    def run(self, items: Sequence[str], *, deadline: float) -> list[EmbeddedText]:
        if deadline <= time.monotonic():
            raise DeadlineExceeded()
        call = _Call(list(items), deadline, current_trace_id())
        with self._condition:
            self._waiting.append(call)
        while True:
            with self._condition:
                batch = self._take(call)
                while batch is None and not call.done:
                    remaining = call.deadline - time.monotonic()
                    if remaining <= 0:
                        call.left = True
                        if call in self._waiting:
                            self._waiting.remove(call)
                        raise DeadlineExceeded()  # in flight: its answer is dropped
                    self._condition.wait(remaining)
                    batch = self._take(call)
            if batch is None:  # another caller's POST answered this call
                if call.error is not None:
                    raise call.error
                assert call.results is not None
                return call.results
            # The POST may take until the latest deadline of its calls (they differ by when
            # they arrived): a call with an earlier one leaves at its own, unless it sends.
            self._send(batch, deadline=max(other.deadline for other in batch))

    def _take(self, call: _Call) -> list[_Call] | None:
        """With the lock held: the calls `call`'s thread is to send now (`call` first), or
        None while it must wait (no free place) or is no longer waiting (in flight, done)."""
        if call.done or self._in_flight >= self.concurrency or call not in self._waiting:
            return None
        self._waiting.remove(call)
        batch, size = [call], len(call.texts)
        if not call.alone:
            for other in list(self._waiting):
                if other.alone:
                    continue  # its own thread sends it
                if size + len(other.texts) > self.max_batch:
                    break
                self._waiting.remove(other)
                batch.append(other)
                size += len(other.texts)
        self._in_flight += 1
        return batch

    def _send(self, batch: list[_Call], *, deadline: float) -> None:
        """POST the batch's texts in one request and give each call its share of the answer."""
        texts = [text for call in batch for text in call.texts]
        outcome: list[EmbeddedText] | BaseException
        try:
            outcome = self._embed(texts, deadline=deadline)
        except Unprocessable as error:
            if len(batch) > 1:  # refused, so nothing ran: find whose input it was
                with self._condition:
                    self._in_flight -= 1
                    for call in reversed(batch):
                        if not call.left:  # a caller who left sends nothing again
                            call.alone = True
                            self._waiting.appendleft(call)
                    self._condition.notify_all()
                return
            outcome = error
        except BaseException as error:
            outcome = error
        if len(batch) > 1:
            log.info(
                "upstream embedding batch",
                extra={
                    "inference.model": self.name,
                    "inference.batch_size": len(texts),
                    # Every caller's trace id, so "one trace" in Kibana finds the POST it rode in.
                    "inference.trace_ids": sorted({str(call.trace_id) for call in batch}),
                },
            )
        with self._condition:
            self._in_flight -= 1
            start = 0
            for call in batch:
                if isinstance(outcome, BaseException):
                    call.error = outcome
                else:
                    call.results = outcome[start : start + len(call.texts)]
                    start += len(call.texts)
                call.done = True
            self._condition.notify_all()

    def _embed(self, texts: list[str], *, deadline: float) -> list[EmbeddedText]:
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
        """Nothing to stop: each POST is sent from a caller's own thread."""


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
