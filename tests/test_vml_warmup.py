"""The oneMKL vector-math warm-up (pytorch/pytorch#188792): every VML op, both dtypes, in domain, once, and before
the first forward of every command.

The race itself needs a storm of fresh processes on a loaded machine and cannot be triggered on demand, so these
tests check the mitigation's contract instead: what it calls, that it calls it once, and when.
"""

from __future__ import annotations

import itertools
import re
import textwrap
from pathlib import Path

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from sr_bench import vml_warmup
from sr_bench.challenge.build import BuiltTeam
from sr_bench.challenge.repo import ChallengeRepo, TeamEntry
from sr_bench.challenge.run import as_loaded
from sr_bench.cli.app import app
from sr_bench.images import write_png
from sr_bench.models import resolve_model

GRAIN_SIZE = 2048  # ATen's unary kernels (UnaryOpsKernel.cpp): fewer elements run inline on the calling thread
DOMAINS = {  # where each op is finite, written independently of the module's table
    **dict.fromkeys(("acos", "asin", "erfinv"), (-1.0, 1.0)),
    **dict.fromkeys(("log", "log10", "log2", "sqrt"), (0.0, float("inf"))),
    "tan": (-torch.pi / 2, torch.pi / 2),
}
VML_HEADER = Path(torch.__file__).parent / "include" / "ATen" / "cpu" / "vml.h"


@pytest.fixture
def fresh(monkeypatch: pytest.MonkeyPatch) -> None:
    """A process in which the warm-up has not run yet."""
    monkeypatch.setattr(vml_warmup, "_done", False)


@pytest.fixture
def calls(fresh: None, monkeypatch: pytest.MonkeyPatch) -> list[tuple[str, torch.Tensor, torch.Tensor]]:
    """(op, input, output) of every call of a listed op made through ``torch.<op>``."""
    seen: list[tuple[str, torch.Tensor, torch.Tensor]] = []
    for name in vml_warmup.VML_OPS:
        def spy(x: torch.Tensor, *args: object, _name: str = name, _op=getattr(torch, name), **kwargs: object):
            out = _op(x, *args, **kwargs)
            seen.append((_name, x, out))
            return out
        monkeypatch.setattr(torch, name, spy)
    return seen


def test_every_op_runs_for_both_dtypes_in_domain_on_one_thread(calls) -> None:
    vml_warmup.warm_up()
    pairs = [(name, x.dtype) for name, x, _ in calls]
    assert sorted(pairs, key=str) == sorted(itertools.product(vml_warmup.VML_OPS, (torch.float32, torch.float64)),
                                            key=str)
    for name, x, out in calls:
        low, high = DOMAINS.get(name, (-float("inf"), float("inf")))
        assert low < float(x.min()) and float(x.max()) < high, name
        assert x.is_contiguous() and 1 < x.numel() < GRAIN_SIZE, name  # contiguous: the VML path; small: inline
        assert out.dtype == x.dtype and bool(torch.isfinite(out).all()), name


def test_it_runs_once_per_process(calls) -> None:
    vml_warmup.warm_up()
    vml_warmup.warm_up()
    assert len(calls) == 2 * len(vml_warmup.VML_OPS)


@pytest.mark.skipif(not VML_HEADER.is_file(), reason="this torch build ships no ATen headers")
def test_the_list_is_every_mkl_op_of_the_installed_aten() -> None:
    source = re.sub(r"//.*", "", VML_HEADER.read_text())  # commented-out ops make no MKL call
    listed = set(re.findall(r"^\s*IMPLEMENT_VML_MKL\((\w+),", source, flags=re.MULTILINE))
    assert listed == set(vml_warmup.VML_OPS)


def test_models_are_warmed_up_when_loaded_or_built_by_a_challenge(fresh: None) -> None:
    resolve_model("rfdn")
    assert vml_warmup._done
    vml_warmup._done = False  # the fixture puts the real value back
    entry = TeamEntry(0, "tiny", 1.0, None, None, None, None, 1)
    built = BuiltTeam(entry, torch.nn.Conv2d(3, 48, 3, padding=1), "tiny", 1.0, None, None)
    as_loaded(ChallengeRepo(Path("repo"), None, (entry,)), built, torch.device("cpu"))
    assert vml_warmup._done


RECORDER = """
import torch
from torch import nn

from sr_bench import vml_warmup


class Recorder(nn.Module):
    '''x2; each forward appends whether the warm-up had run to a log file.'''

    def __init__(self, scale=2):
        super().__init__()
        self.conv = nn.Conv2d(3, 3 * scale * scale, 3, padding=1)
        self.up = nn.PixelShuffle(scale)

    def forward(self, x):
        with open({log!r}, "a") as log:
            log.write("warm " if vml_warmup._done else "cold ")
        return self.up(self.conv(x))
"""


@pytest.mark.parametrize("kind", ["eval", "profile", "upscale"])
def test_the_warm_up_runs_before_the_first_forward_of_each_command(fresh: None, tmp_path: Path, kind: str) -> None:
    """eval under ntire2023 (no warm-up forward), profile (shape check, auto probe, counting, timing) and upscale."""
    log = tmp_path / "forwards.log"
    net = tmp_path / "recorder.py"
    net.write_text(textwrap.dedent(RECORDER).format(log=str(log)))
    hr = tmp_path / "hr"
    write_png(hr / "img0.png", np.random.default_rng(0).integers(0, 256, (16, 16, 3), dtype=np.uint8))
    weights = tmp_path / "w.pth"
    torch.save({"conv.weight": torch.randn(12, 3, 3, 3), "conv.bias": torch.zeros(12)}, weights)
    common = ["--model", f"{net}:Recorder", "--scale", "2", "--weights", weights, "--threads", "1"]
    args = {
        "eval": ["eval", *common, "--hr", hr, "--protocol", "ntire2023", "--results", tmp_path / "res"],
        "profile": ["profile", *common, "--size", "16", "--warmup", "0", "--repeats", "2",
                    "--results", tmp_path / "res"],
        "upscale": ["upscale", hr / "img0.png", *common, "-o", tmp_path / "out"],
    }[kind]
    result = CliRunner().invoke(app, [str(a) for a in args])
    assert result.exit_code == 0, result.output
    forwards = log.read_text().split()
    assert forwards and set(forwards) == {"warm"}, forwards
