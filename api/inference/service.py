"""What the inference routes call: read token ids, embed texts, complete a prompt.

Functions take plain values and keyword arguments, never the request: the routes
parse and validate the body, call these, and shape the answer. Limits that need
the model (token counts against its window) are checked here and raised as
`Unprocessable` (422) naming the field; a full queue raises `QueueFull` (503), a missed
deadline `DeadlineExceeded` (504), an unknown model `ModelNotFound` (404). Deadlines
are `time.monotonic()` values; None means now + `INFERENCE_TIMEOUT_S`.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from api.edge.errors import Unprocessable, first_problem
from api.runtime.registry import models
from api.runtime.streams import CompletionStream

if TYPE_CHECKING:
    from api.runtime.models.embedding import EmbeddingModel
    from api.runtime.models.generation import TextGenerator
    from api.runtime.registry import ServedModel


@dataclass(frozen=True)
class EmbeddingResult:
    """One unit vector and one token count per text, in input order."""

    model: str
    vectors: list[list[float]]
    token_counts: list[int]

    @property
    def prompt_tokens(self) -> int:
        return sum(self.token_counts)


@dataclass(frozen=True)
class Completion:
    model: str
    text: str
    finish_reason: str
    prompt_tokens: int
    completion_tokens: int


def resolve_deadline(deadline: float | None) -> float:
    """`deadline`, or now + `INFERENCE_TIMEOUT_S` when None."""
    if deadline is not None:
        return deadline
    return time.monotonic() + models.settings().timeout_s


def texts_from_token_ids(model_id: str | None, inputs: Sequence[str | list[int]]) -> list[str]:
    """`inputs` with each token-id list replaced by the text it stands for in `model_id`.

    The text is the ids decoded; it is used only when the tokenizer makes exactly
    those ids of it again, so its vector (and cache entry) is the ids' own. Raises
    Unprocessable (422) naming `input[i]` for ids outside the vocabulary or that the
    tokenizer never makes of any text.
    """
    served = models.serve(model_id, task="embedding")
    tokenizer = served.tokenizer
    if tokenizer is None:  # an upstream model without a `tokenizer` setting
        why = f"{served.model.id} takes texts, not token ids."
        raise Unprocessable(why, details={"input": [why]})
    vocabulary = tokenizer.get_vocab_size(with_added_tokens=True)
    texts: list[str] = []
    problems: dict[int, list[str]] = {}
    for index, item in enumerate(inputs):
        if isinstance(item, str):
            texts.append(item)
            continue
        unknown = [token for token in item if token >= vocabulary]
        if unknown:
            problems[index] = [
                f"Token id {unknown[0]} is not in the vocabulary of {served.model.id} "
                f"(0 to {vocabulary - 1})."
            ]
            continue
        text = tokenizer.decode(item, skip_special_tokens=False)
        if tokenizer.encode(text, add_special_tokens=False).ids != item:
            problems[index] = [
                f"{served.model.id}'s tokenizer never writes a text as these ids; "
                "send the text or the ids it makes of it."
            ]
        texts.append(text)
    if problems:
        details = {"input": problems}
        raise Unprocessable(first_problem(details), details=details)
    return texts


def embed_texts(
    model_id: str | None, texts: Sequence[str], *, deadline: float | None = None
) -> EmbeddingResult:
    """Embed `texts` with `model_id` (None: the first embedding model), batched with others."""
    deadline = resolve_deadline(deadline)
    served = models.serve(model_id, task="embedding")
    model: EmbeddingModel = served.model  # type: ignore[assignment]
    batcher = served.batcher
    assert batcher is not None
    if not texts:
        raise Unprocessable(details={"input": ["Give at least one text."]})
    if len(texts) > batcher.max_queue:
        raise Unprocessable(details={"input": [f"Give at most {batcher.max_queue} texts."]})
    too_long = [
        f"input[{index}] is {tokens} tokens; {model.id} reads at most {model.max_input}."
        for index, text in enumerate(texts)
        if (tokens := model.count_tokens(text)) > model.max_input
    ]
    if too_long:
        raise Unprocessable(too_long[0], details={"input": too_long})
    results = batcher.run(list(texts), deadline=deadline)
    return EmbeddingResult(
        model=model.id,
        vectors=[vector for vector, _ in results],
        token_counts=[tokens for _, tokens in results],
    )


def stream_completion(
    model_id: str | None,
    prompt: str,
    *,
    max_tokens: int = 16,
    temperature: float = 1.0,
    top_p: float = 1.0,
    seed: int | None = None,
    stop: Sequence[str] = (),
    deadline: float | None = None,
    cancel: threading.Event | None = None,
) -> CompletionStream:
    """Check the request against the model, wait for a generation slot, start generating.

    Every error a client can cause or a busy model raises happens here, before the
    first chunk, so a route can still answer it with a status code.
    """
    started = time.monotonic()
    deadline = resolve_deadline(deadline)
    served = local_generation(model_id)
    generator: TextGenerator = served.model  # type: ignore[assignment]
    gate = served.gate
    assert gate is not None
    check_completion(generator, prompt, max_tokens, temperature, top_p)
    gate.acquire(deadline=deadline)
    try:
        generation = generator.stream(
            prompt,
            max_tokens=max_tokens,
            temperature=temperature,
            top_p=top_p,
            seed=seed,
            stop=stop,
            cancel=cancel,
            deadline=deadline,
        )
    except BaseException:
        gate.release()
        raise
    return CompletionStream(
        generation, model_id=generator.id, gate=gate, metrics=served.metrics, started=started
    )


def complete(
    model_id: str | None,
    prompt: str,
    *,
    max_tokens: int = 16,
    temperature: float = 1.0,
    top_p: float = 1.0,
    seed: int | None = None,
    stop: Sequence[str] = (),
    deadline: float | None = None,
    cancel: threading.Event | None = None,
) -> Completion:
    """Generate the whole completion; the options are those of `stream_completion`."""
    stream = stream_completion(
        model_id,
        prompt,
        max_tokens=max_tokens,
        temperature=temperature,
        top_p=top_p,
        seed=seed,
        stop=stop,
        deadline=deadline,
        cancel=cancel,
    )
    try:
        text = "".join(chunk.text for chunk in stream)
    finally:
        stream.close()
    return Completion(
        model=stream.model,
        text=text,
        finish_reason=stream.finish_reason or "length",
        prompt_tokens=stream.prompt_tokens,
        completion_tokens=stream.completion_tokens,
    )


def local_generation(model_id: str | None) -> ServedModel:
    """The local text-generation model `model_id`; Unprocessable (422) for an upstream one,
    which only `/v1/chat/completions` and `/v1/completions` forward (docs/upstreams.md)."""
    served = models.serve(model_id, task="text-generation")
    if served.gate is None:  # only an upstream model has none
        why = f"{served.model.id} is served upstream: use /v1/chat/completions or /v1/completions."
        raise Unprocessable(why, details={"model": [why]})
    return served


def chat_prompt(model_id: str | None, messages: Sequence[dict]) -> str:
    """Render `messages` into the prompt of `model_id` (its chat template, or the plain one)."""
    generator: TextGenerator = local_generation(model_id).model  # type: ignore[assignment]
    return generator.chat_prompt(messages)


def room_to_generate(model_id: str | None, prompt: str, ceiling: int) -> int:
    """How many tokens fit after `prompt` in the model's window, at most `ceiling` (at least 1)."""
    generator: TextGenerator = local_generation(model_id).model  # type: ignore[assignment]
    return max(1, min(ceiling, generator.max_input - generator.count_tokens(prompt)))


def check_completion(
    generator: TextGenerator, prompt: str, max_tokens: int, temperature: float, top_p: float
) -> None:
    """Raise Unprocessable (422) naming each field the model cannot accept."""
    errors: dict[str, list[str]] = {}
    if max_tokens < 1:
        errors["max_tokens"] = ["Must be 1 or more."]
    if temperature < 0:
        errors["temperature"] = ["Must be 0 or more."]
    if not 0 < top_p <= 1:
        errors["top_p"] = ["Must be more than 0 and at most 1."]
    prompt_tokens = generator.count_tokens(prompt)
    window = generator.max_input
    if prompt_tokens >= window:
        errors["prompt"] = [f"The prompt is {prompt_tokens} tokens; {generator.id} reads {window}."]
    elif max_tokens > window - prompt_tokens:
        errors["max_tokens"] = [
            f"At most {window - prompt_tokens} for this prompt "
            f"({prompt_tokens} prompt tokens, a window of {window})."
        ]
    if errors:
        raise Unprocessable("The model cannot take this request.", details=errors)
