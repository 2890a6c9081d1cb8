"""Batches in process: what the API answers, and what a run writes, on SQLite and PostgreSQL.

The runner is called directly (the Celery worker is in test_worker.py). Covered:
a file that breaks the rules fails with each line's number; a bad body lands in
the error file while the rest completes; every line metered once; expiry; cancel;
the daily quota; scopes; and the per-minute budget left alone by batch lines.
"""

from __future__ import annotations

import json
import threading
import time
from datetime import timedelta

import pytest
from sqlalchemy import select

from api.batches.models import Batch
from api.batches.runner import run_batch
from api.batches.tasks import recover_batches_task
from api.db_types import utcnow
from api.extensions import db
from api.files.service import purge_expired_files
from api.usage.models import InferenceRecord
from tests.batches.conftest import embedding_line, make_caller

MODEL = "all-minilm-l6-v2"


@pytest.fixture
def model_app(make_app):
    return make_app(MODELS=MODEL)


@pytest.fixture
def owner(model_app):
    return make_caller(model_app, "owner@example.org")


def run(app, batch_id: str) -> str | None:
    with app.app_context():
        return run_batch(batch_id)


def content(caller, file_id: str) -> list[dict]:
    answer = caller.client.get(f"/v1/files/{file_id}/content", headers=caller.headers)
    return [json.loads(line) for line in answer.data.decode().splitlines()]


def batch(caller, batch_id: str) -> dict:
    return caller.client.get(f"/v1/batches/{batch_id}", headers=caller.headers).get_json()


def test_a_bad_line_goes_to_the_error_file_and_the_rest_completes(model_app, owner):
    lines = [embedding_line(f"ok-{i}", f"Sentence {i}.") for i in range(5)]
    lines.insert(2, embedding_line("too-long", "word " * 600))
    lines.insert(4, embedding_line("no-model", model="nope"))
    file_id = owner.upload(lines).get_json()["id"]
    created = owner.client.post(
        "/v1/batches",
        headers={**owner.headers, "X-Trace-Id": "trace-of-the-batch"},
        json={"input_file_id": file_id, "endpoint": "/v1/embeddings", "completion_window": "24h"},
    ).get_json()
    assert created["status"] == "validating" and created["request_counts"]["total"] == 7
    assert run(model_app, created["id"]) == "completed"
    done = batch(owner, created["id"])
    assert done["request_counts"] == {"total": 7, "completed": 5, "failed": 2}
    assert done["model"] is None and done["completed_at"] >= done["in_progress_at"]
    output = content(owner, done["output_file_id"])
    assert [line["custom_id"] for line in output] == [f"ok-{i}" for i in range(5)]
    assert all(len(line["response"]["body"]["data"][0]["embedding"]) == 384 for line in output)
    errors = {line["custom_id"]: line["response"] for line in content(owner, done["error_file_id"])}
    assert errors["too-long"]["status_code"] == 422
    assert errors["too-long"]["body"]["error"]["param"] == "input"
    assert errors["no-model"]["status_code"] == 404
    assert errors["no-model"]["body"]["error"]["trace_id"] == "trace-of-the-batch"
    with model_app.app_context():
        rows = db.session.scalars(select(InferenceRecord)).all()
    assert len(rows) == 7 and {row.trace_id for row in rows} == {"trace-of-the-batch"}
    assert {row.token_id for row in rows} == {owner.token_id}
    assert sorted(row.status for row in rows) == [200] * 5 + [404, 422]
    assert run(model_app, created["id"]) is None  # ended: a late message changes nothing


def test_a_broken_file_fails_the_batch_naming_each_line(model_app, owner):
    good = json.dumps(embedding_line("a"))
    text = "\n".join(
        [
            good,
            "{not json",
            good,  # custom_id "a" again
            json.dumps({**embedding_line("b"), "url": "/v1/completions"}),
            json.dumps({"custom_id": "c", "method": "GET", "url": "/v1/embeddings", "body": {}}),
        ]
    )
    created = owner.create(owner.upload(text).get_json()["id"]).get_json()
    assert run(model_app, created["id"]) == "failed"
    failed = batch(owner, created["id"])
    assert failed["status"] == "failed" and failed["failed_at"]
    problems = [(e["line"], e["code"]) for e in failed["errors"]["data"]]
    assert problems == [
        (2, "invalid_json_line"),
        (3, "duplicate_custom_id"),
        (4, "invalid_url"),
        (5, "invalid_method"),
    ]
    assert failed["output_file_id"] is None and failed["error_file_id"] is None


