"""Real handler processes behind the in-process app: the served OpenAPI document has an exact
operation per ready model, and a streaming handler (a generator `predict`) answers
server-sent events, in-band errors after the first, and stops when the client goes away."""

from __future__ import annotations

import json
import os
import time

import pytest

from api.runtime.handlers.client import HandlerClient
from api.runtime.handlers.supervisor import start
from api.usage.models import InferenceRecord
from tests.handlers.test_process import wait_for
from tests.tokens.conftest import make_account

MODELS = ",".join(
    [
        "count=handler:tests.handlers.sample_handler:Counter",
        "tiny=handler:tests.handlers.sample_handler:Tiny",
        "later=handler:tests.handlers.sample_handler:Tiny",  # never started: not ready
    ]
)
EVENTS = {"Accept": "text/event-stream"}


@pytest.fixture(scope="module")
def sockets(tmp_path_factory):
    directory = tmp_path_factory.mktemp("streaming")
    old = dict(os.environ)
    os.environ.update({"MODELS": MODELS, "LOG_FORMAT": "text", "LOG_LEVEL": "WARNING"})
    started = [start(name, str(directory / f"{name}.sock")) for name in ("count", "tiny")]
    os.environ.clear()
    os.environ.update(old)
    for name in ("count", "tiny"):
        wait_for(HandlerClient(name, str(directory / f"{name}.sock")), ("ready",))
    yield directory
    for supervisor in started:
        supervisor.terminate()
        supervisor.wait(10)


@pytest.fixture
def api(make_app, sockets):
    app = make_app(MODELS=MODELS, HANDLER_SOCKET_DIR=str(sockets))
    token = make_account(app).mint(scopes=("predict",))["token"]
    client = app.test_client()

    def post(body, headers=None, **kwargs):
        headers = {"Authorization": f"Bearer {token}", **(headers or {})}
        return client.post("/v1/models/count/predict", json=body, headers=headers, **kwargs)

    post.app, post.client = app, client  # type: ignore[attr-defined]
    return post


def events(response):
    """The `data:` payloads of a server-sent event stream, JSON-decoded but for [DONE]."""
    found = []
    for block in response.get_data(as_text=True).split("\n\n"):
        if block.startswith("data: "):
            payload = block.removeprefix("data: ")
            found.append(payload if payload == "[DONE]" else json.loads(payload))
    return found


def records(app, trace_id):
    with app.app_context():
        rows = InferenceRecord.query.filter_by(trace_id=trace_id).all()
        return [(row.model, row.units, row.status) for row in rows]


def test_the_served_document_has_one_exact_operation_per_ready_model(api):
    document = api.client.get("/v1/openapi.json").get_json()
    paths = document["paths"]
    assert "/v1/models/{model_id}/predict" in paths  # the generic one stays
    assert "/v1/models/later/predict" not in paths  # its process is not running
    tiny = paths["/v1/models/tiny/predict"]["post"]
    assert tiny["operationId"] == "predict_tiny" and tiny["x-required-scope"] == "predict"
    body = tiny["requestBody"]["content"]["application/json"]["schema"]
    assert body["required"] == ["image"] and body["additionalProperties"] is False
    count = paths["/v1/models/count/predict"]["post"]
    assert "text/event-stream" in count["responses"]["200"]["content"]
    outputs = count["responses"]["200"]["content"]["application/json"]["schema"]
    assert outputs["properties"]["usage"]["properties"]["unit"]["enum"] == ["words"]


def test_a_streaming_model_sends_each_partial_output_then_its_usage(api):
    response = api({"word": "hi", "count": 3}, {**EVENTS, "X-Trace-Id": "stream-ok"})
    assert response.status_code == 200 and response.mimetype == "text/event-stream"
    sent = events(response)
    assert [event["outputs"]["text"] for event in sent[:3]] == ["hi", "hi hi", "hi hi hi"]
    assert sent[2]["outputs"]["done"] is True
    assert sent[3] == {
        "model": "count",
        "usage": {"units": 3, "unit": "words"},
        "trace_id": "stream-ok",
    }
    assert sent[4] == "[DONE]"
    response.close()  # the usage row is written when the stream is closed
    assert records(api.app, "stream-ok") == [("count", 3, 200)]


def test_without_a_stream_the_outputs_are_merged_into_one_answer(api):
    response = api({"word": "ok", "count": 2})
    assert response.status_code == 200, response.get_json()
    body = response.get_json()
    assert body["outputs"] == {"text": "ok ok", "done": True}
    assert body["usage"] == {"units": 2, "unit": "words"}


def test_errors_before_the_first_output_have_a_status_later_ones_come_in_band(api):
    bad = api({"word": "x" * 21}, EVENTS)
    assert bad.status_code == 422 and bad.get_json()["error"]["param"] == "word"
    first = api({"word": "a", "fail_at": 1}, EVENTS)
    assert first.status_code == 500 and first.get_json()["error"]["code"] == "model_error"
    later = api({"word": "a", "count": 3, "fail_at": 2}, {**EVENTS, "X-Trace-Id": "stream-bad"})
    assert later.status_code == 200
    sent = events(later)
    assert sent[0]["outputs"]["text"] == "a"
    assert sent[1]["error"]["code"] == "model_error" and sent[1]["error"]["trace_id"]
    assert sent[2] == "[DONE]"
    later.close()
    assert records(api.app, "stream-bad") == [("count", 1, 500)]


def test_a_client_that_goes_away_stops_the_generator(api):
    slow = {"word": "w", "count": 20, "pause": 0.25}  # five seconds if it ran to the end
    response = api(slow, EVENTS, buffered=False)
    chunks = iter(response.response)
    assert b"data: " in next(chunks)
    response.close()  # the client is gone
    began = time.monotonic()
    after = api({"word": "next", "count": 1})  # streams run one at a time: it waits its turn
    assert after.status_code == 200
    assert time.monotonic() - began < 2.0, "the abandoned stream kept the model busy"
