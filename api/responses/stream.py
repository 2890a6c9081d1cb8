"""`stream: true`: the typed server-sent events of a response, each with its `sequence_number`.

`response.created`, `response.in_progress`, `response.output_item.added`,
`response.content_part.added`, one `response.output_text.delta` per piece of text,
`response.output_text.done`, `response.content_part.done`, `response.output_item.done`,
then `response.completed` (or `response.incomplete` when `max_output_tokens` cut it).
Every error a client can cause is raised before the first event; one that happens
later ends the stream in-band with `error` and `response.failed`, as chat streams do.
"""

from __future__ import annotations

import contextlib
import json
import logging
import threading
from collections.abc import Callable, Iterator
from typing import Any

from flask import Response, stream_with_context

from api.access.ratelimits import inference_slot
from api.edge.errors import APIError, unexpected
from api.extensions import db
from api.observability.tracing import bind_trace_id, reset_trace_id
from api.responses import service
from api.responses.backend import Generation, backend_for
from api.responses.service import Plan
from api.usage.metering import Meter

log = logging.getLogger(__name__)


class Events:
    """Writes events in order, numbering them from 0."""

    def __init__(self) -> None:
        self.sequence = 0

    def __call__(self, kind: str, **fields: Any) -> str:
        data = {"type": kind, "sequence_number": self.sequence, **fields}
        self.sequence += 1
        return f"event: {kind}\ndata: {json.dumps(data, separators=(',', ':'))}\n\n"


def response_events(
    plan: Plan,
    generation: Generation,
    pieces: list[str],
    event: Events,
    finish: Callable[[dict], None],
) -> Iterator[str]:
    """The whole sequence of one response, from `response.created` to its last event.

    `finish(final)` runs before the last event, so a response the client sees end is
    already kept (and a failure to keep it is still reported in-band).
    """
    item_id = service.new_id("msg")
    started = service.response_body(plan, status="in_progress", output=[])
    yield event("response.created", response=started)
    yield event("response.in_progress", response=started)
    item = service.output_message(item_id, "", "in_progress")
    yield event("response.output_item.added", output_index=0, item={**item, "content": []})
    where = {"item_id": item_id, "output_index": 0, "content_index": 0}
    part = {"type": "output_text", "text": "", "annotations": [], "logprobs": []}
    yield event("response.content_part.added", **where, part=part)
    for chunk in generation:
        if chunk.text:
            pieces.append(chunk.text)
            yield event("response.output_text.delta", **where, delta=chunk.text, logprobs=[])
    text = "".join(pieces)
    yield event("response.output_text.done", **where, text=text, logprobs=[])
    yield event("response.content_part.done", **where, part={**part, "text": text})
    status, incomplete = service.status_of(generation.finish_reason)
    done = service.output_message(item_id, text, status)
    yield event("response.output_item.done", output_index=0, item=done)
    tokens = (generation.prompt_tokens, generation.completion_tokens)
    final = service.response_body(
        plan, status=status, output=[done], tokens=tokens, incomplete=incomplete
    )
    finish(final)
    yield event(f"response.{status}", response=final)


def failure_events(
    plan: Plan, failure: APIError, pieces: list[str], event: Events, ending: dict
) -> Iterator[str]:
    """What ends a stream that failed after its first event: `error`, then `response.failed`."""
    param = next(iter(failure.details), None) if failure.status in (400, 404, 422) else None
    yield event("error", code=failure.code, message=failure.message, param=param)
    text = "".join(pieces)
    output = [service.output_message(service.new_id("msg"), text, "incomplete")] if text else []
    final = service.response_body(
        plan,
        status="failed",
        output=output,
        error={"code": failure.code, "message": failure.message},
    )
    ending["response"] = final
    yield event("response.failed", response=final)


def stream_response(
    plan: Plan, usage: Meter, keep: Callable[[Plan, Generation, str, dict | None], None]
) -> Response:
    """Start the generation (errors still get a status), then stream its events.

    `keep(plan, generation, text, final)` runs once when the stream ends, however it
    ends: `final` is the last response object sent, None when the client left first.
    """
    held = contextlib.ExitStack()  # released when the stream ends, not when this returns
    held.enter_context(inference_slot(usage.user_id, stream=True))
    cancel = threading.Event()
    pieces: list[str] = []
    try:
        generation = backend_for(plan.body["model"]).start(
            plan.prepared, temperature=plan.temperature, top_p=plan.top_p, cancel=cancel
        )
    except BaseException:
        held.close()
        raise
    usage.model = generation.model
    db.session.commit()  # hold no database transaction open while the stream runs

    ending: dict[str, Any] = {}

    def finish(final: dict) -> None:
        generation.close()
        ending["kept"] = True  # once: a failure here is reported in-band, not kept twice
        keep(plan, generation, "".join(pieces), final)

    def events() -> Iterator[str]:
        # The request's trace ends with its view: the stream's log lines and errors keep it.
        trace = bind_trace_id(usage.trace_id)
        event = Events()
        try:
            yield from response_events(plan, generation, pieces, event, finish)
        except Exception as error:  # after the 200: report in-band, as OpenAI does
            failure = error if isinstance(error, APIError) else unexpected(error)
            db.session.rollback()  # the usage row and the stored response need a usable session
            usage.status = failure.status
            yield from failure_events(plan, failure, pieces, event, ending)
        finally:
            cancel.set()  # the client went away, or we are done: stop generating
            generation.close()
            try:
                if not ending.get("kept"):  # failed, or the client left (no final object)
                    keep(plan, generation, "".join(pieces), ending.get("response"))
            except Exception as error:  # the client has had its answer: log, never cut it
                db.session.rollback()
                log.error("response not kept", extra={"error.type": type(error).__name__})
            finally:
                held.close()
                reset_trace_id(trace)

    return Response(
        stream_with_context(events()),
        mimetype="text/event-stream",
        headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
    )