def test_expired_batch_keeps_nothing_undone_silently(model_app, owner):
    lines = [embedding_line(f"r{i}") for i in range(3)]
    created = owner.create(owner.upload(lines).get_json()["id"], completion_window="10s").get_json()
    assert created["expires_at"] - created["created_at"] == 10
    with model_app.app_context():
        row = db.session.get(Batch, created["id"])
        row.expires_at = utcnow() - timedelta(seconds=1)
        db.session.commit()
    assert run(model_app, created["id"]) == "expired"
    expired = batch(owner, created["id"])
    assert expired["status"] == "expired" and expired["expired_at"]
    assert expired["request_counts"] == {"total": 3, "completed": 0, "failed": 3}
    errors = content(owner, expired["error_file_id"])
    assert [line["error"]["code"] for line in errors] == ["batch_expired"] * 3


def test_cancel_before_a_worker_starts(model_app, owner):
    created = owner.create(owner.upload([embedding_line("a")]).get_json()["id"]).get_json()
    cancel = owner.client.post(f"/v1/batches/{created['id']}/cancel", headers=owner.headers)
    assert cancel.status_code == 200 and cancel.get_json()["status"] == "cancelling"
    assert run(model_app, created["id"]) == "cancelled"
    cancelled = batch(owner, created["id"])
    assert cancelled["cancelled_at"] and cancelled["output_file_id"] is None
    again = owner.client.post(f"/v1/batches/{created['id']}/cancel", headers=owner.headers)
    assert again.status_code == 409
    assert again.get_json()["error"]["code"] == "batch_not_cancellable"


def test_input_in_use_cannot_be_deleted(model_app, owner):
    file_id = owner.upload([embedding_line("a")]).get_json()["id"]
    created = owner.create(file_id).get_json()
    busy = owner.client.delete(f"/v1/files/{file_id}", headers=owner.headers)
    assert busy.status_code == 409 and busy.get_json()["error"]["details"]["batch_id"]
    run(model_app, created["id"])
    assert owner.client.delete(f"/v1/files/{file_id}", headers=owner.headers).status_code == 200


def test_daily_quota_counts_lines_not_calls(make_app):
    app = make_app(BATCH_DAILY_LINES=5)
    owner = make_caller(app, "quota@example.org")
    three = owner.upload([embedding_line(f"r{i}") for i in range(3)]).get_json()["id"]
    assert owner.create(three).status_code == 200
    refused = owner.create(three)
    assert refused.status_code == 429
    error = refused.get_json()["error"]
    assert error["code"] == "batch_quota_exceeded"
    assert error["details"] == {"quota": 5, "used": 3, "requested": 3}
    assert 0 < int(refused.headers["Retry-After"]) <= 86400
    listed = owner.client.get("/v1/batches", headers=owner.headers).get_json()["data"]
    assert len(listed) == 1


def test_scopes_and_bad_requests(make_app):
    app = make_app()
    embedder = make_caller(app, "embedder@example.org", scopes=["embed", "batch"])
    file_id = embedder.upload([embedding_line("a")]).get_json()["id"]
    refused = embedder.create(file_id, endpoint="/v1/completions")
    assert refused.status_code == 403
    assert refused.get_json()["error"]["details"] == {"required_scope": "generate"}
    for change, param, status in (
        ({"endpoint": "/v1/images"}, "endpoint", 400),
        ({"completion_window": "2d"}, "completion_window", 400),
        ({"completion_window": "1s"}, "completion_window", 422),
        ({"completion_window": "169h"}, "completion_window", 422),
        ({"metadata": {"k" * 65: "v"}}, "metadata", 422),
        ({"metadata": {str(i): "v" for i in range(17)}}, "metadata", 422),
        ({"metadata": {"k": "v" * 513}}, "metadata", 400),
    ):
        answer = embedder.client.post(
            "/v1/batches",
            headers=embedder.headers,
            json={
                "input_file_id": file_id,
                "endpoint": "/v1/embeddings",
                "completion_window": "24h",
                **change,
            },
        )
        assert answer.status_code == status, change
        assert answer.get_json()["error"]["param"] == param
    missing = embedder.create("file-doesnotexist")
    assert missing.status_code == 404 and missing.get_json()["error"]["code"] == "file_not_found"
    unknown = embedder.client.get("/v1/batches/batch_nope", headers=embedder.headers)
    assert unknown.status_code == 404


