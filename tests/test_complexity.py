"""Complexity counting: closed-form counts per op (fvcore-test style), the golden challenge numbers, the
cross-check warnings, the per-layer breakdown, and that counting leaves the model untouched."""

from __future__ import annotations

import json
import logging
import math
import warnings

import pytest
import torch
import torch.nn.functional as F
from fvcore.nn import FlopCountAnalysis
from torch import nn

from sr_bench.complexity import CONVENTIONS, ComplexityReport, count_complexity
from sr_bench.complexity.ops import DYNAMIC_DWCONV_OP, FULL_OPS, FVCORE_OPS
from sr_bench.errors import ModelSpecError, UsageError
from sr_bench.zoo import get_spec
from sr_bench.zoo.dlgsanet import idynamic_dwconv

torch.set_num_threads(1)

B, H, W = 2, 10, 12


def count(model: nn.Module, shape: tuple[int, ...] = (B, 3, H, W), **kwargs) -> ComplexityReport:
    return count_complexity(model, shape, **kwargs)


def fvcore_total(model: nn.Module, shape: tuple[int, ...]) -> int:
    """The reference: fvcore's own class with srbench's one extra handle."""
    analysis = FlopCountAnalysis(model, torch.rand(shape)).set_op_handle(
        DYNAMIC_DWCONV_OP, FVCORE_OPS[DYNAMIC_DWCONV_OP])
    analysis.unsupported_ops_warnings(False).uncalled_modules_warnings(False)
    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return int(analysis.total())


# ---------------------------------------------------------------------------------------------------------------
# Convolutions


