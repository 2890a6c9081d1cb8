"""The OCR example handler (models/ocr), called in-process as the model server will call it."""

from __future__ import annotations

import json

import numpy as np
import pytest
from PIL import Image

from models.ocr.detect import min_area_rect
from models.ocr.evaluate import character_error_rate, find_fonts, load_font, render
from models.ocr.handler import OCR

KINDS = {"text", "image", "number", "boolean", "json", "tensor"}


@pytest.fixture(scope="module")
def ocr() -> OCR:
    model = OCR()
    model.setup("cpu")
    return model


def test_declarations_are_plain_dicts_of_known_kinds() -> None:
    declared = json.loads(json.dumps({"inputs": OCR.inputs, "outputs": OCR.outputs}))
    assert declared == {"inputs": OCR.inputs, "outputs": OCR.outputs}
    assert [spec["name"] for spec in OCR.inputs] == ["image"]
    assert {spec["kind"] for spec in OCR.inputs + OCR.outputs} <= KINDS
    assert OCR.name == "ocr-en" and OCR.units == "images" and OCR.max_batch_size >= 1


def test_reads_a_rendered_line_back(ocr: OCR) -> None:
    fonts = find_fonts()
    text = "Invoice 4471: total $1,250.00 due 2026-12-31"
    image = render([text], load_font(fonts[0] if fonts else None, 40))

    [result] = ocr.predict([{"image": image}])

    assert set(result) == {spec["name"] for spec in OCR.outputs}
    assert character_error_rate([text], [result["text"]]) <= 0.05, result["text"]
    assert result["lines"], result
    for line in result["lines"]:
        assert set(line) == {"text", "box", "confidence"}
        assert isinstance(line["text"], str) and line["text"]
        assert 0.0 <= line["confidence"] <= 1.0
        assert len(line["box"]) == 4
        for x, y in line["box"]:
            assert isinstance(x, int) and isinstance(y, int)
            assert 0 <= x <= image.width and 0 <= y <= image.height
    json.dumps(result)  # what the route will send


@pytest.mark.parametrize(
    ("mode", "size"),
    [("RGB", (1, 1)), ("RGB", (7, 300)), ("RGB", (300, 100)), ("L", (64, 64))],
    ids=["1x1", "7x300", "blank", "grey"],
)
def test_an_image_without_text_has_no_lines(ocr: OCR, mode: str, size: tuple[int, int]) -> None:
    results = ocr.predict([{"image": Image.new(mode, size, "white")}])

    assert results == [{"lines": [], "text": ""}]


def test_a_batch_answers_each_item_in_order(ocr: OCR) -> None:
    fonts = find_fonts()
    font = load_font(fonts[0] if fonts else None, 40)
    images = [render(["first page"], font), Image.new("RGB", (50, 50), "white")]

    first, empty = ocr.predict([{"image": image} for image in images])

    assert character_error_rate(["first page"], [first["text"]]) <= 0.1, first["text"]
    assert empty == {"lines": [], "text": ""}


def test_min_area_rect_finds_a_turned_rectangle() -> None:
    angle = np.deg2rad(10)
    turn = np.array([[np.cos(angle), -np.sin(angle)], [np.sin(angle), np.cos(angle)]])
    grid = np.array([[x, y] for x in np.linspace(0, 40, 41) for y in np.linspace(0, 10, 11)])
    corners = min_area_rect(grid @ turn.T)

    sides = sorted(np.linalg.norm(corners - np.roll(corners, 1, axis=0), axis=1))
    assert np.allclose(sides, [10, 10, 40, 40], atol=1e-6)
