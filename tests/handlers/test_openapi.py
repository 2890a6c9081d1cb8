"""Each handler model's predict body in the OpenAPI document is its declaration, exactly:
what the schema accepts the route accepts, and what it refuses the route refuses (422)."""

from __future__ import annotations

import base64

import jsonschema
import pytest

from api.edge.errors import Unprocessable
from api.runtime.handlers.declarations import declare
from api.runtime.handlers.inputs import check_request
from api.runtime.handlers.openapi import (
    WHITE_PIXEL_PNG,
    example_inputs,
    inputs_schema,
    model_operation,
    operation_id,
    outputs_schema,
    request_body,
)
from tests.handlers import images
from tests.handlers.sample_handler import Counter, Tiny, Vectors

PNG = base64.b64encode(images.png()).decode()


def test_tiny_json_and_form_bodies():
    declaration = declare(Tiny, "tiny")
    body = request_body(declaration)
    as_json = body["content"]["application/json"]["schema"]
    assert as_json["required"] == ["image"] and as_json["additionalProperties"] is False
    assert as_json["properties"]["threshold"] == {
        "type": "number",
        "minimum": 0,
        "maximum": 1,
        "default": 0.5,
    }
    image = as_json["properties"]["image"]
    assert image["type"] == "string" and image["maxLength"] >= 1_000_000 * 4 // 3
    form = body["content"]["multipart/form-data"]
    assert form["schema"]["properties"]["image"]["format"] == "binary"
    assert form["encoding"] == {"image": {"contentType": "application/octet-stream"}}
    assert body["content"]["application/json"]["example"] == {"image": WHITE_PIXEL_PNG}


def test_tensor_text_boolean_json_and_integer_fields():
    properties = inputs_schema(declare(Vectors, "vectors"), form=False)["properties"]
    assert properties["x"]["type"] == "array"
    assert properties["x"]["minItems"] == properties["x"]["maxItems"] == 2
    assert properties["x"]["items"]["items"] == {"type": "number"}
    assert properties["note"]["maxLength"] == 5 and properties["flag"] == {
        "type": "boolean",
        "default": False,
    }
    assert properties["meta"]["type"] == "object" and properties["k"]["type"] == "integer"
    form = inputs_schema(declare(Vectors, "vectors"), form=True)["properties"]
    assert form["x"]["type"] == "string" and "JSON text" in form["x"]["description"]


BODIES = [
    {"x": [[1, 2], [3, 4]]},
    {"x": [[1], [2]], "note": "hello", "flag": True, "meta": {"a": 1}, "k": 3},
    {"x": [[], []]},
    {"x": [[1, 2]]},  # two rows are declared
    {"x": [1, 2]},
    {"x": [[1, "a"], [2, 3]]},
    {"x": [[1, 2], [3, 4]], "note": "too long"},
    {"x": [[1, 2], [3, 4]], "k": 1.5},
    {"x": [[1, 2], [3, 4]], "flag": "yes"},
    {"x": [[1, 2], [3, 4]], "meta": [1]},
    {"x": [[1, 2], [3, 4]], "other": 1},
    {"note": "hi"},
    {"x": [[10**400], [1]]},
]


@pytest.mark.parametrize("body", BODIES)
def test_the_schema_and_the_route_agree(body):
    declaration = declare(Vectors, "vectors")
    schema = inputs_schema(declaration, form=False)
    fits = jsonschema.Draft4Validator(schema).is_valid(body)
    try:
        check_request(declaration, body)
        accepted = True
    except Unprocessable:
        accepted = False
    if body == {"x": [[10**400], [1]]}:  # a number JSON Schema allows and a float cannot hold
        assert fits and not accepted
    else:
        assert fits == accepted, body


def test_integer_tensors_are_bounded_by_their_dtype():
    class Ids(Vectors):
        inputs = [{"name": "ids", "kind": "tensor", "dtype": "uint8", "shape": [-1, 3]}]

    declaration = declare(Ids, "ids")
    schema = inputs_schema(declaration, form=False)["properties"]["ids"]
    assert schema["minItems"] == 1 and schema["items"]["items"]["maximum"] == 255
    with pytest.raises(Unprocessable) as refused:
        check_request(declaration, {"ids": [[1, 2, 300]]})
    assert "0 to 255" in refused.value.details["ids"][0]


def test_an_image_in_json_is_base64_or_a_data_url():
    declaration = declare(Tiny, "tiny")
    validator = jsonschema.Draft4Validator(inputs_schema(declaration, form=False))
    for good in (PNG, "data:image/png;base64," + PNG, WHITE_PIXEL_PNG):
        assert validator.is_valid({"image": good})
        check_request(declaration, {"image": good})
    for bad in ("not base64!", "data:image/png," + PNG, PNG[:-1]):
        assert not validator.is_valid({"image": bad})
        with pytest.raises(Unprocessable):
            check_request(declaration, {"image": bad})


def test_the_outputs_and_the_operation():
    declaration = declare(Tiny, "tiny")
    outputs = outputs_schema(declaration)
    assert outputs["required"] == ["label", "scores"] and outputs["additionalProperties"] is False
    assert outputs["properties"]["scores"] == {"type": "array", "items": {"type": "number"}}
    generic = {"operationId": "predict", "responses": {"200": {"description": "OK"}}}
    taken = {"predict", "predict_ocr_en"}
    operation = model_operation(generic, "ocr-en", declaration, taken)
    assert operation["operationId"] == "predict_ocr_en_2" and generic["operationId"] == "predict"
    answer = operation["responses"]["200"]["content"]
    assert answer["application/json"]["schema"]["properties"]["model"]["enum"] == ["ocr-en"]
    assert "text/event-stream" not in answer
    streaming = model_operation(generic, "count", declare(Counter, "count"), taken)
    assert "text/event-stream" in streaming["responses"]["200"]["content"]
    assert operation_id("a.b-c", set()) == "predict_a_b_c"


def test_examples_fit_their_declarations():
    for handler in (Tiny, Vectors, Counter):
        declaration = declare(handler, "m")
        example = example_inputs(declaration)
        assert example is not None
        check_request(declaration, example)
