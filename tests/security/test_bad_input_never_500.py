"""Bad input is never a 500: lone surrogates, NUL bytes, deep nesting, tiny sampling numbers and
ids beyond an id column get a 400 naming the field (finding 10: and never trip the rate limiter)."""

from __future__ import annotations

import json
import re

import pytest

from api.edge.guards import PREDICT_PATH, UPLOAD_PATHS
from api.extensions import limiter
from tests.auth.conftest import bearer
from tests.tokens.conftest import make_account

HOSTILE_STRINGS = ["\ud800", "bad\udfffend", "nul\x00byte"]


def _json_routes(app) -> list[tuple[str, str]]:
    """Every API route that takes a JSON body, with concrete ids in its path."""
    routes = []
    for rule in app.url_map.iter_rules():
        if not rule.rule.startswith("/v1/") or rule.rule in UPLOAD_PATHS:
            continue  # uploads are multipart: tests/batches/test_files.py
        for method in sorted(rule.methods & {"POST", "PATCH"}):
            routes.append((method, re.sub(r"<[^>]+>", "1", rule.rule)))
    return routes


FIELDS = [
    "email", "password", "name", "token", "current_password", "new_password",
    "input", "prompt", "model", "scopes", "role", "rate_limit", "stop",
]  # fmt: skip


def _limits_on_redis() -> None:
    """Start from Redis-backed limits (the limiter is process-wide; earlier tests kill Redis)."""
    limiter._storage_dead = False


def test_hostile_strings_in_any_field_of_any_route_get_a_400(limited_app):
    app = limited_app()
    _limits_on_redis()
    account = make_account(app)
    token = account.mint()["token"]
    for method, path in _json_routes(app):
        for value in HOSTILE_STRINGS:
            for field in FIELDS:
                for headers in (account.session, bearer(token)):
                    body = json.dumps({field: value, "keep": "x"})
                    response = account.client.open(
                        path,
                        method=method,
                        data=body,
                        content_type="application/json",
                        headers=headers,
                    )
                    # A model's inputs may be free-form, so there it fits the document: 422.
                    status = 422 if PREDICT_PATH.fullmatch(path) else 400
                    assert response.status_code == status, (method, path, field, response.json)
                    details = response.get_json()["error"]["details"]
                    assert field in details, (path, field, details)
    assert not getattr(limiter, "_storage_dead", False)  # Redis limits stayed on


def test_a_lone_surrogate_email_does_not_switch_limits_to_memory(limited_app):
    app = limited_app()
    _limits_on_redis()
    client = app.test_client()
    for path in ("/v1/auth/login", "/v1/auth/forgot-password", "/v1/auth/register"):
        response = client.post(path, json={"email": "\ud800@example.org", "password": "x" * 20})
        assert response.status_code == 400 and "email" in response.get_json()["error"]["details"]
    assert not getattr(limiter, "_storage_dead", False)


def test_hostile_keys_and_list_items_are_named(account):
    response = account.client.post(
        "/v1/embeddings", headers=account.session, json={"input": ["fine", "nul\x00"]}
    )
    assert response.status_code == 400
    assert response.get_json()["error"]["details"]["input"] == [
        "input[1]: Must not contain NUL characters."
    ]
    # A bad key alone is a 422: OpenAPI 3.0 cannot forbid keys of a free-form object.
    key = account.client.post("/v1/auth/login", json={"\ud800": 1, "email": "a@example.org"})
    assert key.status_code == 422 and "_body" in key.get_json()["error"]["details"]
    batch = {"input_file_id": "file-x", "endpoint": "/v1/embeddings", "completion_window": "24h"}
    metadata = account.client.post(
        "/v1/batches", headers=account.session, json={**batch, "metadata": {"tag\x00": "v"}}
    )
    assert metadata.status_code == 422
    assert metadata.get_json()["error"]["details"] == {
        "metadata": ["A key: must not contain nul characters."]
    }
    both = account.client.post("/v1/auth/login", json={"\ud800": 1, "email": "nul\x00"})
    assert both.status_code == 400  # with a bad value too, it stays a 400 naming both
    assert set(both.get_json()["error"]["details"]) == {"_body", "email"}


