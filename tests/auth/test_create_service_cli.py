"""`flask users create-service`: an account that cannot log in, a token printed once."""

from __future__ import annotations

from sqlalchemy import select

from api.auth.models import User
from api.extensions import db
from api.tokens.format import hash_token
from api.tokens.models import ApiToken


def _create(app, *args: str):
    return app.test_cli_runner().invoke(args=["users", "create-service", *args])


def test_a_service_token_is_printed_once_and_its_account_cannot_log_in(app):
    first = _create(app, "api", "--scopes", "predict,embed")
    assert first.exit_code == 0, first.output
    token = first.stdout.strip()
    assert token.startswith("mg_") and "\n" not in token  # stdout is the token alone
    assert "shown once" in first.stderr and token not in first.stderr
    again = _create(app, "api")  # the same account, a second token
    assert again.exit_code == 0, again.output
    assert again.stdout.strip() != token
    with app.app_context():
        (user,) = db.session.scalars(select(User).where(User.email == "api@service.invalid"))
        assert user.rate_limit == "100000/minute"
        stored = db.session.scalar(select(ApiToken).where(ApiToken.token_hash == hash_token(token)))
        assert stored is not None and stored.user_id == user.id
        assert stored.scopes == ["embed", "predict"] and stored.expires_at is None
    for password in ("", "!", "a long enough password"):
        login = app.test_client().post(
            "/v1/auth/login", json={"email": "api@service.invalid", "password": password}
        )
        assert login.status_code in (400, 401), login.get_json()


def test_a_bad_name_scope_or_limit_is_refused_before_anything_is_made(app):
    for args in (["API"], ["api", "--scopes", "admin"], ["api", "--rate-limit", "lots"]):
        result = _create(app, *args)
        assert result.exit_code != 0 and "mg_" not in result.output, result.output
    with app.app_context():
        assert db.session.scalar(select(User).where(User.email == "api@service.invalid")) is None


def test_an_existing_account_of_that_address_is_locked_when_it_becomes_the_service(app):
    from api.auth.passwords import hash_password

    with app.app_context():
        db.session.add(
            User(email="api@service.invalid", name="x", password_hash=hash_password("pw-12345678a"))
        )
        db.session.commit()
    assert _create(app, "api").exit_code == 0
    login = app.test_client().post(
        "/v1/auth/login", json={"email": "api@service.invalid", "password": "pw-12345678a"}
    )
    assert login.status_code in (400, 401), login.get_json()
