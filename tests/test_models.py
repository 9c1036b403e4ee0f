"""resolve_model for user models (file.py:Class) and entry-point plugins; option checks on zoo models."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest
import torch

from sr_bench.checkpoint_files import checkpoint_label
from sr_bench.errors import CheckpointError, ModelSpecError, UnknownModelError
from sr_bench.models import (
    LoadOptions,
    check_output_shape,
    is_user_model,
    load_model,
    parse_model_args,
    resolve_model,
)
from sr_bench.user_code import ModelFault
from sr_bench.zoo import ModelSpec, get_spec, list_models, registry

USER_FILE = Path(__file__).resolve().parent / "data" / "user_net.py"
TINY = f"{USER_FILE}:TinyNet"


@pytest.fixture(autouse=True)
def _no_weights_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("SRBENCH_WEIGHTS", raising=False)


def forward(module: torch.nn.Module, h: int = 8, w: int = 10) -> torch.Tensor:
    with torch.no_grad():
        return module(torch.rand(1, 3, h, w))


# --- user models ---------------------------------------------------------------------------------------------------


def test_is_user_model():
    assert is_user_model("tests/data/user_net.py:TinyNet")
    assert not is_user_model("lgvan")
    assert not is_user_model("C:lgvan")


def test_user_model_builds_with_scale_and_model_args():
    loaded = resolve_model(TINY, scale=2, model_args='{"channels": 8}')
    net = loaded.module
    assert type(net).__name__ == "TinyNet"
    assert (net.scale, net.channels) == (2, 8)
    assert not net.training
    assert (loaded.scale, loaded.data_range, loaded.name) == (2, 1.0, TINY)
    assert loaded.spec.origin == "file"
    assert forward(net).shape == (1, 3, 16, 20)
    assert loaded.checkpoint.path is None
    assert loaded.notices == [f"{TINY} x2: no checkpoint found, using random weights (pass --weights FILE)"]


def test_user_model_relative_path(monkeypatch):
    monkeypatch.chdir(USER_FILE.parent.parent)
    assert resolve_model("data/user_net.py:TinyNet", scale=3).module.scale == 3


def test_user_model_default_scale_is_4():
    assert resolve_model(TINY).scale == 4


def test_scale_reaches_other_argument_names():
    assert forward(resolve_model(f"{USER_FILE}:FactorNet", scale=3).module).shape == (1, 3, 24, 30)


def test_explicit_scale_in_model_args_wins():
    assert resolve_model(TINY, scale=2, model_args={"scale": 2, "channels": 4}).module.channels == 4


def test_data_range_255_is_recorded():
    loaded = resolve_model(TINY, scale=2, data_range=255)
    assert loaded.data_range == 255.0 and loaded.spec.data_range == 255.0


def test_scale_must_be_positive():
    with pytest.raises(ModelSpecError, match="--scale must be a positive integer, got 0"):
        resolve_model(TINY, scale=0)


def test_bad_data_range():
    with pytest.raises(ModelSpecError, match="--data-range must be 1 or 255, got 7"):
        resolve_model(TINY, data_range=7)


def test_missing_file(tmp_path):
    with pytest.raises(UnknownModelError, match=r"model file not found: .*nope\.py \(expected --model path/to/file\.py:ClassName\)"):
        resolve_model(f"{tmp_path / 'nope.py'}:Net")


def test_missing_class_lists_the_classes_there():
    with pytest.raises(UnknownModelError, match=r"has no class 'Tiny' \(classes there: FactorNet, SameSizeNet, TinyNet\)"):
        resolve_model(f"{USER_FILE}:Tiny")


def test_file_without_modules(tmp_path):
    path = tmp_path / "empty.py"
    path.write_text("x = 1\n")
    with pytest.raises(UnknownModelError, match="has no class 'Net' \\(it defines no nn.Module class\\)"):
        resolve_model(f"{path}:Net")


@pytest.mark.parametrize("name", ["NotAModule", "make_net"])
def test_not_a_module(name):
    with pytest.raises(UnknownModelError, match=rf"user_net\.py:{name} is not a torch\.nn\.Module subclass"):
        resolve_model(f"{USER_FILE}:{name}")


def test_bad_class_name():
    with pytest.raises(UnknownModelError, match="'1net' is not a class name"):
        resolve_model(f"{USER_FILE}:1net")


def test_file_that_fails_to_import(tmp_path):
    path = tmp_path / "broken.py"
    path.write_text("import torch\nVALUE = 1 / 0\n")
    with pytest.raises(ModelFault, match=r"model .*broken\.py failed in import: ZeroDivisionError: division by zero"):
        resolve_model(f"{path}:Net")


def test_bad_json_model_args():
    with pytest.raises(ModelSpecError, match=r"--model-args is not valid JSON \(.* at char \d+\): '\{\"channels\": 8'"):
        resolve_model(TINY, model_args='{"channels": 8')
    with pytest.raises(ModelSpecError, match="--model-args must be a JSON object"):
        resolve_model(TINY, model_args="[8]")


def test_parse_model_args():
    assert parse_model_args(None) == {} == parse_model_args("")
    assert parse_model_args('{"dim": 48, "tlc": false}') == {"dim": 48, "tlc": False}


def test_constructor_type_error_names_the_arguments():
    with pytest.raises(ModelSpecError, match=r"cannot build .*:TinyNet with arguments \{.*'chanels': 8.*\}: .*chanels.* \(check --model-args\)"):
        resolve_model(TINY, scale=2, model_args='{"chanels": 8}')


def test_require_weights_without_weights():
    with pytest.raises(CheckpointError, match=rf"no checkpoint for {TINY} x2: pass --weights FILE"):
        resolve_model(TINY, scale=2, require_weights=True)


def test_user_model_loads_weights_strictly(tmp_path):
    torch.manual_seed(0)
    loaded = resolve_model(TINY, scale=2, model_args={"channels": 8})
    path = tmp_path / "tiny.pth"
    torch.save({"params": loaded.module.state_dict()}, path)
    again = resolve_model(TINY, scale=2, model_args={"channels": 8}, weights=path, require_weights=True)
    for k, v in loaded.module.state_dict().items():
        assert torch.equal(again.module.state_dict()[k], v)
    assert again.checkpoint.path == path.resolve()
    assert again.checkpoint.verified is None  # no official hash for a user model
    assert again.checkpoint.key == "params"
    assert again.notices == []
    with pytest.raises(CheckpointError, match=r"does not fit .*TinyNet x2: .*shape mismatches \(e\.g\. head\.weight \(8, 3, 3, 3\) vs \(16, 3, 3, 3\)"):
        resolve_model(TINY, scale=2, weights=path)


def test_user_model_carries_its_arguments_and_the_hash_of_its_file(tmp_path):
    """What the run log's key and the records say about the network: an edited file is another model."""
    path = tmp_path / "net.py"
    path.write_text(USER_FILE.read_text())
    first = resolve_model(f"{path}:TinyNet", scale=2, model_args='{"channels": 8}')
    assert first.model_args == {"channels": 8} and first.load == LoadOptions()
    assert first.model_file_sha256 == hashlib.sha256(path.read_bytes()).hexdigest()
    assert first.model_facts() == {"model_args": {"channels": 8}, "model_file_sha256": first.model_file_sha256}
    path.write_text(USER_FILE.read_text() + "\n# edited\n")
    assert resolve_model(f"{path}:TinyNet", scale=2).model_file_sha256 != first.model_file_sha256
    zoo = resolve_model("rfdn")
    assert (zoo.model_args, zoo.model_file_sha256) == ({}, None)


