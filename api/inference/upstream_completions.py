"""Chat and completions on an upstream model: forwarded to one of its replicas.

The routes in `completions.py` hand a request here when its model is served upstream
(`api.runtime.upstreams.chat`). The user's tokens, scopes, budget, rate limits and
inference slots apply as for a local model; the call is metered with the upstream's
`usage` (0 when it gives none) and kept in history. A whole answer is written in
modelgate's shape; a stream passes the upstream's events through one by one as they
arrive, and an error after the first event is sent in-band, as for local streams.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any

from flask import Response, stream_with_context

from api.access.ratelimits import inference_slot
from api.access.security import current_principal
from api.edge.errors import APIError, error_body, unexpected
from api.extensions import db
from api.inference import openai_format as fmt
from api.inference.plans import CHAT, Shape
from api.inference.service import resolve_deadline
from api.observability.tracing import bind_trace_id, reset_trace_id
from api.runtime.registry import models
from api.runtime.upstreams.chat import Relay, UpstreamChatModel, upstream_body
from api.runtime.upstreams.openai import UpstreamFailed
from api.usage.metering import Meter, meter
from api.usage.service import keep_completion


def upstream_for(model_id: str | None) -> UpstreamChatModel | None:
    """The upstream text-generation model `model_id` names (None: a local one)."""
    model = models.serve(model_id, task="text-generation").model
    return model if isinstance(model, UpstreamChatModel) else None


def forward(shape: Shape, model: UpstreamChatModel, body: dict) -> Any:
    """Answer `body` (a validated chat or completion request) from the upstream."""
    path = "/chat/completions" if shape is CHAT else "/completions"
    sent = upstream_body(body, model.config.model)
    usage = meter()
    usage.model = model.id
    prompt = _prompt(body)
    if body["stream"]:
        include_usage = bool((body["stream_options"] or {}).get("include_usage"))
        return _stream(model, path, sent, usage, prompt, include_usage)
    db.session.commit()  # give the connection back while the upstream works
    with inference_slot(current_principal().user_id):
        answer = model.client.post(path, sent, deadline=resolve_deadline(None), retry_status=(503,))
    choices = _choices(answer, shape is CHAT)
    counts = answer.get("usage")
    counts = counts if isinstance(counts, dict) else {}
    usage.tokens_in = int(counts.get("prompt_tokens") or 0)
    usage.tokens_out = int(counts.get("completion_tokens") or 0)
    for _, text, reason in choices:
        keep_completion(usage, prompt, text, reason, usage.tokens_in, usage.tokens_out)
    totals = fmt.usage(usage.tokens_in, usage.tokens_out)
    return shape.body(shape.new_id(), model.id, choices, totals)


def _choices(answer: dict, chat: bool) -> list[tuple[int, str, str | None]]:
    try:
        return [
            (
                int(choice.get("index") or 0),
                (choice["message"].get("content") if chat else choice["text"]) or "",
                choice.get("finish_reason"),
            )
            for choice in answer["choices"]
        ]
    except (KeyError, TypeError, AttributeError, ValueError):
        raise UpstreamFailed("The upstream model's answer is not a completion.") from None


def _prompt(body: dict) -> str:
    """What history keeps as the prompt: the text, or the chat's messages one a line."""
    if "messages" in body:
        return "\n".join(f"{m['role']}: {m['content']}" for m in body["messages"])
    prompts = body["prompt"]
    return prompts if isinstance(prompts, str) else "\n".join(prompts)


def _stream(
    model: UpstreamChatModel,
    path: str,
    sent: dict,
    usage: Meter,
    prompt: str,
    include_usage: bool,
) -> Response:
    """Open the upstream's stream (errors before it still get a status), then relay it."""
    held = contextlib.ExitStack()  # released when the stream ends, not when this returns
    held.enter_context(inference_slot(current_principal().user_id, stream=True))
    try:
        upstream = model.client.open_stream(path, sent, deadline=resolve_deadline(None))
    except BaseException:
        held.close()
        raise
    db.session.commit()  # hold no database transaction open while the stream runs
    relay = Relay(model.id, include_usage)

    def events() -> Iterator[str]:
        trace = bind_trace_id(usage.trace_id)
        try:
            yield from relay.events(upstream)
        except Exception as error:  # after the 200: report in-band, as OpenAI does
            failure = error if isinstance(error, APIError) else unexpected(error)
            db.session.rollback()
            usage.status = failure.status
            body = error_body(failure.status, failure.code, failure.message, failure.details)
            yield fmt.sse(body)
            yield fmt.sse("[DONE]")
        finally:
            upstream.close()  # the client went away, or we are done: the upstream stops too
            usage.tokens_in, usage.tokens_out = relay.prompt_tokens, relay.completion_tokens
            try:
                for index in sorted(relay.finish_reasons or {0: None}):
                    text = "".join(relay.texts.get(index, []))
                    keep_completion(
                        usage,
                        prompt,
                        text,
                        relay.finish_reasons.get(index) or "cancelled",
                        usage.tokens_in,
                        usage.tokens_out,
                    )
            finally:
                held.close()
                reset_trace_id(trace)

    return Response(
        stream_with_context(events()),
        mimetype="text/event-stream",
        headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
    )
