"""Reading a batch's input file: one request per line, checked the way OpenAI checks them.

A line is `{"custom_id": str, "method": "POST", "url": <the batch's endpoint>, "body": {…}}`.
A file that breaks these rules fails the whole batch, with each problem's line
number in the batch's `errors` (the first `MAX_REPORTED` of them). A body that is
an object but not a valid request is the line's own failure: it is answered in the
error file, like any call that gets a 4xx, and the other lines still run.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

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


def _check(number: int, raw: str, endpoint: str, seen: set[str]) -> tuple[Line | None, dict | None]:
    try:
        request = json.loads(raw)
    except ValueError:
        return None, _problem("invalid_json_line", "This line is not valid JSON.", number)
    if not isinstance(request, dict):
        return None, _problem("invalid_request", "Each line must be a JSON object.", number)
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
    return Line(number, custom_id, body), None


def parse_input(data: bytes, endpoint: str) -> list[Line]:
    """Every request of the file in order; raise InputProblems naming each bad line."""
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        raise InputProblems([_problem("invalid_file", "The file is not UTF-8.", None)]) from None
    lines: list[Line] = []
    problems: list[dict] = []
    seen: set[str] = set()
    for number, raw in enumerate(text.splitlines(), start=1):
        if not raw.strip():
            continue
        if len(lines) + len(problems) >= MAX_LINES:
            message = f"A batch holds at most {MAX_LINES} requests."
            raise InputProblems([_problem("too_many_requests", message, number)])
        line, problem = _check(number, raw, endpoint, seen)
        if problem is not None:
            problems.append(problem)
        elif line is not None:
            lines.append(line)
    if problems:
        raise InputProblems(problems[:MAX_REPORTED])
    if not lines:
        raise InputProblems([_problem("empty_file", "The file holds no requests.", None)])
    if endpoint == "/v1/embeddings":
        inputs = sum(
            len(value) if isinstance(value := line.body.get("input"), list) else 1 for line in lines
        )
        if inputs > MAX_EMBEDDING_INPUTS:
            message = f"An embeddings batch holds at most {MAX_EMBEDDING_INPUTS} inputs."
            raise InputProblems([_problem("too_many_inputs", message, None, "input")])
    return lines
