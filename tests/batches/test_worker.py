"""Batches end to end, as the official `openai` client sees them: gunicorn, a real Celery worker.

gunicorn (PostgreSQL, Redis) takes the uploads and batches; `celery -A
wsgi:celery_app worker -B` on the real Redis broker runs them through the real
models. Covered: upload, create, poll, download; vectors equal to the embeddings
endpoint's; a bad line in the error file while the rest completes; each line
metered under the batch's trace id and token; cancel; list; another user's 404s;
a worker SIGKILLed mid-batch, after which a new worker finishes the batch
with exactly one output line per input line; and one user's flood of batches,
beside which another user's small batch still finishes within its window.
"""

from __future__ import annotations

import json
import os
import signal
import time
from collections.abc import Callable

import openai
import psycopg
import pytest
import redis

from api import create_app
from api.config import TestConfig
from api.extensions import db
from tests.conftest import BATCH_BROKER, _libpq
from tests.services import celery_worker, gunicorn
from tests.tokens.conftest import make_account

BROKER = BATCH_BROKER


@pytest.fixture(scope="module")
def stack(batch_stack):
    """The session's batch server (tests/conftest.py), its queue emptied for this module."""
    redis.Redis.from_url(BROKER).flushdb()
    return batch_stack


@pytest.fixture(scope="module")
def users(request, stack):
    """This module's two users, in the batch server's own database."""
    app = create_app(TestConfig(SQLALCHEMY_DATABASE_URI=stack[1]["DATABASE_URL"]))
    module = request.module.__name__.rsplit(".", 1)[-1].replace("_", "-")
    owner = make_account(app, f"batcher-{module}@example.org")
    other = make_account(app, f"stranger-{module}@example.org")
    minted = {
        "owner": owner.mint("batches", scopes=["embed", "generate", "batch"]),
        "other": other.mint("other", scopes=["embed", "generate", "batch"]),
    }
    with app.app_context():
        db.engine.dispose()
    return minted


def client(base: str, token: str) -> openai.OpenAI:
    return openai.OpenAI(base_url=f"{base}/v1", api_key=token, max_retries=0)


def wait_for(check: Callable[[], object], timeout: float, what: str) -> object:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        result = check()
        if result:
            return result
        time.sleep(0.25)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}")


def embedding_lines(count: int, prefix: str = "frog") -> list[dict]:
    return [
        {
            "custom_id": f"{prefix}-{i}",
            "method": "POST",
            "url": "/v1/embeddings",
            "body": {
                "model": "all-minilm-l6-v2",
                "input": f"The {prefix} number {i} sat by the well.",
            },
        }
        for i in range(count)
    ]


def upload(api: openai.OpenAI, lines: list[dict | str]) -> str:
    text = "\n".join(line if isinstance(line, str) else json.dumps(line) for line in lines)
    return api.files.create(file=("input.jsonl", text.encode()), purpose="batch").id


def read_jsonl(api: openai.OpenAI, file_id: str) -> list[dict]:
    return [json.loads(line) for line in api.files.content(file_id).text.splitlines()]


def finished(api: openai.OpenAI, batch_id: str, timeout: float = 120):
    return wait_for(
        lambda: (
            (b := api.batches.retrieve(batch_id)).status
            in {"completed", "failed", "cancelled", "expired"}
            and b
        ),
        timeout,
        f"batch {batch_id} to end",
    )


def usage_rows(database: str, trace_id: str) -> list[tuple]:
    with psycopg.connect(_libpq(database)) as conn:
        return conn.execute(
            "SELECT request_id, token_id, endpoint, status FROM inference_records "
            "WHERE trace_id = %s",
            (trace_id,),
        ).fetchall()


