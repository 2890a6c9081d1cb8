"""Text generation on a tiny random GPT-2: sampling, stops, limits, cancel, deadline, slots."""

from __future__ import annotations

import itertools
import threading
import time
from pathlib import Path

import pytest
from flask import Flask

from api.config import PROJECT_ROOT
from api.edge.errors import Unprocessable
from api.inference.service import complete, stream_completion
from api.runtime.errors import DeadlineExceeded
from api.runtime.handlers.loader import choose_device
from api.runtime.models.decoding import IncrementalDecoder, StopSequenceFilter
from api.runtime.models.generation import GenerationStream, TextGenerator
from api.runtime.registry import models
from tests.inference.conftest import TINY_ID

PROMPT = "Once upon a time"


@pytest.fixture(scope="module")
def generator(inference_app: Flask) -> TextGenerator:
    with inference_app.app_context():
        model = models.get(TINY_ID)
    assert isinstance(model, TextGenerator)
    return model


def run(stream: GenerationStream) -> tuple[str, list[str]]:
    chunks = list(stream)
    assert [chunk.finish_reason for chunk in chunks[:-1]] == [None] * (len(chunks) - 1)
    assert chunks[-1].finish_reason == stream.finish_reason
    return "".join(chunk.text for chunk in chunks), [chunk.text for chunk in chunks]


def test_metadata(generator: TextGenerator) -> None:
    info = generator.info
    assert (info.id, info.task, info.max_input, info.device) == (
        TINY_ID,
        "text-generation",
        128,
        choose_device(TextGenerator.device),
    )
    assert info.parameters > 0


def test_temperature_zero_is_deterministic_whatever_the_seed(generator: TextGenerator) -> None:
    first, _ = run(generator.stream(PROMPT, max_tokens=12, temperature=0, seed=1))
    second, _ = run(generator.stream(PROMPT, max_tokens=12, temperature=0, seed=2))

    assert first == second and first


def test_a_seed_makes_sampling_reproducible(generator: TextGenerator) -> None:
    def sample(seed: int) -> str:
        text, _ = run(
            generator.stream(PROMPT, max_tokens=16, temperature=1.0, top_p=0.9, seed=seed)
        )
        return text

    assert sample(7) == sample(7)
    assert sample(7) != sample(8)


def test_max_tokens_is_respected(generator: TextGenerator) -> None:
    stream = generator.stream(PROMPT, max_tokens=5, temperature=0)
    run(stream)

    assert (stream.finish_reason, stream.completion_tokens) == ("length", 5)
    assert stream.prompt_tokens == generator.count_tokens(PROMPT)


def test_a_stop_sequence_ends_the_text_before_it(generator: TextGenerator) -> None:
    full, _ = run(generator.stream(PROMPT, max_tokens=20, temperature=0))
    stop = full[4:7]

    stream = generator.stream(PROMPT, max_tokens=20, temperature=0, stop=["never-there", stop])
    text, _ = run(stream)

    assert stream.finish_reason == "stop"
    assert text == full[: full.index(stop)]
    assert stream.completion_tokens < 20


def test_a_cancel_event_stops_the_stream_early(generator: TextGenerator) -> None:
    cancel = threading.Event()
    stream = generator.stream(PROMPT, max_tokens=50, temperature=1.0, seed=3, cancel=cancel)
    next(stream)
    cancel.set()
    list(stream)

    assert stream.finish_reason == "cancelled"
    assert stream.completion_tokens < 50


def test_a_passed_deadline_raises(generator: TextGenerator) -> None:
    stream = generator.stream(PROMPT, max_tokens=5, deadline=time.monotonic() - 1)

    with pytest.raises(DeadlineExceeded):
        next(stream)


def test_a_prompt_that_does_not_fit_is_refused(generator: TextGenerator) -> None:
    with pytest.raises(ValueError, match="exceed"):
        generator.stream(PROMPT, max_tokens=generator.max_input)


