"""`/v1/completions` and `/v1/chat/completions`: OpenAI-compatible text generation.

Both turn a request into choices to generate (each prompt `n` times; a chat is one
prompt, rendered by the model's chat template) and answer them whole or as
server-sent events. Choices run one after another inside one of the user's
inference slots, each with `seed + j` for its `j`-th repeat, so a seeded request is
reproducible. Every error a client can cause is raised before the first byte;
one that happens later is sent in-band, as OpenAI does.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field

from flask import Response, stream_with_context

from api.access.budget import api_rate_limit
from api.access.ratelimits import inference_slot
from api.access.security import authenticate, current_principal
from api.edge.errors import APIError, error_body, unexpected
from api.edge.validation import Blueprint
from api.extensions import db
from api.inference import openai_format as fmt
from api.inference import schemas, service
from api.inference.plans import CHAT, TEXT, Choice, Shape, generate_all, plan_chat, plan_text
from api.inference.upstream_completions import forward, upstream_for
from api.observability.tracing import bind_trace_id, reset_trace_id
from api.runtime.streams import CompletionStream
from api.usage.metering import meter, metered
from api.usage.service import keep_completion

blueprint = Blueprint("completions", __name__, url_prefix="/v1", description="Text generation.")

STREAM_DOC = {
    "responses": {
        200: {
            "description": "The completion; with `stream: true`, server-sent events: one "
            "`data: {chunk}` per piece of text, then `data: [DONE]`.",
            "content": {
                "text/event-stream": {
                    "schema": {
                        "description": "One server-sent event: `data` is a chunk as JSON "
                        "(or an `error` body), and the last event's is `[DONE]`.",
                        "type": "object",
                        "required": ["data"],
                        "properties": {"data": {"type": "string"}, "event": {"type": "string"}},
                    }
                }
            },
        }
    }
}


@blueprint.route("/completions", methods=["POST"])
@authenticate(scope="generate")
@metered("completions")
@api_rate_limit
@blueprint.errors(404, 422, 502, 503, 504)
@blueprint.arguments(
    schemas.CompletionIn, example={"prompt": "Once upon a time", "max_tokens": 40, "seed": 7}
)
@blueprint.response(200, schemas.CompletionOut)
@blueprint.doc(**STREAM_DOC)
def create_completion(body: dict):
    """Continue each prompt `n` times; `stream: true` answers server-sent events."""
    upstream = upstream_for(body["model"])
    if upstream is not None:
        return forward(TEXT, upstream, body)
    return _answer(TEXT, body, *plan_text(body))


@blueprint.route("/chat/completions", methods=["POST"])
@authenticate(scope="generate")
@metered("chat_completions")
@api_rate_limit
@blueprint.errors(404, 422, 502, 503, 504)
@blueprint.arguments(
    schemas.ChatCompletionIn,
    example={
        "model": "storyteller",
        "messages": [
            {"role": "system", "content": "A tale of the brothers Grimm."},
            {"role": "user", "content": "Once upon a time a frog"},
        ],
        "max_tokens": 40,
    },
)
@blueprint.response(200, schemas.ChatCompletionOut)
@blueprint.doc(**STREAM_DOC)
def create_chat_completion(body: dict):
    """Answer a chat (the model's chat template, docs/api.md); `stream: true` answers chunks."""
    upstream = upstream_for(body["model"])
    if upstream is not None:
        return forward(CHAT, upstream, body)
    return _answer(CHAT, body, *plan_chat(body))


def _answer(shape: Shape, body: dict, choices: list[Choice], options: dict):
    if body["stream"]:
        include_usage = bool((body["stream_options"] or {}).get("include_usage"))
        return _stream(shape, body["model"], choices, options, include_usage)
    db.session.commit()  # give the connection back while the model runs
    with inference_slot(current_principal().user_id):
        results = generate_all(body["model"], choices, options)
    usage = meter()
    usage.model = results[0].model
    usage.tokens_in = sum(result.prompt_tokens for result in results)
    usage.tokens_out = sum(result.completion_tokens for result in results)
    for choice, result in zip(choices, results, strict=True):
        keep_completion(
            usage,
            choice.prompt,
            result.text,
            result.finish_reason,
            result.prompt_tokens,
            result.completion_tokens,
        )
    answer = [
        (choice.index, result.text, result.finish_reason)
        for choice, result in zip(choices, results, strict=True)
    ]
    totals = fmt.usage(usage.tokens_in, usage.tokens_out)
    return shape.body(shape.new_id(), usage.model, answer, totals)


@dataclass
class _Running:
    """The choice being streamed, so whatever ends the stream can keep what was sent."""

    choice: Choice
    stream: CompletionStream
    pieces: list[str] = field(default_factory=list)


def _stream(
    shape: Shape, model_id: str | None, choices: list[Choice], options: dict, include_usage: bool
) -> Response:
    """Start the first generation (errors still get a status), then stream every choice."""
    held = contextlib.ExitStack()  # released when the stream ends, not when this returns
    held.enter_context(inference_slot(current_principal().user_id, stream=True))
    cancel = threading.Event()

    def start(choice: Choice) -> _Running:
        stream = service.stream_completion(
            model_id, choice.prompt, cancel=cancel, seed=choice.seed, **options
        )
        return _Running(choice, stream)

    try:
        running = start(choices[0])
    except BaseException:
        held.close()
        raise
    usage = meter()
    usage.model = running.stream.model
    cid, model = shape.new_id(), running.stream.model
    db.session.commit()  # hold no database transaction open while the stream runs

    def finish(current: _Running, completed: bool) -> None:
        current.stream.close()
        usage.tokens_in += current.stream.prompt_tokens
        usage.tokens_out += current.stream.completion_tokens
        reason = current.stream.finish_reason
        reason = reason if completed else reason or "cancelled"
        text, stream = "".join(current.pieces), current.stream
        keep_completion(
            usage,
            current.choice.prompt,
            text,
            reason,
            stream.prompt_tokens,
            stream.completion_tokens,
        )

    def events() -> Iterator[str]:
        current: _Running | None = running
        # The request's trace ends with its view: the stream's log lines and errors keep it.
        trace = bind_trace_id(usage.trace_id)
        try:
            for position, choice in enumerate(choices):
                if position:
                    current = start(choice)
                assert current is not None
                for chunk in shape.opening(cid, model, choice.index):
                    yield fmt.sse(chunk)
                for piece in current.stream:
                    current.pieces.append(piece.text)
                    if piece.text or piece.finish_reason:
                        chunk = shape.piece(
                            cid, model, choice.index, piece.text, piece.finish_reason
                        )
                        yield fmt.sse(chunk)
                finished, current = current, None  # finished once, even if keeping it fails
                finish(finished, completed=True)
            if include_usage:  # OpenAI's closing chunk: no choices, the totals
                yield fmt.sse(
                    shape.closing(cid, model, fmt.usage(usage.tokens_in, usage.tokens_out))
                )
            yield fmt.sse("[DONE]")
        except Exception as error:  # after the 200: report in-band, as OpenAI does
            # A bug or a database lost mid-stream too: a cut connection would tell the
            # client nothing (and nginx would log it as the upstream's fault).
            failure = error if isinstance(error, APIError) else unexpected(error)
            db.session.rollback()  # the usage row and any next story need a usable session
            usage.status = failure.status
            body = error_body(failure.status, failure.code, failure.message, failure.details)
            yield fmt.sse(body)
            yield fmt.sse("[DONE]")
        finally:
            cancel.set()  # the client went away, or we are done: stop generating
            if current is not None:
                finish(current, completed=False)
            held.close()
            reset_trace_id(trace)

    return Response(
        stream_with_context(events()),
        mimetype="text/event-stream",
        headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
    )
