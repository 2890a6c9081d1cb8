"""The Open Inference Protocol in-process: metadata from the declaration, JSON and binary
tensors built and read by tritonclient's own codec, the batch dimension, every refusal in
the protocol's `{"error": "..."}` with its status, and usage rows and trace ids as on /v1.

The handler models run in their real processes (the supervisor the gunicorn master uses);
the embedding model is the real all-MiniLM-L6-v2 in this process.
"""

from __future__ import annotations

import base64
import json

import numpy as np
import pytest
from sqlalchemy import select
from tritonclient.http import InferenceServerClient, InferInput, InferRequestedOutput

from api.extensions import db
from api.runtime.handlers.client import HandlerClient
from api.runtime.handlers.supervisor import start
from api.usage.models import InferenceRecord
from tests.handlers import images
from tests.handlers.test_process import wait_for
from tests.tokens.conftest import make_account

MODELS = ",".join(
    [
        "tiny=handler:tests.handlers.sample_handler:Tiny",
        "vectors=handler:tests.handlers.sample_handler:Vectors",
    ]
)
NAMES = ("tiny", "vectors")


@pytest.fixture(scope="module")
def sockets(tmp_path_factory):
    """The two handler models' processes, started once for the module."""
    import os

    directory = tmp_path_factory.mktemp("oip-handlers")
    old = dict(os.environ)
    os.environ.update({"MODELS": MODELS, "LOG_FORMAT": "text", "LOG_LEVEL": "WARNING"})
    started = [start(name, str(directory / f"{name}.sock")) for name in NAMES]
    os.environ.clear()
    os.environ.update(old)
    for name in NAMES:
        wait_for(HandlerClient(name, str(directory / f"{name}.sock")), ("ready",))
    yield str(directory)
    for supervisor in started:
        supervisor.terminate()
        supervisor.wait(10)


@pytest.fixture
def served(make_app, sockets):
    app = make_app(MODELS=f"{MODELS},all-minilm-l6-v2", HANDLER_SOCKET_DIR=sockets)
    account = make_account(app)
    token = account.mint(scopes=("predict", "embed"))["token"]
    return app, account, {"Authorization": f"Bearer {token}"}


def infer(client, headers, model, inputs, outputs=None, **options):
    """POST what tritonclient would send; read the answer as tritonclient reads it."""
    body, json_size = InferenceServerClient.generate_request_body(inputs, outputs=outputs)
    extra = {} if json_size is None else {"Inference-Header-Content-Length": str(json_size)}
    response = client.post(f"/v2/models/{model}/infer", data=body, headers={**headers, **extra})
    if response.status_code != 200:
        return response, None
    result = InferenceServerClient.parse_response_body(
        response.data, header_length=response.headers.get("Inference-Header-Content-Length")
    )
    return response, result


def image_input(*pngs, binary=True):
    tensor = InferInput("image", [len(pngs)], "BYTES")
    if binary:
        return tensor.set_data_from_numpy(np.array(pngs, dtype=np.object_))
    encoded = [base64.b64encode(data).decode() for data in pngs]
    return tensor.set_data_from_numpy(np.array(encoded, dtype=np.object_), binary_data=False)


def test_server_metadata_and_health_need_no_token(served):
    app, _, _ = served
    client = app.test_client()
    meta = client.get("/v2").get_json()
    assert meta["name"] == "modelgate" and "binary_tensor_data" in meta["extensions"]
    assert client.get("/v2/health/live").get_json() == {"live": True}
    assert client.get("/v2/health/ready").status_code == 200


def test_model_metadata_comes_from_the_declaration(served):
    _, account, headers = served
    tiny = account.client.get("/v2/models/tiny", headers=headers).get_json()
    assert tiny["name"] == "tiny" and tiny["versions"] == ["1"]
    assert tiny["inputs"] == [
        {"name": "image", "datatype": "BYTES", "shape": [-1]},
        {"name": "threshold", "datatype": "FP64", "shape": [-1]},
    ]
    assert tiny["outputs"] == [
        {"name": "label", "datatype": "BYTES", "shape": [-1]},
        {"name": "scores", "datatype": "FP32", "shape": [-1, -1]},
    ]
    vectors = account.client.get("/v2/models/vectors/versions/1", headers=headers).get_json()
    assert {item["name"]: [item["datatype"], item["shape"]] for item in vectors["inputs"]} == {
        "x": ["FP32", [-1, 2, -1]],
        "note": ["BYTES", [-1]],
        "flag": ["BOOL", [-1]],
        "meta": ["BYTES", [-1]],
        "k": ["INT64", [-1]],
    }
    embedding = account.client.get("/v2/models/all-minilm-l6-v2", headers=headers).get_json()
    assert embedding["inputs"] == [{"name": "text", "datatype": "BYTES", "shape": [-1]}]
    assert embedding["outputs"] == [{"name": "embedding", "datatype": "FP32", "shape": [-1, 384]}]
    ready = account.client.get("/v2/models/tiny/ready", headers=headers)
    assert ready.get_json() == {"name": "tiny", "ready": True}


