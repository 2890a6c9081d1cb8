"""Where a response's text comes from: a `Backend` per kind of model.

A backend fits a conversation to its model (`prepare`) and starts a generation
(`start`) that yields `TextChunk`s and knows its token counts, finish reason and
how to stop. `LocalBackend` runs the text-generation models this server loads
(the model's chat template, its window, one of its generation slots). An upstream
model (`api.runtime.upstreams.chat`) is `UpstreamBackend`: the conversation goes to
the upstream's `/chat/completions` as a stream asking for its `usage`, the upstream
fits it to its own window (`truncation` is not applied here) and writes at most
`max_output_tokens` (else `MAX_TOKENS`). `backend_for` picks one by model id.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Protocol

import requests

from api.edge.errors import Unprocessable
from api.inference import service
from api.inference.schemas import MAX_TOKENS
from api.inference.service import resolve_deadline
from api.runtime.models.generation import TextChunk, TextGenerator
from api.runtime.upstreams.chat import Relay, UpstreamChatModel


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


class UpstreamGeneration:
    """A running upstream chat stream, read as `TextChunk`s (choice 0)."""

    def __init__(self, model_id: str, response: requests.Response) -> None:
        self.model = model_id
        self._response = response
        self._relay = Relay(model_id, include_usage=True)

    @property
    def prompt_tokens(self) -> int:
        return self._relay.prompt_tokens

    @property
    def completion_tokens(self) -> int:
        return self._relay.completion_tokens

    @property
    def finish_reason(self) -> str | None:
        return self._relay.finish_reasons.get(0)

    def __iter__(self) -> Iterator[TextChunk]:
        seen, finished = 0, False
        for _ in self._relay.events(self._response):
            pieces = self._relay.texts.get(0, [])
            text, seen = "".join(pieces[seen:]), len(pieces)
            finish = None if finished else self.finish_reason
            finished = finished or finish is not None
            if text or finish:
                yield TextChunk(text, finish)

    def close(self) -> None:
        self._response.close()  # the upstream stops generating


class UpstreamBackend:
    """The text-generation models served by an OpenAI-compatible upstream."""

    def __init__(self, model: UpstreamChatModel) -> None:
        self._model = model

    def prepare(
        self,
        model_id: str | None,
        messages: list[dict[str, str]],
        *,
        max_output_tokens: int | None,
        truncation: str,
    ) -> Prepared:
        return Prepared(self._model.id, list(messages), "", max_output_tokens or MAX_TOKENS)

    def start(
        self,
        prepared: Prepared,
        *,
        temperature: float,
        top_p: float,
        cancel: threading.Event | None = None,
        deadline: float | None = None,
    ) -> UpstreamGeneration:
        messages = [
            {**message, "role": "system" if message["role"] == "developer" else message["role"]}
            for message in prepared.messages
        ]
        body = {
            "model": self._model.config.model,
            "messages": messages,
            "max_tokens": prepared.max_tokens,
            "temperature": temperature,
            "top_p": top_p,
            "stream": True,
            "stream_options": {"include_usage": True},
        }
        response = self._model.client.open_stream(
            "/chat/completions", body, deadline=resolve_deadline(deadline)
        )
        return UpstreamGeneration(self._model.id, response)


def _droppable(messages: list[dict[str, str]]) -> list[int]:
    """The turns truncation may drop, oldest first: all but system/developer and the last."""
    return [
        i
        for i, message in enumerate(messages[:-1])
        if message["role"] not in ("system", "developer")
    ]


LOCAL = LocalBackend()


def backend_for(model_id: str | None) -> Backend:
    """The backend serving `model_id`: its upstream's, or the local models' (unknown: 404)."""
    from api.inference.upstream_completions import upstream_for

    upstream = upstream_for(model_id)
    return LOCAL if upstream is None else UpstreamBackend(upstream)
