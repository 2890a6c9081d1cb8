"""Shaping results as the OpenAI API does: completions, chat, stream chunks, embeddings."""

from __future__ import annotations

import base64
import json
import time
import uuid
from array import array
from typing import Any


def completion_id() -> str:
    return "cmpl-" + uuid.uuid4().hex


def chat_completion_id() -> str:
    return "chatcmpl-" + uuid.uuid4().hex


def encode_embedding(vector: list[float], encoding_format: str) -> list[float] | str:
    """Floats, or base64 of little-endian float32 (what the official client asks for)."""
    if encoding_format == "base64":
        return base64.b64encode(array("f", vector).tobytes()).decode()
    return vector


def embedding_body(model: str, vectors: list[list[float]], tokens: int, encoding: str) -> dict:
    return {
        "object": "list",
        "data": [
            {"object": "embedding", "index": i, "embedding": encode_embedding(v, encoding)}
            for i, v in enumerate(vectors)
        ],
        "model": model,
        "usage": {"prompt_tokens": tokens, "total_tokens": tokens},
    }


def usage(prompt_tokens: int, completion_tokens: int) -> dict[str, int]:
    return {
        "prompt_tokens": prompt_tokens,
        "completion_tokens": completion_tokens,
        "total_tokens": prompt_tokens + completion_tokens,
    }


def completion_body(
    cid: str,
    model: str,
    choices: list[tuple[int, str, str | None]],
    *,
    usage_: dict | None = None,
) -> dict[str, Any]:
    """A text completion, or one chunk of a streamed one: choices of (index, text, finish)."""
    body: dict[str, Any] = {
        "id": cid,
        "object": "text_completion",
        "created": int(time.time()),
        "model": model,
        "choices": [
            {"text": text, "index": index, "logprobs": None, "finish_reason": finish}
            for index, text, finish in choices
        ],
    }
    if usage_ is not None:
        body["usage"] = usage_
    return body


def chat_body(
    cid: str, model: str, choices: list[tuple[int, str, str | None]], usage_: dict
) -> dict[str, Any]:
    """A chat completion: choices of (index, text, finish)."""
    return {
        "id": cid,
        "object": "chat.completion",
        "created": int(time.time()),
        "model": model,
        "choices": [
            {
                "index": index,
                "message": {"role": "assistant", "content": text, "refusal": None},
                "logprobs": None,
                "finish_reason": finish,
            }
            for index, text, finish in choices
        ],
        "usage": usage_,
    }


def chat_chunk(
    cid: str,
    model: str,
    index: int | None,
    delta: dict[str, str] | None = None,
    finish_reason: str | None = None,
    *,
    usage_: dict | None = None,
) -> dict[str, Any]:
    """One `chat.completion.chunk`; `index=None` makes the closing usage chunk (no choices)."""
    body: dict[str, Any] = {
        "id": cid,
        "object": "chat.completion.chunk",
        "created": int(time.time()),
        "model": model,
        "choices": []
        if index is None
        else [
            {"index": index, "delta": delta or {}, "logprobs": None, "finish_reason": finish_reason}
        ],
    }
    if usage_ is not None:
        body["usage"] = usage_
    return body


def sse(data: dict | str) -> str:
    """One server-sent event carrying `data` (JSON unless it is the literal `[DONE]`)."""
    payload = data if isinstance(data, str) else json.dumps(data, separators=(",", ":"))
    return f"data: {payload}\n\n"