def test_a_checkpoint_key_other_than_the_official_entry_is_a_warning(weights_dir, monkeypatch):
    """A verified file loaded through another entry is not the official model: the record says which entry."""
    monkeypatch.setenv("SRBENCH_WEIGHTS", str(weights_dir))
    official = resolve_model("lgvan")
    assert (official.checkpoint.key, official.checkpoint.official_key) == ("params_ema", "params_ema")
    assert official.warnings == []
    other = resolve_model("lgvan", load=LoadOptions(checkpoint_key="params"))
    info = other.checkpoint
    assert (info.verified, info.key, info.official_key) == (official.checkpoint.verified, "params", "params_ema")
    assert info.to_dict()["official_key"] == "params_ema"
    assert other.warnings == [f"lgvan x4: --checkpoint-key loaded the 'params' entry of {info.path}; the official "
                              "weights are its 'params_ema' entry, so numbers are not the official model's"]
    label = checkpoint_label(info.path, info.verified, info.key, info.official_key)
    assert label == f"file {checkpoint_label(info.path, info.verified)}, entry params (official: params_ema)"
    assert checkpoint_label(info.path, info.verified, "params_ema", "params_ema") == \
        checkpoint_label(info.path, info.verified)


def test_check_output_shape():
    lr = (1, 3, 8, 10)
    check_output_shape(torch.zeros(1, 3, 16, 20), lr, 2, "net")
    out = forward(resolve_model(f"{USER_FILE}:SameSizeNet", scale=2).module)
    with pytest.raises(
        ModelSpecError,
        match=r"SameSizeNet returned shape \(1, 3, 8, 10\) for input \(1, 3, 8, 10\); expected \(1, 3, 16, 20\) at x2 — check --scale",
    ):
        check_output_shape(out, lr, 2, "SameSizeNet")


# --- options that only make sense for user models --------------------------------------------------------------


