"""The inference endpoints over HTTP: shapes, limits, metering, history, queue and cache."""

from __future__ import annotations

import base64
import json
import threading
import time
from array import array

import pytest
from sqlalchemy import select
from sqlalchemy import text as sql

from api.extensions import db
from api.runtime.registry import models
from api.usage.models import HistoryEntry, InferenceRecord
from tests.auth.conftest import bearer
from tests.tokens.conftest import make_account

MODELS = "all-minilm-l6-v2,storyteller"


@pytest.fixture
def served(make_app):
    app = make_app(MODELS=MODELS, INFERENCE_PER_USER=32)
    account = make_account(app)
    return app, account, bearer(account.mint()["token"])


def post(account, headers, path, body):
    return account.client.post(path, headers=headers, json=body)


def test_models_lists_both_models(served):
    _, account, headers = served
    data = account.client.get("/v1/models", headers=headers).get_json()["data"]
    assert [(m["id"], m["task"]) for m in data] == [
        ("all-minilm-l6-v2", "embedding"),
        ("storyteller", "text-generation"),
    ]
    assert all(m["parameters"] > 1_000_000 and m["device"] in {"cpu", "cuda"} for m in data)


def test_embeddings_shape_usage_and_base64(served):
    _, account, headers = served
    response = post(account, headers, "/v1/embeddings", {"input": ["hello world", "goodbye"]})
    body = response.get_json()
    assert response.status_code == 200 and body["object"] == "list"
    assert body["model"] == "all-minilm-l6-v2"
    assert [item["index"] for item in body["data"]] == [0, 1]
    assert len(body["data"][0]["embedding"]) == 384
    assert body["usage"]["prompt_tokens"] == body["usage"]["total_tokens"] > 0

    packed = post(
        account, headers, "/v1/embeddings", {"input": "hello world", "encoding_format": "base64"}
    )
    decoded = array("f", base64.b64decode(packed.get_json()["data"][0]["embedding"])).tolist()
    assert decoded == pytest.approx(body["data"][0]["embedding"], abs=1e-6)


@pytest.mark.parametrize(
    ("body", "field", "status"),
    [
        ({}, "input", 400),
        ({"input": []}, "input", 400),
        ({"input": ["x"] * 65}, "input", 400),
        ({"input": [1, "2"]}, "input", 400),
        ({"input": "x" * 9000}, "input", 400),
        ({"input": "word " * 1000}, "input", 422),  # under the character cap, over 256 tokens
        ({"input": "hi", "encoding_format": "int8"}, "encoding_format", 400),
        ({"input": "hi", "model": ""}, "model", 400),
        ({"input": "hi", "dimensions": 128}, "dimensions", 400),
    ],
)
def test_bad_embedding_requests_name_the_field(served, body, field, status):
    _, account, headers = served
    response = post(account, headers, "/v1/embeddings", body)
    assert response.status_code == status, response.get_json()
    error = response.get_json()["error"]
    assert field in error["details"] and error["param"] == field


def test_unknown_model_and_wrong_task_are_404(served):
    _, account, headers = served
    for model in ("gpt-9", "storyteller"):
        response = post(account, headers, "/v1/embeddings", {"input": "hi", "model": model})
        assert response.status_code == 404 and model in response.get_json()["error"]["message"]


def test_oversized_body_is_413(make_app):
    app = make_app(MODELS=MODELS, MAX_CONTENT_LENGTH=10_000)
    account = make_account(app)
    response = post(
        account, bearer(account.mint()["token"]), "/v1/embeddings", {"input": ["x" * 5000] * 3}
    )
    assert response.status_code == 413


def test_scopes_are_enforced(served):
    _, account, _ = served
    embed_only = bearer(account.mint("e", scopes=["embed"])["token"])
    generate_only = bearer(account.mint("g", scopes=["generate"])["token"])
    assert post(account, embed_only, "/v1/completions", {"prompt": "Once"}).status_code == 403
    assert post(account, generate_only, "/v1/embeddings", {"input": "Once"}).status_code == 403
    assert post(account, embed_only, "/v1/embeddings", {"input": "Once"}).status_code == 200


