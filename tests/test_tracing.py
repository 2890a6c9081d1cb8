"""Trace ids: the client's when valid, else traceparent's, else a new one; always echoed."""

from __future__ import annotations

import re

import pytest

from api.observability.tracing import trace_id_from_headers, traceparent_for

TRACEPARENT = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"


@pytest.mark.parametrize("client_id", ["abc-123", "A.b_c-9", "x" * 64, "0"])
def test_valid_client_trace_id_is_kept(client_id):
    assert trace_id_from_headers({"X-Trace-Id": client_id}) == client_id


@pytest.mark.parametrize("bad", ["", "x" * 65, "has space", "semi;colon", "ünïcode", "a\nb"])
def test_invalid_client_trace_id_is_replaced(bad):
    trace_id = trace_id_from_headers({"X-Trace-Id": bad})
    assert trace_id != bad
    assert re.fullmatch(r"[0-9a-f]{32}", trace_id)


def test_traceparent_is_used_when_no_client_id():
    assert trace_id_from_headers({"traceparent": TRACEPARENT}) == "4bf92f3577b34da6a3ce929d0e0e4736"


def test_client_id_wins_over_traceparent():
    assert trace_id_from_headers({"X-Trace-Id": "mine", "traceparent": TRACEPARENT}) == "mine"


@pytest.mark.parametrize(
    "bad",
    [
        "00-00000000000000000000000000000000-00f067aa0ba902b7-01",
        "00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01",
        "ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
        "00-4bf92f3577b34da6a3ce929d0e0e473-00f067aa0ba902b7-01",
        "garbage",
    ],
)
def test_invalid_traceparent_is_ignored(bad):
    trace_id = trace_id_from_headers({"traceparent": bad})
    assert re.fullmatch(r"[0-9a-f]{32}", trace_id)
    assert trace_id != "4bf92f3577b34da6a3ce929d0e0e4736"


def test_every_response_carries_a_fresh_trace_id(client):
    first = client.get("/healthz").headers["X-Trace-Id"]
    second = client.get("/healthz").headers["X-Trace-Id"]
    assert re.fullmatch(r"[0-9a-f]{32}", first) and first != second


def test_invalid_header_is_replaced_in_the_response(client):
    response = client.get("/healthz", headers={"X-Trace-Id": "bad id!"})
    assert re.fullmatch(r"[0-9a-f]{32}", response.headers["X-Trace-Id"])


def test_the_answer_carries_a_traceparent_of_the_same_trace(client):
    sampled_out = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-00"
    answer = client.get("/healthz", headers={"traceparent": sampled_out})
    version, trace, span, flags = answer.headers["traceparent"].split("-")
    assert (version, trace, flags) == ("00", "4bf92f3577b34da6a3ce929d0e0e4736", "00")
    assert re.fullmatch(r"[0-9a-f]{16}", span) and span != "00f067aa0ba902b7"  # this server's
    fresh = client.get("/healthz")
    assert fresh.headers["traceparent"] == (
        f"00-{fresh.headers['X-Trace-Id']}-{fresh.headers['traceparent'][36:52]}-01"
    )


def test_a_client_id_that_is_not_a_w3c_trace_id_gets_no_traceparent(client):
    answer = client.get("/healthz", headers={"X-Trace-Id": "mine-1"})
    assert answer.headers["X-Trace-Id"] == "mine-1" and "traceparent" not in answer.headers
    assert traceparent_for("0" * 32) is None
    assert traceparent_for("A" * 32) is None  # upper case is not W3C
