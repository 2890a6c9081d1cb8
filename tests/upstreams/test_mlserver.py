"""Seldon MLServer (a real Open Inference Protocol engine) behind modelgate: two replicas.

MLServer serves `doubler` (tests/upstreams/mlserver_model, a model of its own runtime):
Triton's client, `tritonclient[http]`, gets the same metadata and outputs through
modelgate as from MLServer directly, with a modelgate token; without one, 401. Killing
one replica under load moves the calls to the other; only the calls in flight on it
fail, and every call is metered with its batch size as units.
"""

from __future__ import annotations

import os
import signal
import threading
import time

import numpy as np
import psycopg
import pytest
import requests
from tritonclient.http import InferenceServerClient, InferInput, InferRequestedOutput
from tritonclient.utils import InferenceServerException

from api import config, create_app
from api.extensions import db
from tests.conftest import _libpq
from tests.services import gunicorn
from tests.tokens.conftest import make_account
from tests.upstreams.engines import mlserver, require_mlserver

BATCH = np.array([[1.0, 2.0, 3.0], [4.0, 5.5, -6.0]], dtype=np.float32)


def mint_tokens(database_url: str) -> tuple[str, str]:
    """A `predict` token and an `embed`-only one of a new user in the live database."""
    app = create_app(config.TestConfig(SQLALCHEMY_DATABASE_URI=database_url))
    account = make_account(app)
    tokens = account.mint(scopes=("predict",))["token"], account.mint(scopes=("embed",))["token"]
    with app.app_context():
        db.engine.dispose()
    return tokens


@pytest.fixture
def stack(tmp_path, live_database, redis_url, redis_db):
    require_mlserver()
    token, embed_only = mint_tokens(live_database)
    with mlserver(tmp_path) as replicas:
        bases = "|".join(base for base, _ in replicas)
        env = {
            "DATABASE_URL": live_database,
            "REDIS_URL": redis_url,
            "MODELS": f"tabular=upstream:oip:{bases} model=doubler timeout_s=10 "
            "breaker_failures=2 breaker_cooldown_s=30",
            "RATE_LIMIT_DEFAULT": "100000/minute",
            "GUNICORN_THREADS": "8",
        }
        with gunicorn(env, tmp_path, workers=2) as base:
            yield base, token, replicas, embed_only


def _rows(database_url: str, endpoint: str = "oip_infer") -> list[tuple[str, int, int, str]]:
    with psycopg.connect(_libpq(database_url)) as conn:
        return conn.execute(
            "SELECT model, status, units, trace_id FROM inference_records WHERE endpoint = %s",
            (endpoint,),
        ).fetchall()


def _wait_for_rows(
    database_url: str, count: int, endpoint: str = "oip_infer", timeout: float = 30.0
) -> list:
    """The endpoint's rows once `count` are there: each worker writes its own, in its own time."""
    deadline = time.monotonic() + timeout
    rows = _rows(database_url, endpoint)
    while len(rows) < count and time.monotonic() < deadline:
        time.sleep(0.2)
        rows = _rows(database_url, endpoint)
    return rows


def _infer(client: InferenceServerClient, model: str, headers: dict[str, str] | None = None):
    tensor = InferInput("x", list(BATCH.shape), "FP32")
    tensor.set_data_from_numpy(BATCH, binary_data=False)  # MLServer's REST takes JSON tensors
    outputs = [InferRequestedOutput(name, binary_data=False) for name in ("doubled", "row_sum")]
    answer = client.infer(model, [tensor], outputs=outputs, headers=headers)
    return answer.as_numpy("doubled"), answer.as_numpy("row_sum")