def test_completion_shape_seed_and_greedy(served):
    _, account, headers = served
    body = {"prompt": "Once upon a time", "max_tokens": 12, "temperature": 0.9, "seed": 7}
    first = post(account, headers, "/v1/completions", body).get_json()
    again = post(account, headers, "/v1/completions", body).get_json()
    assert first["object"] == "text_completion" and first["model"] == "storyteller"
    assert first["id"].startswith("cmpl-") and first["choices"][0]["index"] == 0
    assert first["choices"][0]["text"] == again["choices"][0]["text"] != ""
    assert first["usage"]["completion_tokens"] <= 12
    assert (
        first["usage"]["total_tokens"]
        == first["usage"]["prompt_tokens"] + first["usage"]["completion_tokens"]
    )
    greedy = {"prompt": "The king said", "max_tokens": 10, "temperature": 0}
    assert (
        post(account, headers, "/v1/completions", greedy).get_json()["choices"][0]["text"]
        == post(account, headers, "/v1/completions", greedy).get_json()["choices"][0]["text"]
    )


@pytest.mark.parametrize(
    ("change", "field", "status"),
    [
        ({"max_tokens": 257}, "max_tokens", 400),
        ({"max_tokens": 0}, "max_tokens", 400),
        ({"temperature": 2.5}, "temperature", 400),
        ({"temperature": -1}, "temperature", 400),
        ({"top_p": 0}, "top_p", 400),
        ({"top_p": 1.5}, "top_p", 400),
        ({"stop": ["a", "b", "c", "d", "e"]}, "stop", 400),
        ({"prompt": "x" * 5000}, "prompt", 400),
        ({"prompt": "word " * 400}, "prompt", 422),  # over the model's 256-token window
        ({"prompt": ["a"] * 5}, "prompt", 400),
        ({"n": 5}, "n", 400),
        ({"logprobs": 2}, "logprobs", 400),
        ({"echo": True}, "echo", 400),
        ({"suffix": "The end."}, "suffix", 400),
        ({"best_of": 3}, "best_of", 400),
        ({"frequency_penalty": 0.5}, "frequency_penalty", 400),
        ({"tools": []}, "tools", 400),
        ({"seed": -1}, "seed", 400),
        ({"stream": "yes please"}, "stream", 400),
        ({"stream": 1}, "stream", 400),  # JSON types are exact: no 0/1 booleans,
        ({"max_tokens": "5"}, "max_tokens", 400),  # no numbers in strings,
        ({"temperature": True}, "temperature", 400),  # no booleans as numbers
    ],
)
def test_bad_completion_requests_name_the_field(served, change, field, status):
    _, account, headers = served
    response = post(account, headers, "/v1/completions", {"prompt": "Once", **change})
    assert response.status_code == status, response.get_json()
    error = response.get_json()["error"]
    assert field in error["details"] and error["param"] == field


def test_stop_sequence_ends_with_stop(served):
    _, account, headers = served
    body = {"prompt": "Once upon a time", "max_tokens": 60, "temperature": 0, "stop": [","]}
    choice = post(account, headers, "/v1/completions", body).get_json()["choices"][0]
    assert choice["finish_reason"] == "stop" and "," not in choice["text"]


def read_events(response) -> list:
    events = []
    for block in response.get_data(as_text=True).split("\n\n"):
        if block.startswith("data: "):
            payload = block.removeprefix("data: ")
            events.append(payload if payload == "[DONE]" else json.loads(payload))
    return events


