"""Where a response's text comes from: a `Backend` per kind of model.

A backend fits a conversation to its model (`prepare`) and starts a generation
(`start`) that yields `TextChunk`s and knows its token counts, finish reason and
how to stop. `LocalBackend` runs the text-generation models this server loads
(the model's chat template, its window, one of its generation slots). An upstream
provider plugs in as another backend: `backend_for` picks one by model id.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Protocol

from api.edge.errors import Unprocessable
from api.inference import service
from api.inference.schemas import MAX_TOKENS
from api.runtime.models.generation import TextChunk, TextGenerator


@dataclass(frozen=True)
class Prepared:
    """A conversation fitted to a model: what to send, and how many tokens it may write."""

    model: str
    messages: list[dict[str, str]]
    prompt: str
    max_tokens: int


class Generation(Protocol):
    """A running generation (`api.runtime.streams.CompletionStream` has this shape)."""

    model: str

    def __iter__(self) -> Iterator[TextChunk]: ...

    @property
    def prompt_tokens(self) -> int: ...

    @property
    def completion_tokens(self) -> int: ...

    @property
    def finish_reason(self) -> str | None: ...

    def close(self) -> None: ...


class Backend(Protocol):
    def prepare(
        self,
        model_id: str | None,
        messages: list[dict[str, str]],
        *,
        max_output_tokens: int | None,
        truncation: str,
    ) -> Prepared: ...

    def start(
        self,
        prepared: Prepared,
        *,
        temperature: float,
        top_p: float,
        cancel: threading.Event | None = None,
        deadline: float | None = None,
    ) -> Generation: ...


class LocalBackend:
    """The text-generation models of this server."""

    def prepare(
        self,
        model_id: str | None,
        messages: list[dict[str, str]],
        *,
        max_output_tokens: int | None,
        truncation: str,
    ) -> Prepared:
        """Render the chat; with `truncation: auto`, drop the oldest turns until it fits.

        Raise Unprocessable (422) naming `input` when the conversation does not fit the
        window, or `max_output_tokens` when what it asks for does not fit after it.
        """
        generator: TextGenerator = service.local_generation(model_id).model  # type: ignore[assignment]
        window = generator.max_input
        wanted = max_output_tokens or 1
        kept = list(messages)
        prompt = generator.chat_prompt(kept)
        tokens = generator.count_tokens(prompt)
        while truncation == "auto" and tokens + wanted > window and _droppable(kept):
            del kept[_droppable(kept)[0]]
            prompt = generator.chat_prompt(kept)
            tokens = generator.count_tokens(prompt)
        if tokens >= window:
            message = f"The conversation is {tokens} tokens; {generator.id} reads {window}."
            hint = (
                " Send truncation: 'auto' to drop its oldest turns." if truncation != "auto" else ""
            )
            raise Unprocessable(message + hint, details={"input": [message + hint]})
        room = window - tokens
        if max_output_tokens is not None and max_output_tokens > room:
            message = (
                f"At most {room} for this conversation ({tokens} tokens, a window of {window})."
            )
            raise Unprocessable(message, details={"max_output_tokens": [message]})
        max_tokens = max_output_tokens or min(room, MAX_TOKENS)
        return Prepared(generator.id, kept, prompt, max_tokens)

    def start(
        self,
        prepared: Prepared,
        *,
        temperature: float,
        top_p: float,
        cancel: threading.Event | None = None,
        deadline: float | None = None,
    ) -> Generation:
        return service.stream_completion(
            prepared.model,
            prepared.prompt,
            max_tokens=prepared.max_tokens,
            temperature=temperature,
            top_p=top_p,
            cancel=cancel,
            deadline=deadline,
        )


def _droppable(messages: list[dict[str, str]]) -> list[int]:
    """The turns truncation may drop, oldest first: all but system/developer and the last."""
    return [
        i
        for i, message in enumerate(messages[:-1])
        if message["role"] not in ("system", "developer")
    ]


LOCAL = LocalBackend()


def backend_for(model_id: str | None) -> Backend:
    """The backend serving `model_id` (today every model is local; unknown ones 404 there)."""
    return LOCAL
