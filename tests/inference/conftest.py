"""Fixtures for the inference tests: real models, loaded once per session, no database.

The embedding model is the real all-MiniLM-L6-v2; the generator is a tiny random
GPT-2 built here (with a byte-level BPE tokenizer trained on a few sentences) so
the tests do not depend on the storyteller model being trained. Both are served
by the real registry through a bare Flask app: these tests never need the
`app`/`client` fixtures, which would run each test twice on two databases.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from flask import Flask

from api.runtime.registry import models

os.environ.setdefault("HF_HUB_OFFLINE", "1")

CORPUS = [
    "Once upon a time there was a little fox who lived by the river.",
    "The fox liked to play in the garden with her friends.",
    "One day the fox found a shiny stone and showed it to everyone.",
    "héllo wörld, café naïve, 日本語 and emoji 🦊 too.",
]
TINY_ID = "tiny-story"


def build_tiny_generator(directory: Path) -> None:
    """Save a random 2-layer GPT-2 and a trained byte-level BPE tokenizer in `directory`."""
    import torch
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import GPT2Config, GPT2LMHeadModel, PreTrainedTokenizerFast

    backend = Tokenizer(models.BPE())
    backend.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    backend.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=400,
        special_tokens=["<|endoftext|>"],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
    )
    backend.train_from_iterator(CORPUS * 3, trainer)
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=backend, bos_token="<|endoftext|>", eos_token="<|endoftext|>"
    )
    tokenizer.save_pretrained(directory)
    torch.manual_seed(0)
    config = GPT2Config(
        vocab_size=len(tokenizer),
        n_positions=128,
        n_embd=64,
        n_layer=2,
        n_head=2,
        bos_token_id=tokenizer.eos_token_id,
        eos_token_id=tokenizer.eos_token_id,
    )
    GPT2LMHeadModel(config).save_pretrained(directory)


@pytest.fixture(scope="session")
def tiny_generator_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    directory = tmp_path_factory.mktemp("tiny-generator")
    build_tiny_generator(directory)
    return directory


@pytest.fixture(scope="session")
def inference_app(tiny_generator_dir: Path) -> Iterator[Flask]:
    """A bare app serving MiniLM and the tiny generator, both loaded once."""
    app = Flask("inference-tests")
    app.config.update(
        MODELS=f"all-minilm-l6-v2,{TINY_ID}=text-generation:{tiny_generator_dir}",
        GENERATION_SLOTS=2,
        INFERENCE_TIMEOUT_S=20,
    )
    models.init_app(app)
    assert models.load_all(app) == []
    yield app
    models.close()


@pytest.fixture
def inference_context(inference_app: Flask) -> Iterator[Flask]:
    with inference_app.app_context():
        yield inference_app
