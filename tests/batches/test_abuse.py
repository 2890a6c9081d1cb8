"""Batches against abuse and poison, on SQLite and PostgreSQL (issue 22's findings).

What a user trying to get around the limits, or a malformed file, gets: one
definition of a line for the upload's count and the worker; output held against
the storage quota; quotas that hold under concurrent requests; poison lines that
end their batch instead of retrying forever; an attempt limit; a line's size
bounded before it is parsed; and a batch that stops when the credential that made
it could no longer make it.
"""

from __future__ import annotations

import json
import logging
import threading
import tracemalloc
from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy import func, select, text

from api.batches import service
from api.batches.models import Batch
from api.batches.runner import run_batch
from api.db_types import utcnow
from api.edge.errors import Conflict
from api.extensions import db
from api.files.service import output_file_id
from api.tokens.models import ApiToken
from api.usage.models import InferenceRecord
from tests.batches.conftest import Caller, embedding_line, make_caller

MODEL = "all-minilm-l6-v2"
SEPARATORS = ["\r", "\x0b", "\x0c", "\x1c", "\x1d", "\x1e", "\x85", "\u2028", "\u2029"]


def run(app, batch_id: str) -> str | None:
    with app.app_context():
        return run_batch(batch_id)


def batch(caller, batch_id: str) -> dict:
    return caller.client.get(f"/v1/batches/{batch_id}", headers=caller.headers).get_json()


def usage_count(app) -> int:
    with app.app_context():  # the runner writes a batch's usage rows straight to the database
        return db.session.scalar(select(func.count()).select_from(InferenceRecord)) or 0


@pytest.fixture
def model_app(make_app):
    return make_app(MODELS=MODEL)


# -- finding 1: one definition of a line ------------------------------------------------------
def test_only_a_newline_ends_a_line_for_the_quota_and_the_worker(make_app):
    app = make_app(MODELS=MODEL, BATCH_DAILY_LINES=100)
    owner = make_caller(app, "sneaky@example.org")
    for separator in SEPARATORS:
        joined = separator.join(json.dumps(embedding_line(f"r{i}")) for i in range(150))
        uploaded = owner.upload(joined).get_json()
        assert uploaded["bytes"] == len(joined.encode())
        created = owner.create(uploaded["id"]).get_json()
        assert run(app, created["id"]) == "failed", hex(ord(separator))
        failed = batch(owner, created["id"])
        assert [(e["line"], e["code"]) for e in failed["errors"]["data"]] == [
            (1, "invalid_json_line")
        ]
        assert failed["request_counts"]["completed"] == 0
    assert usage_count(app) == 0  # nothing ran beyond the one line charged for each file


def test_windows_line_endings_are_whitespace_not_lines(model_app):
    owner = make_caller(model_app, "windows@example.org")
    text_ = "\r\n".join(json.dumps(embedding_line(f"r{i}")) for i in range(3)) + "\r\n\r\n"
    file_id = owner.upload(text_).get_json()["id"]
    created = owner.create(file_id).get_json()
    assert created["request_counts"]["total"] == 3
    assert run(model_app, created["id"]) == "completed"
    assert batch(owner, created["id"])["request_counts"] == {
        "total": 3,
        "completed": 3,
        "failed": 0,
    }


# -- finding 2: output counts against the storage quota -----------------------------------------
def test_output_is_held_against_the_storage_quota(make_app):
    quota = 3_000_000
    app = make_app(MODELS=MODEL, FILES_QUOTA_BYTES=quota)
    owner = make_caller(app, "hoarder@example.org")
    # 10 lines of 64 one-character inputs: about half a megabyte of vectors per line.
    lines = [embedding_line(f"r{i}", "a") | {"body": {"input": ["a"] * 64}} for i in range(10)]
    file_id = owner.upload(lines).get_json()["id"]
    created = owner.create(file_id).get_json()
    assert run(app, created["id"]) == "failed"
    stopped = batch(owner, created["id"])
    [error] = stopped["errors"]["data"]
    assert error["code"] == "storage_quota_exceeded"
    done = stopped["request_counts"]["completed"]
    assert 0 < done < 10
    output = owner.client.get(
        f"/v1/files/{stopped['output_file_id']}/content", headers=owner.headers
    )
    assert len(output.data.decode().splitlines()) == done  # what ran is kept
    listed = owner.client.get("/v1/files", headers=owner.headers).get_json()["data"]
    assert sum(f["bytes"] for f in listed) <= quota
    # The same input run again stops at the quota too, however often it is run...
    second = owner.create(file_id).get_json()
    assert run(app, second["id"]) == "failed"
    listed = owner.client.get("/v1/files", headers=owner.headers).get_json()["data"]
    used = sum(f["bytes"] for f in listed)
    assert used <= quota
    # ...and once the quota is full, a new batch is refused at once.
    app.config["FILES_QUOTA_BYTES"] = used
    again = owner.create(file_id)
    assert again.status_code == 413
    assert again.get_json()["error"]["code"] == "storage_quota_exceeded"
    assert len(owner.client.get("/v1/batches", headers=owner.headers).get_json()["data"]) == 2


