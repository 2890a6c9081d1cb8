"""Running a batch's lines through the models: the same checks and answers as the endpoints.

Each line's body is checked by the endpoint's own schema and the model's limits,
and answered with the body the endpoint would send, or the error it would send
(with its status). Embedding lines are not a loop of calls: the texts of a whole
chunk of lines go to the model's batcher together, so the model runs full batches.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from marshmallow import ValidationError

from api.batches.lines import Line
from api.edge.errors import APIError, Unprocessable, ValidationFailed, error_body
from api.edge.guards import check_json
from api.inference import openai_format as fmt
from api.inference import plans, schemas
from api.runtime.registry import models

log = logging.getLogger(__name__)
LINE_DEADLINE_S = 600.0


class Interrupted(Exception):
    """The run must stop here (see lease.Stopped, lease.LeaseLost): never a line's failure."""


@dataclass(frozen=True)
class Outcome:
    """What one line got: the status and body an endpoint would answer, and its usage."""

    status: int
    body: dict[str, Any]
    model: str | None = None
    tokens_in: int = 0
    tokens_out: int = 0


def _refusal(error: APIError) -> Outcome:
    return Outcome(error.status, error_body(error.status, error.code, error.message, error.details))


def _load(schema: Any, body: dict[str, Any]) -> dict[str, Any]:
    check_json(body)
    try:
        return schema.load(body)
    except ValidationError as error:
        details = error.messages if isinstance(error.messages, dict) else {"_body": error.messages}
        raise ValidationFailed(details=details) from None


def _failure(error: Exception) -> Outcome:
    if isinstance(error, APIError):
        return _refusal(error)
    log.exception("batch line failed", exc_info=error, extra={"event.action": "batch-line"})
    return Outcome(500, error_body(500, "internal_error", "Internal server error."))


def embed_lines(lines: list[Line], checkpoint: Callable[[], None]) -> list[Outcome]:
    """Answer embedding lines; their texts run through the batcher together."""
    outcomes: dict[int, Outcome] = {}
    jobs: list[tuple[int, dict[str, Any], str, list[str]]] = []
    for position, line in enumerate(lines):
        try:
            body = _load(schemas.EmbeddingIn(), line.body)
            served = models.serve(body["model"], task="embedding")
            model = served.model
            too_long = [
                f"input[{i}] is {tokens} tokens; {model.id} reads at most {model.max_input}."
                for i, text in enumerate(body["input"])
                if (tokens := model.count_tokens(text)) > model.max_input
            ]
            if too_long:
                raise Unprocessable("Some inputs are too long.", details={"input": too_long})
            jobs.append((position, body, model.id, body["input"]))
        except Exception as error:
            outcomes[position] = _failure(error)
    by_model: dict[str, list[tuple[int, dict[str, Any], list[str]]]] = {}
    for position, body, model_id, texts in jobs:
        by_model.setdefault(model_id, []).append((position, body, texts))
    for model_id, group in by_model.items():
        texts = [text for _, _, line_texts in group for text in line_texts]
        try:
            results = _embed_all(model_id, texts, checkpoint)
        except Interrupted:
            raise
        except Exception as error:
            for position, _, _ in group:
                outcomes[position] = _failure(error)
            continue
        start = 0
        for position, body, line_texts in group:
            mine = results[start : start + len(line_texts)]
            start += len(line_texts)
            tokens = sum(count for _, count in mine)
            vectors = [vector for vector, _ in mine]
            answer = fmt.embedding_body(model_id, vectors, tokens, body["encoding_format"])
            outcomes[position] = Outcome(200, answer, model_id, tokens_in=tokens)
    return [outcomes[position] for position in range(len(lines))]


def _embed_all(model_id: str, texts: list[str], checkpoint: Callable[[], None]) -> list:
    """Embed `texts` in full model batches of `BATCH_MAX_SIZE`: (vector, tokens) per text.

    A worker holding the model calls it directly (nothing runs beside it to gather
    with); one whose model lives in a model server goes through its batcher.
    """
    served = models.serve(model_id, task="embedding")
    size = max(1, models.settings().batch_max_size)
    local = getattr(served.model, "embed", None)
    results: list = []
    if local is not None:
        # Texts of like length share a batch, so little of each batch is padding.
        order = sorted(range(len(texts)), key=lambda i: len(texts[i]))
        placed: list = [None] * len(texts)
        for start in range(0, len(order), size):
            checkpoint()
            picked = order[start : start + size]
            vectors, counts = local([texts[i] for i in picked])
            for i, vector, count in zip(picked, vectors, counts, strict=True):
                placed[i] = (vector, count)
        return placed
    batcher = served.batcher
    assert batcher is not None
    step = max(1, batcher.max_queue)
    for start in range(0, len(texts), step):
        checkpoint()
        deadline = time.monotonic() + LINE_DEADLINE_S
        results.extend(batcher.run(texts[start : start + step], deadline=deadline))
    return results


def generate_line(line: Line, endpoint: str) -> Outcome:
    """Answer one completion or chat line in full (streaming has no meaning in a file)."""
    try:
        chat = endpoint == "/v1/chat/completions"
        body = _load(schemas.ChatCompletionIn() if chat else schemas.CompletionIn(), line.body)
        if body["stream"]:
            raise ValidationFailed(details={"stream": ["A batch line cannot stream."]})
        choices, options = plans.plan_chat(body) if chat else plans.plan_text(body)
        deadline = time.monotonic() + LINE_DEADLINE_S
        results = plans.generate_all(body["model"], choices, options, deadline)
    except Exception as error:
        return _failure(error)
    shape = plans.CHAT if chat else plans.TEXT
    tokens_in = sum(result.prompt_tokens for result in results)
    tokens_out = sum(result.completion_tokens for result in results)
    answer = shape.body(
        shape.new_id(),
        results[0].model,
        [
            (choice.index, result.text, result.finish_reason)
            for choice, result in zip(choices, results, strict=True)
        ],
        fmt.usage(tokens_in, tokens_out),
    )
    return Outcome(200, answer, results[0].model, tokens_in, tokens_out)
