"""Any input gets a clear 4xx naming the field; nothing answers 500."""

from __future__ import annotations

import pytest

from tests.auth.conftest import bearer, login, make_verified_user

ENDPOINTS = [
    "/v1/auth/register",
    "/v1/auth/verify-email",
    "/v1/auth/resend-verification",
    "/v1/auth/login",
    "/v1/auth/forgot-password",
    "/v1/auth/reset-password",
    "/v1/auth/change-password",
]
BODIES = [
    {},
    [],
    "a string",
    12,
    None,
    {"email": 5, "password": ["x"], "token": {"a": 1}},
    {"email": "not-an-email", "password": "", "token": ""},
    {"email": "a" * 300 + "@example.org", "password": "p" * 5000, "token": "t" * 5000},
    {"email": "ü@example.org\x00", "password": "\ud800", "name": "\x00"},
    {"email": "x@example.org", "password": "correct horse battery staple", "unexpected": 1},
    {"current_password": None, "new_password": 7},
]


@pytest.mark.parametrize("path", ENDPOINTS)
def test_no_body_shape_causes_a_500(app, path):
    make_verified_user(app, "in@example.org")
    client = app.test_client()
    headers = bearer(login(client, "in@example.org"))
    for body in BODIES:
        response = client.post(path, json=body, headers=headers)
        assert response.status_code < 500, (body, response.get_json())
        if response.status_code in (400, 422):
            error = response.get_json()["error"]
            assert error["code"] in {"validation_error", "invalid_token", "wrong_password"}
            assert error["details"], body  # the offending field is named


def test_missing_fields_are_each_named(client):
    response = client.post("/v1/auth/register", json={})
    details = response.get_json()["error"]["details"]
    assert response.status_code == 400 and set(details) == {"email", "password"}


@pytest.mark.parametrize(
    ("password", "message", "status"),
    [
        ("short", "at least 12", 400),  # the document's bounds: 400
        ("x" * 129 + "ab", "at most 128", 400),
        ("password1234", "too common", 422),  # within bounds, refused by the policy: 422
        ("aaaaaaaaaaaaaaaa", "too common", 422),
    ],
)
def test_password_policy_names_the_field(client, password, message, status):
    response = client.post(
        "/v1/auth/register", json={"email": "p@example.org", "password": password}
    )
    assert response.status_code == status
    assert message in response.get_json()["error"]["details"]["password"][0]


def test_long_unicode_passwords_are_accepted_untruncated(app):
    client = app.test_client()
    password = "ключ-🔑-" * 15  # 120 characters, > 72 bytes: no bcrypt-style truncation
    response = client.post(
        "/v1/auth/register", json={"email": "u@example.org", "password": password}
    )
    assert response.status_code == 202
    from api.auth.models import User
    from api.db_types import utcnow
    from api.extensions import db

    with app.app_context():
        user = db.session.query(User).filter_by(email="u@example.org").one()
        user.email_verified_at = utcnow()
        db.session.commit()
    assert (
        client.post(
            "/v1/auth/login", json={"email": "u@example.org", "password": password}
        ).status_code
        == 200
    )
    truncated = client.post(
        "/v1/auth/login", json={"email": "u@example.org", "password": password[:72]}
    )
    assert truncated.status_code == 401