def test_embeddings_batch_with_the_openai_client(stack, users):
    base, env, tmp = stack
    api = client(base, users["owner"]["token"])
    lines = embedding_lines(40)
    bad = {"custom_id": "bad", "method": "POST", "url": "/v1/embeddings", "body": {"input": 7}}
    input_id = upload(api, [*lines[:20], bad, *lines[20:]])
    with celery_worker(env, tmp):
        created = api.batches.create(
            input_file_id=input_id,
            endpoint="/v1/embeddings",
            completion_window="24h",
            metadata={"run": "docs"},
            extra_headers={"X-Trace-Id": "batch-trace-embeddings"},
        )
        assert created.status == "validating" and created.metadata == {"run": "docs"}
        batch = finished(api, created.id)
    assert batch.status == "completed", batch
    assert (batch.request_counts.total, batch.request_counts.completed) == (41, 40)
    assert batch.request_counts.failed == 1

    output = read_jsonl(api, batch.output_file_id)
    assert sorted(line["custom_id"] for line in output) == sorted(
        want["custom_id"] for want in lines
    )
    direct = api.embeddings.create(
        model="all-minilm-l6-v2",
        input=[line["body"]["input"] for line in lines],
        encoding_format="float",
    )
    by_id = {line["custom_id"]: line for line in output}
    for i, line in enumerate(lines):
        answer = by_id[line["custom_id"]]["response"]
        assert answer["status_code"] == 200
        vector = answer["body"]["data"][0]["embedding"]
        assert vector == pytest.approx(direct.data[i].embedding, abs=1e-5)

    [error] = read_jsonl(api, batch.error_file_id)
    assert error["custom_id"] == "bad" and error["response"]["status_code"] == 400
    assert error["response"]["body"]["error"]["param"] == "input"

    rows = usage_rows(env["DATABASE_URL"], "batch-trace-embeddings")
    assert len(rows) == 41 and len({row[0] for row in rows}) == 41
    assert {row[1] for row in rows} == {users["owner"]["id"]}
    assert {row[2] for row in rows} == {"batch_embeddings"}
    assert sorted(row[3] for row in rows).count(200) == 40

    assert created.id in [b.id for b in api.batches.list(limit=10)]
    stranger = client(base, users["other"]["token"])
    for attempt in (
        lambda: stranger.batches.retrieve(created.id),
        lambda: stranger.batches.cancel(created.id),
        lambda: stranger.files.retrieve(batch.output_file_id),
        lambda: stranger.files.content(input_id),
        lambda: stranger.files.delete(input_id),
    ):
        with pytest.raises(openai.NotFoundError):
            attempt()
    assert created.id not in [b.id for b in stranger.batches.list()]


def test_cancel_keeps_finished_lines(stack, users):
    base, env, tmp = stack
    api = client(base, users["owner"]["token"])
    stories = [
        {
            "custom_id": f"story-{i}",
            "method": "POST",
            "url": "/v1/completions",
            "body": {
                "model": "storyteller",
                "prompt": "Once upon a time",
                "max_tokens": 60,
                "seed": i,
            },
        }
        for i in range(40)
    ]
    batch_id = api.batches.create(
        input_file_id=upload(api, stories), endpoint="/v1/completions", completion_window="24h"
    ).id
    with celery_worker(env, tmp):
        wait_for(
            lambda: api.batches.retrieve(batch_id).request_counts.completed >= 2, 90, "2 stories"
        )
        assert api.batches.cancel(batch_id).status == "cancelling"
        asked = time.monotonic()
        batch = finished(api, batch_id, timeout=30)
        took = time.monotonic() - asked
    assert batch.status == "cancelled" and took < 10, (batch.status, took)
    done = batch.request_counts.completed
    assert 2 <= done < 40
    output = read_jsonl(api, batch.output_file_id)
    assert len(output) == done == len({line["custom_id"] for line in output})
    assert all(line["response"]["body"]["choices"][0]["text"] for line in output)
    with pytest.raises(openai.ConflictError):
        api.batches.cancel(batch_id)


