"""What the responses routes call: plan a response, shape it, store it, find it again.

Functions take plain values and keyword arguments, never the request. A response's
conversation is the chain of its previous responses (each one's input items, then
its output), oldest first, then this request's `instructions` (never carried over,
as OpenAI does) and input. Stored responses belong to a user; a token sees only
those it made (as with the history), and anyone else's id is a 404.
"""

from __future__ import annotations

import time
import uuid
from dataclasses import dataclass, field
from typing import Any

from api.edge.errors import NotFound
from api.extensions import db
from api.responses.backend import Prepared, backend_for
from api.responses.models import StoredResponse

MAX_CHAIN = 64  # previous responses followed; older turns are past any window anyway


def new_id(prefix: str) -> str:
    return f"{prefix}_{uuid.uuid4().hex}"


@dataclass
class Plan:
    """A validated request, fitted to its model: everything a run and its answer need."""

    id: str
    body: dict[str, Any]
    input_items: list[dict[str, Any]]
    prepared: Prepared
    created_at: int = field(default_factory=lambda: int(time.time()))

    @property
    def temperature(self) -> float:
        value = self.body["temperature"]
        return 1.0 if value is None else value

    @property
    def top_p(self) -> float:
        value = self.body["top_p"]
        return 1.0 if value is None else value


def input_item(message: dict[str, str]) -> dict[str, Any]:
    """A message as `input_items` lists it (assistant turns are output text)."""
    kind = "output_text" if message["role"] == "assistant" else "input_text"
    return {
        "type": "message",
        "id": new_id("msg"),
        "status": "completed",
        "role": message["role"],
        "content": [{"type": kind, "text": message["content"]}],
    }


def _text(item: dict[str, Any]) -> str:
    return "".join(part.get("text", "") for part in item.get("content", []))


def find_response(
    user_id: int, response_id: str, *, token_id: int | None = None, field_name: str = "response_id"
) -> StoredResponse:
    """The user's stored response (only one `token_id` made, when given), else 404."""
    stored = db.session.get(StoredResponse, response_id)
    if (
        stored is None
        or stored.user_id != user_id
        or (token_id is not None and stored.token_id != token_id)
    ):
        message = f"No response {response_id!r} is stored for you."
        raise NotFound(message, code="response_not_found", details={field_name: [message]})
    return stored


def conversation(user_id: int, previous_id: str | None, token_id: int | None) -> list[dict]:
    """The turns of `previous_id`'s chain, oldest first: each one's input, then its output."""
    if previous_id is None:
        return []
    stored: StoredResponse | None = find_response(
        user_id, previous_id, token_id=token_id, field_name="previous_response_id"
    )
    chain: list[StoredResponse] = []
    while stored is not None and len(chain) < MAX_CHAIN:
        chain.append(stored)
        parent = stored.previous_response_id
        stored = db.session.get(StoredResponse, parent) if parent else None
    turns: list[dict] = []
    for link in reversed(chain):
        turns += [{"role": item["role"], "content": _text(item)} for item in link.input_items]
        turns += [
            {"role": "assistant", "content": _text(item)}
            for item in link.body.get("output", [])
            if item.get("type") == "message"
        ]
    return turns


def plan_response(body: dict[str, Any], *, user_id: int | None, token_id: int | None) -> Plan:
    """Check the request against the stored chain and the model; raise 404/422 naming fields.

    `user_id` None (a batch line) follows no chain.
    """
    earlier = conversation(user_id, body["previous_response_id"], token_id) if user_id else []
    instructions = body["instructions"]
    system = [{"role": "system", "content": instructions}] if instructions else []
    messages = system + earlier + body["input"]
    prepared = backend_for(body["model"]).prepare(
        body["model"],
        messages,
        max_output_tokens=body["max_output_tokens"],
        truncation=body["truncation"] or "disabled",
    )
    items = [input_item(message) for message in body["input"]]
    return Plan(new_id("resp"), body, items, prepared)


def output_message(item_id: str, text: str, status: str) -> dict[str, Any]:
    return {
        "type": "message",
        "id": item_id,
        "status": status,
        "role": "assistant",
        "content": [{"type": "output_text", "text": text, "annotations": [], "logprobs": []}],
    }


