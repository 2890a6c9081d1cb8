"""The recogniser's side: crop each line, scale it to 64 px high, run the CRNN, decode CTC.

A port of EasyOCR's `utils.get_image_list`, `recognition.AlignCollate` and
`recognition.recognizer_predict` (greedy decoder; a low-confidence line is read a second
time with its contrast stretched, as `Reader.readtext` does) to Pillow, numpy and torch.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import torch
from PIL import Image
from torch import nn

from .networks import CHARACTERS

HEIGHT = 64  # the recogniser's input height
CHUNK = 16  # lines per forward pass; lines are sorted by width, so padding stays small
CONTRAST_THS = 0.1  # below this confidence a line is read again with more contrast
_ALPHABET = np.array(["", *CHARACTERS])  # index 0: the CTC blank


def crop_box(grey: Image.Image, box: Sequence[int]) -> Image.Image | None:
    """An upright [x0, x1, y0, y1] line box, clipped to the image; None when empty."""
    x0, x1 = max(0, box[0]), min(grey.width, box[1])
    y0, y1 = max(0, box[2]), min(grey.height, box[3])
    if x1 - x0 < 1 or y1 - y0 < 1:
        return None
    return grey.crop((x0, y0, x1, y1))


def crop_quad(grey: Image.Image, quad: np.ndarray) -> Image.Image | None:
    """A slanted line (4 corners, clockwise from top-left) warped to an upright strip."""
    tl, tr, br, bl = quad
    width = int(max(np.linalg.norm(br - bl), np.linalg.norm(tr - tl)))
    height = int(max(np.linalg.norm(tr - br), np.linalg.norm(tl - bl)))
    if width < 1 or height < 1:
        return None
    # QUAD takes the source corners in the order upper-left, lower-left, lower-right, upper-right.
    data = (*tl, *bl, *br, *tr)
    return grey.transform((width, height), Image.Transform.QUAD, data, Image.Resampling.BILINEAR)


def _stretch_contrast(line: np.ndarray, target: float = 0.5) -> np.ndarray:
    """EasyOCR's `adjust_contrast_grey`: spread a washed-out line over the grey range."""
    high, low = np.percentile(line, 90), np.percentile(line, 10)
    if (high - low) / max(10.0, high + low) >= target:
        return line
    stretched = (line.astype(np.float32) - low + 25) * (200.0 / max(10.0, high - low))
    return np.clip(stretched, 0, 255).astype(np.uint8)


def _to_batch(lines: list[Image.Image], contrast: bool) -> torch.Tensor:
    """Lines scaled to HEIGHT, in [-1, 1], right-padded by repeating their last column."""
    widths = [min(4096, max(1, math.ceil(HEIGHT * line.width / line.height))) for line in lines]
    max_w = math.ceil(max(max(widths) / HEIGHT, 1)) * HEIGHT
    batch = np.empty((len(lines), 1, HEIGHT, max_w), dtype=np.float32)
    for row, (line, width) in zip(batch, zip(lines, widths, strict=True), strict=True):
        pixels = np.asarray(line.resize((width, HEIGHT), Image.Resampling.BICUBIC))
        if contrast:
            pixels = _stretch_contrast(pixels)
        row[0, :, :width] = pixels / 127.5 - 1.0
        row[0, :, width:] = row[0, :, width - 1 : width]
    return torch.from_numpy(batch)


def decode(probs: np.ndarray) -> tuple[str, float]:
    """Greedy CTC for one line: (T, classes) probabilities -> text, confidence.

    The confidence is EasyOCR's: the product of the per-step maxima of the non-blank
    steps, raised to 2 / sqrt(steps).
    """
    best = probs.argmax(axis=1)
    keep = np.insert(best[1:] != best[:-1], 0, True) & (best != 0)
    text = "".join(_ALPHABET[best[keep]])
    maxima = probs.max(axis=1)[best != 0]
    if len(maxima) == 0:
        return text, 0.0
    return text, float(np.prod(maxima.astype(np.float64)) ** (2.0 / math.sqrt(len(maxima))))


def _read(model: nn.Module, lines: list[Image.Image], device: str, contrast: bool) -> list:
    order = sorted(range(len(lines)), key=lambda i: lines[i].width / lines[i].height)
    results: list[tuple[str, float]] = [("", 0.0)] * len(lines)
    for start in range(0, len(order), CHUNK):
        chunk = order[start : start + CHUNK]
        batch = _to_batch([lines[i] for i in chunk], contrast).to(device)
        with torch.inference_mode():
            probs = torch.softmax(model(batch), dim=2).cpu().numpy()
        for i, line_probs in zip(chunk, probs, strict=True):
            results[i] = decode(line_probs)
    return results


def read_lines(model: nn.Module, lines: list[Image.Image], device: str) -> list[tuple[str, float]]:
    """Text and confidence for each grey line image."""
    if not lines:
        return []
    results = _read(model, lines, device, contrast=False)
    faint = [i for i, (_, confidence) in enumerate(results) if confidence < CONTRAST_THS]
    if faint:
        again = _read(model, [lines[i] for i in faint], device, contrast=True)
        for i, second in zip(faint, again, strict=True):
            if second[1] > results[i][1]:
                results[i] = second
    return results