def test_streamed_completion_is_metered_and_kept_in_history(served):
    app, account, headers = served
    body = {
        "prompt": "Once upon a time",
        "max_tokens": 8,
        "stream": True,
        "seed": 1,
        "stream_options": {"include_usage": True},
    }
    response = post(account, headers, "/v1/completions", body)
    assert response.status_code == 200 and response.mimetype == "text/event-stream"
    events = read_events(response)
    response.close()  # as a WSGI server does when the stream ends: the usage row is written
    assert events[-1] == "[DONE]"
    chunks = [e for e in events[:-1] if e["choices"]]
    text = "".join(e["choices"][0]["text"] for e in chunks)
    assert chunks[-1]["choices"][0]["finish_reason"] in {"stop", "length"}
    usage = events[-2]["usage"]
    assert events[-2]["choices"] == [] and usage["completion_tokens"] <= 8

    whole = post(account, headers, "/v1/completions", {**body, "stream": False}).get_json()
    assert whole["choices"][0]["text"] == text  # same seed, same story

    with app.app_context():
        records = db.session.scalars(
            select(InferenceRecord)
            .where(InferenceRecord.endpoint == "completions")
            .order_by(InferenceRecord.id)
        ).all()
        entries = db.session.scalars(select(HistoryEntry).order_by(HistoryEntry.id)).all()
    assert [(r.status, r.tokens_out) for r in records] == [(200, usage["completion_tokens"])] * 2
    assert records[0].tokens_in == usage["prompt_tokens"] and records[0].model == "storyteller"
    assert [e.completion for e in entries] == [text, text]
    assert entries[0].trace_id == response.headers["X-Trace-Id"] == records[0].trace_id

    history = account.client.get("/v1/history", headers=headers).get_json()["data"]
    assert history[0]["prompt"] == "Once upon a time" and history[0]["completion"] == text
    assert (
        account.client.delete(f"/v1/history/{history[0]['id']}", headers=headers).status_code == 204
    )
    assert len(account.client.get("/v1/history", headers=headers).get_json()["data"]) == 1
    assert (
        account.client.delete(f"/v1/history/{history[0]['id']}", headers=headers).status_code == 404
    )


def test_a_stream_that_fails_after_its_200_says_so_in_band(served):
    """A failure once the stream has begun ends it with an error event and [DONE], not a cut."""
    app, account, headers = served
    body = {"prompt": "Once upon a time", "max_tokens": 20, "stream": True}
    response = account.client.post("/v1/completions", headers=headers, json=body, buffered=False)
    chunks = iter(response.response)
    first = next(chunks)  # the stream has begun: its status is sent
    with app.app_context():  # the story cannot be kept: saving it fails after the last piece
        db.session.execute(sql("ALTER TABLE history RENAME TO history_away"))
        db.session.commit()
    try:
        rest = b"".join(chunks)
    finally:
        response.close()
        with app.app_context():
            db.session.execute(sql("ALTER TABLE history_away RENAME TO history"))
            db.session.commit()

    events = [e.removeprefix("data: ") for e in (first + rest).decode().split("\n\n") if e]
    assert response.status_code == 200 and events[-1] == "[DONE]"
    error = json.loads(events[-2])["error"]
    assert (error["code"], error["type"]) == ("internal_error", "server_error")
    assert error["trace_id"] == response.headers["X-Trace-Id"]
    assert "history_away" not in error["message"]  # no internal detail reaches the client
    with open(app.config["LOG_FILE"]) as log:
        logged = [json.loads(line) for line in log]
    assert any(
        line["message"] == "unhandled exception" and line["trace.id"] == error["trace_id"]
        for line in logged
    )
    with app.app_context():
        record = db.session.scalars(select(InferenceRecord)).one()
    assert (record.status, record.trace_id) == (500, error["trace_id"])


def test_embedding_calls_are_metered_with_their_tokens(served):
    app, account, headers = served
    response = post(account, headers, "/v1/embeddings", {"input": ["one two three", "four"]})
    with app.app_context():
        record = db.session.scalars(
            select(InferenceRecord).where(InferenceRecord.endpoint == "embeddings")
        ).one()
    assert (record.status, record.model) == (200, "all-minilm-l6-v2")
    assert record.tokens_in == response.get_json()["usage"]["prompt_tokens"]


