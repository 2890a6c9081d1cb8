"""The OpenAPI 3 document (`/v1/openapi.json`) and Swagger UI (`/docs`), served offline.

flask-smorest builds the document from the blueprints' schemas, and
`api.edge.contract` adds what every operation shares (errors, security, headers).
What is known only while serving — one predict operation per ready handler model —
a blueprint adds to the served document with `add_document_hook`; `openapi.spec` (what
`make client` writes) stays the static part. Swagger UI's JavaScript and CSS come from
the `swagger-ui-bundle` package, so `/docs` works with no internet access.
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from typing import Any

import swagger_ui_bundle
from flask import Blueprint, Flask, Response, current_app, send_from_directory

from api.edge.contract import SECURITY_SCHEMES, ContractApi, ContractPlugin, field_properties

DocumentHook = Callable[[dict[str, Any]], None]
HOOKS = "openapi_document_hooks"


class ServedApi(ContractApi):
    """The document as served: the static spec, then each hook's additions for this moment."""

    def _openapi_json(self) -> Response:
        document = self.spec.to_dict()
        hooks = current_app.extensions.get(HOOKS, [])
        if hooks:
            document = copy.deepcopy(document)
            for hook in hooks:
                hook(document)
        body = current_app.json.dumps(document, indent=2, sort_keys=False)
        return current_app.response_class(body, mimetype="application/json")


def add_document_hook(app: Flask, hook: DocumentHook) -> None:
    """Have `hook(document)` change the served document in place at each request for it."""
    app.extensions.setdefault(HOOKS, []).append(hook)


openapi = ServedApi()  # unbound here, like the extensions; bound in `init_app`
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
