"""Embeddings from the real all-MiniLM-L6-v2: meaning, batch invariance, micro-batching, limits."""

from __future__ import annotations

import threading
import time

import pytest
from flask import Flask

from api.edge.errors import Unprocessable
from api.inference.service import embed_texts
from api.runtime.batcher import MicroBatcher
from api.runtime.errors import ModelNotFound
from api.runtime.handlers.loader import choose_device
from api.runtime.models.embedding import EmbeddingModel
from api.runtime.registry import models
from tests.inference.conftest import TINY_ID
from tests.inference.test_batcher import RecordingObserver

SENTENCES = [
    "A man is playing a guitar.",
    "Someone plays the guitar.",
    "The central bank raised interest rates by half a point on Tuesday.",
    "Cats sleep.",
    "A much longer sentence, so that the shorter ones in the same batch are padded "
    "with many pad tokens before they reach the encoder.",
]


def dot(a: list[float], b: list[float]) -> float:
    return sum(x * y for x, y in zip(a, b, strict=True))


@pytest.fixture(scope="module")
def minilm(inference_app: Flask) -> EmbeddingModel:
    with inference_app.app_context():
        model = models.get("all-minilm-l6-v2")
    assert isinstance(model, EmbeddingModel)
    return model


def test_metadata(minilm: EmbeddingModel) -> None:
    info = minilm.info
    assert (info.id, info.task, info.max_input, info.device) == (
        "all-minilm-l6-v2",
        "embedding",
        256,
        choose_device(EmbeddingModel.device),
    )
    assert 22_000_000 < info.parameters < 23_000_000


def test_paraphrases_are_far_closer_than_unrelated_sentences(minilm: EmbeddingModel) -> None:
    guitar, paraphrase, bank = minilm.embed(SENTENCES[:3])[0]

    assert all(abs(dot(v, v) - 1) < 1e-5 for v in (guitar, paraphrase, bank))
    assert dot(guitar, paraphrase) - dot(guitar, bank) > 0.3


def test_a_text_embeds_the_same_alone_or_in_a_padded_batch(minilm: EmbeddingModel) -> None:
    batched, counts = minilm.embed(SENTENCES)

    for text, vector, count in zip(SENTENCES, batched, counts, strict=True):
        alone, (alone_count,) = minilm.embed([text])
        assert max(abs(a - b) for a, b in zip(alone[0], vector, strict=True)) < 1e-5
        assert count == alone_count == minilm.count_tokens(text)


def test_concurrent_requests_are_batched_and_match_one_by_one(minilm: EmbeddingModel) -> None:
    texts = [f"Request number {i} asks about {SENTENCES[i % 4].lower()}" for i in range(32)]
    expected = [minilm.embed([text])[0][0] for text in texts]
    observer = RecordingObserver()
    batcher = MicroBatcher(
        lambda items: list(zip(*minilm.embed(items), strict=True)),
        name="minilm-test",
        max_batch=32,
        max_wait_ms=50,
        observer=observer,
    )
    barrier = threading.Barrier(len(texts))
    results: dict[int, list[float]] = {}

    def call(index: int) -> None:
        barrier.wait()
        ((vector, _),) = batcher.run([texts[index]], deadline=time.monotonic() + 20)
        results[index] = vector

    threads = [threading.Thread(target=call, args=(i,)) for i in range(len(texts))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    batcher.close()

    assert max(observer.batch_sizes) > 1
    assert sum(observer.batch_sizes) == len(texts)
    for index, vector in enumerate(expected):
        assert max(abs(a - b) for a, b in zip(results[index], vector, strict=True)) < 1e-5


def test_service_embeds_through_the_registry(inference_context: Flask) -> None:
    result = embed_texts(None, SENTENCES[:2])

    assert result.model == "all-minilm-l6-v2"
    assert [len(vector) for vector in result.vectors] == [384, 384]
    assert result.prompt_tokens == 9 + 7
    assert dot(*result.vectors) > 0.7


def test_service_rejects_over_long_inputs_naming_them(inference_context: Flask) -> None:
    with pytest.raises(Unprocessable) as raised:
        embed_texts("all-minilm-l6-v2", ["fine", "word " * 300])

    assert raised.value.status == 422
    assert raised.value.details["input"] == [
        "input[1] is 302 tokens; all-minilm-l6-v2 reads at most 256."
    ]


@pytest.mark.parametrize("model_id", ["no-such-model", TINY_ID])
def test_service_refuses_unknown_models_and_models_of_another_task(
    inference_context: Flask, model_id: str
) -> None:
    with pytest.raises(ModelNotFound, match=model_id) as raised:
        embed_texts(model_id, ["hello"])

    assert raised.value.status == 404
    assert raised.value.details["model"]
