"""An upstream text-generation model: chat and completions forwarded to an OpenAI-compatible server.

`UpstreamChatModel` stands where a local `TextGenerator` stands in the registry (its id,
its `/v1/models` info, its client); the completion routes forward to it instead of
generating (`api.inference.upstream_completions`). `upstream_body` writes the validated
request for the upstream; `Relay` reads the upstream's server-sent events as they
arrive and gives them back one by one (the `model` named as modelgate's id), noting the
text, finish reasons and the upstream's `usage` for metering and history, and leaving
out the closing usage chunk when the client did not ask for it.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import requests

from api.runtime.errors import DeadlineExceeded
from api.runtime.specs import ModelInfo
from api.runtime.upstreams.config import parse_upstream
from api.runtime.upstreams.embedding import UpstreamBatcher, UpstreamEmbeddingModel
from api.runtime.upstreams.openai import OpenAIUpstream, UpstreamFailed

# What a chat or completion request may carry upstream (validated here first).
_FORWARDED = (
    "messages",
    "prompt",
    "max_tokens",
    "max_completion_tokens",
    "temperature",
    "top_p",
    "seed",
    "stop",
    "n",
    "response_format",
)


class UpstreamChatModel:
    """What the worker knows of a text-generation model served upstream."""

    task = "text-generation"
    tokenizer = None  # tokens are the upstream's to count (its `usage`)
    max_input = 0  # the upstream's window is its own

    def count_tokens(self, text: str) -> int:
        """0: the upstream counts (its `usage`)."""
        return 0

    def __init__(self, config: Any) -> None:
        self.id = config.model_id
        self.config = config
        self.client = OpenAIUpstream(config)
        self._info = ModelInfo(self.id, "text-generation", 0, 0, "upstream", int(time.time()))

    @property
    def info(self) -> ModelInfo:
        return self._info


UpstreamModel = UpstreamEmbeddingModel | UpstreamChatModel


def upstream_model(
    model_id: str, target: str, max_queue: int
) -> tuple[UpstreamModel, UpstreamBatcher | None]:
    """The model an upstream entry names, and its batcher (embeddings only)."""
    config = parse_upstream(model_id, target)
    if config.task == "text-generation":
        return UpstreamChatModel(config), None
    model = UpstreamEmbeddingModel(config)
    return model, UpstreamBatcher(
        model,
        max_queue,
        concurrency=config.concurrency * len(config.replicas),
        max_batch=config.max_batch,
    )


def _clean(value: Any) -> Any:
    """`value` without None entries in its dicts (the upstream gets only what was given)."""
    if isinstance(value, dict):
        return {key: _clean(item) for key, item in value.items() if item is not None}
    if isinstance(value, list):
        return [_clean(item) for item in value]
    return value


def upstream_body(body: dict[str, Any], upstream_name: str) -> dict[str, Any]:
    """The validated request as the upstream gets it: its own model name, streams asking
    for the closing usage chunk (to meter the upstream's counts)."""
    sent = _clean({key: body[key] for key in _FORWARDED if body.get(key) is not None})
    sent["model"] = upstream_name
    if body.get("stream"):
        sent["stream"] = True
        sent["stream_options"] = {"include_usage": True}
    return sent


@dataclass
class Relay:
    """Pass an upstream's event stream through, noting what metering and history need."""

    model_id: str
    include_usage: bool
    prompt_tokens: int = 0
    completion_tokens: int = 0
    texts: dict[int, list[str]] = field(default_factory=dict)
    finish_reasons: dict[int, str | None] = field(default_factory=dict)

    def events(self, response: requests.Response) -> Iterator[str]:
        """Each server-sent event as it arrives; UpstreamFailed when the stream breaks off."""
        buffer = b""
        try:
            for piece in _pieces(response):
                buffer = (buffer + piece).replace(b"\r\n", b"\n")
                while b"\n\n" in buffer:
                    raw, buffer = buffer.split(b"\n\n", 1)
                    event = self._event(raw.decode("utf-8", errors="replace"))
                    if event is not None:
                        yield event
                    if event == "data: [DONE]\n\n":
                        return
        except requests.Timeout:
            raise DeadlineExceeded("The upstream model stopped sending in time.") from None
        except requests.RequestException:
            raise UpstreamFailed("The upstream model's stream broke off.") from None
        raise UpstreamFailed("The upstream model's stream ended without [DONE].")

    def _event(self, raw: str) -> str | None:
        data = "\n".join(
            line[5:].lstrip(" ") for line in raw.split("\n") if line.startswith("data:")
        )
        if not data or data == "[DONE]":
            return f"{raw}\n\n" if raw.strip() else None
        try:
            chunk = json.loads(data)
        except ValueError:
            return f"{raw}\n\n"
        if not isinstance(chunk, dict):
            return f"{raw}\n\n"
        usage = chunk.get("usage")
        if isinstance(usage, dict):
            self.prompt_tokens = int(usage.get("prompt_tokens") or 0)
            self.completion_tokens = int(usage.get("completion_tokens") or 0)
        if "error" in chunk:
            raise UpstreamFailed(_message(chunk["error"]))
        choices = chunk.get("choices") or []
        for choice in choices:
            self._note(choice)
        if not self.include_usage:
            if not choices and usage is not None:
                return None  # the closing usage chunk modelgate asked for, not the client
            chunk.pop("usage", None)
        if "model" in chunk:
            chunk["model"] = self.model_id
        return "data: " + json.dumps(chunk, separators=(",", ":")) + "\n\n"

    def _note(self, choice: Any) -> None:
        if not isinstance(choice, dict):
            return
        index = int(choice.get("index") or 0)
        delta = choice.get("delta")
        text = delta.get("content") if isinstance(delta, dict) else choice.get("text")
        if isinstance(text, str) and text:
            self.texts.setdefault(index, []).append(text)
        if choice.get("finish_reason") or index not in self.finish_reasons:
            self.finish_reasons[index] = choice.get("finish_reason")


def _pieces(response: requests.Response) -> Iterator[bytes]:
    """The body as it arrives: each HTTP chunk, or whatever one read gives."""
    raw = response.raw
    if getattr(raw, "chunked", False):
        yield from response.iter_content(chunk_size=None)
        return
    while data := raw.read1(65536):
        yield data


def _message(error: Any) -> str:
    message = error.get("message") if isinstance(error, dict) else error
    return f"The upstream model failed: {str(message)[:300]}"
