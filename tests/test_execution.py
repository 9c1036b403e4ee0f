"""sr_bench.execution: --exec parsing, applying modes without touching the caller's model, and the auto probe."""

from __future__ import annotations

import pytest
import torch
from torch import Tensor, nn

from dataclasses import replace

from sr_bench import cpu_heap, execution
from sr_bench.errors import SrBenchError, UsageError
from sr_bench.execution import EAGER, ExecMode, ExecRequest, parse_exec, prepare, resolve_auto, resolve_exec
from sr_bench.timing import RuntimeSpec, measure_runtime
from sr_bench.user_code import ModelFault

CPU = torch.device("cpu")
CUDA = torch.device("cuda", 0)


class TinySR(nn.Module):
    """A miniature efficient-SR net: conv, depthwise convs, a channel layer norm, pixel shuffle, global skip."""

    def __init__(self, channels: int = 8, scale: int = 2) -> None:
        super().__init__()
        self.head = nn.Conv2d(3, channels, 3, padding=1)
        self.dw = nn.Conv2d(channels, channels, 5, padding=2, groups=channels)
        self.dw_dilated = nn.Conv2d(channels, channels, 5, padding=6, dilation=3, groups=channels)
        self.mix = nn.Conv2d(channels, channels, 1)
        self.up = nn.Sequential(nn.Conv2d(channels, 3 * scale**2, 3, padding=1), nn.PixelShuffle(scale))
        self.scale = scale

    def forward(self, x: Tensor) -> Tensor:
        f = self.head(x)
        u = f.mean(1, keepdim=True)
        f = (f - u) / ((f - u).pow(2).mean(1, keepdim=True) + 1e-6).sqrt()
        f = f * self.mix(nn.functional.gelu(self.dw_dilated(self.dw(f)))) + f
        base = nn.functional.interpolate(x, scale_factor=self.scale, mode="bilinear", align_corners=False)
        return self.up(f) + base


class ViewsChannels(TinySR):
    """Reshapes with .view, which needs NCHW-contiguous memory: fails outright under channels_last."""

    def forward(self, x: Tensor) -> Tensor:
        f = self.head(x)
        n, c, h, w = f.shape
        f = f.view(n, c * h * w).softmax(-1).view(n, c, h, w)
        return self.up(f)


class LayoutSensitive(TinySR):
    """Silently computes something different when its input is not NCHW-contiguous (an injected deviation)."""

    def forward(self, x: Tensor) -> Tensor:
        y = super().forward(x)
        return y if x.is_contiguous() else y + 1e-3


class FirstForwardOff(TinySR):
    """Off by 1e-3 on its first forward in one memory layout in this process, exact afterwards: the shape of a
    first-call effect such as MKL VML's kernel-dispatch race. The state is on the class, as such an effect is
    process-wide (and the channels_last copy the probe makes is a deep copy)."""

    off_layout: bool = True  # x.is_contiguous() of the layout whose first forward is off
    done = False

    def forward(self, x: Tensor) -> Tensor:
        y = super().forward(x)
        if x.is_contiguous() != self.off_layout or FirstForwardOff.done:
            return y
        FirstForwardOff.done = True
        return y + 1e-3


class Exploding(nn.Module):
    """Fails if run at all: proves a code path never calls the model."""

    def forward(self, x: Tensor) -> Tensor:
        raise AssertionError("the model should not run")


@pytest.fixture
def model() -> TinySR:
    torch.manual_seed(0)
    return TinySR().eval()


@pytest.fixture
def lr() -> Tensor:
    return torch.rand(1, 3, 24, 20, generator=torch.Generator().manual_seed(1))


# ---------------------------------------------------------------------------------------------------------
# parse_exec and modes


@pytest.mark.parametrize(
    "text, expected",
    [
        ("auto", ExecRequest(auto=True)),
        ("eager", ExecRequest()),
        ("channels_last", ExecRequest(channels_last=True)),
        ("bf16", ExecRequest(dtype="bf16")),
        ("fp16", ExecRequest(dtype="fp16")),
        ("compile", ExecRequest(compile=True)),
        ("channels_last+bf16", ExecRequest(channels_last=True, dtype="bf16")),
        (" Channels_Last + compile ", ExecRequest(channels_last=True, compile=True)),
        ("compile+fp16+channels_last", ExecRequest(channels_last=True, dtype="fp16", compile=True)),
    ],
)
def test_parse_exec(text: str, expected: ExecRequest) -> None:
    assert parse_exec(text) == expected


