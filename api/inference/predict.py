"""`POST /v1/models/{id}/predict`: run a handler model on one item (JSON or multipart).

JSON: `{"image": "<base64 or data: URL>", "threshold": 0.3}`; multipart: one part per
field, files for images (`curl -F image=@page.png -F threshold=0.3`). The answer is
`{"model", "outputs", "usage": {"units", "unit"}, "trace_id"}`. A streaming model
(its `predict` a generator) asked with `Accept: text/event-stream` answers server-sent
events instead: `{"outputs"}` for each partial output, then `{"model", "usage",
"trace_id"}`, then `[DONE]`; an error after the first event comes in-band. An API token needs
the `predict` scope. Each model's fields are in `GET /v1/models/{id}`, and the served
OpenAPI document has an exact operation of its own for every ready model
(`add_model_operations`) beside the generic one here.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterator
from typing import Any

from flask import Response, current_app, request, stream_with_context
from marshmallow import Schema, fields

from api.access.budget import api_rate_limit
from api.access.ratelimits import inference_slot
from api.access.security import authenticate, current_principal
from api.edge.errors import (
    APIError,
    Unprocessable,
    UnsupportedMediaType,
    ValidationFailed,
    error_body,
    unexpected,
)
from api.edge.guards import string_problem
from api.edge.openapi import add_document_hook
from api.edge.validation import Blueprint
from api.extensions import db
from api.inference import upstream_predict
from api.inference.openai_format import sse
from api.observability.tracing import bind_trace_id, current_trace_id, reset_trace_id
from api.runtime.errors import ModelNotFound
from api.runtime.handlers import service
from api.runtime.handlers.openapi import model_operation
from api.runtime.handlers.registry import HandlerModels, handler_models, ready_models
from api.runtime.upstreams.oip import OIPUpstream, oip_upstreams
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
        str(operation["operationId"])
        for item in paths.values()
        for operation in item.values()
        if isinstance(operation, dict) and "operationId" in operation
    }
    for model_id, described in ready_models(handler_models()).items():
        operation = model_operation(generic, model_id, described.declaration, taken)
        taken.add(operation["operationId"])
        paths[f"/v1/models/{model_id}/predict"] = {"post": operation}


blueprint.record_once(lambda state: add_document_hook(state.app, add_model_operations))


def _read_body() -> service.PredictBody:
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
            if problem:  # any part fits the generic operation: the model's 422, as in JSON
                field = "_form" if string_problem(name) else name
                raise Unprocessable(f"{field}: {problem}", details={field: [problem]})
            fields[name] = values[0]
        files = {}
        for name in request.files:
            uploads = request.files.getlist(name)
            if len(uploads) > 1 or name in fields:
                raise Unprocessable(
                    f"{name}: Give this field once.", details={name: ["Give this field once."]}
                )
            files[name] = uploads[0].read()
        return service.PredictBody(fields, files, from_form=True)
    if request.is_json:
        body = request.get_json(silent=True)
        if not isinstance(body, dict):
            raise ValidationFailed(details={"_body": ["Send a JSON object of the model's inputs."]})
        return service.PredictBody(body)
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
    upstream = oip_upstreams().get(model_id)
    if upstream is not None:
        return _upstream_predict(upstream, model_id)
    models = handler_models()
    if model_id not in models:  # before the body: any body fits the document
        raise ModelNotFound(model_id, "predict")
    meter().model = model_id
    deadline = time.monotonic() + current_app.config["INFERENCE_TIMEOUT_S"]
    body = _read_body()
    db.session.commit()  # give the connection back while the model runs
    if _wants_events() and service.streams(models, model_id):
        return _stream(models, model_id, body, deadline)
    with inference_slot(current_principal().user_id):
        result = service.predict(models, model_id, body, deadline=deadline)
    meter().units = result.units
    return {
        "model": result.model,
        "outputs": result.outputs,
        "usage": {"units": result.units, "unit": result.unit},
        "trace_id": current_trace_id(),
    }


def _upstream_predict(upstream: OIPUpstream, model_id: str) -> dict[str, Any]:
    """One item on an Open Inference Protocol upstream (api.inference.upstream_predict)."""
    meter().model = model_id
    deadline = time.monotonic() + current_app.config["INFERENCE_TIMEOUT_S"]
    body = _read_body()
    if body.from_form:
        raise UnsupportedMediaType("Send an upstream model's inputs as JSON.")
    db.session.commit()  # give the connection back while the model runs
    with inference_slot(current_principal().user_id):
        outputs = upstream_predict.predict(upstream, body.fields, deadline=deadline)
    meter().units = 1
    usage = {"units": 1, "unit": "items"}
    return {"model": model_id, "outputs": outputs, "usage": usage, "trace_id": current_trace_id()}


def _wants_events() -> bool:
    """`Accept: text/event-stream` preferred to JSON: stream a streaming model's outputs."""
    offered = ["application/json", "text/event-stream"]
    return request.accept_mimetypes.best_match(offered) == "text/event-stream"


def _stream(
    models: HandlerModels, model_id: str, body: service.PredictBody, deadline: float
) -> Response:
    """Start the model's stream (errors before its first output still get a status), then
    send each partial output as an event, the usage, and `[DONE]`."""
    held = contextlib.ExitStack()  # released when the stream ends, not when this returns
    held.enter_context(inference_slot(current_principal().user_id, stream=True))
    try:
        running = service.stream(models, model_id, body, deadline=deadline)
    except BaseException:
        held.close()
        raise
    usage = meter()

    def events() -> Iterator[str]:
        trace = bind_trace_id(usage.trace_id)  # the view's trace context ends before the stream
        try:
            for outputs in running:
                usage.units = running.units
                yield sse({"outputs": outputs})
            usage.units = running.units
            yield sse(
                {
                    "model": model_id,
                    "usage": {"units": running.units, "unit": running.unit},
                    "trace_id": usage.trace_id,
                }
            )
            yield sse("[DONE]")
        except Exception as error:  # after the 200: in-band, as the completions stream does
            failure = error if isinstance(error, APIError) else unexpected(error)
            usage.status = failure.status
            yield sse(error_body(failure.status, failure.code, failure.message, failure.details))
            yield sse("[DONE]")
        finally:
            running.close()  # the client went away or we are done: stop the model's generator
            held.close()
            reset_trace_id(trace)

    return Response(
        stream_with_context(events()),
        mimetype="text/event-stream",
        headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
    )