@pytest.mark.parametrize(("cin", "cout", "k", "stride", "padding", "dilation", "groups"), [
    (3, 8, 3, 1, 1, 1, 1),  # plain
    (3, 8, 3, 2, 1, 1, 1),  # stride
    (4, 8, (1, 5), 1, (2, 0), 1, 2),  # grouped, rectangular kernel, LGVAN-style strip padding
    (6, 6, 5, 1, 6, 3, 6),  # depthwise, dilated
    (4, 12, 1, 1, 0, 1, 4),  # depthwise multiplier 3
])
def test_conv2d_closed_form(cin, cout, k, stride, padding, dilation, groups) -> None:
    """Conv2d costs kh*kw * Cin * Cout/groups per output pixel in every convention; bias is free."""
    conv = nn.Conv2d(cin, cout, k, stride=stride, padding=padding, dilation=dilation, groups=groups)
    out = conv(torch.rand(B, cin, H, W))
    expected = math.prod(conv.kernel_size) * cin * (cout // groups) * out[:, 0].numel()
    report = count(conv, (B, cin, H, W))
    assert report.flops == {"ntire2023": expected, "fvcore": expected, "full": expected}
    assert report.activations == out.numel()
    assert report.num_conv == 1
    assert report.params == sum(p.numel() for p in conv.parameters())


def test_conv_transpose2d_hooks_use_output_size() -> None:
    """The official hook prices a transposed conv on its output size; fvcore prices it on its input size."""
    deconv = nn.ConvTranspose2d(4, 6, 3, stride=2, padding=1, output_padding=1, groups=2)
    report = count(deconv, (B, 4, H, W))
    per_pixel = 9 * 4 * (6 // 2)
    assert report.flops["ntire2023"] == per_pixel * B * (2 * H) * (2 * W)
    assert report.flops["fvcore"] == per_pixel * B * H * W
    assert report.activations == B * 6 * (2 * H) * (2 * W)
    assert report.num_conv == 1


def test_module_called_twice_counts_twice() -> None:
    class Twice(nn.Module):
        """The same conv applied twice: #conv and activations count calls, not modules."""

        def __init__(self) -> None:
            super().__init__()
            self.conv = nn.Conv2d(3, 3, 3, padding=1)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.conv(self.conv(x))

    report = count(Twice())
    assert report.num_conv == 2
    assert report.activations == 2 * B * 3 * H * W
    assert report.flops["ntire2023"] == report.flops["fvcore"] == 2 * 27 * 3 * B * H * W


def test_functional_conv_is_invisible_to_hooks_and_flagged() -> None:
    class Functional(nn.Module):
        """A conv through F.conv2d: fvcore sees it, the module hooks do not."""

        def __init__(self) -> None:
            super().__init__()
            self.weight = nn.Parameter(torch.rand(8, 3, 3, 3))

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return F.conv2d(x, self.weight, padding=1)

    report = count(Functional())
    assert report.flops["ntire2023"] == 0 and report.num_conv == 0 and report.activations == 0
    assert report.flops["fvcore"] == 27 * 8 * B * H * W
    assert any(w.startswith("FLOP counters disagree by 100.0%") for w in report.warnings)


# ---------------------------------------------------------------------------------------------------------------
# Linear, batch norm, activations


def test_linear_2d_input() -> None:
    report = count(nn.Linear(16, 5), (B, 16))
    assert report.flops == {"ntire2023": B * 16 * 5, "fvcore": B * 16 * 5, "full": B * 16 * 5}
    assert report.num_conv == 0 and report.activations == 0
    assert not any("nn.Linear" in w for w in report.warnings)


def test_linear_3d_input_keeps_official_error_and_warns() -> None:
    """On (B, N, C) input the official formula gives B*N*N (in.shape[1] and out.shape[1] are both N)."""
    n, cin, cout = 7, 16, 5
    report = count(nn.Linear(cin, cout), (B, n, cin))
    official, true = B * n * n, B * n * cin * cout
    assert report.flops["ntire2023"] == official
    assert report.flops["fvcore"] == true
    (note,) = [w for w in report.warnings if w.startswith("nn.Linear")]
    assert f"gives {official:,} FLOPs" in note and f"real cost is {true:,} ({true - official:+,})" in note


@pytest.mark.parametrize("affine", [True, False])
def test_batchnorm2d(affine: bool) -> None:
    """BatchNorm2d: one op per element, two with the affine step, in hooks and in fvcore (eval mode)."""
    bn = nn.BatchNorm2d(3, affine=affine).train()  # counting switches to eval and back
    report = count(bn)
    expected = B * 3 * H * W * (2 if affine else 1)
    assert report.flops["ntire2023"] == report.flops["fvcore"] == expected
    assert bn.training


@pytest.mark.parametrize("act", [nn.ReLU(), nn.PReLU(), nn.ELU(), nn.LeakyReLU(0.1), nn.ReLU6(),
                                 nn.ReLU(inplace=True)])
def test_activation_modules_count_in_hooks_and_full_only(act: nn.Module) -> None:
    report = count(act)
    numel = B * 3 * H * W
    assert report.flops == {"ntire2023": numel, "fvcore": 0, "full": numel}


@pytest.mark.parametrize("fn", [F.relu, F.gelu, torch.sigmoid, torch.tanh, F.silu])
def test_functional_activations_count_in_full_only(fn) -> None:
    class Act(nn.Module):
        """One functional activation: invisible to hooks, free in fvcore, 1 per element in full."""

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return fn(x)

    report = count(Act())
    assert report.flops == {"ntire2023": 0, "fvcore": 0, "full": B * 3 * H * W}


def test_hook_rules_match_subclasses_like_isinstance() -> None:
    class MyConv(nn.Conv2d):
        """A Conv2d subclass: the official isinstance check counts it as a conv."""

    report = count(MyConv(3, 4, 1))
    assert report.num_conv == 1 and report.flops["ntire2023"] == 3 * 4 * B * H * W


# ---------------------------------------------------------------------------------------------------------------
# The full convention


class Mixed(nn.Module):
    """Elementwise ops, softmax, pooling, pixel shuffle and upsampling: what fvcore leaves at 0 (mostly)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = x * 2 + x  # mul, add: 1 per element each
        y = torch.softmax(y, dim=1)  # 3 per element
        p = F.max_pool2d(y, 3, stride=2)  # 9 per output element
        s = F.pixel_shuffle(y[:, :3].repeat(1, 4, 1, 1), 2)  # 0: data movement
        u = F.interpolate(p, scale_factor=2, mode="bilinear")  # 4 per output element (fvcore's rule too)
        return s.mean() + u.mean()


def test_full_closed_form() -> None:
    x = torch.rand(B, 3, H, W)
    p_numel = F.max_pool2d(x, 3, stride=2).numel()
    report = count(Mixed())
    upsample = 4 * 4 * p_numel
    # mul, add, softmax, pool, two means over their inputs, the final scalar add
    full = 2 * x.numel() + 3 * x.numel() + 9 * p_numel + 4 * x.numel() + 4 * p_numel + 1
    assert report.flops == {"ntire2023": 0, "fvcore": upsample, "full": upsample + full}
    assert report.flops_by_operator["full"]["max_pool2d"] == 9 * p_numel
    assert "pixel_shuffle" not in report.unsupported_ops["full"]
    assert report.unsupported_ops["fvcore"]["aten::pixel_shuffle"] == 1
    assert report.unsupported_ops["fvcore"]["aten::add"] == 2


def test_full_table_extends_fvcore_without_overriding_it() -> None:
    assert all(FULL_OPS[op] is handle for op, handle in FVCORE_OPS.items())
    assert {"aten::add", "aten::add_", "aten::gelu", "aten::softmax", "aten::pixel_shuffle"} <= set(FULL_OPS)


def test_conventions_are_documented() -> None:
    assert list(CONVENTIONS) == ["ntire2023", "fvcore", "full"]
    assert all("1 multiply-add = 1 FLOP" in text for text in CONVENTIONS.values())
    assert "pixel_shuffle" in CONVENTIONS["full"] and DYNAMIC_DWCONV_OP in CONVENTIONS["fvcore"]


# ---------------------------------------------------------------------------------------------------------------
# DLGSANet's custom op


class DynamicConv(nn.Module):
    """A conv predicting per-pixel 3x3 kernels for 2 channel groups, applied by srbench's custom op."""

    def __init__(self, channels: int = 4, groups: int = 2, k: int = 3) -> None:
        super().__init__()
        self.groups = groups
        self.kernel_net = nn.Conv2d(channels, groups * k * k, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return idynamic_dwconv(x, self.kernel_net(x), self.groups)


def test_dynamic_dwconv_is_priced_in_fvcore_and_full() -> None:
    c, k = 4, 3
    report = count(DynamicConv(c, 2, k), (B, c, H, W))
    kernel_net = c * 2 * k * k * B * H * W
    dynamic = k * k * B * c * H * W
    assert report.flops == {"ntire2023": kernel_net, "fvcore": kernel_net + dynamic, "full": kernel_net + dynamic}
    assert report.flops_by_operator["fvcore"]["idynamic_dwconv"] == dynamic
    assert report.unsupported_ops == {"fvcore": {}, "full": {}}


@pytest.mark.parametrize("model", [Mixed(), DynamicConv(), nn.Sequential(nn.Conv2d(3, 4, 3), nn.BatchNorm2d(4))])
def test_fvcore_convention_equals_fvcore_itself(model: nn.Module) -> None:
    shape = (B, 4 if isinstance(model, DynamicConv) else 3, H, W)
    assert count(model, shape).flops["fvcore"] == fvcore_total(model.eval(), shape)


# ---------------------------------------------------------------------------------------------------------------
# Golden numbers (protocol.md): exact, on one 1x3x256x256 input


@pytest.mark.parametrize(("name", "params", "hooks", "fvcore", "activations", "convs"), [
    ("lgvan", 118_243, 9_057_572_992, 9_036_601_472, 332_392_832, 122),
    ("rfdn", 433_448, 27_102_622_560, 27_046_231_296, 112_034_240, 64),
])
def test_golden_numbers(name, params, hooks, fvcore, activations, convs) -> None:
    report = count_complexity(get_spec(name).build(4), (1, 3, 256, 256))
    assert (report.params, report.flops["ntire2023"], report.flops["fvcore"]) == (params, hooks, fvcore)
    assert (report.activations, report.num_conv) == (activations, convs)
    assert report.flops["full"] > fvcore
    assert report.forward_passes == 2 and report.traced  # one trace per seeded input
    assert not any(w.startswith(("FLOP counters disagree", "module ", "nn.Linear")) for w in report.warnings)
    (unsupported,) = [w for w in report.warnings if w.startswith("fvcore:")]
    assert "aten::pixel_shuffle" in unsupported
    assert not [w for w in report.warnings if w.startswith("full:")]


# ---------------------------------------------------------------------------------------------------------------
# Cross-checks


class Detour(nn.Module):
    """Features leave torch through numpy: the trace loses the conv that produced them (fvcore drops it)."""

    def __init__(self) -> None:
        super().__init__()
        self.head = nn.Conv2d(3, 8, 3, padding=1)
        self.tail = nn.Conv2d(8, 3, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.tail(torch.from_numpy(self.head(x).numpy()))


def test_module_dropped_from_trace_is_flagged() -> None:
    report = count(Detour())
    head = 9 * 3 * 8 * B * H * W
    assert report.flops["fvcore"] == report.flops["ntire2023"] - head
    flagged = [w for w in report.warnings if w.startswith("module ")]
    assert flagged == [f"module 'head' (Conv2d) ran 1x but has 0 FLOPs in the fvcore trace (ntire2023 hooks: "
                       f"{head:,}): its ops are missing from the trace, e.g. because they feed a custom or "
                       "untraceable op, so fvcore under-counts"]
    assert any(w.startswith("FLOP counters disagree") for w in report.warnings)


def test_small_disagreement_is_not_flagged() -> None:
    """A ReLU module after a 3x3 32->32 conv adds 1/288 (0.35%) to the hook count: a legitimate gap, like
    LGVAN's 0.23%, stays below the 1% threshold."""
    model = nn.Sequential(nn.Conv2d(32, 32, 3, padding=1), nn.ReLU())
    report = count(model, (1, 32, 8, 8))
    assert report.flops["ntire2023"] != report.flops["fvcore"]
    assert not any(w.startswith("FLOP counters disagree") for w in report.warnings)


def test_unsupported_ops_are_counted_in_warnings_not_logged(caplog: pytest.LogCaptureFixture) -> None:
    class Adds(nn.Module):
        """Two adds and one erf (which not even the full table prices)."""

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return torch.erf(x + 1) + x

    with caplog.at_level(logging.DEBUG):
        report = count(Adds())
    assert not [r for r in caplog.records if r.name.startswith("fvcore")]
    assert report.unsupported_ops == {"fvcore": {"aten::add": 2, "aten::erf": 1}, "full": {"aten::erf": 1}}
    assert "fvcore: 3 call(s) of ops it has no rule for, priced at 0: aten::add x2, aten::erf x1" in report.warnings
    assert "full: 1 call(s) of ops it has no rule for, priced at 0: aten::erf x1" in report.warnings


def test_model_warnings_are_captured(capsys: pytest.CaptureFixture) -> None:
    class Noisy(nn.Module):
        """Warns on every forward."""

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            warnings.warn("deprecated thing", DeprecationWarning)
            return x

    report = count(Noisy())
    assert report.warnings.count("model warning: DeprecationWarning: deprecated thing") == 1
    assert capsys.readouterr() == ("", "")


def test_untraceable_model_falls_back_to_hooks() -> None:
    class NoTrace(nn.Module):
        """Refuses to be traced: fvcore and full are unavailable, the hook counts still come."""

        def __init__(self) -> None:
            super().__init__()
            self.conv = nn.Conv2d(3, 4, 1)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            if torch.jit.is_tracing():
                raise RuntimeError("not traceable\nsecond line")
            return self.conv(x)

    report = count(NoTrace())
    assert report.flops == {"ntire2023": 12 * B * H * W, "fvcore": None, "full": None}
    assert (report.num_conv, report.forward_passes, report.traced) == (1, 3, False)  # failed trace + 2 eager
    assert report.warnings == ["fvcore could not trace the model (RuntimeError: not traceable); "
                               "fvcore and full FLOPs are unavailable"]


# ---------------------------------------------------------------------------------------------------------------
# Options and errors


def test_hooks_only_runs_one_eager_forward_per_input_and_no_trace() -> None:
    report = count(nn.Conv2d(3, 4, 1), conventions=("ntire2023",))
    assert report.flops == {"ntire2023": 12 * B * H * W, "fvcore": None, "full": None}
    assert (report.forward_passes, report.traced) == (2, False)
    assert report.unsupported_ops == {} and report.flops_by_operator == {}


def test_unknown_convention_is_a_usage_error() -> None:
    with pytest.raises(UsageError, match="unknown FLOP convention.*ntire2021.*choose from ntire2023, fvcore, full"):
        count(nn.Identity(), conventions=("ntire2021",))


def test_model_that_fails_raises_a_one_line_error() -> None:
    with pytest.raises(ModelSpecError, match=r"failed on a \(2, 3, 10, 12\) input.*RuntimeError"):
        count(nn.Conv2d(1, 4, 3))


def test_input_follows_model_dtype() -> None:
    report = count(nn.Conv2d(3, 4, 1).double())
    assert report.flops["fvcore"] == 12 * B * H * W and report.input_shape == (B, 3, H, W)


# ---------------------------------------------------------------------------------------------------------------
# Per-layer breakdown and records


class Net(nn.Module):
    """Two blocks of conv + ReLU module, a functional residual add at the top."""

    def __init__(self) -> None:
        super().__init__()
        self.head = nn.Conv2d(3, 8, 3, padding=1)
        self.body = nn.Sequential(nn.Sequential(nn.Conv2d(8, 8, 3, padding=1), nn.ReLU()),
                                  nn.Sequential(nn.Conv2d(8, 8, 1), nn.ReLU()))
        self.tail = nn.Conv2d(8, 3, 3, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.tail(self.body(self.head(x))) + x


@pytest.mark.parametrize("depth", [0, 1, 2])
def test_by_layer_rows_cover_the_model(depth: int) -> None:
    report = count(Net(), by_layer_depth=depth)
    rows = report.by_layer
    names = [r.name for r in rows]
    expected = {0: ["head", "body", "tail", "(other)"],
                1: ["head", "body.0", "body.1", "tail", "(other)"],
                2: ["head", "body.0.0", "body.0.1", "body.1.0", "body.1.1", "tail", "(other)"]}[depth]
    assert names == expected
    for convention, total in report.flops.items():
        assert sum(r.flops[convention] for r in rows) == total
        assert math.isclose(sum(r.share[convention] for r in rows), 1.0)
    assert sum(r.params for r in rows) == report.params
    assert sum(r.activations for r in rows) == report.activations
    assert sum(r.num_conv for r in rows) == report.num_conv
    other = rows[-1]
    assert other.flops == {"ntire2023": 0, "fvcore": 0, "full": B * 3 * H * W}  # the residual add


def test_by_layer_relu_row() -> None:
    rows = {r.name: r for r in count(Net(), by_layer_depth=2).by_layer}
    relu = rows["body.0.1"]
    assert (relu.type, relu.depth, relu.params, relu.num_conv) == ("ReLU", 2, 0, 0)
    assert relu.flops == {"ntire2023": B * 8 * H * W, "fvcore": 0, "full": B * 8 * H * W}


def test_report_to_dict_is_json_ready() -> None:
    data = json.loads(json.dumps(count(Net(), by_layer_depth=0).to_dict()))
    assert data["input_shape"] == [B, 3, H, W]
    assert set(data["flops"]) == {"ntire2023", "fvcore", "full"}
    assert data["by_layer"][0]["name"] == "head"


# ---------------------------------------------------------------------------------------------------------------
# Counting leaves the model untouched


def _snapshot(model: nn.Module) -> dict:
    return {
        "state": {k: v.clone() for k, v in model.state_dict().items()},
        "modules": [(name, sorted(vars(m)), m.training, {a: dict(getattr(m, a)) for a in (
            "_forward_hooks", "_forward_pre_hooks", "_forward_hooks_with_kwargs", "_forward_pre_hooks_with_kwargs",
            "_forward_hooks_always_called", "_backward_hooks")}) for name, m in model.named_modules()],
        "grad": [p.requires_grad for p in model.parameters()],
    }


def test_counting_does_not_mutate_the_model() -> None:
    model = nn.Sequential(Net(), nn.BatchNorm2d(3), nn.Dropout(0.5))
    model.train()
    model[0].eval()  # mixed flags must come back as they were
    model[1].register_forward_hook(lambda *args: None)  # a user's hook must survive
    before = _snapshot(model)
    count(model, by_layer_depth=1)
    after = _snapshot(model)
    assert before["modules"] == after["modules"]
    assert before["grad"] == after["grad"]
    assert before["state"].keys() == after["state"].keys()
    assert all(torch.equal(before["state"][k], after["state"][k]) for k in before["state"])  # BN stats untouched
