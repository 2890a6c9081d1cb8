"""The Open Inference Protocol's HTTP surface (`/v2`), and its error shape.

Server metadata and the health probes are open, as `/healthz` is; a model's metadata
and readiness take a token (any scope, as `GET /v1/models/{id}`); inference takes the
model's scope (`predict` for handler models, `embed` for embedding models) and goes
through the budget, the per-user inference slots and metering like `/v1`. Every error
leaves here as the protocol's `{"error": "message"}`: the rest of the app answers in the
house shape (authentication, the body guards, the error handlers), and `to_protocol_error`
rewrites that body on the way out, keeping its status and headers (422 becomes 400).
These routes are not in `/v1/openapi.json`: the protocol's own specification documents
them (docs/oip.md).
"""

from __future__ import annotations

import time

from flask import Blueprint, Response, current_app, json, request

from api.access.budget import api_rate_limit
from api.access.ratelimits import inference_slot
from api.access.security import authenticate, current_principal
from api.edge.errors import Forbidden, NotFound, UnsupportedMediaType
from api.extensions import db
from api.oip import codec, service, upstream
from api.usage.metering import meter, metered

blueprint = Blueprint("oip", __name__, url_prefix="/v2")
MODEL = "/models/<string(maxlength=64):name>"
VERSIONED = MODEL + "/versions/<string(maxlength=64):version>"
ALL_METHODS = ["GET", "POST", "PUT", "PATCH", "DELETE"]


@blueprint.get("")
def server_metadata() -> dict:
    return service.server_metadata()


@blueprint.get("/health/live")
def server_live() -> dict:
    return {"live": True}


@blueprint.get("/health/ready")
def server_ready() -> dict:
    return service.server_ready()


@blueprint.get(MODEL)
@blueprint.get(VERSIONED)
@authenticate()
@metered("models")
@api_rate_limit
def model_metadata(name: str, version: str | None = None) -> dict:
    return service.model_metadata(service.find_model(name, version))


@blueprint.get(MODEL + "/ready")
@blueprint.get(VERSIONED + "/ready")
@authenticate()
@metered("models")
@api_rate_limit
def model_ready(name: str, version: str | None = None) -> dict:
    return service.model_ready(service.find_model(name, version), version)


@blueprint.post(MODEL + "/infer")
@blueprint.post(VERSIONED + "/infer")
@authenticate()
@metered("oip_infer")
@api_rate_limit
def infer(name: str, version: str | None = None) -> Response:
    target = service.find_model(name, version)
    principal = current_principal()
    if target.scope not in principal.scopes:
        raise Forbidden(
            f"This token lacks the '{target.scope}' scope.",
            code="insufficient_scope",
            details={"required_scope": target.scope},
        )
    meter().model = target.name
    deadline = time.monotonic() + current_app.config["INFERENCE_TIMEOUT_S"]
    if request.headers.get("Content-Encoding", "identity") != "identity":
        raise UnsupportedMediaType("Send the request uncompressed.")
    raw, given_length = request.get_data(), request.headers.get(codec.HEADER_LENGTH)
    asked = codec.read_request(raw, given_length)
    db.session.commit()  # give the connection back while the model runs
    if target.kind == "upstream":  # the client's body goes through as it came
        with inference_slot(principal.user_id):
            answer = upstream.infer(target.name, raw, given_length, version, deadline=deadline)
        meter().units = upstream.units(asked)
        return _tensors(answer.body, answer.header_length)
    with inference_slot(principal.user_id):
        result = service.infer(target, asked, deadline=deadline)
    meter().units, meter().tokens_in = result.units, result.tokens
    body, header_length = codec.write_response(
        target.name, service.VERSION, asked.id, result.outputs
    )
    return _tensors(body, header_length)


def _tensors(body: bytes, header_length: int | None) -> Response:
    """An inference answer: JSON, or JSON then binary tensors (with the header's length)."""
    if header_length is None:
        return Response(body, mimetype="application/json")
    response = Response(body, mimetype="application/octet-stream")
    response.headers[codec.HEADER_LENGTH] = str(header_length)
    return response


@blueprint.route("/<path:rest>", methods=ALL_METHODS)
def unknown(rest: str) -> Response:
    """Any other `/v2` path: the protocol's 404 (not the web app's page)."""
    raise NotFound(f"/v2/{rest} is not part of the protocol here.")


@blueprint.after_request
def to_protocol_error(response: Response) -> Response:
    """The house error body `{"error": {"message", ...}}` as the protocol's `{"error": "..."}`."""
    if response.status_code < 400 or response.mimetype != "application/json":
        return response
    body = response.get_json(silent=True)
    error = body.get("error") if isinstance(body, dict) else None
    if isinstance(error, dict):
        response.set_data(json.dumps({"error": str(error.get("message") or "Error.")}))
        if response.status_code == 422:
            response.status_code = 400
    return response
