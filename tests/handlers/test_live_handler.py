"""Acceptance (issue 26): a handler file and one MODELS line put a new PyTorch model behind
gunicorn (2 workers, PostgreSQL, Redis), called with an API token like any other model."""

from __future__ import annotations

import base64
import itertools
import json
import time
import uuid

import pytest
import redis
import requests
import torch
from sqlalchemy import create_engine, text

from api import create_app
from api.config import PROJECT_ROOT
from api.config import TestConfig as AppTestConfig
from api.extensions import db
from api.runtime.models.embedding import EmbeddingModel
from api.runtime.models.generation import TextGenerator
from api.runtime.specs import locate_minilm
from tests.conftest import empty_postgres
from tests.handlers import images
from tests.services import gunicorn
from tests.tokens.conftest import make_account

HANDLER = '''
import torch

WEIGHTS = {weights!r}


class Brightness:
    """Is an 8x8 picture light or dark? A one-layer network the test trained by hand."""

    name = "brightness"
    inputs = [
        {{"name": "image", "kind": "image", "max_bytes": 100_000, "max_pixels": 4096,
          "formats": ["png", "jpeg", "webp"]}},
        {{"name": "bias", "kind": "number", "minimum": -1, "maximum": 1, "required": False,
          "default": 0.0}},
        {{"name": "features", "kind": "tensor", "dtype": "float32", "shape": [2],
          "required": False}},
    ]
    outputs = [{{"name": "label", "kind": "text"}},
               {{"name": "scores", "kind": "tensor", "dtype": "float32", "shape": [2]}}]
    max_batch_size = 8
    max_wait_ms = 5
    units = "images"

    def setup(self, device):
        self.device = device
        self.net = torch.nn.Linear(64, 2)
        self.net.load_state_dict(torch.load(WEIGHTS, weights_only=True))
        self.net.eval()

    def predict(self, batch):
        pixels = torch.stack([
            torch.tensor(list(item["image"].convert("L").resize((8, 8)).getdata()),
                         dtype=torch.float32) / 255
            for item in batch
        ])
        with torch.no_grad():
            scores = torch.softmax(self.net(pixels), dim=1)
        return [{{"label": "light" if row[1] + item["bias"] > row[0] else "dark", "scores": row}}
                for row, item in zip(scores, batch)]
'''


STREAMING = "count=handler:tests.handlers.sample_handler:Counter"


STORY = PROJECT_ROOT / "models" / "storyteller"


def builtin_handlers() -> str:
    """The two built-in kinds named as handler models: their classes and `path=`."""
    return (
        f"minilm=handler:api.runtime.models.embedding:EmbeddingModel path={locate_minilm()},"
        f"story=handler:api.runtime.models.generation:TextGenerator path={STORY}"
    )


def write_model(folder):
    """The user's side: a tiny torch.nn.Module, its weights saved, its handler file."""
    net = torch.nn.Linear(64, 2)
    with torch.no_grad():
        net.weight.copy_(torch.stack([-torch.ones(64), torch.ones(64)]) / 8)
        net.bias.copy_(torch.tensor([4.0, -4.0]) / 8)
    weights = folder / "brightness.pt"
    torch.save(net.state_dict(), weights)
    handler = folder / "brightness.py"
    handler.write_text(HANDLER.format(weights=str(weights)))
    return handler


@pytest.fixture(scope="module")
def stack(tmp_path_factory, postgres_database, redis_url):
    """One gunicorn for the module's three tests (their users' calls do not overlap)."""
    tmp_path = tmp_path_factory.mktemp("live-handler")
    flush = redis.Redis.from_url(redis_url).flushdb
    flush()
    handler = write_model(tmp_path)
    app = create_app(AppTestConfig(SQLALCHEMY_DATABASE_URI=postgres_database))
    main = make_account(app, "owner@example.org")
    tokens = {
        "good": main.mint(scopes=("predict", "usage"))["token"],
        "no_scope": main.mint(name="embed only", scopes=("embed",))["token"],
        "all": main.mint(name="all", scopes=("predict", "embed", "generate"))["token"],
    }
    small = make_account(app, "small@example.org")
    with app.app_context():
        from api.auth.models import User

        db.session.get(User, small.user_id).rate_limit = "3/minute"
        db.session.commit()
        db.engine.dispose()
    tokens["small"] = small.mint(scopes=("predict",))["token"]
    env = {
        "DATABASE_URL": postgres_database,
        "REDIS_URL": redis_url,
        # The one configuration line; the second model is a streaming one (its own test).
        # The built-in kinds served as handler models too (their own test).
        "MODELS": f"brightness=handler:{handler}:Brightness,{STREAMING},{builtin_handlers()}",
        "RATE_LIMIT_DEFAULT": "1000/minute",
        "USAGE_FLUSH_INTERVAL_MS": "100",
        # Slots are per user id in the test Redis, which other checkouts' live tests share.
        "INFERENCE_PER_USER": "64",
    }
    with gunicorn(env, tmp_path, workers=2) as base:
        ready = time.monotonic() + 90
        while time.monotonic() < ready:
            states = requests.get(base + "/readyz", timeout=5).json().get("models", {})
            if all(states.get(name) == "ready" for name in ("brightness", "minilm", "story")):
                break
            time.sleep(0.5)
        yield base, tokens, tmp_path / "app.log"
    empty_postgres(postgres_database)  # the database is shared with the other tests
    flush()


