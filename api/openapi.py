"""The OpenAPI 3 document (`/v1/openapi.json`) and Swagger UI (`/docs`), served offline.

flask-smorest builds the document from the blueprints' schemas; Swagger UI's
JavaScript and CSS come from the `swagger-ui-bundle` package, so `/docs` works
with no internet access.
"""

from __future__ import annotations

import swagger_ui_bundle
from flask import Blueprint, Flask, Response, send_from_directory

from api.extensions import openapi

assets = Blueprint("docs_assets", __name__)


@assets.get("/docs/assets/<path:filename>")
def swagger_asset(filename: str) -> Response:
    return send_from_directory(swagger_ui_bundle.swagger_ui_path, filename, max_age=86400)


def init_app(app: Flask) -> None:
    openapi.init_app(
        app,
        spec_kwargs={
            "info": {"description": "PyTorch models behind an authenticated, metered API."},
        },
    )
    openapi.spec.components.security_scheme(
        "bearer",
        {
            "type": "http",
            "scheme": "bearer",
            "description": "An API token (mg_...) or a session access token.",
        },
    )
    app.register_blueprint(assets)
