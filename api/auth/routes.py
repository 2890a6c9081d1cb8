"""`/v1/auth`: accounts, sessions and the email flows. HTTP only; the logic is in service.py."""

from __future__ import annotations

import hashlib

from flask import current_app, jsonify
from flask_jwt_extended import (
    get_jwt,
    set_refresh_cookies,
    unset_refresh_cookies,
    verify_jwt_in_request,
)
from flask_limiter.util import get_remote_address

from api.auth import schemas, service, sessions
from api.extensions import limiter
from api.http import current_client, json_field
from api.security import authenticate, current_principal
from api.validation import Blueprint

blueprint = Blueprint("auth", __name__, url_prefix="/v1/auth", description="Accounts and sessions.")

ACCEPTED = {"message": "If the address can receive email, a message is on its way."}


def auth_limit() -> str:
    return current_app.config["RATE_LIMIT_AUTH"]


def login_failure_limit() -> str:
    return current_app.config["LOGIN_FAILURE_LIMIT"]


def email_action_limit() -> str:
    return current_app.config["EMAIL_ACTION_LIMIT"]


def email_key() -> str:
    """Rate-limit key of the account named in the body (the IP when there is none)."""
    email = json_field("email")
    if email:  # hashed: Redis keys hold no addresses
        digest = hashlib.sha256(service.normalise_email(email).encode()).hexdigest()
        return "email:" + digest[:32]
    return "ip:" + (get_remote_address() or "unknown")


per_ip = limiter.limit(auth_limit, key_func=get_remote_address)
per_email = limiter.limit(email_action_limit, key_func=email_key)
per_account_failures = limiter.limit(
    login_failure_limit,
    key_func=email_key,
    deduct_when=lambda response: response.status_code == 401,
)


def _session_response(user, tokens: sessions.Tokens):
    body = schemas.SessionOut().dump(
        {"access_token": tokens.access_token, "expires_in": tokens.expires_in, "user": user}
    )
    response = jsonify(body)
    set_refresh_cookies(response, tokens.refresh_token)
    return response


@blueprint.route("/register", methods=["POST"])
@per_ip
@per_email
@blueprint.arguments(schemas.RegisterIn)
@blueprint.response(202, schemas.MessageOut)
def register(body: dict):
    """Create an account; the answer is the same whether or not the email is known."""
    service.register_user(body["email"], body["password"], body["name"], current_client())
    return ACCEPTED


@blueprint.route("/verify-email", methods=["POST"])
@per_ip
@blueprint.arguments(schemas.TokenIn)
@blueprint.response(200, schemas.UserOut)
def verify_email(body: dict):
    """Confirm an email address with the token from its link (single use, 24 h)."""
    return service.verify_email(body["token"], current_client())


@blueprint.route("/resend-verification", methods=["POST"])
@per_ip
@per_email
@blueprint.arguments(schemas.EmailIn)
@blueprint.response(202, schemas.MessageOut)
def resend_verification(body: dict):
    """Send the verification link again (always 202)."""
    service.resend_verification(body["email"], current_client())
    return ACCEPTED


@blueprint.route("/login", methods=["POST"])
@per_ip
@per_account_failures
@blueprint.arguments(schemas.LoginIn)
@blueprint.response(200, schemas.SessionOut)
def login(body: dict):
    """Exchange email and password for an access token and a refresh cookie."""
    user, tokens = service.log_in(body["email"], body["password"], current_client())
    return _session_response(user, tokens)


@blueprint.route("/refresh", methods=["POST"])
@blueprint.response(200, schemas.SessionOut)
def refresh():
    """Rotate the refresh cookie (CSRF header required) and get a new access token."""
    verify_jwt_in_request(refresh=True, locations=["cookies"])
    user, tokens = sessions.rotate_session(get_jwt(), current_client())
    return _session_response(user, tokens)


@blueprint.route("/logout", methods=["POST"])
@authenticate()
@blueprint.response(204)
def logout():
    """End this session: its access and refresh tokens stop working at once."""
    principal = current_principal()
    assert principal.session_id is not None
    sessions.end_session_for_logout(principal.session_id, principal.user.id, current_client())
    response = current_app.response_class(status=204)
    unset_refresh_cookies(response)
    return response


@blueprint.route("/forgot-password", methods=["POST"])
@per_ip
@per_email
@blueprint.arguments(schemas.EmailIn)
@blueprint.response(202, schemas.MessageOut)
def forgot_password(body: dict):
    """Email a password-reset link (always 202)."""
    service.request_password_reset(body["email"], current_client())
    return ACCEPTED


@blueprint.route("/reset-password", methods=["POST"])
@per_ip
@blueprint.arguments(schemas.ResetPasswordIn)
@blueprint.response(200, schemas.MessageOut)
def reset_password(body: dict):
    """Set a new password from the emailed token (single use, 1 h); ends every session."""
    service.reset_password(body["token"], body["password"], current_client())
    return {"message": "Password changed. Sign in with the new password."}


@blueprint.route("/me", methods=["GET"])
@authenticate()
@blueprint.response(200, schemas.UserOut)
def me():
    """The signed-in user."""
    return current_principal().user


@blueprint.route("/me", methods=["PATCH"])
@authenticate()
@blueprint.arguments(schemas.ProfileIn)
@blueprint.response(200, schemas.UserOut)
def update_me(body: dict):
    """Change the display name."""
    return service.update_profile(current_principal().user, body["name"])


@blueprint.route("/change-password", methods=["POST"])
@authenticate()
@blueprint.arguments(schemas.ChangePasswordIn)
@blueprint.response(200, schemas.MessageOut)
def change_password(body: dict):
    """Change the password; every other session ends."""
    principal = current_principal()
    service.change_password(
        principal.user,
        body["current_password"],
        body["new_password"],
        principal.session_id,
        current_client(),
    )
    return {"message": "Password changed. Other sessions have been signed out."}