def test_multibyte_text_decodes_whole_characters_token_by_token(
    generator: TextGenerator,
) -> None:
    text = "über 東京 🐍 señor, café"  # mostly unseen in training: split into byte tokens
    tokens = generator.encode(text)
    decoder = IncrementalDecoder(generator.tokenizer)

    pieces = [decoder.push(token) for token in tokens] + [decoder.flush()]

    assert "".join(pieces) == text
    assert not any("\ufffd" in piece for piece in pieces)
    assert pieces.count("") > 1  # tokens that ended mid-character were held back


def test_a_stop_sequence_split_across_pushes_is_never_sent() -> None:
    stops = StopSequenceFilter(["<END>", "\n\n"])

    sent = [stops.push(piece) for piece in ["Hello <", "E", "ND> after"]]

    assert sent == ["Hello ", "", ""]
    assert stops.stopped and stops.flush() == ""
    assert StopSequenceFilter(["<END>"]).push("a <E") == "a "


def test_service_completes_and_streams(inference_context: Flask) -> None:
    whole = complete(None, PROMPT, max_tokens=8, temperature=0)
    stream = stream_completion(TINY_ID, PROMPT, max_tokens=8, temperature=0)
    streamed = "".join(chunk.text for chunk in stream)

    assert whole.model == TINY_ID and whole.text == streamed
    assert (whole.finish_reason, whole.completion_tokens) == (stream.finish_reason, 8)
    assert whole.prompt_tokens == stream.prompt_tokens > 0


def test_service_names_the_fields_the_model_cannot_take(inference_context: Flask) -> None:
    with pytest.raises(Unprocessable) as raised:
        complete(TINY_ID, PROMPT, max_tokens=128, top_p=0)
    assert set(raised.value.details) == {"max_tokens", "top_p"}

    with pytest.raises(Unprocessable) as raised:
        complete(TINY_ID, "fox " * 200, max_tokens=1)
    assert set(raised.value.details) == {"prompt"}


def test_service_streams_hold_a_slot_until_closed(inference_context: Flask) -> None:
    first = stream_completion(TINY_ID, PROMPT, max_tokens=4)
    second = stream_completion(TINY_ID, PROMPT, max_tokens=4)

    with pytest.raises(DeadlineExceeded):
        stream_completion(TINY_ID, PROMPT, max_tokens=4, deadline=time.monotonic() + 0.05)

    next(second)
    second.close()
    list(first)  # running to the end gives its slot back too
    for _ in range(2):
        list(stream_completion(TINY_ID, PROMPT, max_tokens=2, deadline=time.monotonic() + 1))


@pytest.mark.skipif(
    not (PROJECT_ROOT / "models" / "storyteller" / "model.safetensors").exists(),
    reason="models/storyteller is not trained yet",
)
def test_the_storyteller_model_tells_a_story() -> None:
    storyteller = TextGenerator.load(
        "storyteller", str(Path(PROJECT_ROOT / "models" / "storyteller"))
    )

    stream = storyteller.stream(PROMPT, max_tokens=24, temperature=0)
    text, _ = run(stream)

    assert stream.completion_tokens <= 24 and text.strip()
    assert stream.finish_reason in {"stop", "length"}


def test_as_a_handler_predict_streams_the_text_so_far_and_its_tokens(
    generator: TextGenerator,
) -> None:
    expected = "".join(
        chunk.text for chunk in generator.stream(PROMPT, max_tokens=6, temperature=0)
    )
    item = {"prompt": PROMPT, "max_tokens": 6, "temperature": 0, "top_p": 1.0, "seed": None}
    events = list(generator.predict([item]))
    assert events[-1]["text"] == expected
    assert all(
        later["text"].startswith(earlier["text"]) for earlier, later in itertools.pairwise(events)
    )
    prompt_tokens = len(generator.encode(PROMPT))
    assert prompt_tokens < events[-1]["_units"] <= prompt_tokens + 6


def test_as_a_handler_a_prompt_past_the_window_keeps_its_end(generator: TextGenerator) -> None:
    """The generic predict route has no 400 for a long prompt: the model reads its last tokens."""
    long_prompt = "the king " * generator.max_input
    item = {"prompt": long_prompt, "max_tokens": 4, "temperature": 0, "top_p": 1.0, "seed": 1}
    events = list(generator.predict([item]))
    assert events and events[-1]["_units"] <= generator.max_input
