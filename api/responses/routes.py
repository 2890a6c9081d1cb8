"""`/v1/responses`: OpenAI's Responses API for the text-generation models.

Creating a response takes the `generate` scope, the user's budget and one of their
inference slots (a stream slot too when streaming), and is metered as `responses`
with its tokens in and out; its text is kept in the history, like a chat's. A
stored response (`store`, default true) can be read, continued with
`previous_response_id`, listed for its input items and deleted; a token reaches
only the responses it made, and another user's id is a 404.
"""

from __future__ import annotations

from typing import Any

from api.access.budget import api_rate_limit
from api.access.ratelimits import inference_slot
from api.access.security import authenticate, current_principal
from api.edge.validation import Blueprint
from api.extensions import db
from api.inference.completions import STREAM_DOC
from api.responses import schemas, service
from api.responses.backend import Generation
from api.responses.service import Plan
from api.responses.stream import stream_response
from api.usage.metering import Meter, meter, metered
from api.usage.service import save_history

blueprint = Blueprint(
    "responses", __name__, url_prefix="/v1", description="The Responses API (text only)."
)
RESPONSE_ID = "<string(maxlength=64):response_id>"
EVENTS_DOC: dict[str, Any] = {
    "responses": {
        200: {
            "description": "The response; with `stream: true`, server-sent events: "
            "`response.created` … `response.output_text.delta` … `response.completed` "
            "(or `response.incomplete`, or `error` then `response.failed`).",
            "content": STREAM_DOC["responses"][200]["content"],
        }
    }
}


@blueprint.route("/responses", methods=["POST"])
@authenticate(scope="generate")
@metered("responses")
@api_rate_limit
@blueprint.errors(404, 422, 503, 504)
@blueprint.arguments(
    schemas.ResponseCreateIn,
    example={
        "model": "storyteller",
        "instructions": "Tell a tale of the brothers Grimm.",
        "input": "Once upon a time a frog",
        "max_output_tokens": 40,
    },
)
@blueprint.response(200, schemas.ResponseOut)
@blueprint.doc(**EVENTS_DOC)
def create_response(body: dict):
    """Answer `input` (after `previous_response_id`'s turns); `stream: true` answers events."""
    principal = current_principal()
    plan = service.plan_response(body, user_id=principal.user_id, token_id=principal.token_id)
    usage = meter()
    if body["stream"]:
        return stream_response(plan, usage, lambda *ended: _keep(usage, *ended))
    db.session.commit()  # give the connection back while the model runs
    with inference_slot(principal.user_id):
        answer, generation = service.run_response(plan)
    _keep(usage, plan, generation, answer["output_text"], answer)
    return answer


def _keep(usage: Meter, plan: Plan, generation: Generation, text: str, final: dict | None) -> None:
    """Meter the tokens, keep the text in the history and (`store`) the response."""
    usage.model = generation.model
    usage.tokens_in = generation.prompt_tokens
    usage.tokens_out = generation.completion_tokens
    save_history(
        user_id=usage.user_id,
        token_id=usage.token_id,
        model=generation.model,
        prompt=plan.prepared.prompt,
        completion=text,
        finish_reason=generation.finish_reason or ("cancelled" if final is None else None),
        prompt_tokens=generation.prompt_tokens,
        completion_tokens=generation.completion_tokens,
        trace_id=usage.trace_id,  # streams end after the request's trace context
    )
    if final is not None:
        service.store_response(
            plan, final, user_id=usage.user_id, token_id=usage.token_id, trace_id=usage.trace_id
        )


@blueprint.route(f"/responses/{RESPONSE_ID}", methods=["GET"])
@authenticate(scope="generate")
@blueprint.errors(404)
@blueprint.response(200, schemas.ResponseOut)
def retrieve_response(response_id: str):
    """A stored response, as it was answered."""
    principal = current_principal()
    return service.find_response(principal.user_id, response_id, token_id=principal.token_id).body


@blueprint.route(f"/responses/{RESPONSE_ID}", methods=["DELETE"])
@authenticate(scope="generate")
@blueprint.errors(404)
@blueprint.response(200, schemas.ResponseDeletedOut)
def delete_response(response_id: str):
    """Forget a stored response; a later `previous_response_id` naming it is a 404."""
    principal = current_principal()
    service.delete_response(principal.user_id, response_id, token_id=principal.token_id)
    return {"id": response_id, "object": "response.deleted", "deleted": True}


@blueprint.route(f"/responses/{RESPONSE_ID}/input_items", methods=["GET"])
@authenticate(scope="generate")
@blueprint.errors(404)
@blueprint.arguments(schemas.InputItemsArgs, location="query")
@blueprint.response(200, schemas.InputItemListOut)
def list_input_items(args: dict, response_id: str):
    """The input items this response was given (newest first unless `order=asc`)."""
    principal = current_principal()
    stored = service.find_response(principal.user_id, response_id, token_id=principal.token_id)
    return service.list_input_items(stored, **args)
