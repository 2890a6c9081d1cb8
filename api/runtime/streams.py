"""A running generation that holds one of its model's slots (`gate`) until it ends.

Made by `api.inference.service.stream_completion` once the slot is taken; it keeps
the request's trace id for the model's log lines and observes the model's metrics
(time to the first token, the whole generation).
"""

from __future__ import annotations

import time
import weakref
from typing import TYPE_CHECKING

from api.observability.tracing import bind_trace_id, current_trace_id, reset_trace_id

if TYPE_CHECKING:
    from api.runtime.gate import GenerationGate
    from api.runtime.metrics import ModelMetrics
    from api.runtime.models.generation import GenerationStream, TextChunk


class CompletionStream:
    """A running generation that holds one of its model's slots until it ends.

    Iterate for `TextChunk`s (the last one carries `finish_reason`). The slot is
    given back when the iteration ends, fails or `close()` is called; a route
    streaming this must call `close()` when its own response is closed (client gone),
    and a stream dropped without either is closed by the garbage collector.
    """

    def __init__(
        self,
        generation: GenerationStream,
        *,
        model_id: str,
        gate: GenerationGate,
        metrics: ModelMetrics,
        started: float,
    ) -> None:
        self.model = model_id
        self._generation = generation
        self._metrics = metrics
        self._started = started
        self._first_token_seen = False
        self._trace_id = current_trace_id()
        self._release = weakref.finalize(self, gate.release)

    @property
    def prompt_tokens(self) -> int:
        return self._generation.prompt_tokens

    @property
    def completion_tokens(self) -> int:
        return self._generation.completion_tokens

    @property
    def finish_reason(self) -> str | None:
        return self._generation.finish_reason

    def __iter__(self) -> CompletionStream:
        return self

    def __next__(self) -> TextChunk:
        token = bind_trace_id(self._trace_id)
        try:
            chunk = next(self._generation)
        except BaseException:
            self.close()
            raise
        finally:
            reset_trace_id(token)
        if not self._first_token_seen and self.completion_tokens:
            self._first_token_seen = True
            self._metrics.observe_first_token(time.monotonic() - self._started)
        return chunk

    def close(self) -> None:
        """Stop generating and give the slot back (idempotent)."""
        if not self._release.alive:
            return
        self._generation.close()
        self._release()
        self._metrics.observe_generation(
            time.monotonic() - self._started, self._generation.completion_tokens
        )