def status_of(finish_reason: str | None) -> tuple[str, dict | None]:
    """A finished generation's status: cut by its token limit is `incomplete`, as OpenAI's."""
    if finish_reason == "length":
        return "incomplete", {"reason": "max_output_tokens"}
    return "completed", None


def response_body(
    plan: Plan,
    *,
    status: str,
    output: list[dict[str, Any]],
    tokens: tuple[int, int] | None = None,
    incomplete: dict | None = None,
    error: dict | None = None,
) -> dict[str, Any]:
    """The response object as OpenAI writes it (in progress: no usage yet)."""
    body = plan.body
    usage = None
    if tokens is not None:
        usage = {
            "input_tokens": tokens[0],
            "input_tokens_details": {"cached_tokens": 0},
            "output_tokens": tokens[1],
            "output_tokens_details": {"reasoning_tokens": 0},
            "total_tokens": tokens[0] + tokens[1],
        }
    return {
        "id": plan.id,
        "object": "response",
        "created_at": plan.created_at,
        "status": status,
        "error": error,
        "incomplete_details": incomplete,
        "instructions": body["instructions"],
        "max_output_tokens": body["max_output_tokens"],
        "model": plan.prepared.model,
        "output": output,
        "output_text": "".join(_text(item) for item in output),
        "parallel_tool_calls": body.get("parallel_tool_calls") is not False,
        "previous_response_id": body["previous_response_id"],
        "reasoning": None,
        "store": body["store"],
        "background": False,
        "temperature": plan.temperature,
        "top_p": plan.top_p,
        "text": {"format": {"type": "text"}},
        "tool_choice": body.get("tool_choice") or "auto",
        "tools": [],
        "truncation": body["truncation"] or "disabled",
        "usage": usage,
        "user": body["user"],
        "metadata": body["metadata"] or {},
    }


def store_response(
    plan: Plan, answer: dict[str, Any], *, user_id: int, token_id: int | None, trace_id: str | None
) -> None:
    """Keep the answered response (when the request asked to store it)."""
    if not plan.body["store"]:
        return
    db.session.add(
        StoredResponse(
            id=plan.id,
            user_id=user_id,
            token_id=token_id,
            previous_response_id=plan.body["previous_response_id"],
            model=plan.prepared.model,
            status=answer["status"],
            input_items=plan.input_items,
            body=answer,
            trace_id=trace_id,
        )
    )
    db.session.commit()


def run_response(plan: Plan, *, deadline: float | None = None) -> tuple[dict[str, Any], Any]:
    """Generate the whole response: its object, and the finished generation (token counts)."""
    generation = backend_for(plan.body["model"]).start(
        plan.prepared, temperature=plan.temperature, top_p=plan.top_p, deadline=deadline
    )
    try:
        text = "".join(chunk.text for chunk in generation)
    finally:
        generation.close()
    status, incomplete = status_of(generation.finish_reason)
    output = [output_message(new_id("msg"), text, status)]
    tokens = (generation.prompt_tokens, generation.completion_tokens)
    answer = response_body(plan, status=status, output=output, tokens=tokens, incomplete=incomplete)
    return answer, generation


def delete_response(user_id: int, response_id: str, *, token_id: int | None = None) -> None:
    db.session.delete(find_response(user_id, response_id, token_id=token_id))
    db.session.commit()


def list_input_items(
    stored: StoredResponse, *, limit: int, order: str, after: str | None
) -> dict[str, Any]:
    """OpenAI's page of input items: `desc` (newest first) by default, `after` an item id."""
    items = list(stored.input_items)
    if order == "desc":
        items.reverse()
    if after is not None:
        ids = [item["id"] for item in items]
        if after not in ids:
            raise NotFound(f"No input item {after!r}.", details={"after": ["No such item."]})
        items = items[ids.index(after) + 1 :]
    page = items[:limit]
    return {
        "object": "list",
        "data": page,
        "first_id": page[0]["id"] if page else None,
        "last_id": page[-1]["id"] if page else None,
        "has_more": len(items) > limit,
    }