def test_request_text_is_canonical() -> None:
    assert parse_exec("channels_last+bf16").text == "bf16+channels_last"
    assert parse_exec("compile+channels_last+fp16").text == "fp16+channels_last+compile"
    assert parse_exec("eager").text == "eager" and parse_exec("auto").text == "auto"


@pytest.mark.parametrize(
    "text, message",
    [
        ("eager+bf16", r"--exec eager cannot be combined \('eager\+bf16'\)"),
        ("auto+compile", r"--exec auto cannot be combined"),
        ("bf16+fp16", "cannot use both bf16 and fp16: pick one"),
        ("channels_last+channels_last", "repeats a part"),
        ("turbo", r"unknown --exec part 'turbo': choose from auto, eager, channels_last, bf16, fp16, compile"),
        ("bf16+", r"unknown --exec part ''"),
    ],
)
def test_parse_exec_rejects_nonsense(text: str, message: str) -> None:
    with pytest.raises(UsageError, match=message):
        parse_exec(text)


def test_mode_labels_and_dict() -> None:
    assert EAGER.label == "eager"
    assert ExecMode(memory_format="channels_last").label == "channels_last"
    mode = ExecMode(memory_format="channels_last", dtype="bf16", dtype_method="autocast", threads=2)
    assert mode.label == "bf16+channels_last"
    assert mode.to_dict() == {
        "label": "bf16+channels_last",
        "memory_format": "channels_last",
        "dtype": "bf16",
        "dtype_method": "autocast",
        "compile": False,
        "threads": 2,
        "retain_heap": False,
    }
    assert ExecMode(memory_format="channels_last", retain_heap=True).label == "channels_last+retain_heap"
    with pytest.raises(ValueError, match="dtype_method"):
        ExecMode(dtype="bf16")


def test_dtype_method_depends_on_device() -> None:
    request = parse_exec("bf16")
    assert request.mode(CPU).dtype_method == "autocast"
    assert request.mode(CUDA).dtype_method == "weights"
    assert parse_exec("eager").mode(CUDA).dtype_method is None


# ---------------------------------------------------------------------------------------------------------
# prepare


def test_channels_last_matches_eager(model: TinySR, lr: Tensor) -> None:
    with torch.inference_mode():
        reference = model(lr)
    out = prepare(model, ExecMode(memory_format="channels_last"), CPU)(lr)
    assert out.shape == reference.shape and out.dtype == torch.float32
    assert (out - reference).abs().max().item() <= 1e-5


def test_prepare_leaves_the_callers_model_alone(model: TinySR, lr: Tensor) -> None:
    with torch.inference_mode():
        before = model(lr)
    state = {k: v.clone() for k, v in model.state_dict().items()}
    for mode in (
        ExecMode(memory_format="channels_last"),
        ExecMode(memory_format="channels_last", dtype="bf16", dtype_method="autocast"),
        ExecMode(dtype="bf16", dtype_method="weights"),  # the CUDA method, exercised on CPU
    ):
        prepare(model, mode, CPU)(lr)
    for name, value in model.state_dict().items():
        assert value.dtype == torch.float32 and value.is_contiguous(), name
        assert torch.equal(value, state[name]), name
    with torch.inference_mode():
        assert torch.equal(model(lr), before)


def test_bf16_is_close_to_fp32(model: TinySR, lr: Tensor) -> None:
    with torch.inference_mode():
        reference = model(lr)
    for mode in (
        ExecMode(memory_format="channels_last", dtype="bf16", dtype_method="autocast"),
        ExecMode(dtype="bf16", dtype_method="weights"),
    ):
        prepared = prepare(model, mode, CPU)
        out = prepared(lr)
        assert out.dtype == torch.float32
        assert 0 < (out - reference).abs().max().item() < 0.05, mode.label
    assert next(prepared.module.parameters()).dtype == torch.bfloat16


