"""`/v1/admin`: administrators manage users."""

from __future__ import annotations

from flask import current_app

from api.access.security import authenticate, current_principal
from api.admin import schemas, service
from api.edge.http import current_client
from api.edge.validation import Blueprint
from api.usage import service as usage
from api.usage.schemas import UsageOut

blueprint = Blueprint("admin", __name__, url_prefix="/v1/admin", description="Administration.")


@blueprint.route("/users", methods=["GET"])
@authenticate(admin=True)
@blueprint.arguments(schemas.UserListArgs, location="query")
@blueprint.response(200, schemas.UserPageOut)
def list_users(args: dict):
    """Search users by email or name, a page at a time."""
    return service.list_users(args["q"], args["page"], args["per_page"])


@blueprint.route("/users/<id:user_id>", methods=["GET"])
@authenticate(admin=True)
@blueprint.errors(404)
@blueprint.response(200, schemas.AdminUserOut)
def get_user(user_id: int):
    """One user."""
    return service.get_user(user_id)


@blueprint.route("/users/<id:user_id>", methods=["PATCH"])
@authenticate(admin=True)
@blueprint.errors(404, 409)
@blueprint.arguments(schemas.UserUpdateIn)
@blueprint.response(200, schemas.AdminUserOut)
def update_user(changes: dict, user_id: int):
    """Change a user's role, or disable/enable the account (effective at once).

    409 when it would demote or disable yourself, or leave no enabled administrator.
    """
    return service.update_user(current_principal().user, user_id, changes, current_client())


@blueprint.route("/usage", methods=["GET"])
@authenticate(admin=True)
@blueprint.arguments(schemas.AdminUsageArgs, location="query")
@blueprint.response(200, UsageOut)
def usage_across_users(args: dict):
    """Usage per day, user, token and endpoint, for everyone or one user."""
    days, user_id = args["days"], args["user"]
    return {
        "days": days,
        "data": usage.summarize_usage(days, user_id=user_id),
        "rate_limited": usage.summarize_rejections(days, user_id=user_id),
    }


@blueprint.route("/settings", methods=["GET"])
@authenticate(admin=True)
@blueprint.response(200, schemas.AdminSettingsOut)
def settings():
    """What the admin pages need to know of the deployment (Kibana, to look up trace ids)."""
    return {"kibana_url": current_app.config.get("KIBANA_URL") or None}
