"""What a completion request asks for: its choices, sampling options and answer's shape.

A request becomes choices to generate (each prompt `n` times, `seed + j` for the
`j`-th repeat; a chat is one prompt, rendered by the model's chat template) and the
options they share; `TEXT` and `CHAT` say how the answer is written. The
completion routes and the batch runner both plan with these.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from api.inference import openai_format as fmt
from api.inference import service
from api.inference.schemas import MAX_TOKENS


@dataclass(frozen=True)
class Choice:
    """One generation to run: its index in the answer, its prompt and its seed."""

    index: int
    prompt: str
    seed: int | None


def plan_choices(prompts: list[str], n: int, seed: int | None) -> list[Choice]:
    """Each prompt `n` times, indexed as OpenAI does (prompt * n + repeat)."""
    return [
        Choice(i * n + j, prompt, None if seed is None else (seed + j) % 2**63)
        for i, prompt in enumerate(prompts)
        for j in range(n)
    ]


@dataclass
class Shape:
    """How the answer is written: as a text completion or as a chat completion."""

    new_id: Callable[[], str]
    body: Callable[[str, str, list, dict], dict]
    opening: Callable[[str, str, int], list[dict]]
    piece: Callable[[str, str, int, str, str | None], dict]
    closing: Callable[[str, str, dict], dict]


TEXT = Shape(
    new_id=fmt.completion_id,
    body=lambda cid, model, choices, usage: fmt.completion_body(cid, model, choices, usage_=usage),
    opening=lambda cid, model, index: [],
    piece=lambda cid, model, index, text, finish: fmt.completion_body(
        cid, model, [(index, text, finish)]
    ),
    closing=lambda cid, model, usage: fmt.completion_body(cid, model, [], usage_=usage),
)
CHAT = Shape(
    new_id=fmt.chat_completion_id,
    body=fmt.chat_body,
    opening=lambda cid, model, index: [
        fmt.chat_chunk(cid, model, index, {"role": "assistant", "content": ""})
    ],
    piece=lambda cid, model, index, text, finish: fmt.chat_chunk(
        cid, model, index, {"content": text} if text else {}, finish
    ),
    closing=lambda cid, model, usage: fmt.chat_chunk(cid, model, None, usage_=usage),
)


def sampling_options(body: dict, max_tokens: int) -> dict:
    return {
        "max_tokens": max_tokens,
        "temperature": body["temperature"],
        "top_p": body["top_p"],
        "stop": body["stop"] or (),
    }


def plan_text(body: dict) -> tuple[list[Choice], dict]:
    """The choices and sampling options of a validated completion request."""
    choices = plan_choices(body["prompt"], body["n"], body["seed"])
    return choices, sampling_options(body, body["max_tokens"])


def plan_chat(body: dict) -> tuple[list[Choice], dict]:
    """The choices and sampling options of a validated chat request (its template applied)."""
    prompt = service.chat_prompt(body["model"], body["messages"])
    limits = [v for v in (body["max_tokens"], body["max_completion_tokens"]) if v is not None]
    max_tokens = (
        min(limits) if limits else service.room_to_generate(body["model"], prompt, MAX_TOKENS)
    )
    return plan_choices([prompt], body["n"], body["seed"]), sampling_options(body, max_tokens)


def generate_all(
    model_id: str | None, choices: list[Choice], options: dict, deadline: float | None = None
) -> list:
    """Each choice's whole completion, one after another (None: the default deadline each)."""
    return [
        service.complete(model_id, choice.prompt, seed=choice.seed, deadline=deadline, **options)
        for choice in choices
    ]
