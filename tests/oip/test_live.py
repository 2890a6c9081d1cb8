"""Acceptance (issue 27, item 1): Triton's own client, `tritonclient[http]`, against modelgate
under gunicorn (2 workers, PostgreSQL, Redis) with an API token: liveness, metadata, and
inference with binary and with JSON tensors on the OCR model and the embedding model,
answers equal to `/v1/models/{id}/predict` and `/v1/embeddings`; 401 without the token,
429 past the budget, a usage row and a log line for the call's trace id."""

from __future__ import annotations

import base64
import io
import json
import time
import uuid

import numpy as np
import pytest
import requests
from sqlalchemy import create_engine, text
from tritonclient.http import InferenceServerClient, InferInput, InferRequestedOutput
from tritonclient.utils import InferenceServerException

from api import create_app
from api.config import TestConfig as AppTestConfig
from api.extensions import db
from models.ocr.evaluate import find_fonts, load_font, render
from tests.services import gunicorn
from tests.tokens.conftest import make_account

OCR_MODEL, EMBEDDING_MODEL = "ocr-en", "all-minilm-l6-v2"
MODELS = f"{EMBEDDING_MODEL},{OCR_MODEL}=handler:models.ocr.handler:OCR"
LINE = "Invoice 4471 total 1250 due friday"


@pytest.fixture
def stack(tmp_path, live_database, redis_url, redis_db):
    app = create_app(AppTestConfig(SQLALCHEMY_DATABASE_URI=live_database))
    main = make_account(app, "oip@example.org")
    tokens = {"good": main.mint(scopes=("predict", "embed"))["token"]}
    small = make_account(app, "small-oip@example.org")
    with app.app_context():
        from api.auth.models import User

        db.session.get(User, small.user_id).rate_limit = "2/minute"
        db.session.commit()
        db.engine.dispose()
    tokens["small"] = small.mint(scopes=("embed",))["token"]
    env = {
        "DATABASE_URL": live_database,
        "REDIS_URL": redis_url,
        "MODELS": MODELS,
        "RATE_LIMIT_DEFAULT": "1000/minute",
        "USAGE_FLUSH_INTERVAL_MS": "100",
        "INFERENCE_PER_USER": "64",
    }
    with gunicorn(env, tmp_path, workers=2) as base:
        headers = {"Authorization": f"Bearer {tokens['good']}"}
        give_up = time.monotonic() + 120
        while time.monotonic() < give_up:
            ready = requests.get(f"{base}/v2/models/{OCR_MODEL}/ready", headers=headers, timeout=5)
            if ready.status_code == 200:
                break
            time.sleep(0.5)
        yield base, tokens, tmp_path / "app.log"


def page() -> bytes:
    fonts = find_fonts()
    image = render([LINE], load_font(fonts[0] if fonts else None, 40))
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return buffer.getvalue()


def bytes_input(name: str, items: list[bytes], binary: bool) -> InferInput:
    tensor = InferInput(name, [len(items)], "BYTES")
    return tensor.set_data_from_numpy(np.array(items, dtype=np.object_), binary_data=binary)