def test_fp16_on_cpu_is_a_usage_error(model: TinySR) -> None:
    with pytest.raises(UsageError, match="fp16 needs CUDA; on CPU use bf16"):
        prepare(model, ExecMode(dtype="fp16", dtype_method="autocast"), CPU)


def test_compile_failures_become_srbench_errors(model: TinySR, lr: Tensor, monkeypatch: pytest.MonkeyPatch) -> None:
    def compiled_but_broken(module: nn.Module):
        def run(x: Tensor) -> Tensor:
            raise RuntimeError("BackendCompilerFailed: no working C++ compiler\nlong traceback")

        return run

    monkeypatch.setattr(torch, "compile", compiled_but_broken)
    prepared = prepare(model, ExecMode(compile=True), CPU)
    expected = (
        r"torch.compile failed for this model \(RuntimeError: BackendCompilerFailed: no working C\+\+ compiler\): "
        r"drop 'compile' from --exec"
    )
    with pytest.raises(SrBenchError, match=expected):
        prepared(lr)

    def cannot_compile(module: nn.Module):
        raise RuntimeError("Dynamo is not supported on this Python")

    monkeypatch.setattr(torch, "compile", cannot_compile)
    with pytest.raises(SrBenchError, match="drop 'compile' from --exec"):
        prepare(model, ExecMode(compile=True), CPU)


def test_errors_without_compile_are_not_relabelled(lr: Tensor) -> None:
    """Not a compile error: the model's own fault, named with the model and its exception."""
    with pytest.raises(ModelFault, match=r"model Exploding failed in forward: AssertionError: the model should not run"):
        prepare(Exploding(), EAGER, CPU)(lr)


def test_prepared_model_under_measure_runtime(model: TinySR, lr: Tensor) -> None:
    mode = ExecMode(memory_format="channels_last", threads=1)
    prepared = prepare(model, mode, CPU)
    spec = RuntimeSpec(
        device=CPU, input_shape=tuple(lr.shape), warmup=1, repeats=2, exec_mode=mode.label, threads=mode.threads
    )
    m = measure_runtime(lambda: prepared(lr), spec)
    assert len(m.samples_ms) == 2 and spec.to_dict()["exec_mode"] == "channels_last"


# ---------------------------------------------------------------------------------------------------------
# auto


def test_auto_picks_channels_last_for_a_conv_model_and_caches(model: TinySR) -> None:
    calls = []
    model.head.register_forward_hook(lambda *args: calls.append(1))
    mode, probe = resolve_auto(model, CPU, probe_shape=(1, 3, 16, 16), threads=2)
    assert mode == ExecMode(memory_format="channels_last", threads=2, retain_heap=cpu_heap.available())
    assert probe["chosen"] == "channels_last" and probe["max_abs_diff"] <= 1e-5
    assert probe["probe_shape"] == [1, 3, 16, 16] and "matches eager" in probe["reason"]
    ran = len(calls)
    again, probe_again = resolve_auto(model, CPU, probe_shape=(1, 3, 16, 16), threads=1)
    assert len(calls) == ran  # cached: the probe did not run again
    assert again.threads == 1 and probe_again == probe


def test_auto_tolerance_scales_with_data_range() -> None:
    torch.manual_seed(0)
    model = TinySR().eval()
    mode, probe = resolve_auto(model, CPU, probe_shape=(1, 3, 16, 16), data_range=255.0)
    assert probe["data_range"] == 255.0 and mode.memory_format == "channels_last"


def test_auto_falls_back_to_eager_when_channels_last_fails() -> None:
    torch.manual_seed(0)
    mode, probe = resolve_auto(ViewsChannels().eval(), CPU, probe_shape=(1, 3, 16, 16))
    assert mode == replace(EAGER, retain_heap=cpu_heap.available()) and probe["chosen"] == "eager"
    assert probe["reason"].startswith("channels_last fails on this model (") and probe["max_abs_diff"] is None


def test_auto_falls_back_to_eager_when_channels_last_deviates() -> None:
    torch.manual_seed(0)
    mode, probe = resolve_auto(LayoutSensitive().eval(), CPU, probe_shape=(1, 3, 16, 16))
    assert mode == replace(EAGER, retain_heap=cpu_heap.available()) and probe["chosen"] == "eager"
    assert probe["max_abs_diff"] == pytest.approx(1e-3, rel=1e-2) and "deviates" in probe["reason"]


