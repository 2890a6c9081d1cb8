"""The app's own security headers: `make run` (gunicorn alone) is as strict as nginx.

The values are nginx's (nginx/snippets/security-headers.conf), on the web app, its
assets, the API's JSON and `/docs`, whose one inline script is allowed by its hash.
"""

from __future__ import annotations

import base64
import hashlib
import re
from pathlib import Path

import pytest
from flask.testing import FlaskClient

from api import create_app
from api.config import TestConfig

CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; "
    "img-src 'self' data:; font-src 'self'; connect-src 'self'; object-src 'none'; "
    "base-uri 'self'; form-action 'self'; frame-ancestors 'none'"
)
BROWSER_HEADERS = {
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "strict-origin-when-cross-origin",
    "Permissions-Policy": "camera=(), microphone=(), geolocation=()",
}


@pytest.fixture
def client(tmp_path: Path) -> FlaskClient:
    """An app serving a small built web app of its own (web/dist may not be built)."""
    dist = tmp_path / "dist"
    (dist / "assets").mkdir(parents=True)
    (dist / "index.html").write_text(
        '<!doctype html><div id="root"></div><script type="module" src="/assets/app-1a2b.js">'
        "</script>"
    )
    (dist / "assets" / "app-1a2b.js").write_text("document.title = 'modelgate';")
    app = create_app(
        TestConfig(
            SQLALCHEMY_DATABASE_URI=f"sqlite:///{tmp_path / 'unused.sqlite'}",
            LOG_FILE=str(tmp_path / "app.log"),
            WEB_DIST=str(dist),
        )
    )
    return app.test_client()


@pytest.mark.parametrize("path", ["/", "/assets/app-1a2b.js", "/tokens"])
def test_the_web_app_and_its_assets_carry_nginxs_headers(client, path):
    response = client.get(path)
    assert response.status_code == 200
    assert response.headers["Content-Security-Policy"] == CSP
    for name, value in BROWSER_HEADERS.items():
        assert response.headers.get_all(name) == [value], name


@pytest.mark.parametrize(("path", "status"), [("/v1/openapi.json", 200), ("/v1/nope", 404)])
def test_api_answers_carry_them_too(client, path, status):
    response = client.get(path)
    assert response.status_code == status and response.is_json
    assert response.headers["X-Content-Type-Options"] == "nosniff"
    assert response.headers["X-Frame-Options"] == "DENY"
    assert response.headers["Content-Security-Policy"] == CSP


def test_docs_allow_their_own_inline_script_and_nothing_else(client):
    page = client.get("/docs")
    assert page.status_code == 200
    inline = re.findall(r"<script>(.*?)</script>", page.get_data(as_text=True), re.DOTALL)
    assert len(inline) == 1, "Swagger UI's page changed: check its CSP by hand"
    digest = base64.b64encode(hashlib.sha256(inline[0].encode()).digest()).decode()
    policy = page.headers["Content-Security-Policy"]
    assert f"script-src 'self' 'sha256-{digest}';" in policy
    assert policy.replace(f" 'sha256-{digest}'", "") == CSP
    assert page.headers["X-Frame-Options"] == "DENY"
    bundle = client.get("/docs/assets/swagger-ui-bundle.js")
    assert bundle.status_code == 200 and bundle.headers["Content-Security-Policy"] == CSP
