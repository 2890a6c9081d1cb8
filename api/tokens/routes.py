"""`/v1/tokens`: a signed-in user mints, lists, renames and revokes API tokens."""

from __future__ import annotations

from flask import current_app

from api.access.ratelimits import user_key
from api.access.security import authenticate, current_principal
from api.edge.http import current_client
from api.edge.validation import Blueprint
from api.extensions import limiter
from api.tokens import schemas, service

blueprint = Blueprint("tokens", __name__, url_prefix="/v1/tokens", description="API tokens.")


def token_create_limit() -> str:
    return current_app.config["TOKEN_CREATE_LIMIT"]


# Minting is throttled per user: tokens share the user's budget, and a flood of them is noise.
per_user_creation = limiter.limit(token_create_limit, key_func=user_key, scope="token-create")


@blueprint.route("", methods=["POST"])
@authenticate(session_only=True)
@per_user_creation
@blueprint.errors(409)
@blueprint.arguments(
    schemas.TokenCreateIn,
    example={"name": "laptop", "scopes": ["embed", "generate"], "expires_in_days": 90},
)
@blueprint.response(201, schemas.TokenCreatedOut)
def create_token(body: dict):
    """Mint a token; its clear text is in this answer only."""
    token, secret = service.create_token(
        current_principal().user,
        body["name"],
        body["scopes"],
        body["expires_in_days"],
        current_client(),
        rate_limit=body["rate_limit"],
    )
    token.secret = secret  # transient: serialised once, never stored
    return token


@blueprint.route("", methods=["GET"])
@authenticate(session_only=True)
@blueprint.response(200, schemas.TokenListOut)
def list_tokens():
    """Every token of the user, newest first, without secrets."""
    return {"data": service.list_tokens(current_principal().user)}


@blueprint.route("/<id:token_id>", methods=["PATCH"])
@authenticate(session_only=True)
@blueprint.errors(404)
@blueprint.arguments(schemas.TokenRenameIn)
@blueprint.response(200, schemas.TokenOut)
def rename_token(body: dict, token_id: int):
    """Rename a token."""
    return service.rename_token(current_principal().user, token_id, body["name"], current_client())


@blueprint.route("/<id:token_id>", methods=["DELETE"])
@authenticate(session_only=True)
@blueprint.errors(404)
@blueprint.response(204)
def revoke_token(token_id: int):
    """Revoke a token; it stops working in every worker at once."""
    service.revoke_token(current_principal().user, token_id, current_client())
    return ""