@pytest.mark.parametrize("contiguous", [True, False], ids=["eager", "channels_last"])
def test_auto_compares_each_mode_on_its_second_forward(contiguous: bool, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(FirstForwardOff, "off_layout", contiguous)
    monkeypatch.setattr(FirstForwardOff, "done", False)
    torch.manual_seed(0)
    mode, probe = resolve_auto(FirstForwardOff().eval(), CPU, probe_shape=(1, 3, 16, 16))
    assert FirstForwardOff.done  # that layout's first forward ran, and was off
    assert mode.memory_format == "channels_last" and probe["max_abs_diff"] <= 1e-5


def test_auto_on_cuda_runs_the_model_as_written_without_probing() -> None:
    mode, probe = resolve_auto(Exploding(), CUDA, threads=4)
    assert mode == ExecMode(threads=4) and probe["chosen"] == "eager" and probe["reason"].startswith("CUDA")


# ---------------------------------------------------------------------------------------------------------
# resolve_exec


def test_resolve_exec_defaults_threads_to_all_cores(model: TinySR) -> None:
    mode, probe = resolve_exec(parse_exec("channels_last+bf16"), model, CPU)
    assert mode.threads == execution.default_threads() >= 1 and probe is None
    assert mode.label == "bf16+channels_last" and mode.dtype_method == "autocast"
    mode, probe = resolve_exec(parse_exec("auto"), model, CPU, threads=1)
    assert mode.memory_format == "channels_last" and mode.threads == 1 and probe["chosen"] == "channels_last"
    assert mode.retain_heap == cpu_heap.available()


@pytest.mark.parametrize("protocol", ["ntire2023", "ntire2024"])
def test_named_protocols_force_eager(protocol: str) -> None:
    mode, probe = resolve_exec(parse_exec("auto"), Exploding(), CPU, protocol=protocol, threads=2)
    assert mode == ExecMode(threads=2) and probe is None
    with pytest.raises(UsageError, match=f"protocol {protocol} measures eager fp32 only: drop --exec bf16"):
        resolve_exec(parse_exec("bf16"), Exploding(), CPU, protocol=protocol)


def test_resolve_exec_usage_errors(model: TinySR) -> None:
    with pytest.raises(UsageError, match="fp16 needs CUDA"):
        resolve_exec(parse_exec("fp16"), model, CPU)
    with pytest.raises(UsageError, match="--threads must be >= 1"):
        resolve_exec(parse_exec("eager"), model, CPU, threads=0)
    assert resolve_exec(parse_exec("fp16"), model, CUDA)[0].dtype_method == "weights"


# ---------------------------------------------------------------------------------------------------------
# torch.compile, for real


@pytest.mark.slow
def test_compile_matches_eager(model: TinySR, lr: Tensor) -> None:
    """torch.compile (inductor, C++ codegen with gcc) on CPU, against eager NCHW fp32.

    Tolerances used in this file, per mode, as max |mode - eager| on outputs of a [0, 1] model: channels_last and
    compile 1e-5 (the ``auto`` rule, AUTO_TOLERANCE of the data range: exact up to float summation order);
    bf16 (autocast or bf16 weights) strictly between 0 and 0.05 (close, and really in reduced precision).
    """
    with torch.inference_mode():
        reference = model(lr)
    torch._dynamo.reset()  # forget earlier compilations and counts, so the counter below counts this one
    torch._dynamo.utils.counters.clear()
    compiled = prepare(model, ExecMode(compile=True), CPU)
    first, second = compiled(lr), compiled(lr)  # the first call compiles; the second runs the cached graph
    assert torch._dynamo.utils.counters["stats"]["unique_graphs"] >= 1  # really compiled, not run eagerly
    for out in (first, second):
        assert out.shape == reference.shape and out.dtype == torch.float32
        assert (out - reference).abs().max().item() <= execution.AUTO_TOLERANCE
    assert compiled.module is model  # compile wraps, it does not convert: the caller's model is reused as is
