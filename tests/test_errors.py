"""Every 4xx/5xx is the one JSON error shape, with the trace id, and never a stack trace."""

from __future__ import annotations

import pytest
from flask import Flask

from api.edge.errors import Conflict, ValidationFailed


def assert_error(response, status: int, code: str) -> dict:
    assert response.status_code == status
    assert response.is_json
    error = response.get_json()["error"]
    assert error["code"] == code
    assert error["trace_id"] == response.headers["X-Trace-Id"]
    assert error["message"]
    return error


def test_unknown_route_is_404_json_with_the_clients_trace_id(client):
    response = client.get("/nope", headers={"X-Trace-Id": "abc-123"})
    error = assert_error(response, 404, "not_found")
    assert error["trace_id"] == "abc-123"
    assert response.headers["X-Trace-Id"] == "abc-123"


def test_wrong_method_is_405_with_allow_header(client):
    response = client.delete("/healthz")
    assert_error(response, 405, "method_not_allowed")
    assert "GET" in response.headers["Allow"]


def test_non_json_body_is_415(client):
    response = client.post("/v1/anything", data="hello", content_type="text/plain")
    error = assert_error(response, 415, "unsupported_media_type")
    assert error["details"]["content_type"] == "text/plain"


def test_malformed_json_is_400(client):
    response = client.post("/v1/anything", data="{not json", content_type="application/json")
    assert_error(response, 400, "invalid_json")


def test_oversized_body_is_413_before_the_view_reads_it(make_app):
    app = make_app(MAX_CONTENT_LENGTH=1000)
    response = app.test_client().post(
        "/v1/anything", data="x" * 5000, content_type="application/json"
    )
    error = assert_error(response, 413, "payload_too_large")
    assert error["details"]["max_bytes"] == 1000


@pytest.fixture
def failing_app(app: Flask) -> Flask:
    @app.get("/boom")
    def boom():
        raise RuntimeError("secret internal detail /etc/passwd")

    @app.get("/conflict")
    def conflict():
        raise Conflict("Name taken.", details={"name": ["already used"]})

    return app


def test_unhandled_exception_is_500_without_internals(failing_app, log_lines):
    response = failing_app.test_client().get("/boom")
    error = assert_error(response, 500, "internal_error")
    body = response.get_data(as_text=True)
    assert "secret internal detail" not in body and "Traceback" not in body
    assert error["details"] == {}
    logged = [line for line in log_lines() if line.get("error.type") == "RuntimeError"]
    assert logged and logged[0]["trace.id"] == error["trace_id"]


def test_raised_api_error_keeps_its_status_code_and_details(failing_app):
    response = failing_app.test_client().get("/conflict")
    error = assert_error(response, 409, "conflict")
    assert error["details"] == {"name": ["already used"]}


@pytest.mark.parametrize(
    ("details", "message"),
    [
        ({"dimensions": ["Not supported."]}, "dimensions: Not supported."),
        ({"messages": {0: {"content": ["Too long."]}}}, "messages[0].content: Too long."),
        ({"input": {"3": ["Bad id."]}, "model": ["Unknown."]}, "input[3]: Bad id."),
        ({"_body": ["Send a JSON body."]}, "Send a JSON body."),
        ({}, "Some fields are invalid."),
    ],
)
def test_a_validation_failure_says_its_first_field_and_reason(details, message):
    error = ValidationFailed(details=details)
    assert error.message == message and error.details == details


def test_a_400_from_the_parser_names_the_field_in_its_message(client):
    response = client.post("/v1/auth/register", json={"email": "a@example.org", "password": 5})
    error = assert_error(response, 400, "validation_error")
    assert error["param"] == "password"
    assert error["message"] == f"password: {error['details']['password'][0]}"