@pytest.mark.parametrize("depth", [40, 100_000])
def test_deeply_nested_json_is_a_400(client, depth):
    body = "[" * depth + "]" * depth
    response = client.post("/v1/auth/login", data=body, content_type="application/json")
    assert response.status_code == 400
    assert "Nested deeper" in str(response.get_json()["error"]["details"])


def test_ids_beyond_an_id_column_name_the_parameter(account):
    for method, path in [
        ("DELETE", "/v1/history/2147483647"),  # the largest id: an ordinary 404
        ("DELETE", "/v1/history/2251799813685247"),
        ("DELETE", "/v1/tokens/92233720368547758070"),
        ("PATCH", "/v1/tokens/2147483648"),
    ]:
        response = account.client.open(
            path, method=method, headers=account.session, json={"name": "x"}
        )
        if path.endswith("/2147483647"):
            assert response.status_code == 404
            continue
        assert response.status_code == 400, (path, response.get_json())
        assert set(response.get_json()["error"]["details"]) <= {"entry_id", "token_id"}


def test_nul_in_a_query_string_is_a_400(make_app):
    from tests.auth.conftest import login, make_verified_user

    app = make_app()
    make_verified_user(app, "root@example.org", role="admin")
    client = app.test_client()
    session = bearer(login(client, "root@example.org"))
    response = client.get("/v1/admin/users?q=frog%00prince", headers=session)
    assert response.status_code == 400 and "q" in response.get_json()["error"]["details"]


@pytest.mark.parametrize(
    "options", [{"temperature": 1e-45}, {"top_p": 1e-300}, {"temperature": 1e-45, "top_p": 1e-300}]
)
def test_extreme_but_valid_sampling_numbers_generate(make_app, options):
    app = make_app(MODELS="storyteller")
    account = make_account(app)
    response = account.client.post(
        "/v1/completions",
        headers=account.session,
        json={"prompt": "Once upon a time", "max_tokens": 4, **options},
    )
    assert response.status_code == 200, response.get_json()
    assert response.get_json()["usage"]["completion_tokens"] >= 1


def test_ids_in_query_strings_are_bounded_too(make_app):
    from tests.auth.conftest import login, make_verified_user

    app = make_app()
    make_verified_user(app, "root@example.org", role="admin")
    client = app.test_client()
    session = bearer(login(client, "root@example.org"))
    for path, field in [
        ("/v1/usage?token=2251799813685247", "token"),
        ("/v1/history?before=2251799813685247", "before"),
        ("/v1/admin/usage?user=2251799813685247", "user"),
    ]:
        response = client.get(path, headers=session)
        assert response.status_code == 400 and field in response.get_json()["error"]["details"]


@pytest.mark.parametrize(
    ("method", "path", "field"),
    [
        ("GET", "/v1/files/file-%00", "file_id"),
        ("GET", "/v1/files/%00/content", "file_id"),
        ("DELETE", "/v1/files/a%00", "file_id"),
        ("GET", "/v1/batches/batch_%00", "batch_id"),
        ("POST", "/v1/batches/x%00/cancel", "batch_id"),
    ],
)
def test_nul_in_a_string_path_id_is_a_400_naming_it(account, method, path, field):
    # Finding 9 of issue 22: PostgreSQL's text refuses NUL, so the lookup was a 500.
    response = account.client.open(path, method=method, headers=account.session)
    assert response.status_code == 400, response.get_json()
    error = response.get_json()["error"]
    assert error["code"] == "validation_error" and error["param"] == field
    assert error["details"] == {field: ["Must not contain NUL characters."]}
    assert error["trace_id"] == response.headers["X-Trace-Id"]


@pytest.mark.parametrize("raw", ["%ff", "%ed%a0%80", "%c0%80"])
def test_invalid_utf8_in_a_path_id_is_an_ordinary_404(account, raw):
    # werkzeug decodes a path's bytes as UTF-8 with replacement: no lone surrogate gets through.
    for path, code in ((f"/v1/files/{raw}", "file"), (f"/v1/batches/{raw}", "batch")):
        response = account.client.get(path, headers=account.session)
        assert response.status_code == 404, (path, response.get_json())
        assert response.get_json()["error"]["code"] == f"{code}_not_found"
