"""`POST /v1/models/{id}/predict`: run a handler model on one item (JSON or multipart).

JSON: `{"image": "<base64 or data: URL>", "threshold": 0.3}`; multipart: one part per
field, files for images (`curl -F image=@page.png -F threshold=0.3`). The answer is
`{"model", "outputs", "usage": {"units", "unit"}, "trace_id"}`. An API token needs
the `predict` scope. Each model's fields are in `GET /v1/models/{id}`, and the served
OpenAPI document has an exact operation of its own for every ready model
(`add_model_operations`) beside the generic one here.
"""

from __future__ import annotations

import time
from typing import Any

from flask import current_app, request
from marshmallow import Schema, fields

from api.access.budget import api_rate_limit
from api.access.ratelimits import inference_slot
from api.access.security import authenticate, current_principal
from api.edge.errors import Unprocessable, UnsupportedMediaType, ValidationFailed
from api.edge.guards import string_problem
from api.edge.openapi import add_document_hook
from api.edge.validation import Blueprint
from api.extensions import db
from api.observability.tracing import current_trace_id
from api.runtime.errors import ModelNotFound
from api.runtime.handlers import service
from api.runtime.handlers.openapi import model_operation
from api.runtime.handlers.registry import handler_models, ready_models
from api.usage.metering import meter, metered

blueprint = Blueprint("predict", __name__, url_prefix="/v1", description="Handler models.")


class PredictUsageOut(Schema):
    units = fields.Integer(metadata={"description": "What the call used, in the model's unit."})
    unit = fields.String(metadata={"description": "The model's unit: images, items ..."})


class PredictOut(Schema):
    model = fields.String()
    outputs = fields.Dict(metadata={"description": "The model's declared outputs, by name."})
    usage = fields.Nested(PredictUsageOut)
    trace_id = fields.String()


_INPUTS = {
    "type": "object",
    "additionalProperties": True,
    "description": "The model's declared inputs by name (GET /v1/models/{model_id} lists "
    "them): images as base64 or data: URLs, tensors as nested lists.",
}
BODY = {
    "required": True,
    "content": {
        "application/json": {"schema": _INPUTS, "example": {"image": "data:image/png;base64,..."}},
        "multipart/form-data": {
            "schema": {**_INPUTS, "description": "One part per input; images as files."}
        },
    },
}


GENERIC_PATH = "/v1/models/{model_id}/predict"


def add_model_operations(document: dict[str, Any]) -> None:
    """One exact predict operation per ready handler model, beside the generic one."""
    paths = document.get("paths", {})
    generic = paths.get(GENERIC_PATH, {}).get("post")
    if generic is None:
        return
    taken = {
        op.get("operationId")
        for item in paths.values()
        for op in item.values()
        if isinstance(op, dict)
    }
    for model_id, described in ready_models(handler_models()).items():
        operation = model_operation(generic, model_id, described.declaration, taken)
        taken.add(operation["operationId"])
        paths[f"/v1/models/{model_id}/predict"] = {"post": operation}


blueprint.record_once(lambda state: add_document_hook(state.app, add_model_operations))


def _read_body() -> tuple[dict[str, Any], dict[str, bytes], bool]:
    """The request's fields and files, and whether it was a multipart form."""
    if request.mimetype == "multipart/form-data":
        fields: dict[str, Any] = {}
        for name in request.form:
            values = request.form.getlist(name)
            if len(values) > 1:
                raise Unprocessable(
                    f"{name}: Give this field once.", details={name: ["Give this field once."]}
                )
            problem = string_problem(values[0]) or string_problem(name)
            if problem:
                raise ValidationFailed(details={name: [problem]})
            fields[name] = values[0]
        files = {}
        for name in request.files:
            uploads = request.files.getlist(name)
            if len(uploads) > 1 or name in fields:
                raise Unprocessable(
                    f"{name}: Give this field once.", details={name: ["Give this field once."]}
                )
            files[name] = uploads[0].read()
        return fields, files, True
    if request.is_json:
        body = request.get_json(silent=True)
        if not isinstance(body, dict):
            raise ValidationFailed(details={"_body": ["Send a JSON object of the model's inputs."]})
        return body, {}, False
    raise UnsupportedMediaType(
        "Send the inputs as JSON or multipart/form-data.",
        details={"content_type": request.mimetype or None},
    )


@blueprint.route("/models/<string(maxlength=64):model_id>/predict", methods=["POST"])
@authenticate(scope="predict")
@metered("predict")
@api_rate_limit
@blueprint.errors(400, 404, 413, 415, 422, 500, 503, 504)
@blueprint.doc(operationId="predict", requestBody=BODY)
@blueprint.response(200, PredictOut)
def predict(model_id: str):
    """Run a handler model on one item; the body is the model's declared inputs."""
    models = handler_models()
    if model_id not in models:  # before the body: any body fits the document
        raise ModelNotFound(model_id, "predict")
    meter().model = model_id
    deadline = time.monotonic() + current_app.config["INFERENCE_TIMEOUT_S"]
    fields, files, from_form = _read_body()
    db.session.commit()  # give the connection back while the model runs
    with inference_slot(current_principal().user_id):
        result = service.predict(
            models, model_id, fields, files, from_form=from_form, deadline=deadline
        )
    meter().units = result.units
    return {
        "model": result.model,
        "outputs": result.outputs,
        "usage": {"units": result.units, "unit": result.unit},
        "trace_id": current_trace_id(),
    }
