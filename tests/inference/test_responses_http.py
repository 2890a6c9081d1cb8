"""`/v1/responses` in-process: metering, history, stored responses per token and user,
truncation, the window, and a stream that fails after its first event."""

from __future__ import annotations

import json

import pytest
from sqlalchemy import delete, select
from sqlalchemy import text as sql

from api.auth.models import User
from api.extensions import db
from api.responses.models import StoredResponse
from api.usage.models import HistoryEntry, InferenceRecord
from tests.auth.conftest import bearer
from tests.tokens.conftest import make_account

MODELS = "storyteller"


@pytest.fixture
def served(make_app):
    app = make_app(MODELS=MODELS, INFERENCE_PER_USER=32)
    account = make_account(app)
    return app, account, bearer(account.mint()["token"])


def create(account, headers, **body):
    return account.client.post("/v1/responses", headers=headers, json=body)


def read_events(response) -> list[tuple[str, dict]]:
    events = []
    for block in response.get_data(as_text=True).split("\n\n"):
        if block:
            kind, data = block.split("\n", 1)
            events.append((kind.removeprefix("event: "), json.loads(data.removeprefix("data: "))))
    return events


def test_a_response_is_metered_kept_in_history_and_stored(served):
    app, account, headers = served
    made = create(account, headers, input="Once upon a time", max_output_tokens=5)
    assert made.status_code == 200, made.get_json()
    answer = made.get_json()
    streamed = create(account, headers, input="A frog", max_output_tokens=4, stream=True)
    events = read_events(streamed)
    streamed.close()  # as a WSGI server does when the stream ends: the usage row is written
    final = events[-1][1]["response"]
    with app.app_context():
        records = db.session.scalars(
            select(InferenceRecord).where(InferenceRecord.endpoint == "responses")
        ).all()
        entries = db.session.scalars(select(HistoryEntry).order_by(HistoryEntry.id)).all()
        stored = db.session.scalars(select(StoredResponse)).all()
    usages = [answer["usage"], final["usage"]]
    assert sorted((r.status, r.tokens_in, r.tokens_out) for r in records) == sorted(
        (200, u["input_tokens"], u["output_tokens"]) for u in usages
    )
    assert [e.completion for e in entries] == [answer["output_text"], final["output_text"]]
    assert entries[0].trace_id == made.headers["X-Trace-Id"]
    assert {s.id for s in stored} == {answer["id"], final["id"]}
    assert all(s.user_id == account.user_id for s in stored)


def test_a_token_reaches_only_its_own_responses_and_another_user_none(served):
    app, account, headers = served
    made = create(account, headers, input="A frog", max_output_tokens=2).get_json()
    other_token = bearer(account.mint("other")["token"])
    stranger = make_account(app, "stranger@example.org")
    strangers = bearer(stranger.mint()["token"])
    path = f"/v1/responses/{made['id']}"
    for who, client in ((other_token, account.client), (strangers, stranger.client)):
        assert client.get(path, headers=who).status_code == 404
        assert client.get(f"{path}/input_items", headers=who).status_code == 404
        assert client.delete(path, headers=who).status_code == 404
        carried = client.post(
            "/v1/responses", headers=who, json={"input": "x", "previous_response_id": made["id"]}
        )
        assert carried.status_code == 404
        assert carried.get_json()["error"]["param"] == "previous_response_id"
    # The account's session sees every response of the account, as with the history.
    assert account.client.get(path, headers=account.session).status_code == 200


def test_responses_go_with_the_account(served):
    app, account, headers = served
    create(account, headers, input="A frog", max_output_tokens=2)
    with app.app_context():
        if db.engine.dialect.name != "postgresql":
            pytest.skip("SQLite here does not enforce foreign keys")
        db.session.execute(delete(User).where(User.id == account.user_id))
        db.session.commit()
        assert db.session.scalars(select(StoredResponse)).all() == []


def test_truncation_auto_drops_the_oldest_turns_disabled_refuses(served):
    _, account, headers = served
    turns = [{"role": "user", "content": f"Turn {i}: " + "the frog sat. " * 30} for i in range(4)]
    refused = create(account, headers, input=turns, max_output_tokens=4)
    assert refused.status_code == 422
    assert refused.get_json()["error"]["param"] == "input"
    assert "truncation" in refused.get_json()["error"]["message"]
    fitted = create(
        account, headers, input=turns, max_output_tokens=4, truncation="auto", instructions="Hi."
    )
    assert fitted.status_code == 200, fitted.get_json()
    assert fitted.get_json()["truncation"] == "auto"
    assert fitted.get_json()["usage"]["input_tokens"] + 4 <= 256
    too_many = create(account, headers, input=turns[0]["content"], max_output_tokens=200)
    assert too_many.status_code == 422
    assert too_many.get_json()["error"]["param"] == "max_output_tokens"