def test_full_generation_queue_answers_503_with_retry_after(make_app):
    app = make_app(MODELS=MODELS, GENERATION_SLOTS=1, GENERATION_QUEUE_SIZE=1)
    account = make_account(app)
    headers = bearer(account.mint()["token"])
    short = {"prompt": "Once", "max_tokens": 2}
    holding = account.client.post(
        "/v1/completions",
        headers=headers,
        json={"prompt": "Once", "max_tokens": 200, "stream": True},
        buffered=False,
    )
    waiter: dict = {}
    try:
        next(holding.response)  # the first chunk: the one slot is taken
        queued = threading.Thread(
            target=lambda: waiter.update(
                status=post(account, headers, "/v1/completions", short).status_code
            )
        )
        queued.start()
        with app.app_context():
            gate = models.serve("storyteller", task="text-generation").gate
            deadline = time.monotonic() + 10
            while gate.waiting < 1 and time.monotonic() < deadline:
                time.sleep(0.01)
        busy = post(account, headers, "/v1/completions", short)
        assert busy.status_code == 503
        assert int(busy.headers["Retry-After"]) >= 1
        assert 250 <= int(busy.headers["retry-after-ms"]) <= 1000  # spreads the retries
        assert busy.get_json()["error"]["code"] == "overloaded"
    finally:
        holding.close()
    queued.join(30)
    assert waiter["status"] == 200  # the queued call ran once the slot came free
    assert post(account, headers, "/v1/completions", short).status_code == 200


@pytest.mark.parametrize("counter", ["process", "redis"])
def test_stream_limit_per_user(make_app, counter, request):
    redis_settings = {}
    if counter == "redis":
        url = request.getfixturevalue("redis_url")
        request.getfixturevalue("redis_db")
        redis_settings = {"REDIS_URL": url, "RATELIMIT_STORAGE_URI": url}
    app = make_app(MODELS=MODELS, STREAMS_PER_USER=1, **redis_settings)
    account = make_account(app)
    headers = bearer(account.mint()["token"])
    first = account.client.post(
        "/v1/completions",
        headers=headers,
        json={"prompt": "Once", "max_tokens": 200, "stream": True},
        buffered=False,
    )
    try:
        next(first.response)
        second = post(account, headers, "/v1/completions", {"prompt": "Once", "stream": True})
        assert (
            second.status_code == 429 and second.get_json()["error"]["code"] == "too_many_streams"
        )
    finally:
        first.close()
    again = post(
        account, headers, "/v1/completions", {"prompt": "Once", "max_tokens": 2, "stream": True}
    )
    assert again.status_code == 200


def test_embedding_cache_returns_identical_vectors(make_app, redis_url, redis_db):
    app = make_app(MODELS=MODELS, REDIS_URL=redis_url, RATELIMIT_STORAGE_URI=redis_url)
    account = make_account(app)
    headers = bearer(account.mint()["token"])
    first = post(
        account, headers, "/v1/embeddings", {"input": ["cached sentence", "another"]}
    ).get_json()
    assert len(redis_db.keys(f"mg:emb:{account.user_id}:all-minilm-l6-v2:*")) == 2
    second = post(
        account, headers, "/v1/embeddings", {"input": ["another", "cached sentence"]}
    ).get_json()
    assert second["data"][1]["embedding"] == first["data"][0]["embedding"]
    assert second["usage"] == first["usage"]


def test_dead_redis_never_fails_an_embedding(make_app):
    dead = "redis://127.0.0.1:1/0"
    app = make_app(MODELS=MODELS, REDIS_URL=dead, RATELIMIT_STORAGE_URI=dead)
    account = make_account(app)
    response = post(
        account, bearer(account.mint()["token"]), "/v1/embeddings", {"input": "still works"}
    )
    assert response.status_code == 200


def test_concurrent_in_process_requests_do_not_mix_results(served):
    _, account, headers = served
    texts = [f"sentence number {i} about a frog" for i in range(12)]
    alone = {
        t: post(account, headers, "/v1/embeddings", {"input": t}).get_json()["data"][0]["embedding"]
        for t in texts
    }
    results: dict[str, list[float]] = {}

    def worker(text: str) -> None:
        client = account.app.test_client()
        body = client.post("/v1/embeddings", headers=headers, json={"input": text}).get_json()
        results[text] = body["data"][0]["embedding"]

    threads = [threading.Thread(target=worker, args=(t,)) for t in texts]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    for text in texts:
        assert results[text] == pytest.approx(alone[text], abs=1e-5)
