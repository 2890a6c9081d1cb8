"""`/v1/*` belongs to the API alone, also when the app serves the web app beside it.

The web app's catch-all GET must not match under `/v1`: there it would add GET to
the `Allow` of every POST-only route and answer a malformed id on DELETE or PATCH
with a 405 the document does not list (the fuzzer's findings).
"""

from __future__ import annotations

from pathlib import Path

import pytest
from flask.testing import FlaskClient

from api import create_app
from api.config import TestConfig

POST_ONLY = ["/v1/embeddings", "/v1/completions", "/v1/chat/completions", "/v1/auth/login"]
MALFORMED_IDS = ["/v1/tokens/null,null", "/v1/files/" + "0" * 65, "/v1/history/x"]


@pytest.fixture(params=["with the web app", "API only"])
def client(request: pytest.FixtureRequest, tmp_path: Path) -> FlaskClient:
    dist = tmp_path / "dist"
    dist.mkdir()
    (dist / "index.html").write_text('<!doctype html><div id="root"></div>')
    app = create_app(
        TestConfig(
            SQLALCHEMY_DATABASE_URI=f"sqlite:///{tmp_path / 'unused.sqlite'}",
            LOG_FILE=str(tmp_path / "app.log"),
            WEB_DIST=str(dist) if request.param == "with the web app" else None,
        )
    )
    return app.test_client()


@pytest.mark.parametrize("path", POST_ONLY)
def test_post_only_routes_allow_post_alone(client, path):
    response = client.options(path)
    assert response.status_code == 200
    assert sorted(response.headers["Allow"].split(", ")) == ["OPTIONS", "POST"]


@pytest.mark.parametrize("method", ["DELETE", "PATCH"])
@pytest.mark.parametrize("path", MALFORMED_IDS)
def test_a_malformed_path_id_is_a_json_404(client, method, path):
    response = client.open(path, method=method)
    assert response.status_code == 404
    assert response.get_json()["error"]["code"] == "not_found"


@pytest.mark.parametrize("path", ["/v1", "/v1/", "/v1/nope", "/v1/models/x/y"])
def test_unknown_api_paths_are_json_404s(client, path):
    response = client.get(path)
    assert response.status_code == 404 and response.is_json


def test_the_web_app_still_answers_its_own_paths(client):
    if client.application.config["WEB_DIST"] is None:
        pytest.skip("no web app")
    for path in ["/", "/tokens", "/v1x", "/docs-not"]:
        response = client.get(path)
        assert response.status_code == 200 and b'id="root"' in response.data, path
