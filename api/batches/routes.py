"""`/v1/batches`: OpenAI's Batch API: create, retrieve, list and cancel batches of requests.

An API token needs the `batch` scope for every route here.
"""

from __future__ import annotations

from api.access.budget import api_rate_limit
from api.access.security import authenticate, current_principal
from api.batches import schemas, service
from api.edge.paging import list_object
from api.edge.validation import Blueprint
from api.observability.tracing import current_trace_id

blueprint = Blueprint("batches", __name__, url_prefix="/v1/batches", description="Batches.")
BATCH_ID = "<string(maxlength=64):batch_id>"


@blueprint.route("", methods=["POST"])
@authenticate(scope="batch")
@api_rate_limit
@blueprint.errors(403, 404, 413, 422)
@blueprint.arguments(
    schemas.BatchCreateIn,
    example={
        "input_file_id": "file-abc123",
        "endpoint": "/v1/embeddings",
        "completion_window": "24h",
    },
)
@blueprint.response(200, schemas.BatchOut)
def create_batch(body: dict):
    """Run every request of an uploaded JSONL file; poll the batch for its output file.

    An API token needs the scope of the batch's endpoint (`embed` or `generate`) as well.
    The lines draw on the daily batch quota (429 past it), not the per-minute limit; a
    user has at most `BATCH_ACTIVE_PER_USER` unfinished batches (429), and none can start
    while the storage quota is full (413): its output counts against it.
    """
    principal = current_principal()
    expires = body["output_expires_after"]
    batch = service.create_batch(
        user_id=principal.user_id,
        token_id=principal.token_id,
        session_id=principal.session_id,
        scopes=principal.scopes,
        trace_id=current_trace_id(),
        input_file_id=body["input_file_id"],
        endpoint=body["endpoint"],
        completion_window=body["completion_window"],
        metadata=body["metadata"],
        output_expires_s=expires["seconds"] if expires else None,
    )
    return service.batch_object(batch)


@blueprint.route("", methods=["GET"])
@authenticate(scope="batch")
@blueprint.errors(404)
@blueprint.arguments(schemas.BatchListArgs, location="query")
@blueprint.response(200, schemas.BatchListOut)
def list_batches(args: dict):
    """The user's batches, newest first (`after` a batch id for the next page)."""
    rows, more = service.list_batches(
        current_principal().user_id, after=args["after"], order=args["order"], limit=args["limit"]
    )
    return list_object([service.batch_object(row) for row in rows], more)


@blueprint.route(f"/{BATCH_ID}", methods=["GET"])
@authenticate(scope="batch")
@blueprint.errors(404)
@blueprint.response(200, schemas.BatchOut)
def get_batch(batch_id: str):
    """One batch: its status, counts and, once it ends, its output and error files."""
    return service.batch_object(service.find_batch(current_principal().user_id, batch_id))


@blueprint.route(f"/{BATCH_ID}/cancel", methods=["POST"])
@authenticate(scope="batch")
@api_rate_limit
@blueprint.errors(404, 409)
@blueprint.response(200, schemas.BatchOut)
def cancel_batch(batch_id: str):
    """Stop a batch within seconds; the lines already done stay in its output file."""
    return service.batch_object(service.cancel_batch(current_principal().user_id, batch_id))
