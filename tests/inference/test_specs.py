"""The MODELS setting: built-in names, custom entries, and errors that name MODELS."""

from __future__ import annotations

import os

import pytest

from api.config import PROJECT_ROOT, ConfigError
from api.runtime.settings import InferenceSettings
from api.runtime.specs import ModelSpec, parse_model_specs


def test_default_models_resolve_to_their_tasks_and_directories() -> None:
    minilm, storyteller = parse_model_specs("all-minilm-l6-v2,storyteller")

    assert (minilm.id, minilm.task) == ("all-minilm-l6-v2", "embedding")
    assert os.path.isfile(os.path.join(minilm.path, "model.safetensors"))
    assert storyteller == ModelSpec(
        "storyteller", "text-generation", str(PROJECT_ROOT / "models" / "storyteller")
    )


def test_custom_entries_and_blanks() -> None:
    specs = parse_model_specs(" tiny = text-generation:/srv/tiny/ , , mini=embedding:/srv/e ")

    assert specs == [
        ModelSpec("tiny", "text-generation", "/srv/tiny"),
        ModelSpec("mini", "embedding", "/srv/e"),
    ]
    assert parse_model_specs("") == []


@pytest.mark.parametrize(
    "value",
    [
        "gpt-17",
        "x=translation:/srv/x",
        "x=embedding:relative/dir",
        "x=embedding",
        "bad id=embedding:/srv/x",
        "storyteller,storyteller",
        "a=embedding:/srv/a,a=text-generation:/srv/b",
    ],
)
def test_bad_entries_raise_config_errors_naming_models(value: str) -> None:
    with pytest.raises(ConfigError, match="MODELS"):
        parse_model_specs(value)


@pytest.mark.parametrize(
    ("name", "value"),
    [("BATCH_MAX_SIZE", 0), ("INFERENCE_QUEUE_SIZE", -1), ("GENERATION_SLOTS", 0)],
)
def test_bad_settings_name_their_variable(name: str, value: int) -> None:
    with pytest.raises(ConfigError, match=name):
        InferenceSettings.from_config({name: value})


def test_settings_default_without_config() -> None:
    assert InferenceSettings.from_config({}) == InferenceSettings(32, 5, 256, 30.0, 4)
