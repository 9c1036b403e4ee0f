"""DLGSANet port: structure, parity with the upstream fixtures, the dynamic-conv operator and TLC."""

from __future__ import annotations

import copy
import json
import logging
from collections.abc import Iterator
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from fvcore.nn import FlopCountAnalysis

from sr_bench.errors import ModelSpecError
from sr_bench.zoo import dlgsanet as dl
from sr_bench.zoo.registry import get_spec
from conftest import require_file

PARAMS = {
    ("tiny", 2): 565_710, ("tiny", 3): 572_205, ("tiny", 4): 581_298,
    ("light", 2): 745_188, ("light", 3): 751_683, ("light", 4): 760_776,
}
FIXTURES = {"tiny_x4": ("tiny", 4), "light_x4": ("light", 4), "tiny_x2": ("tiny", 2)}
BUILDERS = {"tiny": dl.dlgsanet_tiny, "light": dl.dlgsanet_light}


@pytest.fixture(scope="module", autouse=True)
def _one_thread() -> Iterator[None]:
    """The CPU is shared; one thread keeps timings predictable (the fixtures are thread-count independent)."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="module")
def fixture_root(fixtures_dir: Path) -> Path:
    return fixtures_dir / "dlgsanet"


@pytest.fixture(scope="module")
def manifest(fixture_root: Path) -> dict:
    return json.loads(require_file(fixture_root / "manifest.json").read_text())


def _state_dict(root: Path, name: str) -> dict[str, torch.Tensor]:
    return torch.load(require_file(root / f"{name}_seed0.pth"), map_location="cpu", weights_only=True)["params"]


@pytest.fixture(scope="module")
def loaded(fixture_root: Path) -> dict[str, dl.DLGSANet]:
    """Each fixture variant built and loaded strictly, once per module."""
    models = {}
    for name, (variant, scale) in FIXTURES.items():
        model = BUILDERS[variant](scale).eval()
        model.load_state_dict(_state_dict(fixture_root, name), strict=True)
        models[name] = model
    return models


@pytest.fixture(scope="module")
def outputs(loaded: dict[str, dl.DLGSANet], fixture_root: Path) -> dict[tuple[str, str, str], torch.Tensor]:
    """Port outputs per (variant, mode, dtype), computed once: the float64 runs are the slow part."""
    results = {}
    for name, model in loaded.items():
        x = torch.load(require_file(fixture_root / f"{name}_input.pt"), weights_only=True)
        for mode, tlc in (("eval", True), ("notlc", False)):
            for label, dtype in (("f64", torch.float64), ("f32", torch.float32)):
                m = copy.deepcopy(model).to(dtype)
                dl.set_tlc(m, tlc)
                with torch.no_grad():
                    results[name, mode, label] = m(x.to(dtype)).double()
    return results


# ---------------------------------------------------------------------------------------------------------------
# structure


@pytest.mark.parametrize(("variant", "scale"), sorted(PARAMS))
def test_parameter_counts(variant: str, scale: int) -> None:
    model = BUILDERS[variant](scale)
    assert sum(p.numel() for p in model.parameters()) == PARAMS[variant, scale]
    assert get_spec(f"dlgsanet-{variant}").param_counts[scale] == PARAMS[variant, scale]


@pytest.mark.parametrize("name", sorted(FIXTURES))
def test_fixture_checkpoint_loads_strictly(name: str, fixture_root: Path, manifest: dict) -> None:
    variant, scale = FIXTURES[name]
    state = _state_dict(fixture_root, name)
    model = BUILDERS[variant](scale)
    model.load_state_dict(state, strict=True)
    assert len(model.state_dict()) == manifest["variants"][name]["state_dict_keys"] == len(state)
    assert not any("mean" in k for k in model.state_dict())


def test_specs_are_registered_with_hand_download_checkpoints() -> None:
    for variant in ("tiny", "light"):
        spec = get_spec(f"dlgsanet-{variant}")
        assert spec.scales == (2, 3, 4) and spec.default_scale == 4 and spec.data_range == 1.0
        assert not spec.reference
        for scale in spec.scales:
            ckpt = spec.checkpoint(scale)
            assert ckpt.file == f"dlgsanet_{variant}_x{scale}.pth"
            assert ckpt.url is None and ckpt.sha256 is None and ckpt.key is None
            assert "Google Drive" in ckpt.note and ckpt.file in ckpt.note
        model = spec.build(4)
        assert not model.training and sum(p.numel() for p in model.parameters()) == PARAMS[variant, 4]


def test_rgb_mean_stays_the_float32_constant_across_casts() -> None:
    model = dl.dlgsanet_tiny(4).half().float().double()
    expected = torch.tensor(dl.RGB_MEAN, dtype=torch.float32).view(1, 3, 1, 1)
    assert model.rgb_mean.dtype == torch.float32
    assert torch.equal(model.rgb_mean, expected)
    assert "rgb_mean" not in model.state_dict()


def test_bad_arguments_raise_srbench_errors() -> None:
    with pytest.raises(ModelSpecError, match="shift, unfold"):
        dl.dlgsanet_tiny(4, dwconv_impl="cupy")
    with pytest.raises(ModelSpecError, match="tlc_kernel"):
        dl.dlgsanet_tiny(8)
    with pytest.raises(ModelSpecError, match="no DLGSANet attention"):
        dl.set_tlc(torch.nn.Conv2d(3, 3, 1), False)
    with pytest.raises(ModelSpecError, match="no dynamic conv"):
        dl.set_dwconv_impl(torch.nn.Conv2d(3, 3, 1), "unfold")


# ---------------------------------------------------------------------------------------------------------------
# parity with the upstream reference outputs


@pytest.mark.parametrize("mode", ["eval", "notlc"])
@pytest.mark.parametrize("name", sorted(FIXTURES))
def test_float64_port_matches_reference(name: str, mode: str, outputs: dict, fixture_root: Path) -> None:
    ref = torch.load(require_file(fixture_root / f"{name}_output_{mode}.pt"), weights_only=True)
    out = outputs[name, mode, "f64"]
    assert out.shape == ref.shape
    assert (out - ref).abs().max().item() < 1e-10


@pytest.mark.parametrize("mode", ["eval", "notlc"])
@pytest.mark.parametrize("name", sorted(FIXTURES))
def test_float32_port_within_spec_tolerance(name: str, mode: str, outputs: dict, fixture_root: Path) -> None:
    ref = torch.load(require_file(fixture_root / f"{name}_output_{mode}.pt"), weights_only=True)
    assert (outputs[name, mode, "f32"] - ref).abs().max().item() < 1e-5


def test_tlc_changes_the_output(outputs: dict) -> None:
    """Guards against TLC silently doing nothing (the reference modes differ by up to 0.3-0.85)."""
    for name in FIXTURES:
        assert (outputs[name, "eval", "f64"] - outputs[name, "notlc", "f64"]).abs().max().item() > 0.1


@pytest.mark.parametrize("name", sorted(FIXTURES))
def test_tlc_windows_match_manifest(name: str, manifest: dict) -> None:
    facts = manifest["variants"][name]
    _, _, h, w = facts["input"]["shape"]
    kh, kw, origins = dl.tlc_windows(h, w, facts["constructor_args"]["tlc_kernel"])
    expected = facts["tlc_windows_lr"]
    assert (kh, kw) == (expected["window_h"], expected["window_w"])
    assert [list(o) for o in origins] == expected["top_left"]


def test_tlc_windows_single_window_and_exact_fit() -> None:
    assert dl.tlc_windows(30, 40, 48) == (30, 40, [(0, 0)])
    assert dl.tlc_windows(96, 48, 48) == (48, 48, [(0, 0), (48, 0)])


# ---------------------------------------------------------------------------------------------------------------
# the dynamic depthwise convolution operator


def _direct_dwconv(x: torch.Tensor, kernels: torch.Tensor, groups: int) -> torch.Tensor:
    """The formula of the spec, written tap by tap and channel by channel."""
    b, c, h, w = x.shape
    k = int(round((kernels.shape[1] // groups) ** 0.5))
    xp = F.pad(x, (k // 2,) * 4)
    kern = kernels.view(b, groups, k, k, h, w)
    out = torch.zeros_like(x)
    for ch in range(c):
        for i in range(k):
            for j in range(k):
                out[:, ch] += kern[:, ch // (c // groups), i, j] * xp[:, ch, i : i + h, j : j + w]
    return out


@pytest.mark.parametrize("impl", dl.DWCONV_IMPLS)
def test_dwconv_matches_the_formula(impl: str) -> None:
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(2, 12, 9, 11, generator=gen, dtype=torch.float64)
    kernels = torch.randn(2, 2 * 49, 9, 11, generator=gen, dtype=torch.float64)
    out = dl.idynamic_dwconv(x, kernels, 2, impl)
    torch.testing.assert_close(out, _direct_dwconv(x, kernels, 2), rtol=0, atol=1e-12)


def test_shift_and_unfold_agree_in_the_model(loaded: dict) -> None:
    model = copy.deepcopy(loaded["tiny_x4"])
    x = torch.rand(1, 3, 20, 28, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        assert dl.set_dwconv_impl(model, "shift") == 9
        shift = model(x)
        dl.set_dwconv_impl(model, "unfold")
        unfold = model(x)
    torch.testing.assert_close(unfold, shift, rtol=0, atol=1e-5)


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
@pytest.mark.parametrize("impl", dl.DWCONV_IMPLS)
def test_dwconv_low_precision_close_to_float64(dtype: torch.dtype, impl: str) -> None:
    gen = torch.Generator().manual_seed(2)
    x = torch.randn(1, 48, 10, 12, generator=gen)
    kernels = torch.randn(1, 392, 10, 12, generator=gen)
    ref = dl.idynamic_dwconv(x.double(), kernels.double(), 8)
    out = dl.idynamic_dwconv(x.to(dtype), kernels.to(dtype), 8, impl)
    assert out.dtype == dtype
    rel = (out.double() - ref).abs().max() / ref.abs().max()
    assert rel < (2e-3 if dtype == torch.float16 else 1e-2)


def test_dwconv_backward() -> None:
    gen = torch.Generator().manual_seed(3)
    x = torch.randn(1, 4, 4, 5, generator=gen, dtype=torch.float64, requires_grad=True)
    kernels = torch.randn(1, 2 * 9, 4, 5, generator=gen, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda a, k: dl.idynamic_dwconv(a, k, 2), (x, kernels))


def test_dwconv_backward_matches_autograd_through_unfold() -> None:
    gen = torch.Generator().manual_seed(4)
    x = torch.randn(2, 12, 8, 9, generator=gen, dtype=torch.float64, requires_grad=True)
    kernels = torch.randn(2, 2 * 49, 8, 9, generator=gen, dtype=torch.float64, requires_grad=True)
    grad = torch.randn(2, 12, 8, 9, generator=gen, dtype=torch.float64)
    mine = torch.autograd.grad(dl.idynamic_dwconv(x, kernels, 2), (x, kernels), grad)
    plain = torch.autograd.grad(dl._dwconv_unfold(x, kernels, 2, 7), (x, kernels), grad)
    for a, b in zip(mine, plain):
        torch.testing.assert_close(a, b, rtol=0, atol=1e-12)


def test_dwconv_registration_and_fake_kernel() -> None:
    x = torch.randn(1, 4, 4, 5, dtype=torch.float64, requires_grad=True)
    kernels = torch.randn(1, 2 * 9, 4, 5, dtype=torch.float64, requires_grad=True)
    torch.library.opcheck(
        torch.ops.srbench.idynamic_dwconv.default, (x, kernels, 2, "shift"),
        test_utils=("test_schema", "test_autograd_registration", "test_faketensor"),
    )
    meta = dl.idynamic_dwconv(torch.empty(2, 48, 5, 6, device="meta"), torch.empty(2, 392, 5, 6, device="meta"), 8)
    assert meta.shape == (2, 48, 5, 6) and meta.device.type == "meta"


def test_dwconv_rejects_mismatched_shapes() -> None:
    with pytest.raises(ValueError, match="do not fit"):
        dl.idynamic_dwconv(torch.zeros(1, 48, 5, 6), torch.zeros(1, 390, 5, 6), 8)
    with pytest.raises(ValueError, match="do not fit"):
        dl.idynamic_dwconv(torch.zeros(1, 48, 5, 6), torch.zeros(1, 392, 5, 7), 8)


# ---------------------------------------------------------------------------------------------------------------
# whole-model behaviour


def test_batch_of_two_equals_two_batches_of_one(loaded: dict) -> None:
    """TLC windows are batched over images too: no item may leak into another."""
    model = loaded["tiny_x4"]
    x = torch.rand(2, 3, 52, 50, generator=torch.Generator().manual_seed(5))
    with torch.no_grad():
        both = model(x)
        single = torch.cat([model(x[:1]), model(x[1:])])
    torch.testing.assert_close(both, single, rtol=0, atol=1e-5)


def test_training_mode_uses_whole_image_attention(loaded: dict) -> None:
    model = copy.deepcopy(loaded["tiny_x4"])
    x = torch.rand(1, 3, 52, 50, generator=torch.Generator().manual_seed(6))
    with torch.no_grad():
        assert dl.set_tlc(model, False) == 9
        whole = model(x)
        dl.set_tlc(model, True)
        tlc = model(x)
        model.train()
        train = model(x)
    torch.testing.assert_close(train, whole, rtol=0, atol=1e-6)
    assert (tlc - whole).abs().max() > 1e-3


@pytest.mark.parametrize(("dtype", "atol"), [(torch.float16, 0.05), (torch.bfloat16, 0.3)])
def test_low_precision_forward_on_cpu(loaded: dict, fixture_root: Path, dtype: torch.dtype, atol: float) -> None:
    x = torch.load(require_file(fixture_root / "tiny_x4_input.pt"), weights_only=True)[..., :24, :32]
    model = loaded["tiny_x4"]
    with torch.no_grad():
        ref = model(x)
        out = copy.deepcopy(model).to(dtype)(x.to(dtype))
    assert out.dtype == dtype and torch.isfinite(out).all()
    assert (out.float() - ref).abs().max().item() < atol


@pytest.mark.filterwarnings("ignore::torch.jit.TracerWarning")  # TLC layout from shapes: expected in a trace
def test_trace_shows_one_custom_op_per_local_block_and_fvcore_counts_its_inputs() -> None:
    """The op is one priced-by-handle node; fvcore must still count the convs that predict its kernels."""
    model = dl.dlgsanet_tiny(4).eval()
    x = torch.rand(1, 3, 16, 16)
    graph = torch.jit.trace(model, x).inlined_graph
    kinds = [node.kind() for node in graph.nodes()]
    assert kinds.count("srbench::idynamic_dwconv") == 9
    assert kinds.count("aten::_convolution") == 132

    logging.getLogger("fvcore").setLevel(logging.ERROR)
    flops = FlopCountAnalysis(model, x).unsupported_ops_warnings(False).uncalled_modules_warnings(False)
    flops.total()
    assert flops.unsupported_ops()["srbench::idynamic_dwconv"] == 9
    pixels, dim, hidden, taps = 16 * 16, 48, 12, 49
    kernel_net = pixels * (dim * hidden + hidden * taps + hidden * taps * 8)  # conv1.0, conv1.1 (dw), conv2.0
    local = "deep_feature_extraction.0.body.0.IDynamicDWConv"
    assert flops.by_module()[f"{local}.conv"] == kernel_net
    assert flops.by_module()[local] == kernel_net + 2 * pixels * dim * dim  # plus conv0 and conv1


# ---------------------------------------------------------------------------------------------------------------
# TLC gather / fold-back: vectorised, same result as the window-by-window definition


def _tlc_by_window_loop(attn: dl.SparseAttention, qkv: torch.Tensor) -> torch.Tensor:
    """The spec written out one window at a time (slice, attend, add back, count), as reference."""
    b, c3, h, w = qkv.shape
    k1, k2, origins = dl.tlc_windows(h, w, attn.tlc_kernel)
    total = qkv.new_zeros(b, c3 // 3, h, w)
    count = qkv.new_zeros(1, 1, h, w)
    for i, j in origins:
        total[:, :, i : i + k1, j : j + k2] += attn._attend(qkv[:, :, i : i + k1, j : j + k2])
        count[:, :, i : i + k1, j : j + k2] += 1
    return total / count


@pytest.mark.parametrize(("h", "w"), [(20, 20), (21, 33), (8, 40), (9, 8), (16, 16)])
def test_vectorised_tlc_matches_window_loop(h: int, w: int) -> None:
    torch.manual_seed(0)
    attn = dl.SparseAttention(12, heads=2, tlc_kernel=8).double().eval()
    with torch.no_grad():
        attn.temperature.uniform_(0.5, 1.5)
        qkv = torch.randn(2, 36, h, w, dtype=torch.float64)
        got, ref = attn._attend_tlc(qkv), _tlc_by_window_loop(attn, qkv)
    assert got.shape == ref.shape == (2, 12, h, w) and got.is_contiguous()
    assert torch.allclose(got, ref, rtol=0, atol=1e-13)


def test_tlc_pixel_index_lists_every_window_pixel_in_window_order() -> None:
    k1, k2, tops, lefts, index = dl._tlc_pixel_index(21, 33, 8)
    _, _, origins = dl.tlc_windows(21, 33, 8)
    expected = [(i + y) * 33 + j + x for i, j in origins for y in range(k1) for x in range(k2)]
    assert (k1, k2) == (8, 8) and [(i, j) for i in tops for j in lefts] == origins
    assert index.tolist() == expected


@pytest.mark.parametrize(("h", "w", "kernel"), [(21, 33, 8), (44, 44, 8), (9, 8, 8), (16, 16, 8), (50, 49, 48)])
def test_gather_windows_equals_slicing(h: int, w: int, kernel: int) -> None:
    x = torch.randn(2, 5, h, w)
    k1, k2, origins = dl.tlc_windows(h, w, kernel)
    _, _, tops, lefts, _ = dl._tlc_pixel_index(h, w, kernel)
    expected = torch.stack([torch.stack([x[b, :, i : i + k1, j : j + k2] for i, j in origins]) for b in range(2)])
    assert torch.equal(dl._gather_windows(x, k1, k2, tops, lefts), expected.flatten(0, 1))


@pytest.mark.filterwarnings("ignore::torch.jit.TracerWarning")
def test_tlc_trace_size_does_not_grow_with_the_window_count() -> None:
    """Constant ops per attention: 2 x 2 and 6 x 6 windows trace to graphs of the same length."""
    attn = dl.SparseAttention(12, heads=2, tlc_kernel=8).eval()
    lengths = {len(list(torch.jit.trace(attn, torch.rand(1, 12, *hw)).inlined_graph.nodes()))
               for hw in [(16, 16), (44, 44)]}
    assert len(lengths) == 1