def test_worker_killed_mid_batch_another_finishes_it(stack, users):
    base, env, tmp = stack
    api = client(base, users["owner"]["token"])
    lines = embedding_lines(2500, prefix="toad")
    batch_id = api.batches.create(
        input_file_id=upload(api, lines),
        endpoint="/v1/embeddings",
        completion_window="24h",
        extra_headers={"X-Trace-Id": "batch-trace-killed"},
    ).id
    with celery_worker(env, tmp, name="first") as first:
        wait_for(
            lambda: api.batches.retrieve(batch_id).request_counts.completed >= 256,
            120,
            "the first chunk",
        )
        os.killpg(first.pid, signal.SIGKILL)
        first.wait()
    halfway = api.batches.retrieve(batch_id)
    assert halfway.status == "in_progress" and halfway.request_counts.completed < 2500
    with celery_worker(env, tmp, name="second"):
        batch = finished(api, batch_id, timeout=180)
    assert batch.status == "completed", batch
    assert batch.request_counts.completed == 2500 and batch.request_counts.failed == 0
    output = read_jsonl(api, batch.output_file_id)
    assert len(output) == 2500
    assert sorted(line["custom_id"] for line in output) == sorted(
        want["custom_id"] for want in lines
    )
    rows = usage_rows(env["DATABASE_URL"], "batch-trace-killed")
    assert len(rows) == 2500 and len({row[0] for row in rows}) == 2500


def test_one_users_flood_does_not_starve_another_users_small_batch(stack, users):
    """Three big batches queued first; another user's one line, due in 20 s, still finishes."""
    base, env, tmp = stack
    flooder = client(base, users["owner"]["token"])
    other = client(base, users["other"]["token"])
    flood_file = upload(flooder, embedding_lines(6000, prefix="flood"))
    floods = [
        flooder.batches.create(
            input_file_id=flood_file, endpoint="/v1/embeddings", completion_window="24h"
        ).id
        for _ in range(3)
    ]
    small_file = upload(other, embedding_lines(1, prefix="small"))
    with celery_worker(env, tmp, name="fair"):
        wait_for(
            lambda: flooder.batches.retrieve(floods[0]).request_counts.completed >= 256,
            120,
            "the flood to start",
        )
        small = other.batches.create(
            input_file_id=small_file, endpoint="/v1/embeddings", completion_window="20s"
        )
        done = finished(other, small.id, timeout=30)
        took = done.completed_at - small.created_at if done.completed_at else None
        flood_left = sum(
            flooder.batches.retrieve(b).status in {"validating", "in_progress"} for b in floods
        )
        for batch_id in floods:
            flooder.batches.cancel(batch_id)
        for batch_id in floods:
            finished(flooder, batch_id, timeout=60)
    print(f"the small batch ended {done.status} after {took} s; {flood_left} flood batches left")
    assert done.status == "completed" and took is not None and took <= 20
    assert flood_left >= 1  # it did not just wait for the flood to end


def test_without_redis_the_queue_is_a_folder(tmp_path):
    """`make run`'s defaults: SQLite, no Redis; the worker still runs batches."""
    from tests.conftest import migrate

    database = f"sqlite:///{tmp_path / 'dev.db'}"
    migrate(database)
    app = create_app(TestConfig(SQLALCHEMY_DATABASE_URI=database))
    token = make_account(app, "dev@example.org").mint("dev", scopes=["embed", "batch"])["token"]
    with app.app_context():
        db.engine.dispose()
    env = {
        "DATABASE_URL": database,
        "MODELS": "all-minilm-l6-v2",
        "CELERY_BROKER_DIR": str(tmp_path / "queue"),  # one folder for both
        "USAGE_SPOOL_DIR": "",
    }
    with gunicorn(env, tmp_path, workers=1) as base, celery_worker(env, tmp_path):
        api = client(base, token)
        batch_id = api.batches.create(
            input_file_id=upload(api, embedding_lines(3)),
            endpoint="/v1/embeddings",
            completion_window="24h",
        ).id
        batch = finished(api, batch_id, timeout=90)
    assert batch.status == "completed" and batch.request_counts.completed == 3
    assert (tmp_path / "queue" / "control").is_dir()  # the broker is a folder, not Redis