def test_tritonclient_against_modelgate(stack, live_database):
    base, tokens, log_file = stack
    # Each call gets its own headers dict: tritonclient adds Inference-Header-Content-Length
    # to the dict it is given, and a later JSON call would send that stale length.
    client = InferenceServerClient(url=base.removeprefix("http://"))
    trace = uuid.uuid4().hex
    auth = {"Authorization": f"Bearer {tokens['good']}"}
    headers = {**auth, "X-Trace-Id": trace}

    assert client.is_server_live(headers=dict(auth))
    assert client.is_server_ready(headers=dict(auth))
    assert client.get_server_metadata()["extensions"] == ["binary_tensor_data"]
    meta = client.get_model_metadata(OCR_MODEL, headers=dict(auth))
    assert meta["inputs"] == [{"name": "image", "datatype": "BYTES", "shape": [-1]}]
    assert {out["name"]: out["datatype"] for out in meta["outputs"]} == {
        "text": "BYTES",
        "lines": "BYTES",
    }
    assert client.is_model_ready(OCR_MODEL, headers=dict(auth))

    # OCR: binary (tritonclient's default both ways), then JSON tensors (base64 image).
    png = page()
    predict = requests.post(
        f"{base}/v1/models/{OCR_MODEL}/predict", headers=auth, files={"image": png}, timeout=60
    ).json()["outputs"]
    assert LINE.split()[0] in predict["text"]
    binary = client.infer(OCR_MODEL, [bytes_input("image", [png], True)], headers=dict(headers))
    assert binary.as_numpy("text").tolist() == [predict["text"].encode()]
    assert json.loads(binary.as_numpy("lines")[0]) == predict["lines"]
    # The batch dimension: two pages, each through the model's own predict path.
    batch = client.infer(OCR_MODEL, [bytes_input("image", [png, png], True)], headers=dict(auth))
    assert batch.as_numpy("text").tolist() == [predict["text"].encode()] * 2
    as_text = bytes_input("image", [base64.b64encode(png)], False)
    wanted = [InferRequestedOutput("text", binary_data=False)]
    plain = client.infer(OCR_MODEL, [as_text], outputs=wanted, headers=dict(auth))
    assert plain.get_response()["outputs"][0]["data"] == [predict["text"]]

    # The embedding model, binary and JSON, equal to /v1/embeddings.
    texts = ["A frog prince.", "A royal amphibian, in a pond."]
    reference = requests.post(
        f"{base}/v1/embeddings", headers=auth, json={"input": texts}, timeout=60
    ).json()
    expected = np.array([item["embedding"] for item in reference["data"]], dtype=np.float32)
    meta = client.get_model_metadata(EMBEDDING_MODEL, headers=dict(auth))
    assert meta["outputs"] == [{"name": "embedding", "datatype": "FP32", "shape": [-1, 384]}]
    for as_binary in (True, False):
        inputs = [bytes_input("text", [t.encode() for t in texts], as_binary)]
        outputs = [InferRequestedOutput("embedding", binary_data=as_binary)]
        result = client.infer(EMBEDDING_MODEL, inputs, outputs=outputs, headers=dict(auth))
        np.testing.assert_allclose(result.as_numpy("embedding"), expected, atol=1e-5)

    # No token: 401 in the protocol's shape, which tritonclient reads.
    with pytest.raises(InferenceServerException) as refused:
        client.infer(OCR_MODEL, [bytes_input("image", [png], True)])
    assert refused.value.status() == "401" and "credentials" in refused.value.message()
    with pytest.raises(InferenceServerException) as refused:
        client.get_model_metadata(OCR_MODEL)
    assert refused.value.status() == "401"

    # Past the budget: 429 (two calls a minute for this user).
    small = {"Authorization": f"Bearer {tokens['small']}"}
    statuses = []
    for _ in range(3):
        try:
            client.infer(EMBEDDING_MODEL, [bytes_input("text", [b"hi"], True)], headers=dict(small))
            statuses.append(200)
        except InferenceServerException as error:
            statuses.append(int(error.status()))
    assert statuses == [200, 200, 429]

    # The call's usage row (model id, units) and its log lines, by trace id.
    engine = create_engine(live_database)
    rows, give_up = [], time.monotonic() + 15
    while time.monotonic() < give_up and not rows:
        with engine.connect() as connection:
            rows = connection.execute(
                text(
                    "SELECT model, units, status FROM inference_records "
                    "WHERE endpoint = 'oip_infer' AND trace_id = :trace"
                ),
                {"trace": trace},
            ).all()
        time.sleep(0.2)
    engine.dispose()
    assert rows == [(OCR_MODEL, 1, 200)]
    lines = [json.loads(line) for line in log_file.read_text().splitlines()]
    traced = [line for line in lines if line.get("trace.id") == trace]
    assert any(line.get("log.logger") == "modelgate.access" for line in traced)
    client.close()
