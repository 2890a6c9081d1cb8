"""The built-in kinds are handlers: the embedding model and the text generator declare their
inputs and outputs, load in `setup(device)` and answer `predict`, like any user's handler."""

from __future__ import annotations

import pytest

from api.config import ConfigError
from api.runtime.handlers.declarations import declare
from api.runtime.handlers.embedding import embedding_fields
from api.runtime.handlers.server import HandlerProcess
from api.runtime.handlers.specs import parse_handler
from api.runtime.models.embedding import EmbeddingModel
from api.runtime.models.generation import TextGenerator

EMBEDDING = "api.runtime.models.embedding:EmbeddingModel"


def test_both_built_in_kinds_pass_the_handler_declaration_check():
    embedding = declare(EmbeddingModel, "minilm")
    assert [spec.name for spec in embedding.inputs] == ["text"]
    assert embedding.outputs[0].limits["dtype"] == "float32"
    assert embedding.units == "tokens" and embedding.max_batch_size == 32
    assert not embedding.streaming
    generation = declare(TextGenerator, "story")
    assert [spec.name for spec in generation.inputs] == [
        "prompt",
        "max_tokens",
        "temperature",
        "top_p",
        "seed",
    ]
    assert generation.streaming and generation.max_batch_size == 1
    assert generation.input("max_tokens").default == 16


def test_a_handler_entry_takes_an_absolute_path():
    settings = parse_handler("minilm", f"{EMBEDDING} path=/srv/models/../models/minilm")
    assert settings.path == "/srv/models/minilm" and settings.overrides == {}
    with pytest.raises(ConfigError, match="'minilm': path must be absolute"):
        parse_handler("minilm", f"{EMBEDDING} path=models/minilm")


def test_a_built_in_handler_without_its_path_fails_setup_and_says_so():
    process = HandlerProcess("minilm")
    process.load(f"minilm=handler:{EMBEDDING}", 30.0)
    assert process.state == "failed"
    assert "path=" in (process.error or "")


def test_a_built_in_handler_reads_its_path_setting(tmp_path):
    """The setting reaches `setup`: a missing directory fails it, reported with the path."""
    process = HandlerProcess("minilm")
    process.load(f"minilm=handler:{EMBEDDING} path={tmp_path / 'absent'}", 30.0)
    assert process.state == "failed" and "absent" in (process.error or "")


def declared(inputs, outputs):
    handler = type(
        "H",
        (),
        {
            "inputs": inputs,
            "outputs": outputs,
            "setup": lambda self, device: None,
            "predict": lambda self, batch: batch,
        },
    )
    return declare(handler, "h")


def test_which_handlers_also_serve_v1_embeddings():
    """One required text in and a float32 vector first out: /v1/embeddings can call it."""
    vector = {"name": "v", "kind": "tensor", "dtype": "float32", "shape": [384]}
    text = {"name": "t", "kind": "text"}
    assert embedding_fields(declare(EmbeddingModel, "m")) == ("text", "embedding")
    assert embedding_fields(declare(TextGenerator, "m")) is None
    optional = {"name": "n", "kind": "number", "required": False, "default": 1}
    assert embedding_fields(declared([text, optional], [vector])) == ("t", "v")
    assert embedding_fields(declared([text, {**text, "name": "u"}], [vector])) is None
    assert embedding_fields(declared([{"name": "i", "kind": "image"}], [vector])) is None
    assert embedding_fields(declared([text], [{**vector, "shape": [2, 3]}])) is None
    assert embedding_fields(declared([text], [{**vector, "dtype": "int64"}])) is None
    assert embedding_fields(declared([text], [{"name": "label", "kind": "text"}])) is None
