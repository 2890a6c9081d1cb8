"""Forged or misused tokens are refused with the JSON error before any view runs."""

from __future__ import annotations

import time

import jwt
import pytest

from tests.auth.conftest import bearer, login, make_verified_user

SECRET = "test-jwt-secret-" + "y" * 32  # TestConfig's JWT key


@pytest.fixture
def session(app):
    make_verified_user(app, "kim@example.org")
    client = app.test_client()
    access = login(client, "kim@example.org")
    claims = jwt.decode(access, options={"verify_signature": False})
    refresh = client.get_cookie("mg_refresh", path="/v1/auth").value
    return client, access, claims, refresh


def forge(claims: dict, key: str = SECRET, algorithm: str = "HS256", **changes) -> str:
    return jwt.encode({**claims, **changes}, key, algorithm=algorithm)


def alg_none(claims: dict) -> str:
    header = jwt.utils.base64url_encode(b'{"alg":"none","typ":"JWT"}').decode()
    import json

    body = jwt.utils.base64url_encode(json.dumps(claims).encode()).decode()
    return f"{header}.{body}."


CASES = {
    "alg none": lambda c: alg_none(c),
    "other algorithm": lambda c: forge(c, algorithm="HS512"),
    "wrong key": lambda c: forge(c, key="another-key-of-sufficient-length-000000"),
    "wrong audience": lambda c: forge(c, aud="someone-else"),
    "wrong issuer": lambda c: forge(c, iss="evil"),
    "expired": lambda c: forge(c, exp=int(time.time()) - 10),
    "other user, no session": lambda c: forge(c, sub="999999", sid="0" * 32),
    "garbage": lambda c: "not.a.jwt",
}


@pytest.mark.parametrize("case", list(CASES))
def test_forged_access_token_is_401(session, case):
    client, access, claims, _ = session
    assert client.get("/v1/auth/me", headers=bearer(access)).status_code == 200
    response = client.get("/v1/auth/me", headers=bearer(CASES[case](claims)))
    assert response.status_code == 401
    error = response.get_json()["error"]
    assert error["code"] in {"invalid_token", "token_expired", "session_revoked", "unauthorized"}
    assert error["trace_id"] == response.headers["X-Trace-Id"]


def test_refresh_token_used_as_access_token_is_401(session):
    client, _, _, refresh = session
    response = client.get("/v1/auth/me", headers=bearer(refresh))
    assert response.status_code == 401 and response.get_json()["error"]["code"] == "invalid_token"


def test_access_token_is_not_accepted_from_a_cookie(session):
    client, access, _, _ = session
    client.set_cookie("access_token_cookie", access)
    assert client.get("/v1/auth/me").status_code == 401


def test_missing_credentials_is_401(client):
    response = client.get("/v1/auth/me")
    assert response.status_code == 401 and response.get_json()["error"]["code"] == "unauthorized"
