"""The inference API under real gunicorn, called by the official `openai` client."""

from __future__ import annotations

import re
import time
from concurrent.futures import ThreadPoolExecutor

import openai
import pytest
import redis
import requests

from tests.conftest import empty_postgres
from tests.services import gunicorn
from tests.tokens.test_live import mint_token

MODELS = "all-minilm-l6-v2,storyteller"


@pytest.fixture(scope="module")
def server(tmp_path_factory, postgres_database, redis_url):
    """One gunicorn for the module; each test signs up a user of its own (`live`)."""
    flush = redis.Redis.from_url(redis_url).flushdb
    flush()
    env = {
        "DATABASE_URL": postgres_database,
        "REDIS_URL": redis_url,
        "MODELS": MODELS,
        "RATE_LIMIT_DEFAULT": "10000/minute",
        "EMBEDDING_CACHE_TTL_S": "0",  # measure the model, not the cache
        "GUNICORN_THREADS": "32",
        "INFERENCE_PER_USER": "64",  # one user sends 32 at once here, to see them batched
    }
    with gunicorn(env, tmp_path_factory.mktemp("live"), workers=1) as base:
        yield base
    empty_postgres(postgres_database)  # the database is shared with the other tests
    flush()


@pytest.fixture
def live(server, postgres_database, request):
    token, _, _ = mint_token(postgres_database, f"{request.node.name[:40]}@example.org")
    return server, token


def test_openai_client_embeds_and_streams_and_rejects_a_wrong_key(live):
    base, token = live
    client = openai.OpenAI(base_url=f"{base}/v1", api_key=token, max_retries=0)
    embeddings = client.embeddings.create(model="all-minilm-l6-v2", input=["A frog.", "A prince."])
    assert [len(item.embedding) for item in embeddings.data] == [384, 384]
    assert embeddings.usage.prompt_tokens > 0

    stream = client.completions.create(
        model="storyteller", prompt="Once upon a time", max_tokens=12, stream=True, seed=3
    )
    chunks = list(stream)
    text = "".join(chunk.choices[0].text for chunk in chunks if chunk.choices)
    assert text.strip() and chunks[-1].choices[0].finish_reason in {"stop", "length"}

    models = [model.id for model in client.models.list()]
    assert models == ["all-minilm-l6-v2", "storyteller"]

    metrics = requests.get(f"{base}/metrics", timeout=10).text
    for name in (
        "inference_duration_seconds_count",
        "inference_queue_wait_seconds_count",
        "inference_batch_size_count",
        "inference_queue_depth",
        "inference_tokens_generated_total",
        "inference_time_to_first_token_seconds_count",
    ):
        assert f'{name}{{model="' in metrics, name

    wrong = openai.OpenAI(base_url=f"{base}/v1", api_key="mg_" + "A" * 46, max_retries=0)
    with pytest.raises(openai.AuthenticationError):
        wrong.embeddings.create(model="all-minilm-l6-v2", input="hello")


def _batch_counts(metrics: str) -> tuple[float, float]:
    """(batches run, batches of exactly one) for the embedding model."""
    total = single = 0.0
    for line in metrics.splitlines():
        if not line.startswith("inference_batch_size_") or 'model="all-minilm-l6-v2"' not in line:
            continue
        value = float(line.rsplit(" ", 1)[1])
        if line.startswith("inference_batch_size_count"):
            total = value
        elif re.search(r'le="1(\.0)?"', line):
            single = value
    return total, single


def test_concurrent_requests_are_batched_and_match_one_by_one(live):
    base, token = live
    headers = {"Authorization": f"Bearer {token}"}
    sentences = [f"The {i}th sister spun gold from straw at midnight." for i in range(32)]

    def embed(text: str) -> list[float]:
        response = requests.post(
            f"{base}/v1/embeddings", json={"input": text}, headers=headers, timeout=60
        )
        assert response.status_code == 200, response.text
        return response.json()["data"][0]["embedding"]

    one_by_one = [embed(text) for text in sentences]
    before_total, before_single = _batch_counts(requests.get(f"{base}/metrics", timeout=10).text)
    with ThreadPoolExecutor(32) as pool:
        together = list(pool.map(embed, sentences))
    total, single = _batch_counts(requests.get(f"{base}/metrics", timeout=10).text)

    batches, singles = total - before_total, single - before_single
    assert batches < 32 and batches - singles >= 1, (batches, singles)  # some batch held >1
    for alone, batched in zip(one_by_one, together, strict=True):
        assert batched == pytest.approx(alone, abs=1e-5)


def test_a_client_leaving_a_stream_stops_its_generation(live):
    base, token = live
    headers = {"Authorization": f"Bearer {token}"}
    body = {"prompt": "Once upon a time", "max_tokens": 200, "stream": True, "temperature": 0.8}
    with requests.post(
        f"{base}/v1/completions", json=body, headers=headers, stream=True, timeout=30
    ) as response:
        assert response.status_code == 200
        lines = response.iter_lines()
        assert next(line for line in lines if line.startswith(b"data: "))
    # The connection is closed: the server notices on its next write and stops.

    deadline = time.monotonic() + 20
    entries: list = []
    while not entries and time.monotonic() < deadline:
        entries = requests.get(f"{base}/v1/history", headers=headers, timeout=10).json()["data"]
        time.sleep(0.1)
    assert entries, "the cut-short completion was not recorded"
    assert entries[0]["finish_reason"] == "cancelled"
    assert entries[0]["completion_tokens"] < 200
    assert entries[0]["trace_id"]