def test_tritonclient_gets_mlservers_outputs_through_modelgate(stack, live_database):
    base, token, replicas, embed_only = stack
    direct = InferenceServerClient(url=replicas[0][0].removeprefix("http://"))
    gateway = InferenceServerClient(url=base.removeprefix("http://"))
    auth = {"Authorization": f"Bearer {token}"}

    expected = _infer(direct, "doubler")
    np.testing.assert_array_equal(expected[0], BATCH * 2)
    for _ in range(2):  # both replicas, in turn
        got = _infer(gateway, "tabular", headers=dict(auth))
        for ours, theirs in zip(got, expected, strict=True):
            np.testing.assert_array_equal(ours, theirs)

    meta = gateway.get_model_metadata("tabular", headers=dict(auth))
    theirs = direct.get_model_metadata("doubler")
    assert meta["name"] == "tabular"
    assert meta["inputs"] == theirs["inputs"] and meta["outputs"] == theirs["outputs"]
    assert gateway.is_model_ready("tabular", headers=dict(auth))

    with pytest.raises(InferenceServerException) as refused:
        _infer(gateway, "tabular")
    assert refused.value.status() == "401"
    with pytest.raises(InferenceServerException) as lacking:
        _infer(gateway, "tabular", headers={"Authorization": f"Bearer {embed_only}"})
    assert lacking.value.status() == "403"
    unauthenticated = requests.get(f"{base}/v2/models/tabular", timeout=5)
    assert unauthenticated.status_code == 401 and isinstance(unauthenticated.json()["error"], str)

    wrong = requests.post(  # MLServer has no version 9: its 404, in the protocol's shape
        f"{base}/v2/models/tabular/versions/9/infer",
        json={"inputs": [{"name": "x", "datatype": "FP32", "shape": [1, 1], "data": [1]}]},
        headers=auth,
        timeout=5,
    )
    assert wrong.status_code == 404 and "upstream" in wrong.json()["error"], wrong.text

    one = requests.post(  # /v1's predict: named inputs, one item
        f"{base}/v1/models/tabular/predict", json={"x": [1, 2, 3]}, headers=auth, timeout=10
    )
    assert one.status_code == 200, one.text
    assert one.json()["outputs"] == {"doubled": [2.0, 4.0, 6.0], "row_sum": [6.0]}
    assert one.json()["usage"] == {"units": 1, "unit": "items"}

    ready = requests.get(f"{base}/readyz", timeout=10)
    assert ready.json()["upstreams"] == {"tabular": {url: "ok" for url, _ in replicas}}
    metrics = requests.get(f"{base}/metrics", timeout=10).text
    for url, _ in replicas:
        assert f'dependency_up{{dependency="upstream:tabular:{url}"}} 1.0' in metrics

    rows = _wait_for_rows(live_database, 4)
    assert sorted((status, model or "", units) for model, status, units, _ in rows) == [
        (200, "tabular", 2),
        (200, "tabular", 2),
        (403, "", 0),  # refused before a model is set, as for local models
        (404, "tabular", 0),
    ]
    assert all(trace for _, _, _, trace in rows)
    predicted = _wait_for_rows(live_database, 1, endpoint="predict")
    assert [row[:3] for row in predicted] == [("tabular", 200, 1)]


def test_killing_an_mlserver_replica_under_load_fails_only_its_calls_in_flight(
    stack, live_database
):
    base, token, replicas, _ = stack
    victim_url, victim = replicas[0]
    calls: list[tuple[float, float, int]] = []  # (started, ended, status)
    stop = time.monotonic() + 6.0
    lock = threading.Lock()
    body = {"inputs": [{"name": "x", "datatype": "FP32", "shape": [2, 3], "data": [1] * 6}]}

    def load() -> None:
        with requests.Session() as session:
            while time.monotonic() < stop:
                started = time.monotonic()
                try:
                    status = session.post(
                        f"{base}/v2/models/tabular/infer",
                        json=body,
                        headers={"Authorization": f"Bearer {token}"},
                        timeout=15,
                    ).status_code
                except requests.RequestException:
                    status = 0
                with lock:
                    calls.append((started, time.monotonic(), status))

    threads = [threading.Thread(target=load) for _ in range(4)]
    for thread in threads:
        thread.start()
    time.sleep(2.0)
    os.kill(victim.pid, signal.SIGKILL)
    victim.wait()
    dead_at = time.monotonic()
    for thread in threads:
        thread.join()

    answered = [call for call in calls if call[2] == 200]
    failed = [call for call in calls if call[2] != 200]
    after = [call for call in answered if call[0] > dead_at]
    print(
        f"\nMLServer replica kill: {len(calls)} calls, {len(answered)} answered, "
        f"{len(failed)} failed (statuses {sorted({c[2] for c in failed})}), "
        f"{len(after)} answered after the kill"
    )
    assert len(after) > 0  # the other replica took over
    assert all(call[0] <= dead_at for call in failed), (dead_at, failed)
    assert len(failed) <= 4  # at most one per client thread was in flight

    rows = _wait_for_rows(live_database, len(calls))
    assert len(rows) == len(calls)  # every call, answered or failed, is metered
    assert sum(1 for _, status, _, _ in rows if status == 200) == len(answered)
    assert all(model == "tabular" for model, _, _, _ in rows)
    assert all(units == 2 for _, status, units, _ in rows if status == 200)

    states = requests.get(f"{base}/readyz", timeout=10).json()["upstreams"]["tabular"]
    assert states[victim_url] != "ok" and states[replicas[1][0]] == "ok"
