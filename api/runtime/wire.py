"""Frames between gunicorn workers and the model server, over a Unix stream socket.

A frame is two big-endian 32-bit lengths, a JSON header of the first length and a
binary payload of the second. Requests carry only a header; an embedding answer
carries its vectors as the payload, float32 rows back to back, so no float is
written as text twice. Both lengths are capped: a peer that sends more is cut off,
and a reader may give the whole frame a deadline, so a peer that trickles it cannot
hold the reader.
"""

from __future__ import annotations

import json
import socket
import struct
import time
from typing import Any

_LENGTHS = struct.Struct("!II")
MAX_HEADER = 16 * 1024 * 1024
MAX_PAYLOAD = 64 * 1024 * 1024


def send(sock: socket.socket, header: dict[str, Any], payload: bytes = b"") -> None:
    encoded = json.dumps(header, separators=(",", ":")).encode()
    sock.sendall(_LENGTHS.pack(len(encoded), len(payload)) + encoded + payload)


def receive(sock: socket.socket, deadline: float | None = None) -> tuple[dict[str, Any], bytes]:
    """One frame; ConnectionError when the peer closed or broke the format.

    With a `deadline` (a `time.monotonic()` value) the whole frame must have arrived
    by then, else TimeoutError; without one, each read waits as the socket's timeout says.
    """
    lengths = _read_exactly(sock, _LENGTHS.size, deadline)
    header_length, payload_length = _LENGTHS.unpack(lengths)
    if header_length > MAX_HEADER or payload_length > MAX_PAYLOAD:
        raise ConnectionError("frame too large")
    header = json.loads(_read_exactly(sock, header_length, deadline))
    if not isinstance(header, dict):
        raise ConnectionError("frame header is not an object")
    return header, _read_exactly(sock, payload_length, deadline)


def _read_exactly(sock: socket.socket, count: int, deadline: float | None) -> bytes:
    chunks = []
    while count:
        if deadline is not None:
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError("the frame did not arrive in time")
            sock.settimeout(left)
        chunk = sock.recv(min(count, 1 << 20))
        if not chunk:
            raise ConnectionError("the peer closed the connection")
        chunks.append(chunk)
        count -= len(chunk)
    return b"".join(chunks)
