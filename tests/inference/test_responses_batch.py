"""`/v1/responses` as a batch endpoint: lines answered by a real Celery worker.

Uses the stack of tests/batches/test_worker.py (gunicorn, the Redis broker, PostgreSQL),
the session's one (tests/conftest.py), and users of its own.
"""

from __future__ import annotations

from tests.batches.test_worker import (  # noqa: F401
    client,
    finished,
    read_jsonl,
    stack,
    upload,
    usage_rows,
    users,
)
from tests.services import celery_worker


def line(custom_id: str, body: dict) -> dict:
    return {"custom_id": custom_id, "method": "POST", "url": "/v1/responses", "body": body}


def test_a_responses_batch_completes_through_the_worker(stack, users):  # noqa: F811
    base, env, tmp = stack
    api = client(base, users["owner"]["token"])
    lines = [
        line("plain", {"model": "storyteller", "input": "A frog", "max_output_tokens": 4}),
        line(
            "chat",
            {
                "model": "storyteller",
                "instructions": "A tale.",
                "input": [{"role": "user", "content": [{"type": "input_text", "text": "A king"}]}],
                "max_output_tokens": 3,
            },
        ),
        line("tools", {"model": "storyteller", "input": "x", "tools": [{"type": "web_search"}]}),
        line("chain", {"input": "x", "previous_response_id": "resp_1"}),
    ]
    input_id = upload(api, lines)
    with celery_worker(env, tmp, name="responses"):
        created = api.batches.create(
            input_file_id=input_id,
            endpoint="/v1/responses",
            completion_window="24h",
            extra_headers={"X-Trace-Id": "batch-trace-responses"},
        )
        batch = finished(api, created.id)
    assert batch.status == "completed", batch
    assert (batch.request_counts.completed, batch.request_counts.failed) == (2, 2)
    answers = {
        item["custom_id"]: item["response"] for item in read_jsonl(api, batch.output_file_id)
    }
    for custom_id, tokens in (("plain", 4), ("chat", 3)):
        body = answers[custom_id]["body"]
        assert answers[custom_id]["status_code"] == 200
        assert body["object"] == "response" and body["store"] is False
        assert body["output_text"] and body["usage"]["output_tokens"] == tokens
    errors = {item["custom_id"]: item["response"] for item in read_jsonl(api, batch.error_file_id)}
    assert errors["tools"]["body"]["error"]["param"] == "tools"
    assert errors["chain"]["body"]["error"]["param"] == "previous_response_id"
    rows = usage_rows(env["DATABASE_URL"], "batch-trace-responses")
    assert sorted((row[2], row[3]) for row in rows) == [
        ("batch_responses", 200),
        ("batch_responses", 200),
        ("batch_responses", 400),
        ("batch_responses", 400),
    ]