def test_zoo_model_rejects_model_args():
    with pytest.raises(ModelSpecError, match=r"--model-args applies to user models \(file\.py:Class\) only"):
        resolve_model("rfdn", model_args='{"nf": 8}')


def test_zoo_model_rejects_other_data_range():
    with pytest.raises(ModelSpecError, match=r"'lgvan' works in \[0, 1\]; --data-range 255 would ruin"):
        resolve_model("lgvan", data_range=255)
    assert resolve_model("rfdn", data_range=255).data_range == 255.0


def test_zoo_unknown_and_bad_scale_through_resolve():
    with pytest.raises(UnknownModelError, match="did you mean lgvan"):
        resolve_model("lgvn")
    with pytest.raises(ModelSpecError, match="supported: x4"):
        resolve_model("rfdn", scale=2)


def test_load_model_public_api():
    net = load_model("dlgsanet-tiny", scale=2)
    assert isinstance(net, torch.nn.Module) and not net.training


# --- entry-point plugins -----------------------------------------------------------------------------------------


class FakeEntryPoint:
    def __init__(self, name: str, obj: object = None, error: Exception | None = None) -> None:
        self.name, self.value, self.group = name, f"{name}_pkg.specs:SPEC", registry.ENTRY_POINT_GROUP
        self._obj, self._error = obj, error

    def load(self) -> object:
        if self._error is not None:
            raise self._error
        return self._obj


@pytest.fixture
def plugins(monkeypatch: pytest.MonkeyPatch) -> list[FakeEntryPoint]:
    """Entry points seen by the registry; the registry is restored afterwards."""
    found: list[FakeEntryPoint] = []
    monkeypatch.setattr(registry, "entry_points", lambda group: [ep for ep in found if ep.group == group])
    monkeypatch.setattr(registry, "_plugins_loaded", False)
    monkeypatch.setattr(registry, "_REGISTRY", dict(registry._REGISTRY))
    return found


def _tiny_builder(scale: int) -> torch.nn.Module:
    return torch.nn.Sequential(torch.nn.Conv2d(3, 3 * scale * scale, 3, padding=1), torch.nn.PixelShuffle(scale))


def plugin_spec(name: str, **kw: object) -> ModelSpec:
    return ModelSpec(name=name, builder=_tiny_builder, scales=(2, 4), data_range=1.0, **kw)


def test_plugin_spec_is_registered(plugins):
    plugins.append(FakeEntryPoint("myorg", plugin_spec("myorg-net")))
    assert "myorg-net" in list_models()
    spec = get_spec("myorg-net")
    assert spec.origin == "plugin"
    loaded = resolve_model("myorg-net", scale=2)
    assert forward(loaded.module).shape == (1, 3, 16, 20)
    assert loaded.notices == ["myorg-net x2: no checkpoint found, using random weights (no official checkpoint is known; pass --weights FILE)"]


def test_plugin_name_with_capitals_is_reachable(plugins):
    plugins.append(FakeEntryPoint("caps", plugin_spec("MyOrg-Net")))
    for name in list_models():
        assert get_spec(name).name == name  # every listed name resolves, so `srbench models` keeps working
    assert resolve_model("MyOrg-Net", scale=2).scale == 2


def test_plugin_callable_returning_a_list(plugins):
    plugins.append(FakeEntryPoint("pair", lambda: [plugin_spec("pa"), plugin_spec("pb")]))
    assert list_models("p?") == ["pa", "pb"]


def test_plugin_cannot_replace_a_builtin(plugins):
    plugins.append(FakeEntryPoint("shadow", plugin_spec("rfdn")))
    assert get_spec("rfdn").origin == "zoo"


def test_plugin_that_fails_to_load_is_named(plugins):
    plugins.append(FakeEntryPoint("broken", error=ImportError("No module named 'broken_pkg'")))
    with pytest.raises(
        ModelSpecError,
        match=r"plugin entry point 'broken' \(broken_pkg\.specs:SPEC\) failed to load: No module named 'broken_pkg'",
    ):
        list_models()


def test_plugin_failure_is_not_forgotten_on_the_next_call(plugins):
    plugins.append(FakeEntryPoint("broken", error=RuntimeError("boom")))
    for _ in range(2):
        with pytest.raises(ModelSpecError, match="plugin entry point 'broken'"):
            get_spec("lgvan")


def test_plugin_returning_something_else(plugins):
    plugins.append(FakeEntryPoint("odd", 42))
    with pytest.raises(ModelSpecError, match="plugin entry point 'odd' returned int, not ModelSpec"):
        list_models()
    plugins[:] = [FakeEntryPoint("odd2", [plugin_spec("ok"), "nope"])]
    registry._plugins_loaded = False
    with pytest.raises(ModelSpecError, match="plugin entry point 'odd2' returned str, not ModelSpec"):
        list_models()
