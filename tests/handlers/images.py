"""Image files for the handler tests, made here: valid, truncated, and a decompression bomb."""

from __future__ import annotations

import functools
import io
import struct
import zlib

from PIL import Image


def png(width: int = 8, height: int = 8, color: tuple[int, int, int] = (200, 10, 10)) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (width, height), color).save(buffer, format="PNG")
    return buffer.getvalue()


def gif() -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (4, 4)).save(buffer, format="GIF")
    return buffer.getvalue()


def truncated_png() -> bytes:
    data = png(64, 64, (1, 2, 3))
    noisy = Image.effect_noise((64, 64), 80).convert("RGB")
    buffer = io.BytesIO()
    noisy.save(buffer, format="PNG")
    data = buffer.getvalue()
    return data[: len(data) // 2]


def _chunk(kind: bytes, body: bytes) -> bytes:
    return struct.pack("!I", len(body)) + kind + body + struct.pack("!I", zlib.crc32(kind + body))


@functools.cache
def bomb_png(side: int = 30_000) -> bytes:
    """A side x side black-and-white PNG of zeros: ~110 KB on disk, 900 megapixels decoded."""
    row = b"\x00" * (1 + (side + 7) // 8)  # the filter byte, then one bit per pixel
    compressor = zlib.compressobj(9)
    block = row * 1000
    body = b"".join(compressor.compress(block) for _ in range(side // 1000))
    body += compressor.compress(row * (side % 1000)) + compressor.flush()
    header = struct.pack("!IIBBBBB", side, side, 1, 0, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + _chunk(b"IHDR", header)
        + _chunk(b"IDAT", body)
        + _chunk(b"IEND", b"")
    )
