"""Infinity (a real OpenAI-compatible engine) behind modelgate: two replicas on loopback.

The official `openai` client gets the same embeddings through modelgate as from
Infinity directly; killing one replica under load moves the calls to the other, and
only the calls in flight on it fail; every call is metered.
"""

from __future__ import annotations

import os
import signal
import threading
import time
import uuid

import openai
import psycopg
import pytest
import requests

from tests.conftest import _libpq
from tests.services import gunicorn
from tests.tokens.test_live import mint_token
from tests.upstreams.engines import SERVED_NAME, infinity, require_engines

KEY = "upstream-secret-" + uuid.uuid4().hex  # Infinity's own key: modelgate must never show it
TEXTS = ["A frog prince.", "A royal amphibian sat on a lily pad.", "Tokens, budgets and traces."]


@pytest.fixture
def stack(tmp_path, live_database, redis_url, redis_db):
    require_engines()
    token, _, _ = mint_token(live_database)
    with infinity(tmp_path, KEY) as replicas:
        bases = "|".join(base for base, _ in replicas)
        env = {
            "DATABASE_URL": live_database,
            "REDIS_URL": redis_url,
            "MODELS": f"mini-up=upstream:openai:{bases} model={SERVED_NAME} timeout_s=10 "
            "key_env=INFINITY_KEY breaker_failures=2 breaker_cooldown_s=30",
            "INFINITY_KEY": KEY,
            "RATE_LIMIT_DEFAULT": "100000/minute",
            "EMBEDDING_CACHE_TTL_S": "0",  # every call goes upstream
            "INFERENCE_PER_USER": "32",  # one token's calls at once, to be merged
            "GUNICORN_THREADS": "8",
        }
        with gunicorn(env, tmp_path, workers=2) as base:
            yield base, token, replicas, tmp_path


def _rows(database_url: str) -> list[tuple[str, int, int, str]]:
    with psycopg.connect(_libpq(database_url)) as conn:
        return conn.execute(
            "SELECT model, status, tokens_in, trace_id FROM inference_records "
            "WHERE endpoint = 'embeddings'"
        ).fetchall()


def _wait_for_rows(database_url: str, count: int, timeout: float = 30.0) -> list:
    deadline = time.monotonic() + timeout
    rows = _rows(database_url)
    while len(rows) < count and time.monotonic() < deadline:
        time.sleep(0.2)
        rows = _rows(database_url)
    return rows


def test_openai_client_gets_infinitys_embeddings_through_modelgate(stack, live_database):
    base, token, replicas, tmp_path = stack
    direct = openai.OpenAI(base_url=replicas[0][0], api_key=KEY, max_retries=0)
    gateway = openai.OpenAI(base_url=f"{base}/v1", api_key=token, max_retries=0)
    expected = direct.embeddings.create(model=SERVED_NAME, input=TEXTS)
    for encoding in ({"encoding_format": "float"}, {}):  # the client's default: base64
        got = gateway.embeddings.create(model="mini-up", input=TEXTS, **encoding)
        assert got.model == "mini-up" and len(got.data) == len(TEXTS)
        for ours, theirs in zip(got.data, expected.data, strict=True):
            assert len(ours.embedding) == len(theirs.embedding) == 384
            pairs = zip(ours.embedding, theirs.embedding, strict=True)
            assert max(abs(a - b) for a, b in pairs) < 1e-5
        assert got.usage.prompt_tokens == expected.usage.prompt_tokens > 0
    assert "mini-up" in [model.id for model in gateway.models.list()]

    ready = requests.get(f"{base}/readyz", timeout=10)
    assert ready.status_code == 200
    assert ready.json()["upstreams"] == {"mini-up": {url: "ok" for url, _ in replicas}}
    metrics = requests.get(f"{base}/metrics", timeout=10).text
    for url, _ in replicas:
        assert f'dependency_up{{dependency="upstream:mini-up:{url}"}} 1.0' in metrics

    ids = requests.post(
        f"{base}/v1/embeddings",
        json={"model": "mini-up", "input": [[101, 102]]},
        headers={"Authorization": f"Bearer {token}"},
        timeout=10,
    )
    assert ids.status_code == 422 and "takes texts, not token ids" in ids.json()["error"]["message"]

    rows = _wait_for_rows(live_database, 3)
    # As for local models, a body refused while it is read is metered before a model is set.
    assert sorted((status, tokens, model or "") for model, status, tokens, _ in rows) == [
        (200, expected.usage.prompt_tokens, "mini-up"),
        (200, expected.usage.prompt_tokens, "mini-up"),
        (422, 0, ""),
    ]
    seen = ready.text + metrics + (tmp_path / "app.log").read_text()
    seen += (tmp_path / "gunicorn.stderr").read_text()
    assert KEY not in seen


