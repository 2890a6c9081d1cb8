"""What a line of a JSONL file is: the one definition the upload and the batch worker share.

A line ends at `\\n` and nowhere else (OpenAI's JSONL). A `\\r` before it (a file
written on Windows) is JSON whitespace, like any other `\\r`, `\\t` or space; a line
holding only such whitespace is blank and is not a request. Any other character
that `str.splitlines()` would split on (`\\v`, `\\f`, `\\x1c`-`\\x1e`, `\\x85`, U+2028,
U+2029) is part of its line, which then is not valid JSON and is reported as a bad
line, never taken as two. Files are read in chunks, so a file is never held whole.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass

NEWLINE = b"\n"
JSON_WHITESPACE = b" \t\r\n"


def is_blank(line: bytes) -> bool:
    """A line holding nothing but JSON whitespace (not a request, not counted)."""
    return not line.strip(JSON_WHITESPACE)


@dataclass(frozen=True)
class RawLine:
    """One line of a file: its number (from 1), where it starts, its bytes (without `\\n`)."""

    number: int
    offset: int
    data: bytes


def read_lines(chunks: Iterable[bytes], max_bytes: int) -> Iterator[RawLine]:
    """Every non-blank line of a file read in `chunks`, in order.

    A line longer than `max_bytes` comes back as its first `max_bytes + 1` bytes (the
    caller reports it as too long), so no line costs more memory than that.
    """
    number, base, start = 0, 0, 0  # base: where the chunk starts; start: where the line does
    held = bytearray()
    blank = True
    for chunk in chunks:
        begin = 0
        while True:
            end = chunk.find(NEWLINE, begin)
            piece = chunk[begin:] if end < 0 else chunk[begin:end]
            blank = blank and is_blank(piece)
            held += piece[: max(0, max_bytes + 1 - len(held))]
            if end < 0:
                break
            number += 1
            if not blank:
                yield RawLine(number, start, bytes(held))
            held.clear()
            blank = True
            begin = end + 1
            start = base + begin
        base += len(chunk)
    if not blank:
        yield RawLine(number + 1, start, bytes(held))


class LineCounter:
    """Count the non-blank lines of chunks passing through (the upload's count)."""

    def __init__(self) -> None:
        self.lines = 0
        self._open = False  # the current, unfinished line has something besides whitespace

    def feed(self, chunk: bytes) -> None:
        pieces = chunk.split(NEWLINE)
        for piece in pieces[:-1]:
            self.lines += self._open or not is_blank(piece)
            self._open = False
        self._open = self._open or not is_blank(pieces[-1])

    def close(self) -> int:
        self.lines += self._open
        self._open = False
        return self.lines
