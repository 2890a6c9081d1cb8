"""Reading a batch's input file: one request per line, checked the way OpenAI checks them.

A line is `{"custom_id": str, "method": "POST", "url": <the batch's endpoint>, "body": {…}}`,
cut as `api.files.jsonl` defines, at most one request's size (`MAX_BODY_BYTES`), and
its envelope passes the same edge rules as a request (`api.edge.guards`). A file that
breaks these rules fails the whole batch, with each problem's line number in the
batch's `errors` (the first `MAX_REPORTED` of them). A body that is
an object but not a valid request is the line's own failure: it is answered in the
error file, like any call that gets a 4xx, and the other lines still run.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any, BinaryIO

from api.edge.errors import APIError
from api.edge.guards import MAX_JSON_DEPTH, check_json, string_problem
from api.files.jsonl import JSON_WHITESPACE, RawLine, read_lines

MAX_LINES = 50_000
MAX_EMBEDDING_INPUTS = 50_000
MAX_CUSTOM_ID = 512
MAX_REPORTED = 100
# The endpoint a batch may target, and the name its lines are metered under.
ENDPOINTS = {
    "/v1/embeddings": "batch_embeddings",
    "/v1/completions": "batch_completions",
    "/v1/chat/completions": "batch_chat_completions",
}


@dataclass(frozen=True)
class Entry:
    """Where one request of a batch is in its file, and what the runner needs without its body.

    `inputs` counts an embedding line's texts (chunks are cut by it); `model` is the
    line's model name when it is a safe string. Bodies are read again chunk by chunk
    (`load_lines`), so a running batch never holds its whole file parsed.
    """

    number: int
    custom_id: str
    offset: int
    size: int
    inputs: int = 1
    model: str | None = None


@dataclass(frozen=True)
class Line:
    """One request of a batch: its line number in the file (from 1), its id and its body."""

    number: int
    custom_id: str
    body: dict[str, Any]


class InputProblems(Exception):
    """The file cannot be run; `errors` are OpenAI's batch errors (code, message, line)."""

    def __init__(self, errors: list[dict[str, Any]]) -> None:
        super().__init__(f"{len(errors)} problems")
        self.errors = errors


def _problem(code: str, message: str, line: int | None, param: str | None = None) -> dict:
    return {"code": code, "message": message, "param": param, "line": line}


def _decode(raw: RawLine, max_bytes: int) -> tuple[Any, dict | None]:
    """The line's JSON value, or why it has none. Its size and shape come before any parsing."""
    if len(raw.data) > max_bytes:
        message = f"This line is over {max_bytes} bytes, the limit of one request."
        return None, _problem("line_too_long", message, raw.number)
    if not raw.data.lstrip(JSON_WHITESPACE).startswith(b"{"):
        return None, _problem("invalid_request", "Each line must be a JSON object.", raw.number)
    try:
        return json.loads(raw.data), None
    except RecursionError:
        message = f"This line is nested deeper than {MAX_JSON_DEPTH} levels."
        return None, _problem("invalid_request", message, raw.number)
    except ValueError:  # also bytes that are not UTF-8
        return None, _problem("invalid_json_line", "This line is not valid JSON.", raw.number)


def _check(
    raw: RawLine, endpoint: str, seen: set[str], max_bytes: int
) -> tuple[Entry | None, dict | None]:
    request, problem = _decode(raw, max_bytes)
    number = raw.number
    if problem is not None:
        return None, problem
    if not isinstance(request, dict):
        return None, _problem("invalid_request", "Each line must be a JSON object.", number)
    try:  # the edge rules of every request: no NUL, no lone surrogate, no deep nesting
        check_json({key: value for key, value in request.items() if key != "body"})
    except APIError as error:
        field, reasons = next(iter((error.details or {"_line": [error.message]}).items()))
        return None, _problem("invalid_request", f"{field}: {reasons[0]}", number, field)
    custom_id = request.get("custom_id")
    if not isinstance(custom_id, str) or not 0 < len(custom_id) <= MAX_CUSTOM_ID:
        message = f"custom_id must be a string of 1 to {MAX_CUSTOM_ID} characters."
        return None, _problem("missing_required_parameter", message, number, "custom_id")
    if custom_id in seen:
        message = f"custom_id {custom_id!r} is used on an earlier line; each must be unique."
        return None, _problem("duplicate_custom_id", message, number, "custom_id")
    seen.add(custom_id)
    if request.get("method") != "POST":
        return None, _problem("invalid_method", "method must be POST.", number, "method")
    if request.get("url") != endpoint:
        message = f"url must be this batch's endpoint, {endpoint}."
        return None, _problem("invalid_url", message, number, "url")
    body = request.get("body")
    if not isinstance(body, dict):
        return None, _problem("invalid_request", "body must be a JSON object.", number, "body")
    value = body.get("input")
    model = body.get("model")
    safe_model = model[:64] if isinstance(model, str) and string_problem(model) is None else None
    inputs = len(value) if isinstance(value, list) else 1
    return Entry(number, custom_id, raw.offset, len(raw.data), inputs, safe_model), None


def parse_input(chunks: Iterable[bytes], endpoint: str, max_line_bytes: int) -> list[Entry]:
    """Every request of the file in order; raise InputProblems naming each bad line."""
    entries: list[Entry] = []
    problems: list[dict] = []
    seen: set[str] = set()
    for raw in read_lines(chunks, max_line_bytes):
        if len(entries) + len(problems) >= MAX_LINES:
            message = f"A batch holds at most {MAX_LINES} requests."
            raise InputProblems([_problem("too_many_requests", message, raw.number)])
        entry, problem = _check(raw, endpoint, seen, max_line_bytes)
        if problem is not None:
            problems.append(problem)
            if len(problems) >= MAX_REPORTED:
                break
        elif entry is not None:
            entries.append(entry)
    if problems:
        raise InputProblems(problems[:MAX_REPORTED])
    if not entries:
        raise InputProblems([_problem("empty_file", "The file holds no requests.", None)])
    if endpoint == "/v1/embeddings" and sum(e.inputs for e in entries) > MAX_EMBEDDING_INPUTS:
        message = f"An embeddings batch holds at most {MAX_EMBEDDING_INPUTS} inputs."
        raise InputProblems([_problem("too_many_inputs", message, None, "input")])
    return entries


def load_lines(source: BinaryIO, entries: list[Entry]) -> list[Line]:
    """The requests of `entries` with their bodies, read again from the (unchanging) file."""
    lines = []
    for entry in entries:
        source.seek(entry.offset)
        request = json.loads(source.read(entry.size))
        lines.append(Line(entry.number, entry.custom_id, request["body"]))
    return lines
