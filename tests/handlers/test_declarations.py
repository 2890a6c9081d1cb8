"""Declarations are checked at load: a bad one is a ConfigError naming the model and field."""

from __future__ import annotations

import pytest

from api.config import ConfigError
from api.runtime.handlers.declarations import declare
from api.runtime.handlers.loader import describe_target, load_class, split_target
from tests.handlers.sample_handler import Tiny


def handler(**attributes):
    base = {
        "inputs": [{"name": "x", "kind": "text"}],
        "outputs": [{"name": "y", "kind": "text"}],
        "setup": lambda self, device: None,
        "predict": lambda self, batch: batch,
    }
    return type("H", (), {**base, **attributes})


def test_the_interface_example_is_accepted():
    declaration = declare(Tiny, "tiny")
    assert [spec.name for spec in declaration.inputs] == ["image", "threshold"]
    assert declaration.max_batch_size == 4 and declaration.units == "images"
    image = declaration.input("image")
    assert image.limits["max_pixels"] == 4096 and image.limits["formats"] == ["jpeg", "png", "webp"]
    described = declaration.describe()
    assert described["inputs"][1] == {
        "name": "threshold",
        "kind": "number",
        "required": False,
        "default": 0.5,
        "minimum": 0,
        "maximum": 1,
        "integer": False,
    }


@pytest.mark.parametrize(
    ("attributes", "said"),
    [
        ({"inputs": []}, "inputs must be a non-empty list"),
        ({"inputs": [{"name": "x", "kind": "video"}]}, "inputs[0] x: kind must be one of"),
        ({"inputs": [{"name": "9x", "kind": "text"}]}, "inputs[0] name must be"),
        (
            {"inputs": [{"name": "x", "kind": "text", "max_pixels": 3}]},
            "text does not take max_pixels",
        ),
        ({"inputs": [{"name": "x", "kind": "image", "formats": ["svg"]}]}, "x: formats must be"),
        ({"inputs": [{"name": "x", "kind": "tensor"}]}, "x: shape must be"),
        ({"inputs": [{"name": "x", "kind": "tensor", "shape": [0]}]}, "x: shape must be"),
        ({"inputs": [{"name": "x", "kind": "tensor", "shape": [2], "dtype": "cfloat"}]}, "dtype"),
        (
            {"inputs": [{"name": "x", "kind": "number", "minimum": 2, "maximum": 1}]},
            "above maximum",
        ),
        ({"inputs": [{"name": "x", "kind": "text", "default": "a"}]}, "needs required: False"),
        ({"inputs": [{"name": "x", "kind": "text"}, {"name": "x", "kind": "text"}]}, "twice"),
        (
            {"outputs": [{"name": "y", "kind": "text", "required": False, "default": 1}]},
            "no default",
        ),
        ({"max_batch_size": 0}, "max_batch_size must be"),
        ({"max_wait_ms": -1}, "max_wait_ms must be"),
        ({"units": "Images!"}, "units must be"),
        ({"device": "tpu"}, "device must be"),
    ],
)
def test_a_bad_declaration_names_the_model_and_field(attributes, said):
    with pytest.raises(ConfigError, match="model 'm'") as raised:
        declare(handler(**attributes), "m")
    assert said in str(raised.value)


def test_config_overrides_win_and_are_checked():
    assert declare(Tiny, "t", {"max_batch_size": 2, "device": "cuda:1"}).device == "cuda:1"
    with pytest.raises(ConfigError, match="max_batch_size"):
        declare(Tiny, "t", {"max_batch_size": "lots"})


def test_targets_load_from_a_module_or_a_file(tmp_path):
    assert load_class("t", "tests.handlers.sample_handler:Tiny") is Tiny
    path = tmp_path / "mine.py"
    path.write_text(
        "class Echo:\n"
        "    inputs = [{'name': 'text', 'kind': 'text'}]\n"
        "    outputs = [{'name': 'text', 'kind': 'text'}]\n"
        "    def setup(self, device): pass\n"
        "    def predict(self, batch): return batch\n"
    )
    assert describe_target("e", f"{path}:Echo").inputs[0].name == "text"


@pytest.mark.parametrize(
    ("target", "said"),
    [
        ("nothing", "must be package.module:Class"),
        ("relative/file.py:Echo", "must be absolute"),
        ("/no/such/file.py:Echo", "does not exist"),
        ("tests.handlers.sample_handler:Nope", "has no class Nope"),
        ("tests.handlers.no_such_module:Echo", "importing tests.handlers.no_such_module failed"),
        ("json:JSONDecoder", "has no setup() method"),
    ],
)
def test_a_bad_target_is_a_config_error(target, said):
    with pytest.raises(ConfigError, match="model 'x'") as raised:
        load_class("x", target)
    assert said in str(raised.value)


def test_split_target_keeps_the_colon_of_the_class_only():
    assert split_target("x", "/a/b.py:C") == ("/a/b.py", "C")


def test_a_models_line_names_the_handler_and_its_settings():
    from api.runtime.handlers.specs import handler_entries

    found = handler_entries(
        "storyteller, tiny=handler:/srv/tiny.py:Tiny max_batch_size=8 device=cuda timeout_s=5,"
        "other=handler:pkg.mod:Other"
    )
    assert list(found) == ["tiny", "other"]
    assert found["tiny"].target == "/srv/tiny.py:Tiny" and found["tiny"].timeout_s == 5
    assert found["tiny"].overrides == {"max_batch_size": 8, "device": "cuda"}
    for bad, said in (
        ("x=handler:/srv/t.py:T color=red", "'color=red' is not a setting"),
        ("x=handler:/srv/t.py:T max_queue=0", "max_queue must be positive"),
        ("x=handler:/srv/t.py:T max_wait_ms=soon", "max_wait_ms must be a number"),
        ("x=handler:t.py:T", "must be absolute"),
    ):
        with pytest.raises(ConfigError, match="model 'x'") as raised:
            handler_entries(bad)
        assert said in str(raised.value)
