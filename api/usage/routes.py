"""`/v1/usage` and `/v1/history`: what the user used, and the completions they kept.

Usage needs the `usage` scope. History needs `generate`, and an API token sees and
deletes only the completions it made itself; a login session sees them all.
"""

from __future__ import annotations

from flask import Response

from api.access.security import authenticate, current_principal
from api.edge.validation import Blueprint
from api.usage import schemas, service

blueprint = Blueprint("usage", __name__, url_prefix="/v1", description="Usage and history.")


@blueprint.route("/usage", methods=["GET"])
@authenticate(scope="usage")
@blueprint.arguments(schemas.UsageArgs, location="query")
@blueprint.response(200, schemas.UsageOut)
def usage(args: dict):
    """Requests, tokens and errors per day, token and endpoint."""
    user_id = current_principal().user_id
    rows = service.summarize_usage(args["days"], user_id=user_id, token_id=args["token"])
    rejected = service.summarize_rejections(args["days"], user_id=user_id)
    return {"days": args["days"], "data": rows, "rate_limited": rejected}


@blueprint.route("/usage.csv", methods=["GET"])
@authenticate(scope="usage")
@blueprint.arguments(schemas.UsageArgs, location="query")
@blueprint.response(200, content_type="text/csv")
def usage_csv(args: dict):
    """The same figures as CSV."""
    rows = service.summarize_usage(
        args["days"], user_id=current_principal().user_id, token_id=args["token"]
    )
    return Response(
        service.usage_csv(rows),
        mimetype="text/csv",
        headers={"Content-Disposition": 'attachment; filename="usage.csv"'},
    )


@blueprint.route("/history", methods=["GET"])
@authenticate(scope="generate")
@blueprint.arguments(schemas.HistoryArgs, location="query")
@blueprint.response(200, schemas.HistoryOut)
def history(args: dict):
    """Your completions, newest first (page with `before`); a token sees its own only."""
    principal = current_principal()
    entries = service.list_history(
        principal.user_id, args["limit"], args["before"], token_id=principal.token_id
    )
    return {"data": entries}


@blueprint.route("/history/<id:entry_id>", methods=["DELETE"])
@authenticate(scope="generate")
@blueprint.errors(404)
@blueprint.response(204)
def delete_history(entry_id: int):
    """Forget one completion (a token: one it made)."""
    principal = current_principal()
    service.delete_history(principal.user_id, entry_id, token_id=principal.token_id)
    return ""
