"""`/v1/usage`: what the signed-in user (or one of their tokens) used, per day."""

from __future__ import annotations

from flask import Response

from api.security import authenticate, current_principal
from api.usage import schemas, service
from api.validation import Blueprint

blueprint = Blueprint("usage", __name__, url_prefix="/v1", description="Usage and history.")


@blueprint.route("/usage", methods=["GET"])
@authenticate()
@blueprint.arguments(schemas.UsageArgs, location="query")
@blueprint.response(200, schemas.UsageOut)
def usage(args: dict):
    """Requests, tokens and errors per day, token and endpoint."""
    rows = service.summarize_usage(
        args["days"], user_id=current_principal().user.id, token_id=args["token"]
    )
    return {"days": args["days"], "data": rows}


@blueprint.route("/usage.csv", methods=["GET"])
@authenticate()
@blueprint.arguments(schemas.UsageArgs, location="query")
@blueprint.response(200, content_type="text/csv")
def usage_csv(args: dict):
    """The same figures as CSV."""
    rows = service.summarize_usage(
        args["days"], user_id=current_principal().user.id, token_id=args["token"]
    )
    return Response(
        service.usage_csv(rows),
        mimetype="text/csv",
        headers={"Content-Disposition": 'attachment; filename="usage.csv"'},
    )


@blueprint.route("/history", methods=["GET"])
@authenticate()
@blueprint.arguments(schemas.HistoryArgs, location="query")
@blueprint.response(200, schemas.HistoryOut)
def history(args: dict):
    """Your completions, newest first (page with `before`)."""
    user_id = current_principal().user.id
    return {"data": service.list_history(user_id, args["limit"], args["before"])}


@blueprint.route("/history/<int:entry_id>", methods=["DELETE"])
@authenticate()
@blueprint.response(204)
def delete_history(entry_id: int):
    """Forget one completion."""
    service.delete_history(current_principal().user.id, entry_id)
    return ""
