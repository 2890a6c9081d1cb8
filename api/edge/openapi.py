"""The OpenAPI 3 document (`/v1/openapi.json`) and Swagger UI (`/docs`), served offline.

flask-smorest builds the document from the blueprints' schemas, and
`api.edge.contract` adds what every operation shares (errors, security, headers);
Swagger UI's JavaScript and CSS come from the `swagger-ui-bundle` package, so
`/docs` works with no internet access.
"""

from __future__ import annotations

import swagger_ui_bundle
from flask import Blueprint, Flask, Response, send_from_directory

from api.edge.contract import SECURITY_SCHEMES, ContractApi, ContractPlugin, field_properties

openapi = ContractApi()  # unbound here, like the extensions; bound in `init_app`
assets = Blueprint("docs_assets", __name__)
DESCRIPTION = """PyTorch models behind an authenticated, rate-limited, metered API.

Every error is `{"error": {"code", "message", "type", "param", "trace_id", "details"}}`:
400 when a request breaks this document (`details` names each field), 422 when it fits the
document but not the model or the account (a prompt longer than the model's window, a
common password, a used link). Every answer carries `X-Trace-Id`."""


@assets.get("/docs/assets/<path:filename>")
def swagger_asset(filename: str) -> Response:
    return send_from_directory(swagger_ui_bundle.swagger_ui_path, filename, max_age=86400)


def init_app(app: Flask) -> None:
    openapi.init_app(
        app,
        spec_kwargs={
            "info": {"description": DESCRIPTION},
            "extra_plugins": [ContractPlugin()],
        },
    )
    for name, scheme in SECURITY_SCHEMES.items():
        openapi.spec.components.security_scheme(name, scheme)
    openapi.ma_plugin.converter.add_attribute_function(field_properties)
    app.register_blueprint(assets)
