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
import threading
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


class ThreadConnections:
    """One kept connection to the Unix socket at `path` per calling thread.

    The model server's client (`remote`) and each handler model's (`handlers.client`)
    share it: `connection()` opens this thread's socket when it has none, `drop()`
    closes it after an error, so the next call starts on a fresh one.
    """

    def __init__(self, path: str) -> None:
        self.path = path
        self._local = threading.local()

    def has_connection(self) -> bool:
        return getattr(self._local, "sock", None) is not None

    def connection(self) -> socket.socket:
        sock = getattr(self._local, "sock", None)
        if sock is None:
            sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            try:
                sock.connect(self.path)
            except OSError:
                sock.close()
                raise
            self._local.sock = sock
        return sock

    def take(self) -> socket.socket | None:
        """This thread's socket, no longer kept (a stream holds it until it ends)."""
        sock = getattr(self._local, "sock", None)
        self._local.sock = None
        return sock

    def give_back(self, sock: socket.socket) -> None:
        """Keep `sock` again for this thread, or close it when the thread has another."""
        if self.has_connection():
            sock.close()
        else:
            self._local.sock = sock

    def drop(self) -> None:
        sock = self.take()
        if sock is not None:
            sock.close()
