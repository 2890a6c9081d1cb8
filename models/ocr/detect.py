"""CRAFT's pre- and post-processing: image -> input tensor, score maps -> word boxes -> lines.

A port of EasyOCR's `imgproc.resize_aspect_ratio`, `craft_utils.getDetBoxes_core` and
`utils.group_text_box` (default thresholds of `Reader.readtext`) to numpy, scipy.ndimage
and Pillow, without OpenCV: connected components with `ndimage.label`, the rectangular
dilation with `ndimage.binary_dilation`, and `cv2.minAreaRect` with a convex hull and the
rotating calipers below.
"""

from __future__ import annotations

import math

import numpy as np
from PIL import Image
from scipy import ndimage

MEAN = np.array([0.485, 0.456, 0.406], dtype=np.float32) * 255.0
STD = np.array([0.229, 0.224, 0.225], dtype=np.float32) * 255.0

TEXT_THRESHOLD = 0.7  # a component is text when its best region score reaches this
LOW_TEXT = 0.4  # region score that counts as part of a character
LINK_THRESHOLD = 0.4  # affinity score that joins two characters into one word


def prepare(image: Image.Image, canvas_size: int) -> tuple[np.ndarray, float]:
    """Scale the longest side to at most `canvas_size`, pad to multiples of 32, normalise.

    Returns the (3, H, W) float32 array and the factor from input to original pixels.
    """
    width, height = image.size
    ratio = min(canvas_size, max(width, height)) / max(width, height)
    target_w, target_h = max(1, int(width * ratio)), max(1, int(height * ratio))
    if (target_w, target_h) != (width, height):
        image = image.resize((target_w, target_h), Image.Resampling.BILINEAR)
    padded = np.zeros((-(-target_h // 32) * 32, -(-target_w // 32) * 32, 3), dtype=np.float32)
    padded[:target_h, :target_w] = np.asarray(image, dtype=np.float32)
    return ((padded - MEAN) / STD).transpose(2, 0, 1), 1.0 / ratio


def _convex_hull(points: np.ndarray) -> np.ndarray:
    """Andrew's monotone chain; points (N, 2) -> hull vertices, counter-clockwise."""
    pts = sorted(set(map(tuple, points.tolist())))
    if len(pts) <= 2:
        return np.array(pts, dtype=np.float64)

    def half(seq: list[tuple[float, float]]) -> list[tuple[float, float]]:
        out: list[tuple[float, float]] = []
        for p in seq:
            while len(out) >= 2:
                (ax, ay), (bx, by) = out[-2], out[-1]
                if (bx - ax) * (p[1] - ay) - (by - ay) * (p[0] - ax) > 0:
                    break
                out.pop()
            out.append(p)
        return out

    lower, upper = half(pts), half(pts[::-1])
    return np.array(lower[:-1] + upper[:-1], dtype=np.float64)


def min_area_rect(points: np.ndarray) -> np.ndarray:
    """The four corners of the smallest rectangle around `points` (as cv2.minAreaRect)."""
    hull = _convex_hull(points)
    if len(hull) < 3:
        lo, hi = points.min(axis=0), points.max(axis=0)
        return np.array([[lo[0], lo[1]], [hi[0], lo[1]], [hi[0], hi[1]], [lo[0], hi[1]]], float)
    edges = np.diff(np.vstack([hull, hull[:1]]), axis=0)
    angles = np.unique(np.mod(np.arctan2(edges[:, 1], edges[:, 0]), np.pi / 2))
    best: tuple[float, np.ndarray] | None = None
    for angle in angles:
        c, s = math.cos(angle), math.sin(angle)
        rot = np.array([[c, s], [-s, c]])  # into the frame where this edge is horizontal
        turned = hull @ rot.T
        lo, hi = turned.min(axis=0), turned.max(axis=0)
        area = float(np.prod(hi - lo))
        if best is None or area < best[0]:
            corners = np.array([[lo[0], lo[1]], [hi[0], lo[1]], [hi[0], hi[1]], [lo[0], hi[1]]])
            best = (area, corners @ rot)
    assert best is not None
    return best[1]


def score_maps_to_boxes(text: np.ndarray, link: np.ndarray) -> list[np.ndarray]:
    """Word boxes (4 corners, clockwise from top-left) in score-map pixels."""
    text_on, link_on = text > LOW_TEXT, link > LINK_THRESHOLD
    labels, _ = ndimage.label(text_on | link_on)  # 4-connectivity, as EasyOCR's cv2 call
    boxes = []
    for k, window in enumerate(ndimage.find_objects(labels), start=1):
        if window is None:
            continue
        mask = labels[window] == k
        size = int(mask.sum())
        if size < 10 or text[window][mask].max() < TEXT_THRESHOLD:
            continue
        y, x = window[0].start, window[1].start
        h, w = mask.shape
        niter = int(math.sqrt(size * min(w, h) / (w * h)) * 2)
        sy, sx = max(0, y - niter), max(0, x - niter)
        ey, ex = min(text.shape[0], y + h + niter + 1), min(text.shape[1], x + w + niter + 1)
        seg = labels[sy:ey, sx:ex] == k
        seg &= ~(link_on[sy:ey, sx:ex] & ~text_on[sy:ey, sx:ex])  # drop pure link pixels
        if niter > 0:
            seg = ndimage.binary_dilation(seg, structure=np.ones((1 + niter, 1 + niter), bool))
        ys, xs = np.nonzero(seg)
        if len(xs) == 0:
            continue
        points = np.stack([xs + sx, ys + sy], axis=1)
        box = min_area_rect(points)
        side_a, side_b = np.linalg.norm(box[0] - box[1]), np.linalg.norm(box[1] - box[2])
        if abs(1 - max(side_a, side_b) / (min(side_a, side_b) + 1e-5)) <= 0.1:
            lo, hi = points.min(axis=0), points.max(axis=0)  # near-square: keep it upright
            box = np.array([[lo[0], lo[1]], [hi[0], lo[1]], [hi[0], hi[1]], [lo[0], hi[1]]], float)
        boxes.append(np.roll(box, 4 - int(box.sum(axis=1).argmin()), axis=0))
    return boxes


def group_lines(
    polys: list[np.ndarray],
    slope_ths: float = 0.1,
    ycenter_ths: float = 0.5,
    height_ths: float = 0.5,
    width_ths: float = 0.5,
    add_margin: float = 0.1,
) -> tuple[list[list[int]], list[np.ndarray]]:
    """Merge near-horizontal word boxes into lines: ([x0, x1, y0, y1] boxes, slanted quads)."""
    horizontal: list[list[float]] = []
    free: list[np.ndarray] = []
    for poly in polys:
        p = poly.reshape(-1)
        slope_up = (p[3] - p[1]) / max(10, p[2] - p[0])
        slope_down = (p[5] - p[7]) / max(10, p[4] - p[6])
        if max(abs(slope_up), abs(slope_down)) < slope_ths:
            x0, x1, y0, y1 = p[0::2].min(), p[0::2].max(), p[1::2].min(), p[1::2].max()
            horizontal.append([x0, x1, y0, y1, 0.5 * (y0 + y1), y1 - y0])
        else:
            height, width = np.linalg.norm(poly[3] - poly[0]), np.linalg.norm(poly[1] - poly[0])
            margin = int(1.44 * add_margin * min(width, height))
            t13 = abs(math.atan((p[1] - p[5]) / max(10, p[0] - p[4])))
            t24 = abs(math.atan((p[3] - p[7]) / max(10, p[2] - p[6])))
            c13, s13, c24, s24 = math.cos(t13), math.sin(t13), math.cos(t24), math.sin(t24)
            free.append(
                np.array(
                    [
                        [p[0] - c13 * margin, p[1] - s13 * margin],
                        [p[2] + c24 * margin, p[3] - s24 * margin],
                        [p[4] + c13 * margin, p[5] + s13 * margin],
                        [p[6] - c24 * margin, p[7] + s24 * margin],
                    ]
                )
            )
    rows: list[list[list[float]]] = []
    for box in sorted(horizontal, key=lambda b: b[4]):
        row = rows[-1] if rows else None
        centre = float(np.mean([b[4] for b in row])) if row else 0.0
        if row and abs(centre - box[4]) < ycenter_ths * float(np.mean([b[5] for b in row])):
            row.append(box)
        else:
            rows.append([box])
    lines: list[list[int]] = []
    for row in rows:
        runs: list[list[list[float]]] = []
        for box in sorted(row, key=lambda b: b[0]):
            run = runs[-1] if runs else None
            run_height = float(np.mean([b[5] for b in run])) if run else 0.0
            if (
                run
                and abs(run_height - box[5]) < height_ths * run_height
                and box[0] - run[-1][1] < width_ths * (box[3] - box[2])
            ):
                run.append(box)
            else:
                runs.append([box])
        for run in runs:
            x0, x1 = min(b[0] for b in run), max(b[1] for b in run)
            y0, y1 = min(b[2] for b in run), max(b[3] for b in run)
            m = int(add_margin * min(x1 - x0, y1 - y0))
            lines.append([int(x0 - m), int(x1 + m), int(y0 - m), int(y1 + m)])
    return lines, free