def call(
    base,
    token,
    *,
    method="POST",
    path="/v1/models/brightness/predict",
    trace=None,
    headers_extra=None,
    **kw,
):
    headers = {"Authorization": f"Bearer {token}", "X-Trace-Id": trace or uuid.uuid4().hex}
    headers.update(headers_extra or {})
    return requests.request(method, base + path, headers=headers, timeout=30, **kw)


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def assert_field_error(response, status, field):
    assert response.status_code == status, response.text
    error = response.json()["error"]
    assert field in error["details"] and error["trace_id"], error
    return error


def test_a_new_model_served_from_one_line(stack, postgres_database):
    base, tokens, log_file = stack
    trace = uuid.uuid4().hex
    light = call(
        base, tokens["good"], trace=trace, json={"image": b64(images.png(color=(240, 240, 240)))}
    )
    assert light.status_code == 200, light.text
    body = light.json()
    assert body["model"] == "brightness" and body["outputs"]["label"] == "light"
    assert len(body["outputs"]["scores"]) == 2 and body["outputs"]["scores"][1] > 0.5
    assert body["usage"] == {"units": 1, "unit": "images"} and body["trace_id"] == trace

    dark = call(
        base,
        tokens["good"],
        files={"image": ("d.png", images.png(color=(5, 5, 5)))},
        data={"bias": "0.1"},
    )
    assert dark.status_code == 200, dark.text
    assert dark.json()["outputs"]["label"] == "dark"

    described = call(base, tokens["good"], method="GET", path="/v1/models/brightness").json()
    assert described["id"] == "brightness"
    assert [field["name"] for field in described["schema"]["inputs"]] == [
        "image",
        "bias",
        "features",
    ]
    assert "brightness" in [
        m["id"] for m in call(base, tokens["good"], method="GET", path="/v1/models").json()["data"]
    ]

    engine = create_engine(postgres_database)
    give_up = time.monotonic() + 15
    rows = []
    while time.monotonic() < give_up and not rows:
        with engine.connect() as connection:
            rows = connection.execute(
                text(
                    "SELECT model, units, status FROM inference_records "
                    "WHERE endpoint = 'predict' AND trace_id = :trace"
                ),
                {"trace": trace},
            ).all()
        time.sleep(0.2)
    engine.dispose()
    assert rows == [("brightness", 1, 200)]

    lines = [json.loads(line) for line in log_file.read_text().splitlines()]
    traced = [line for line in lines if line.get("trace.id") == trace]
    assert any(line.get("log.logger") == "modelgate.access" for line in traced)
    assert any(line.get("inference.model") == "brightness" for line in traced), "model process line"

    metrics = requests.get(f"{base}/metrics", timeout=10).text
    assert 'inference_batch_size_count{model="brightness"}' in metrics

    image = {"image": b64(images.png())}
    refused = call(base, tokens["no_scope"], json=image)
    assert refused.status_code == 403
    assert refused.json()["error"]["details"]["required_scope"] == "predict"
    statuses = [call(base, tokens["small"], json=image).status_code for _ in range(5)]
    assert statuses == [200, 200, 200, 429, 429]


BAD_INPUTS = {
    "not an image": (422, "image", {"files": {"image": ("a.png", b"%PDF-1.7 not an image")}}),
    "a truncated PNG": (422, "image", {"json": {"image": b64(images.truncated_png()[:300])}}),
    "a 30,000 x 30,000 PNG": (422, "image", {"files": {"image": ("b.png", images.bomb_png())}}),
    "the wrong field": (422, "picture", {"json": {"picture": b64(images.png())}}),
    "an empty file": (422, "image", {"files": {"image": ("e.png", b"")}}),
    "a JSON type mismatch": (422, "bias", {"json": {"image": b64(images.png()), "bias": "high"}}),
    "a tensor of the wrong shape": (
        422,
        "features",
        {"json": {"image": b64(images.png()), "features": [[1, 2]]}},
    ),
}


def test_every_bad_input_is_a_4xx_naming_the_field(stack):
    base, tokens, _ = stack
    for name, (status, field, request) in BAD_INPUTS.items():
        response = call(base, tokens["good"], **request)
        assert response.status_code == status, (name, response.text)
        error = response.json()["error"]
        assert field in error["details"] and error["param"] == field, (name, error)
        assert field in error["message"] and error["trace_id"], (name, error)
    # Nothing above hurt the model's process: it still answers.
    assert call(base, tokens["good"], json={"image": b64(images.png())}).status_code == 200