@pytest.mark.parametrize(
    ("body", "param"),
    [
        ({}, "input"),
        ({"input": []}, "input"),
        ({"input": "x" * 4097}, "input"),
        ({"input": [{"role": "tool", "content": "x"}]}, "input"),
        ({"input": [{"type": "function_call_output", "call_id": "c", "output": "{}"}]}, "input"),
        ({"input": [{"type": "item_reference", "id": "msg_1"}]}, "input"),
        ({"input": "x", "max_output_tokens": 0}, "max_output_tokens"),
        ({"input": "x", "max_output_tokens": 257}, "max_output_tokens"),
        ({"input": "x", "top_p": 0}, "top_p"),
        ({"input": "x", "truncation": "sometimes"}, "truncation"),
        ({"input": "x", "metadata": {str(i): "v" for i in range(17)}}, "metadata"),
        ({"input": "x", "store": "yes"}, "store"),
        ({"input": "x", "stream_options": {"include_usage": True}}, "stream_options"),
    ],
)
def test_bad_requests_name_the_field(served, body, param):
    _, account, headers = served
    response = create(account, headers, **body)
    assert response.status_code == 400, response.get_json()
    assert response.get_json()["error"]["param"] == param


def test_input_items_pages_and_unknown_ids_are_404(served):
    _, account, headers = served
    turns = [{"role": "user", "content": str(i)} for i in range(3)]
    made = create(account, headers, input=turns, max_output_tokens=1).get_json()
    path = f"/v1/responses/{made['id']}/input_items"
    first = account.client.get(f"{path}?limit=2", headers=headers).get_json()
    assert [i["content"][0]["text"] for i in first["data"]] == ["2", "1"] and first["has_more"]
    rest = account.client.get(f"{path}?after={first['last_id']}", headers=headers).get_json()
    assert [i["content"][0]["text"] for i in rest["data"]] == ["0"] and not rest["has_more"]
    assert account.client.get(f"{path}?after=msg_nope", headers=headers).status_code == 404
    assert account.client.get("/v1/responses/resp_nope", headers=headers).status_code == 404


def test_a_stream_that_fails_after_its_first_event_says_so_in_band(served):
    """Keeping the response fails after the last piece: `error`, then `response.failed`."""
    app, account, headers = served
    body = {"input": "Once upon a time", "max_output_tokens": 6, "stream": True}
    response = account.client.post("/v1/responses", headers=headers, json=body, buffered=False)
    chunks = iter(response.response)
    first = next(chunks)  # the stream has begun: its status is sent
    with app.app_context():
        db.session.execute(sql("ALTER TABLE history RENAME TO history_away"))
        db.session.commit()
    try:
        rest = b"".join(chunks)
    finally:
        response.close()
        with app.app_context():
            db.session.execute(sql("ALTER TABLE history_away RENAME TO history"))
            db.session.commit()
    blocks = [b for b in (first + rest).decode().split("\n\n") if b]
    events = [json.loads(b.split("\ndata: ", 1)[1]) for b in blocks]
    assert [e["sequence_number"] for e in events] == list(range(len(events)))
    assert [e["type"] for e in events[-2:]] == ["error", "response.failed"]
    assert events[-2]["code"] == "internal_error" and "history_away" not in events[-2]["message"]
    failed = events[-1]["response"]
    assert failed["status"] == "failed" and failed["error"]["code"] == "internal_error"
    with app.app_context():
        record = db.session.scalars(select(InferenceRecord)).one()
    assert record.status == 500 and record.trace_id == response.headers["X-Trace-Id"]


def test_streams_count_against_the_users_stream_cap_and_a_leaver_stops_it(make_app):
    app = make_app(MODELS=MODELS, STREAMS_PER_USER=1)
    account = make_account(app)
    headers = bearer(account.mint()["token"])
    body = {"input": "Once", "max_output_tokens": 200, "stream": True}
    first = account.client.post("/v1/responses", headers=headers, json=body, buffered=False)
    try:
        next(first.response)
        second = create(account, headers, input="Once", stream=True)
        assert second.status_code == 429
        assert second.get_json()["error"]["code"] == "too_many_streams"
    finally:
        first.close()  # the client leaves: generation stops, nothing is stored
    # Greedy: a sampled story may end within its two tokens, and then it is complete.
    again = create(account, headers, input="Once", max_output_tokens=2, stream=True, temperature=0)
    assert again.status_code == 200 and read_events(again)[-1][0] == "response.incomplete"
    again.close()
    with app.app_context():
        entries = db.session.scalars(select(HistoryEntry).order_by(HistoryEntry.id)).all()
        stored = db.session.scalars(select(StoredResponse)).all()
    assert entries[0].finish_reason == "cancelled" and entries[0].completion_tokens < 200
    assert len(stored) == 1 and stored[0].status == "incomplete"
