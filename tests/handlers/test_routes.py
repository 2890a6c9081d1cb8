"""The predict route in-process: scope, unknown model, media types, body size, and a handler
model whose process is not running (503, listed in /readyz while /readyz stays 200)."""

from __future__ import annotations

from tests.tokens.conftest import make_account

MODELS = "tiny=handler:tests.handlers.sample_handler:Tiny"


def test_predict_answers_in_the_one_error_shape(make_app, tmp_path):
    app = make_app(MODELS=MODELS, HANDLER_SOCKET_DIR=str(tmp_path), PREDICT_MAX_BYTES=1000)
    account = make_account(app)
    token = {"Authorization": "Bearer " + account.mint(scopes=("predict",))["token"]}
    other = {"Authorization": "Bearer " + account.mint(name="e", scopes=("embed",))["token"]}
    client = app.test_client()
    path = "/v1/models/tiny/predict"

    refused = client.post(path, headers=other, json={"image": "aGk="})
    assert refused.status_code == 403
    assert refused.get_json()["error"]["details"] == {"required_scope": "predict"}

    missing = client.post("/v1/models/nope/predict", headers=token, json={})
    assert missing.status_code == 404 and missing.get_json()["error"]["code"] == "model_not_found"

    down = client.post(path, headers=token, json={"image": "aGk="})
    assert down.status_code == 503 and down.headers["Retry-After"]
    assert down.get_json()["error"]["trace_id"]

    text = client.post(path, headers=token, data="hello", content_type="text/plain")
    assert text.status_code == 415
    big = client.post(
        path, headers=token, json={"image": "A" * 70_000}
    )  # past the limit and the form headroom
    assert big.status_code == 413

    described = client.get("/v1/models/tiny", headers=token)
    assert described.status_code == 503
    ready = client.get("/readyz", environ_base={"REMOTE_ADDR": "127.0.0.1"})
    assert ready.status_code == 200
    assert ready.get_json().get("models", {"tiny": "down"}) == {"tiny": "down"}


def test_a_nul_deep_in_a_predict_body_is_the_models_422(make_app, tmp_path):
    """The generic predict operation takes any object: a NUL inside fits the document."""
    app = make_app(MODELS=MODELS, HANDLER_SOCKET_DIR=str(tmp_path))
    token = make_account(app).mint(scopes=("predict",))["token"]
    response = app.test_client().post(
        "/v1/models/tiny/predict",
        headers={"Authorization": f"Bearer {token}"},
        json={"extra": {"deep": ["a\x00b"]}},
    )
    assert response.status_code == 422, response.get_json()
    assert response.get_json()["error"]["param"] == "extra"


def test_a_nul_in_a_form_field_or_its_name_is_the_models_422(make_app, tmp_path):
    app = make_app(MODELS=MODELS, HANDLER_SOCKET_DIR=str(tmp_path))
    token = make_account(app).mint(scopes=("predict",))["token"]
    client = app.test_client()
    for form, field in (({"threshold": "0\x00"}, "threshold"), ({"a\x00b": "1"}, "_form")):
        response = client.post(
            "/v1/models/tiny/predict",
            headers={"Authorization": f"Bearer {token}"},
            data=form,
            content_type="multipart/form-data",
        )
        assert response.status_code == 422, response.get_json()
        assert list(response.get_json()["error"]["details"]) == [field]
