"""Liveness, readiness, and the offline API documentation."""

from __future__ import annotations


def test_healthz(client):
    response = client.get("/healthz")
    assert response.status_code == 200 and response.get_json() == {"status": "ok"}


def test_readyz_checks_the_database(client):
    response = client.get("/readyz")
    assert response.status_code == 200
    assert response.get_json()["checks"] == {"database": "ok"}


def test_readyz_checks_redis_when_configured(make_app, redis_url):
    response = make_app(REDIS_URL=redis_url).test_client().get("/readyz")
    assert response.get_json()["checks"] == {"database": "ok", "redis": "ok"}


def test_readyz_names_the_dependency_that_is_down(make_app):
    app = make_app(REDIS_URL="redis://127.0.0.1:1/0")
    response = app.test_client().get("/readyz")
    assert response.status_code == 503
    assert response.headers["Retry-After"]
    error = response.get_json()["error"]
    assert "redis" in error["message"]
    assert error["details"]["checks"] == {"database": "ok", "redis": "unreachable"}


def test_readyz_reports_an_unreachable_database(make_app):
    app = make_app(SQLALCHEMY_DATABASE_URI="postgresql+psycopg://nobody@127.0.0.1:1/none")
    response = app.test_client().get("/readyz")
    assert response.status_code == 503
    assert response.get_json()["error"]["details"]["checks"]["database"] == "unreachable"


def test_openapi_document_and_offline_docs(client):
    spec = client.get("/v1/openapi.json").get_json()
    assert spec["openapi"].startswith("3.")
    assert "/healthz" in spec["paths"]
    page = client.get("/docs").get_data(as_text=True)
    assert "/v1/openapi.json" in page
    for asset in ("swagger-ui.css", "swagger-ui-bundle.js", "swagger-ui-standalone-preset.js"):
        assert f"/docs/assets/{asset}" in page
        assert client.get(f"/docs/assets/{asset}").status_code == 200
    assert "http://" not in page and "https://" not in page