def test_killing_a_replica_under_load_fails_only_its_calls_in_flight(stack, live_database):
    base, token, replicas, _ = stack
    victim_url, victim = replicas[0]
    calls: list[tuple[float, float, int]] = []  # (started, ended, status)
    stop = time.monotonic() + 6.0
    lock = threading.Lock()

    def load(worker: int) -> None:
        with requests.Session() as session:
            index = 0
            while time.monotonic() < stop:
                index += 1
                started = time.monotonic()
                try:
                    status = session.post(
                        f"{base}/v1/embeddings",
                        json={"model": "mini-up", "input": f"sentence {worker}-{index}"},
                        headers={"Authorization": f"Bearer {token}"},
                        timeout=15,
                    ).status_code
                except requests.RequestException:
                    status = 0
                with lock:
                    calls.append((started, time.monotonic(), status))

    threads = [threading.Thread(target=load, args=(n,)) for n in range(4)]
    for thread in threads:
        thread.start()
    time.sleep(2.0)
    killed_at = time.monotonic()
    os.kill(victim.pid, signal.SIGKILL)
    victim.wait()
    dead_at = time.monotonic()
    for thread in threads:
        thread.join()

    answered = [call for call in calls if call[2] == 200]
    failed = [call for call in calls if call[2] != 200]
    after = [call for call in answered if call[0] > dead_at]
    statuses = sorted({call[2] for call in failed})
    print(
        f"\nreplica kill: {len(calls)} calls, {len(answered)} answered, {len(failed)} failed "
        f"(statuses {statuses}), {len(after)} answered after the kill"
    )
    assert len(after) > 0  # the other replica took over
    # Only calls in flight on the dead replica fail: each had started before it was gone.
    assert all(call[0] <= dead_at for call in failed), (killed_at, dead_at, failed)
    assert len(failed) <= 4  # at most one per client thread was in flight

    rows = _wait_for_rows(live_database, len(calls))
    assert len(rows) == len(calls)  # every call, answered or failed, is metered
    assert sum(1 for _, status, _, _ in rows if status == 200) == len(answered)
    assert all(model == "mini-up" for model, _, _, _ in rows)
    assert all(tokens > 0 for _, status, tokens, _ in rows if status == 200)

    states = requests.get(f"{base}/readyz", timeout=10).json()["upstreams"]["mini-up"]
    assert states[victim_url] != "ok" and states[replicas[1][0]] == "ok"


def test_concurrent_calls_share_posts_and_each_gets_its_own_vector_and_tokens(stack, live_database):
    base, token, replicas, tmp_path = stack
    texts = [f"Sentence number {n} of a merged batch{'!' * n}" for n in range(24)]
    direct = requests.post(
        f"{replicas[0][0]}/embeddings",
        json={"model": SERVED_NAME, "input": texts},
        headers={"Authorization": f"Bearer {KEY}"},
        timeout=30,
    ).json()
    expected = {item["index"]: item["embedding"] for item in direct["data"]}
    assert direct["usage"]["prompt_tokens"] == sum(len(text) for text in texts)  # characters
    answers: dict[int, dict] = {}
    start = threading.Barrier(len(texts))

    def call(n: int) -> None:
        start.wait()
        answers[n] = requests.post(
            f"{base}/v1/embeddings",
            json={"model": "mini-up", "input": texts[n]},
            headers={"Authorization": f"Bearer {token}"},
            timeout=30,
        ).json()

    threads = [threading.Thread(target=call, args=(n,)) for n in range(len(texts))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    for n, text in enumerate(texts):
        (item,) = answers[n]["data"]
        assert max(abs(a - b) for a, b in zip(item["embedding"], expected[n], strict=True)) < 1e-5
        # Infinity counts characters: a call's share of a merged POST is exactly its own.
        assert answers[n]["usage"]["prompt_tokens"] == len(text)
    # 24 calls at once, at most 2 POSTs in flight per worker (1 per replica): some shared one.
    assert "upstream embedding batch" in (tmp_path / "app.log").read_text()
    rows = _wait_for_rows(live_database, len(texts))
    assert sorted(tokens for _, _, tokens, _ in rows) == sorted(len(text) for text in texts)