def test_binary_and_json_tensors_answer_as_predict_does(served):
    app, account, headers = served
    red, dark = images.png(color=(250, 0, 0)), images.png(color=(10, 10, 10))
    predict = account.client.post(
        "/v1/models/tiny/predict", headers=headers, json={"image": base64.b64encode(red).decode()}
    ).get_json()["outputs"]

    response, result = infer(account.client, headers, "tiny", [image_input(red)])
    assert response.status_code == 200, response.get_json()
    assert response.headers["Content-Type"] == "application/octet-stream"
    assert result.as_numpy("label").tolist() == [predict["label"].encode()]
    np.testing.assert_allclose(result.as_numpy("scores")[0], predict["scores"], atol=1e-5)

    wanted = [InferRequestedOutput("label", binary_data=False)]
    response, result = infer(
        account.client, headers, "tiny", [image_input(red, binary=False)], outputs=wanted
    )
    assert response.status_code == 200 and response.mimetype == "application/json"
    assert response.get_json()["outputs"] == [
        {"name": "label", "datatype": "BYTES", "shape": [1], "data": [predict["label"]]}
    ]

    # The batch dimension: two items, each through the model's own predict path.
    threshold = InferInput("threshold", [2], "FP64").set_data_from_numpy(np.array([0.5, 0.5]))
    response, result = infer(account.client, headers, "tiny", [image_input(red, dark), threshold])
    assert response.status_code == 200, response.get_json()
    assert result.as_numpy("label").tolist() == [b"red", b"dark"]
    assert result.as_numpy("scores").shape == (2, 2)

    with app.app_context():
        rows = db.session.scalars(
            select(InferenceRecord).where(InferenceRecord.endpoint == "oip_infer")
        ).all()
        assert [(row.model, row.units, row.status) for row in rows] == [
            ("tiny", 1, 200),
            ("tiny", 1, 200),
            ("tiny", 2, 200),
        ]


def test_tensor_inputs_and_every_kind(served):
    _, account, headers = served
    x = InferInput("x", [1, 2, 3], "FP32").set_data_from_numpy(
        np.arange(6, dtype=np.float32).reshape(1, 2, 3)
    )
    k = InferInput("k", [1], "INT64").set_data_from_numpy(np.array([2], dtype=np.int64))
    meta = InferInput("meta", [1], "BYTES").set_data_from_numpy(
        np.array([b'{"a": 1}'], dtype=np.object_)
    )
    flag = InferInput("flag", [1], "BOOL").set_data_from_numpy(np.array([True]))
    response, result = infer(account.client, headers, "vectors", [x, k, meta, flag])
    assert response.status_code == 200, response.get_json()
    assert result.as_numpy("sum").tolist() == [30.0]
    record = response.get_json(silent=True)
    assert record is None  # binary answer (tritonclient asks for binary outputs by default)


def test_embeddings_equal_v1_embeddings(served):
    _, account, headers = served
    texts = ["A frog prince.", "A royal amphibian, in a pond."]
    reference = account.client.post(
        "/v1/embeddings", headers=headers, json={"input": texts}
    ).get_json()
    expected = np.array([item["embedding"] for item in reference["data"]])
    for binary in (True, False):
        text = InferInput("text", [2], "BYTES").set_data_from_numpy(
            np.array([t.encode() for t in texts], dtype=np.object_), binary_data=binary
        )
        wanted = [InferRequestedOutput("embedding", binary_data=binary)]
        response, result = infer(account.client, headers, "all-minilm-l6-v2", [text], wanted)
        assert response.status_code == 200, response.get_json()
        vectors = result.as_numpy("embedding")
        assert vectors.shape == (2, 384) and vectors.dtype == np.float32
        np.testing.assert_allclose(vectors, expected, atol=1e-5)


def error_of(response, status):
    assert response.status_code == status, (response.status_code, response.data[:300])
    body = response.get_json()
    assert set(body) == {"error"} and isinstance(body["error"], str), body
    return body["error"]


