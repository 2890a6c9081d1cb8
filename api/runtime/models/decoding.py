"""Turn generated tokens into text as they come: whole characters only, stop sequences cut.

`IncrementalDecoder` decodes a short window of recent tokens rather than one token
alone, because a byte-level BPE token can end in the middle of a UTF-8 character
(or a SentencePiece token lose its leading space); text ending in U+FFFD is held
back until the next token completes it. `StopSequenceFilter` holds back any tail
that could still grow into a stop sequence, so a stop split across tokens is never
half-sent to the client.
"""

from __future__ import annotations

from collections.abc import Iterable

from tokenizers import Tokenizer

REPLACEMENT_CHAR = "\ufffd"


class IncrementalDecoder:
    """Feed token ids one by one; get back the new text each completes."""

    def __init__(self, tokenizer: Tokenizer) -> None:
        self._tokenizer = tokenizer
        self._ids: list[int] = []
        self._prefix_offset = 0
        self._read_offset = 0

    def _decode(self, ids: list[int]) -> str:
        return self._tokenizer.decode(ids, skip_special_tokens=True)

    def push(self, token_id: int) -> str:
        """The text `token_id` adds, or "" while a character is still incomplete."""
        self._ids.append(token_id)
        prefix = self._decode(self._ids[self._prefix_offset : self._read_offset])
        text = self._decode(self._ids[self._prefix_offset :])
        if len(text) <= len(prefix) or text.endswith(REPLACEMENT_CHAR):
            return ""
        self._prefix_offset = self._read_offset
        self._read_offset = len(self._ids)
        return text[len(prefix) :]

    def flush(self) -> str:
        """Whatever is still held back (an incomplete character decodes as U+FFFD)."""
        prefix = self._decode(self._ids[self._prefix_offset : self._read_offset])
        text = self._decode(self._ids[self._prefix_offset :])
        self._prefix_offset = self._read_offset = len(self._ids)
        return text[len(prefix) :]


class StopSequenceFilter:
    """Pass text through until a stop sequence appears; the stop itself is never emitted."""

    def __init__(self, stops: Iterable[str]) -> None:
        self._stops = [stop for stop in stops if stop]
        self._pending = ""
        self.stopped = False

    def push(self, text: str) -> str:
        """The part of `text` (with earlier held-back text) that is safe to send now."""
        if self.stopped:
            return ""
        self._pending += text
        hits = [index for stop in self._stops if (index := self._pending.find(stop)) >= 0]
        if hits:
            self.stopped = True
            safe, self._pending = self._pending[: min(hits)], ""
            return safe
        held = self._held_length()
        cut = len(self._pending) - held
        safe, self._pending = self._pending[:cut], self._pending[cut:]
        return safe

    def flush(self) -> str:
        """The held-back tail: at the end it can no longer become a stop sequence."""
        tail, self._pending = self._pending, ""
        return "" if self.stopped else tail

    def _held_length(self) -> int:
        longest = min(len(self._pending), max((len(stop) - 1 for stop in self._stops), default=0))
        for size in range(longest, 0, -1):
            tail = self._pending[-size:]
            if any(stop.startswith(tail) for stop in self._stops):
                return size
        return 0
