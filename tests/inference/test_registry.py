"""ModelRegistry: nothing loads at init, models are shared per process, missing ones degrade."""

from __future__ import annotations

from pathlib import Path

import pytest
from flask import Flask

from api.inference.service import embed_texts
from api.runtime.errors import ModelUnavailable
from api.runtime.registry import AppModels, models


def make_app(models_setting: str, **config: object) -> Flask:
    app = Flask("registry-test")
    app.config.update(MODELS=models_setting, **config)
    models.init_app(app)
    return app


def test_init_app_only_reads_the_settings(tmp_path: Path) -> None:
    app = make_app(f"later=embedding:{tmp_path}", BATCH_MAX_SIZE=8)

    configured = app.extensions["inference"]
    assert isinstance(configured, AppModels)
    assert [spec.id for spec in configured.specs] == ["later"]
    assert configured.settings.batch_max_size == 8
    assert all(spec.id != "later" for spec in models._models)


def test_a_missing_model_is_skipped_and_answers_503(inference_app: Flask, tmp_path: Path) -> None:
    app = make_app(f"all-minilm-l6-v2,ghost=text-generation:{tmp_path / 'nothing-here'}")

    assert models.load_all(app) == ["ghost"]
    with app.app_context():
        assert [info.id for info in models.list()] == ["all-minilm-l6-v2"]
        with pytest.raises(ModelUnavailable) as raised:
            models.get("ghost")
    assert raised.value.status == 503 and "Retry-After" in raised.value.headers


def test_apps_share_loaded_models_but_not_their_settings(inference_app: Flask) -> None:
    app = make_app("all-minilm-l6-v2", INFERENCE_QUEUE_SIZE=3)

    with app.app_context():
        served = models.serve("all-minilm-l6-v2")
        assert embed_texts(None, ["shared model"]).prompt_tokens == 4
    with inference_app.app_context():
        default = models.serve("all-minilm-l6-v2")

    assert served.model is default.model
    assert served.batcher is not None and served.batcher.max_queue == 3
    assert default.batcher is not None and default.batcher.max_queue == 256