def test_the_document_and_a_stream_through_gunicorn(stack):
    base, tokens, _ = stack
    give_up = time.monotonic() + 60
    while call(base, tokens["good"], method="GET", path="/v1/models/count").status_code != 200:
        assert time.monotonic() < give_up, "the streaming model never became ready"
        time.sleep(0.3)
    document = requests.get(f"{base}/v1/openapi.json", timeout=10).json()
    operation = document["paths"]["/v1/models/brightness/predict"]["post"]
    assert operation["operationId"] == "predict_brightness"
    body = operation["requestBody"]["content"]["application/json"]["schema"]
    assert body["properties"]["features"]["minItems"] == 2

    answer = call(
        base,
        tokens["good"],
        path="/v1/models/count/predict",
        json={"word": "hi", "count": 3},
        headers_extra={"Accept": "text/event-stream"},
        stream=True,
    )
    assert answer.status_code == 200 and answer.headers["Content-Type"].startswith(
        "text/event-stream"
    )
    data = [line[6:] for line in answer.iter_lines() if line.startswith(b"data: ")]
    events = [json.loads(item) for item in data[:-1]]
    assert [event["outputs"]["text"] for event in events[:3]] == ["hi", "hi hi", "hi hi hi"]
    assert events[3]["usage"] == {"units": 3, "unit": "words"} and data[-1] == b"[DONE]"


def test_the_built_in_kinds_are_handler_models_answering_as_on_the_openai_endpoints(stack):
    """all-MiniLM-L6-v2 and the storyteller, each named by its handler class and `path=`,
    run in processes of their own: the vectors, text and token counts are the ones the same
    classes give the OpenAI endpoints, and the embedding model serves /v1/embeddings too."""
    base, tokens, _ = stack
    encoder = EmbeddingModel.load("all-minilm-l6-v2", locate_minilm())
    text = "The frog prince sat by the well."
    predicted = call(base, tokens["all"], path="/v1/models/minilm/predict", json={"text": text})
    assert predicted.status_code == 200, predicted.text
    vector = predicted.json()["outputs"]["embedding"]
    (expected,), (count,) = encoder.embed([text])
    assert len(vector) == len(expected) == 384
    assert max(abs(a - b) for a, b in zip(vector, expected, strict=True)) < 1e-5
    assert predicted.json()["usage"] == {"units": count, "unit": "tokens"}

    # The same handler model answers the OpenAI endpoint: one way to serve a model.
    texts = [text, "Rapunzel let down her hair.", "A third, shorter one."]
    embedded = call(
        base, tokens["all"], path="/v1/embeddings", json={"model": "minilm", "input": texts}
    )
    assert embedded.status_code == 200, embedded.text
    vectors, counts = encoder.embed(texts)
    assert embedded.json()["model"] == "minilm"
    assert embedded.json()["usage"]["prompt_tokens"] == sum(counts)
    for index, (item, expected) in enumerate(zip(embedded.json()["data"], vectors, strict=True)):
        assert item["index"] == index
        assert max(abs(a - b) for a, b in zip(item["embedding"], expected, strict=True)) < 1e-5
    ids = call(base, tokens["all"], path="/v1/embeddings", json={"model": "minilm", "input": [1]})
    assert ids.status_code == 422 and "input" in ids.json()["error"]["details"], ids.text
    not_vectors = call(
        base, tokens["all"], path="/v1/embeddings", json={"model": "story", "input": "x"}
    )
    assert not_vectors.status_code == 404, not_vectors.text

    described = call(base, tokens["all"], method="GET", path="/v1/models/minilm").json()
    assert [field["name"] for field in described["schema"]["inputs"]] == ["text"]
    assert described["schema"]["outputs"][0]["kind"] == "tensor"
    metadata = call(base, tokens["all"], method="GET", path="/v2/models/minilm").json()
    assert metadata["inputs"][0]["name"] == "text" and metadata["outputs"][0]["datatype"] == "FP32"

    teller = TextGenerator.load("storyteller", str(STORY))
    prompt = {"prompt": "Once upon a time", "max_tokens": 8, "temperature": 0}
    running = teller.stream(prompt["prompt"], max_tokens=8, temperature=0)
    told = "".join(chunk.text for chunk in running)
    story = call(base, tokens["all"], path="/v1/models/story/predict", json=prompt)
    assert story.status_code == 200, story.text
    assert story.json()["outputs"]["text"] == told
    units = running.prompt_tokens + running.completion_tokens
    assert story.json()["usage"] == {"units": units, "unit": "tokens"}

    streamed = call(
        base,
        tokens["all"],
        path="/v1/models/story/predict",
        json=prompt,
        headers_extra={"Accept": "text/event-stream"},
        stream=True,
    )
    assert streamed.status_code == 200, streamed.text
    events = [
        json.loads(line[len("data: ") :])
        for line in streamed.iter_lines(decode_unicode=True)
        if line.startswith("data: {")
    ]
    texts = [event["outputs"]["text"] for event in events if "outputs" in event]
    assert len(texts) > 1 and texts[-1] == told
    assert all(later.startswith(earlier) for earlier, later in itertools.pairwise(texts))
