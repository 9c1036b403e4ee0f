"""The model registry: names, scales, exact parameter counts, input ranges and random-init forwards."""

from __future__ import annotations

import pytest
import torch

from sr_bench.errors import ModelSpecError, UnknownModelError
from sr_bench.zoo import ModelSpec, get_spec, list_models

# Exact parameter counts per (model, scale), from the authors' code / the NTIRE reports.
PARAM_COUNTS = {
    ("lgvan", 4): 118_243,
    ("rfdn", 4): 433_448,
    ("dlgsanet-tiny", 2): 565_710,
    ("dlgsanet-tiny", 3): 572_205,
    ("dlgsanet-tiny", 4): 581_298,
    ("dlgsanet-light", 2): 745_188,
    ("dlgsanet-light", 3): 751_683,
    ("dlgsanet-light", 4): 760_776,
}
DATA_RANGES = {"lgvan": 1.0, "rfdn": 255.0, "dlgsanet-tiny": 1.0, "dlgsanet-light": 1.0}

# Every (model, scale) the registry declares, so a newly registered model is tested without editing this file.
CASES = [(name, scale) for name in list_models() for scale in get_spec(name).scales]


def test_the_four_builtin_models_are_registered():
    assert list_models() == ["dlgsanet-light", "dlgsanet-tiny", "lgvan", "rfdn"]


def test_every_registered_scale_has_a_known_param_count():
    assert set(CASES) == set(PARAM_COUNTS)


@pytest.mark.parametrize(("name", "scale"), CASES)
def test_param_count_is_exact_in_spec_and_built_model(name, scale):
    spec = get_spec(name)
    assert spec.param_counts[scale] == PARAM_COUNTS[(name, scale)]
    model = spec.build(scale)
    assert sum(p.numel() for p in model.parameters()) == PARAM_COUNTS[(name, scale)]


@pytest.mark.parametrize(("name", "scale"), CASES)
def test_random_init_forward_upscales_without_nan(name, scale):
    spec = get_spec(name)
    torch.manual_seed(0)
    model = spec.build(scale)
    assert not model.training
    x = torch.rand(1, 3, 16, 20) * spec.data_range
    with torch.no_grad():
        y = model(x)
    assert tuple(y.shape) == (1, 3, 16 * scale, 20 * scale)
    assert torch.isfinite(y).all()


@pytest.mark.parametrize("name", sorted(DATA_RANGES))
def test_data_range(name):
    assert get_spec(name).data_range == DATA_RANGES[name]


def test_get_spec_is_case_insensitive():
    assert get_spec("LGVAN").name == "lgvan"


@pytest.mark.parametrize(("typo", "suggestion"), [("lgvn", "lgvan"), ("rfd", "rfdn"), ("dlgsanet-tin", "dlgsanet-tiny")])
def test_unknown_name_suggests_close_matches(typo, suggestion):
    with pytest.raises(UnknownModelError, match=rf"unknown model '{typo}': did you mean .*{suggestion}"):
        get_spec(typo)


def test_unknown_name_without_close_match_points_to_listing():
    with pytest.raises(UnknownModelError, match="run 'srbench models' to list them"):
        get_spec("swinir-classical")


def test_unsupported_scale_names_supported_scales():
    with pytest.raises(ModelSpecError, match=r"'lgvan' does not support x2; supported: x4 \(drop --scale for its default x4\)$"):
        get_spec("lgvan").check_scale(2)
    with pytest.raises(ModelSpecError, match="supported: x2, x3, x4"):
        get_spec("dlgsanet-tiny").build(8)


def test_default_scale_is_used_when_none():
    assert get_spec("dlgsanet-light").check_scale(None) == 4


def test_list_models_patterns_and_exclude():
    assert list_models("dlgsanet-*") == ["dlgsanet-light", "dlgsanet-tiny"]
    assert list_models(["lgvan", "rf*"]) == ["lgvan", "rfdn"]
    assert list_models("*", exclude=["dlgsanet-*"]) == ["lgvan", "rfdn"]
    assert list_models("nothing-*") == []


def test_builtin_checkpoint_specs():
    lgvan = get_spec("lgvan").checkpoint(4)
    assert (lgvan.file, lgvan.key) == ("team18_LGVAN.pth", "params_ema")
    assert lgvan.sha256 == "fe201971de6fb18e62fd17d7c10817cf406d68b7aa2adb5f00474a066b05e0ec"
    rfdn = get_spec("rfdn").checkpoint(4)
    assert rfdn.file == "team00_rfdn.pth"
    assert rfdn.sha256 == "11af8ec8ebd68689e90ef1e29044f9804c72d3bd9f7573820b7b26035782760c"
    tiny = get_spec("dlgsanet-tiny").checkpoint(2)
    assert tiny.url is None and tiny.note and "dlgsanet_tiny_x2.pth" in tiny.note


def test_spec_rejects_bad_data_range():
    with pytest.raises(ModelSpecError, match="data_range must be 1 or 255, got 7"):
        ModelSpec(name="bad", builder=lambda scale: torch.nn.Identity(), scales=(4,), data_range=7)


def test_spec_mappings_are_read_only():
    with pytest.raises(TypeError):
        get_spec("rfdn").param_counts[4] = 1  # type: ignore[index]
