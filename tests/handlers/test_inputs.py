"""Every bad input of issue 26 step 4 is a 4xx naming the field, checked without decoding."""

from __future__ import annotations

import base64
import time

import pytest

from api.edge.errors import Unprocessable
from api.runtime.handlers.declarations import declare
from api.runtime.handlers.decoding import decode_item
from api.runtime.handlers.inputs import check_request
from tests.handlers import images
from tests.handlers.sample_handler import Tiny, Vectors

TINY = declare(Tiny, "tiny")
VECTORS = declare(Vectors, "vectors")


def problem(error) -> tuple[int, dict]:
    return error.value.status, error.value.details


def test_a_good_image_passes_as_base64_a_data_url_or_a_file():
    data = images.png()
    for fields, files in (
        ({"image": base64.b64encode(data).decode()}, None),
        ({"image": "data:image/png;base64," + base64.b64encode(data).decode()}, None),
        ({}, {"image": data}),
    ):
        checked = check_request(TINY, fields, files)
        assert checked.blobs == {"image": data} and checked.values == {"threshold": 0.5}


@pytest.mark.parametrize(
    ("data", "said"),
    [
        (b"plain text, not an image", "Not an image this model reads (jpeg, png, webp)."),
        (b"", "The image is empty."),
        (images.gif(), "A GIF image; give one of jpeg, png, webp."),
        (images.png(65, 64), "The image is 65 x 64 pixels (4160); at most 4096."),
    ],
)
def test_bad_images_are_422_naming_the_field(data, said):
    with pytest.raises(Unprocessable) as raised:
        check_request(TINY, {}, {"image": data})
    assert problem(raised) == (422, {"image": [said]})


def test_a_decompression_bomb_is_refused_from_its_header_quickly():
    bomb = images.bomb_png()
    assert len(bomb) < 200_000
    started = time.monotonic()
    big = declare(Tiny, "big")
    with pytest.raises(Unprocessable) as raised:
        check_request(TINY, {}, {"image": bomb})
    assert raised.value.details == {"image": ["The image has more than 4096 pixels."]}
    # With a limit above Pillow's own, its guard refuses it before anything is decoded too.
    spec = big.input("image")
    spec.limits["max_pixels"] = 10**10
    with pytest.raises(Unprocessable, match="more than"):
        check_request(big, {}, {"image": bomb})
    assert time.monotonic() - started < 1.0


def test_a_truncated_png_passes_the_header_check_and_fails_decoding_as_422():
    data = images.truncated_png()
    big = declare(Tiny, "t", None)
    big.input("image").limits["max_pixels"] = 100_000
    checked = check_request(big, {}, {"image": data})
    with pytest.raises(Unprocessable) as raised:
        decode_item(big, checked.values, checked.blobs)
    assert problem(raised) == (
        422,
        {"image": ["The image could not be decoded: the file is truncated or corrupt."]},
    )


@pytest.mark.parametrize(
    ("fields", "details"),
    [
        (
            {"picture": "x", "image": "aGk="},
            {"picture": ["Unknown field; tiny takes image, threshold."]},
        ),
        ({}, {"image": ["Missing data for required field."]}),
        (
            {"image": 12},
            {"image": ["Give the image as base64 text or a data: URL (or upload it as a file)."]},
        ),
        ({"image": "%%%"}, {"image": ["Not valid base64 (or a data: URL with base64 content)."]}),
        ({"image": "aGk=", "threshold": "0.5"}, {"threshold": ["Not a valid number."]}),
        ({"image": "aGk=", "threshold": True}, {"threshold": ["Not a valid number."]}),
        ({"image": "aGk=", "threshold": 2}, {"threshold": ["Must be at most 1."]}),
    ],
)
def test_wrong_fields_and_json_types_are_422_naming_the_field(fields, details):
    with pytest.raises(Unprocessable) as raised:
        check_request(TINY, fields)
    assert raised.value.status == 422
    assert {name: raised.value.details[name] for name in details} == details


@pytest.mark.parametrize(
    ("fields", "said"),
    [
        ({"x": [1, 2]}, {"x": ["Expected a tensor of shape [2, any], got [2]."]}),
        (
            {"x": [[1, 2], [3, 4], [5, 6]]},
            {"x": ["Expected a tensor of shape [2, any], got [3, 2]."]},
        ),
        (
            {"x": [[1, 2], [3]]},
            {"x": ["Expected a tensor of shape [2, any]; its rows differ in length."]},
        ),
        ({"x": [[1, "a"], [3, 4]]}, {"x": ["Tensor elements must be numbers."]}),
        ({"x": 3}, {"x": ["Expected a tensor of shape [2, any], got a scalar."]}),
        ({"x": [[1], [2]], "note": "too long"}, {"note": ["Longer than 5 characters."]}),
        ({"x": [[1], [2]], "flag": "yes"}, {"flag": ["Not a valid boolean."]}),
        ({"x": [[1], [2]], "meta": [1]}, {"meta": ["Not a JSON object."]}),
        ({"x": [[1], [2]], "k": 1.5}, {"k": ["Not a valid integer."]}),
    ],
)
def test_tensors_and_other_kinds_are_checked(fields, said):
    with pytest.raises(Unprocessable) as raised:
        check_request(VECTORS, fields)
    assert raised.value.details == said


def test_form_values_are_read_as_their_kind():
    checked = check_request(
        VECTORS,
        {"x": "[[1, 2], [3, 4]]", "flag": "true", "k": "3", "meta": '{"a": 1}'},
        from_form=True,
    )
    assert checked.values == {
        "x": [[1, 2], [3, 4]],
        "note": "",
        "flag": True,
        "k": 3,
        "meta": {"a": 1},
    }
    item = decode_item(VECTORS, checked.values, checked.blobs)
    assert item["x"].dtype.is_floating_point and tuple(item["x"].shape) == (2, 2)
    with pytest.raises(Unprocessable, match=r"x: Not valid JSON for a tensor\."):
        check_request(VECTORS, {"x": "[[1,"}, from_form=True)