def test_refusals_in_the_protocol_shape(served):
    app, account, headers = served
    client = account.client
    png = images.png()
    body = {"inputs": [{"name": "image", "shape": [1], "datatype": "BYTES", "data": ["aGk="]}]}

    assert "credentials" in error_of(client.post("/v2/models/tiny/infer", json=body), 401)
    assert "credentials" in error_of(client.get("/v2/models/tiny"), 401)
    embed_only = {"Authorization": "Bearer " + account.mint(name="e", scopes=("embed",))["token"]}
    assert "predict" in error_of(
        client.post("/v2/models/tiny/infer", headers=embed_only, json=body), 403
    )
    assert "nope" in error_of(client.get("/v2/models/nope", headers=headers), 404)
    assert "version" in error_of(client.get("/v2/models/tiny/versions/7", headers=headers), 404)
    assert error_of(client.get("/v2/repository/index", headers=headers), 404)

    def changed(**fields):
        return json.dumps({"inputs": [{**body["inputs"][0], **fields}]}).encode()

    sized = {"name": "image", "shape": [1], "datatype": "BYTES"}
    sized["parameters"] = {"binary_data_size": 999}
    bad = {
        "not JSON": (b"{nope", {}),
        "no inputs": (json.dumps({"inputs": []}).encode(), {}),
        "datatype": (changed(datatype="FP32", data=[1.0]), {}),
        "shape": (changed(shape=[1, 2], data=["a", "b"]), {}),
        "count": (changed(shape=[2]), {}),
        "unknown input": (changed(name="picture"), {}),
        "not an image": (json.dumps(body).encode(), {}),
        "binary size": (
            json.dumps({"inputs": [sized]}).encode() + b"\0\0\0\0",
            {"Inference-Header-Content-Length": None},
        ),
    }
    for name, case in bad.items():
        data, extra = case
        if "Inference-Header-Content-Length" in extra:
            extra = {"Inference-Header-Content-Length": str(len(data) - 4)}
        message = error_of(
            client.post("/v2/models/tiny/infer", data=data, headers={**headers, **extra}), 400
        )
        assert message, name

    truncated = image_input(images.truncated_png()[:300])
    response, _ = infer(client, headers, "tiny", [truncated])
    assert "image" in error_of(response, 400)
    two = image_input(png, images.truncated_png()[:300])
    response, _ = infer(client, headers, "tiny", [two])
    assert error_of(response, 400).startswith("item 1, input image:")
    wanted = [InferRequestedOutput("colour")]
    response, _ = infer(client, headers, "tiny", [image_input(png)], outputs=wanted)
    assert "colour" in error_of(response, 400)
    shape = InferInput("x", [1, 3, 3], "FP32").set_data_from_numpy(np.zeros((1, 3, 3), np.float32))
    response, _ = infer(client, headers, "vectors", [shape])
    assert "x" in error_of(response, 400)

    huge = client.post(
        "/v2/models/tiny/infer",
        headers=headers,
        data=b"x" * (app.config["PREDICT_MAX_BYTES"] + 70_000),
    )
    error_of(huge, 413)


def test_trace_ids_in_and_out(served):
    _, account, headers = served
    trace = "4bf92f3577b34da6a3ce929d0e0e4736"
    parent = {"traceparent": f"00-{trace}-00f067aa0ba902b7-01"}
    response, _ = infer(account.client, {**headers, **parent}, "tiny", [image_input(images.png())])
    assert response.headers["X-Trace-Id"] == trace
    assert response.headers["traceparent"].startswith(f"00-{trace}-")
    failed = account.client.get("/v2/models/nope", headers={**headers, "X-Trace-Id": "mine-1"})
    assert failed.status_code == 404 and failed.headers["X-Trace-Id"] == "mine-1"


def test_v2_belongs_to_the_protocol_when_the_web_app_is_served(tmp_path):
    from api import create_app
    from api.config import TestConfig

    dist = tmp_path / "dist"
    dist.mkdir()
    (dist / "index.html").write_text('<!doctype html><div id="root"></div>')
    app = create_app(
        TestConfig(
            SQLALCHEMY_DATABASE_URI=f"sqlite:///{tmp_path / 'unused.sqlite'}",
            LOG_FILE=str(tmp_path / "app.log"),
            WEB_DIST=str(dist),
        )
    )
    client = app.test_client()
    assert client.get("/v2").get_json()["name"] == "modelgate"
    for path in ("/v2/models/x/config", "/v2/repository/index", "/v2/health/live/extra"):
        response = client.get(path)
        assert response.status_code == 404 and isinstance(response.get_json()["error"], str)
    assert client.get("/some/page").mimetype == "text/html"  # the web app keeps its paths


def test_a_model_whose_process_is_down_is_503_and_the_server_not_ready(make_app, tmp_path):
    app = make_app(MODELS=MODELS, HANDLER_SOCKET_DIR=str(tmp_path))  # no process listens there
    account = make_account(app)
    headers = {"Authorization": "Bearer " + account.mint(scopes=("predict",))["token"]}
    client = account.client
    down = client.get("/v2/models/tiny", headers=headers)
    assert "restarting" in error_of(down, 503) and down.headers["Retry-After"]
    response, _ = infer(client, headers, "tiny", [image_input(images.png())])
    assert error_of(response, 503) and response.headers["Retry-After"]
    assert error_of(client.get("/v2/models/tiny/ready", headers=headers), 503)
    assert error_of(client.get("/v2/health/ready"), 503)