def test_batch_lines_leave_the_per_minute_budget_alone(make_app):
    app = make_app(MODELS=MODEL, RATE_LIMIT_DEFAULT="10/minute")
    owner = make_caller(app, "budget@example.org")
    created = owner.create(
        owner.upload([embedding_line(f"r{i}") for i in range(25)]).get_json()["id"]
    ).get_json()
    before = owner.client.get("/v1/models", headers=owner.headers)
    assert run(app, created["id"]) == "completed"
    after = owner.client.get("/v1/models", headers=owner.headers)
    assert after.status_code == 200
    remaining = int(before.headers["X-RateLimit-Remaining"])
    assert int(after.headers["X-RateLimit-Remaining"]) == remaining - 1


def test_over_fifty_thousand_lines_fails_validation(model_app, owner):
    text = "\n".join(json.dumps(embedding_line(f"r{i}")) for i in range(50_001))
    created = owner.create(owner.upload(text).get_json()["id"])
    assert created.status_code == 200
    assert run(model_app, created.get_json()["id"]) == "failed"
    [problem] = batch(owner, created.get_json()["id"])["errors"]["data"]
    assert problem["code"] == "too_many_requests" and problem["line"] == 50_001


def test_a_broker_that_is_down_only_delays_the_batch(make_app):
    app = make_app(MODELS=MODEL, CELERY_BROKER_URL="redis://127.0.0.1:9/0")  # nothing listens
    owner = make_caller(app, "broker@example.org")
    file_id = owner.upload([embedding_line("a"), embedding_line("b")]).get_json()["id"]
    started = time.monotonic()
    created = owner.create(file_id)
    assert created.status_code == 200 and time.monotonic() - started < 10
    batch_id = created.get_json()["id"]
    assert batch(owner, batch_id)["status"] == "validating"  # stored, waiting for a worker
    with app.app_context():  # past the queue grace, recovery hands it to a worker again
        row = db.session.get(Batch, batch_id)
        row.lease_expires_at = utcnow() - timedelta(seconds=1)
        db.session.commit()
        assert recover_batches_task.run() == [batch_id]
    assert run(app, batch_id) == "completed"
    assert batch(owner, batch_id)["request_counts"]["completed"] == 2


def test_an_expired_input_waits_for_its_batch(model_app, owner):
    file_id = owner.upload(
        [embedding_line("a")],
        **{"expires_after[anchor]": "created_at", "expires_after[seconds]": "3600"},
    ).get_json()["id"]
    batch_id = owner.create(file_id).get_json()["id"]
    later = utcnow() + timedelta(hours=2)
    with model_app.app_context():
        assert purge_expired_files(later) == 0  # a batch still reads it
    assert run(model_app, batch_id) == "completed"
    with model_app.app_context():
        assert purge_expired_files(later) == 1


def test_cancel_mid_chunk_keeps_only_finished_lines(model_app, owner):
    # Long texts: a chunk takes seconds, so the cancel lands inside one, not between two.
    story = " ".join(["the miller's daughter spun the straw into gold"] * 12)
    lines = [embedding_line(f"r{i}", f"{i}: {story}") for i in range(1024)]
    batch_id = owner.create(owner.upload(lines).get_json()["id"]).get_json()["id"]
    ended: list = []
    worker = threading.Thread(target=lambda: ended.append(run(model_app, batch_id)))
    worker.start()
    deadline = time.monotonic() + 120
    while batch(owner, batch_id)["request_counts"]["completed"] < 256:
        assert time.monotonic() < deadline and worker.is_alive()
        time.sleep(0.05)
    cancel = owner.client.post(f"/v1/batches/{batch_id}/cancel", headers=owner.headers)
    assert cancel.status_code == 200
    worker.join(60)
    assert ended == ["cancelled"]
    cancelled = batch(owner, batch_id)
    done = cancelled["request_counts"]["completed"]
    assert 256 <= done < 1024 and cancelled["request_counts"]["failed"] == 0
    assert cancelled["error_file_id"] is None  # a chunk cut short is not a chunk of failures
    output = content(owner, cancelled["output_file_id"])
    assert len(output) == done and len({line["custom_id"] for line in output}) == done
