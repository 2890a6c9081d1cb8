"""`/v1/auth`: accounts, sessions and the email flows. HTTP only; the logic is in service.py."""

from __future__ import annotations

from flask import Response, current_app, g, jsonify
from flask_jwt_extended import (
    get_jwt,
    set_refresh_cookies,
    unset_refresh_cookies,
    verify_jwt_in_request,
)
from flask_limiter.util import get_remote_address

from api.access.ratelimits import client_ip
from api.access.security import authenticate, current_principal
from api.auth import schemas, service, sessions
from api.edge.http import current_client, json_field
from api.edge.validation import Blueprint
from api.extensions import limiter
from api.process import background

blueprint = Blueprint("auth", __name__, url_prefix="/v1/auth", description="Accounts and sessions.")

ACCEPTED = {"message": "If the address can receive email, a message is on its way."}


def auth_limit() -> str:
    return current_app.config["RATE_LIMIT_AUTH"]


def login_failure_limit() -> str:
    return current_app.config["LOGIN_FAILURE_LIMIT"]


def account_failure_limit() -> str:
    return current_app.config["LOGIN_ACCOUNT_FAILURE_LIMIT"]


def _account_email() -> str | None:
    """The account a password is being tried for: the body's email, or the signed-in user's."""
    principal = g.get("principal")
    return principal.email if principal is not None else json_field("email")


def account_key() -> str:
    """Rate-limit key of the account (the IP when there is none); hashed, no addresses in Redis."""
    email = _account_email()
    return "email:" + service.email_digest(email) if email else "ip:" + client_ip()


def account_source_key() -> str:
    """Rate-limit key of the account tried from this address."""
    return account_key() + ":ip:" + client_ip()


def _password_failed(response: Response) -> bool:
    """A wrong password: login's 401, or change-password's `wrong_password`."""
    if response.status_code not in (401, 422):
        return False
    body = response.get_json(silent=True) or {}
    return body.get("error", {}).get("code") in {"invalid_credentials", "wrong_password"}


per_ip = limiter.limit(auth_limit, key_func=get_remote_address)
# Failed passwords are counted per account *and* address, so an attacker's failures lock out
# the attacker, not the owner; a much higher per-account ceiling stops a spread-out guesser.
# Login and change-password share both counters.
password_failures = [
    limiter.shared_limit(
        login_failure_limit,
        scope="password-failures",
        key_func=account_source_key,
        deduct_when=_password_failed,
    ),
    limiter.shared_limit(
        account_failure_limit,
        scope="password-failures-account",
        key_func=account_key,
        deduct_when=_password_failed,
    ),
]


def limit_password_failures(view):  # type: ignore[no-untyped-def]
    for limit in reversed(password_failures):
        view = limit(view)
    return view


def _session_response(user, tokens: sessions.Tokens):
    body = schemas.SessionOut().dump(
        {"access_token": tokens.access_token, "expires_in": tokens.expires_in, "user": user}
    )
    response = jsonify(body)
    set_refresh_cookies(response, tokens.refresh_token)
    return response


@blueprint.route("/register", methods=["POST"])
@per_ip
@blueprint.errors(422, 429)
@blueprint.arguments(
    schemas.RegisterIn,
    example={"email": "me@example.org", "password": "a long passphrase", "name": "Me"},
)
@blueprint.response(202, schemas.MessageOut)
def register(body: dict):
    """Create an account; the answer is the same whether or not the email is known."""
    service.register_user(body["email"], body["password"], body["name"], current_client())
    return ACCEPTED


@blueprint.route("/verify-email", methods=["POST"])
@per_ip
@blueprint.errors(422, 429)
@blueprint.arguments(schemas.TokenIn)
@blueprint.response(200, schemas.UserOut)
def verify_email(body: dict):
    """Confirm an email address with the token from its link (single use, 24 h)."""
    return service.verify_email(body["token"], current_client())


@blueprint.route("/resend-verification", methods=["POST"])
@per_ip
@blueprint.errors(429)
@blueprint.arguments(schemas.EmailIn)
@blueprint.response(202, schemas.MessageOut)
def resend_verification(body: dict):
    """Send the verification link again (always 202, at the same cost for any address)."""
    background.submit(service.resend_verification, body["email"], current_client())
    return ACCEPTED


@blueprint.route("/login", methods=["POST"])
@per_ip
@limit_password_failures
@blueprint.errors(401, 403, 429)
@blueprint.arguments(
    schemas.LoginIn, example={"email": "me@example.org", "password": "a long passphrase"}
)
@blueprint.response(200, schemas.SessionOut)
def login(body: dict):
    """Exchange email and password for an access token and a refresh cookie."""
    user, tokens = service.log_in(body["email"], body["password"], current_client())
    return _session_response(user, tokens)


@blueprint.route("/refresh", methods=["POST"])
@blueprint.doc(security=[{"refreshCookie": [], "csrfHeader": []}])
@blueprint.errors(401)
@blueprint.response(200, schemas.SessionOut)
def refresh():
    """Rotate the refresh cookie (CSRF header required) and get a new access token."""
    verify_jwt_in_request(refresh=True, locations=["cookies"])
    user, tokens = sessions.rotate_session(get_jwt(), current_client())
    return _session_response(user, tokens)


@blueprint.route("/logout", methods=["POST"])
@authenticate(session_only=True)
@blueprint.response(204)
def logout():
    """End this session: its access and refresh tokens stop working at once."""
    principal = current_principal()
    assert principal.session_id is not None  # session_only
    sessions.end_session_for_logout(principal.session_id, principal.user_id, current_client())
    response = current_app.response_class(status=204)
    unset_refresh_cookies(response)
    return response


@blueprint.route("/logout-all", methods=["POST"])
@authenticate(session_only=True)
@blueprint.response(204)
def logout_all():
    """Sign out everywhere: every session of this account ends, this one included.

    API tokens keep working; revoke them on the tokens page.
    """
    sessions.end_all_sessions(current_principal().user_id, current_client())
    response = current_app.response_class(status=204)
    unset_refresh_cookies(response)
    return response


@blueprint.route("/forgot-password", methods=["POST"])
@per_ip
@blueprint.errors(429)
@blueprint.arguments(schemas.EmailIn)
@blueprint.response(202, schemas.MessageOut)
def forgot_password(body: dict):
    """Email a password-reset link (always 202, at the same cost for any address)."""
    background.submit(service.request_password_reset, body["email"], current_client())
    return ACCEPTED


@blueprint.route("/reset-password", methods=["POST"])
@per_ip
@blueprint.errors(422, 429)
@blueprint.arguments(schemas.ResetPasswordIn)
@blueprint.response(200, schemas.MessageOut)
def reset_password(body: dict):
    """Set a new password from the emailed token (single use, 1 h); ends every session."""
    service.reset_password(body["token"], body["password"], current_client())
    return {"message": "Password changed. Sign in with the new password."}


@blueprint.route("/me", methods=["GET"])
@authenticate(session_only=True)
@blueprint.response(200, schemas.UserOut)
def me():
    """The signed-in user."""
    return current_principal().user


@blueprint.route("/me", methods=["PATCH"])
@authenticate(session_only=True)
@blueprint.arguments(schemas.ProfileIn)
@blueprint.response(200, schemas.UserOut)
def update_me(body: dict):
    """Change the display name."""
    return service.update_profile(current_principal().user, body["name"])


@blueprint.route("/change-password", methods=["POST"])
@authenticate(session_only=True)
@per_ip
@limit_password_failures
@blueprint.errors(422)
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