# -- finding 8: quotas hold under concurrent requests -------------------------------------------
def _all_at_once(count: int, call) -> list[int]:
    barrier = threading.Barrier(count)
    statuses: list[int] = []

    def one() -> None:
        barrier.wait()
        statuses.append(call().status_code)

    threads = [threading.Thread(target=one) for _ in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    return sorted(statuses)


def test_concurrent_batches_cannot_share_the_last_of_the_daily_quota(make_app):
    app = make_app(BATCH_DAILY_LINES=100)
    owner = make_caller(app, "racer@example.org")
    file_id = owner.upload([embedding_line(f"r{i}") for i in range(60)]).get_json()["id"]

    def create():
        return app.test_client().post(
            "/v1/batches",
            headers=owner.headers,
            json={
                "input_file_id": file_id,
                "endpoint": "/v1/embeddings",
                "completion_window": "1h",
            },
        )

    assert _all_at_once(8, create) == [200] + [429] * 7
    with app.app_context():
        charged = db.session.scalar(select(func.sum(Batch.line_count)))
    assert charged == 60


def test_concurrent_uploads_cannot_share_the_last_of_the_storage_quota(make_app):
    app = make_app(FILES_QUOTA_BYTES=2_000_000)
    owner = make_caller(app, "uploader@example.org")
    line = json.dumps(embedding_line("r", "x" * 1_300_000))

    def upload():
        return app.test_client().post(
            "/v1/files",
            headers=owner.headers,
            data={"purpose": "batch", "file": (_bytes(line), "input.jsonl")},
            content_type="multipart/form-data",
        )

    assert _all_at_once(6, upload) == [200] + [413] * 5
    listed = owner.client.get("/v1/files", headers=owner.headers).get_json()["data"]
    assert len(listed) == 1 and sum(f["bytes"] for f in listed) <= 2_000_000


def _bytes(value: str):
    import io

    return io.BytesIO(value.encode())


def test_a_user_has_a_bounded_number_of_unfinished_batches(make_app):
    app = make_app(BATCH_ACTIVE_PER_USER=2)
    owner = make_caller(app, "flooder@example.org")
    file_id = owner.upload([embedding_line("a")]).get_json()["id"]
    assert [owner.create(file_id).status_code for _ in range(2)] == [200, 200]
    refused = owner.create(file_id)
    assert refused.status_code == 429 and "Retry-After" in refused.headers
    assert refused.get_json()["error"]["code"] == "too_many_active_batches"


# -- finding 4: poison lines end their batch ----------------------------------------------------
def test_a_lone_surrogate_custom_id_fails_validation_naming_the_line(model_app):
    owner = make_caller(model_app, "surrogate@example.org")
    lines = [
        json.dumps(embedding_line("ok")),
        json.dumps(embedding_line("x")).replace("x", "\\ud800"),
    ]
    created = owner.create(owner.upload("\n".join(lines)).get_json()["id"]).get_json()
    assert run(model_app, created["id"]) == "failed"
    [problem] = batch(owner, created["id"])["errors"]["data"]
    assert problem["line"] == 2 and problem["param"] == "custom_id"


def test_a_body_nested_a_hundred_thousand_deep_is_a_bad_line(model_app):
    owner = make_caller(model_app, "deep@example.org")
    deep = '{"custom_id": "d", "method": "POST", "url": "/v1/embeddings", "body": {"input": '
    deep += "[" * 100_000 + "]" * 100_000 + "}}"
    created = owner.create(owner.upload(deep).get_json()["id"]).get_json()
    assert run(model_app, created["id"]) == "failed"
    [problem] = batch(owner, created["id"])["errors"]["data"]
    assert problem["line"] == 1 and problem["code"] == "invalid_request"


def test_a_nul_in_the_model_is_that_lines_400_and_the_batch_completes(model_app):
    owner = make_caller(model_app, "nul@example.org")
    lines = [embedding_line("nul", model="a\u0000b"), embedding_line("fine", model=MODEL)]
    created = owner.create(owner.upload(lines).get_json()["id"]).get_json()
    assert run(model_app, created["id"]) == "completed"
    done = batch(owner, created["id"])
    assert done["model"] is None
    assert done["request_counts"] == {"total": 2, "completed": 1, "failed": 1}
    errors = owner.client.get(f"/v1/files/{done['error_file_id']}/content", headers=owner.headers)
    [line] = [json.loads(raw) for raw in errors.data.decode().splitlines()]
    assert line["custom_id"] == "nul" and line["response"]["status_code"] == 400
    assert line["response"]["body"]["error"]["param"] == "model"


def _block(app, key: str, as_folder: bool) -> None:
    """A real fault: an object's path is taken by a file (or a folder), so writing it fails."""
    path = Path(app.config["FILES_DIR"]) / key
    path.parent.mkdir(parents=True, exist_ok=True)
    if as_folder:
        (path / "taken").mkdir(parents=True)
    else:
        path.write_text("taken")


def test_a_batch_that_fails_every_attempt_ends_failed_with_a_reason(make_app, caplog):
    app = make_app(MODELS=MODEL, BATCH_MAX_ATTEMPTS=3)
    owner = make_caller(app, "poison@example.org")
    secret = "the-words-only-this-user-wrote"
    created = owner.create(owner.upload([embedding_line("p", secret)]).get_json()["id"]).get_json()
    _block(app, f"batches/{created['id']}", as_folder=False)  # no part file can be written
    caplog.set_level(logging.INFO)
    results = [run(app, created["id"]) for _ in range(4)]
    assert results == [None, None, None, "failed"]
    failed = batch(owner, created["id"])
    assert failed["status"] == "failed" and failed["failed_at"]
    assert failed["errors"]["data"][0]["code"] == "batch_attempts_exhausted"
    attempts = [r for r in caplog.records if r.getMessage() == "batch attempt failed"]
    assert len(attempts) == 3 and all(r.exc_info is None for r in attempts)
    assert secret not in caplog.text and all(secret not in str(r.__dict__) for r in caplog.records)


def test_an_expired_batch_always_ends_even_when_its_files_cannot_be_written(make_app):
    app = make_app(MODELS=MODEL, BATCH_MAX_ATTEMPTS=2)
    owner = make_caller(app, "expiring@example.org")
    file_id = owner.upload([embedding_line("a"), embedding_line("b")]).get_json()["id"]
    created = owner.create(file_id, completion_window="10s").get_json()
    _block(app, f"files/{output_file_id(created['id'], 'err')}", as_folder=True)
    with app.app_context():
        row = db.session.get(Batch, created["id"])
        row.expires_at = utcnow() - timedelta(seconds=1)
        db.session.commit()
    results = [run(app, created["id"]) for _ in range(3)]
    assert results == [None, None, "expired"]
    ended = batch(owner, created["id"])
    assert ended["status"] == "expired" and ended["expired_at"]
    # Its input is free again.
    assert owner.client.delete(f"/v1/files/{file_id}", headers=owner.headers).status_code == 200


# -- finding 7: a line's size is bounded before it is parsed ------------------------------------
def test_a_huge_line_is_refused_without_parsing_it(model_app):
    owner = make_caller(model_app, "huge@example.org")
    envelope = '{"custom_id": "h", "method": "POST", "url": "/v1/embeddings", "body": {"input": ['
    huge = envelope + "{}," * (16 * 1024 * 1024 // 3) + "{}]}}"
    created = owner.create(owner.upload(huge).get_json()["id"]).get_json()
    tracemalloc.start()
    try:
        assert run(model_app, created["id"]) == "failed"
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 48 * 1024 * 1024, f"reading the file took {peak / 2**20:.0f} MiB"
    [problem] = batch(owner, created["id"])["errors"]["data"]
    assert problem["line"] == 1 and problem["code"] == "line_too_long"


# -- finding 11: the credential that made a batch must still be able to make it -----------------
def test_an_expired_tokens_batch_stops(model_app):
    owner = make_caller(model_app, "expired-token@example.org")
    created = owner.create(owner.upload([embedding_line("a")]).get_json()["id"]).get_json()
    with model_app.app_context():
        token = db.session.get(ApiToken, owner.token_id)
        token.expires_at = utcnow() - timedelta(seconds=1)
        db.session.commit()
    assert run(model_app, created["id"]) == "cancelled"
    with model_app.app_context():
        assert db.session.get(Batch, created["id"]).completed == 0


def test_a_sessions_batch_stops_when_the_session_ends(model_app):
    from tests.tokens.conftest import make_account

    account = make_account(model_app, "session-batch@example.org")
    web = Caller(model_app, account.client, account.session, token_id=0)  # the signed-in web app
    created = web.create(web.upload([embedding_line("a")]).get_json()["id"]).get_json()
    assert account.client.post("/v1/auth/logout", headers=account.session).status_code == 204
    assert run(model_app, created["id"]) == "cancelled"
    with model_app.app_context():
        assert db.session.get(Batch, created["id"]).completed == 0


# -- cancel: only from the status it read -------------------------------------------------------
def test_cancel_does_not_overwrite_a_status_the_worker_committed(model_app):
    owner = make_caller(model_app, "late-cancel@example.org")
    created = owner.create(owner.upload([embedding_line("a")]).get_json()["id"]).get_json()
    with model_app.app_context():
        seen = db.session.get(Batch, created["id"])  # this session now holds "validating"
        assert seen.status == "validating"
        with db.engine.begin() as other:  # the worker, on its own connection, finishes it
            other.execute(
                text("UPDATE batches SET status = 'completed' WHERE id = :id"),
                {"id": created["id"]},
            )
        with pytest.raises(Conflict):
            service.cancel_batch(seen.user_id, created["id"])
    assert batch(owner, created["id"])["status"] == "completed"
