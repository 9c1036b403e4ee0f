"""Hostile user models and checkpoints (issue 10 items 8, 9, 14, 15, 16): every fault is the model's, in one line.

Each case writes a small model file under tmp_path and drives the real CLI; the error must name the model file,
the phase (import / construct / load / forward) and the exception, with exit 1 and nothing else on stderr.
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import save_file
from typer.testing import CliRunner

from sr_bench.cli.app import app
from sr_bench.images import write_png
from sr_bench.models import resolve_model
from sr_bench.zoo import get_spec

NET = """
import sys
import numpy as np
import torch
from torch import nn


class Base(nn.Module):
    def __init__(self, scale=2):
        super().__init__()
        self.conv = nn.Conv2d(3, 3 * scale * scale, 3, padding=1)
        self.up = nn.PixelShuffle(scale)

    def sr(self, x):
        return self.up(self.conv(x))


class Good(Base):
    def forward(self, x):
        return self.sr(x)


class Tuple(Base):
    def forward(self, x):
        return self.sr(x), x


class Dict(Base):
    def forward(self, x):
        return {"out": self.sr(x)}


class Numpy(Base):
    def forward(self, x):
        return self.sr(x).detach().cpu().numpy()


class Raises(Base):
    def forward(self, x):
        raise ValueError("forward exploded")


class ExitsInForward(Base):
    def forward(self, x):
        sys.exit(3)


class BadInit(Base):
    def __init__(self, scale=2):
        raise ValueError("constructor refused")
"""


def _runner_run(*args: object):
    return CliRunner().invoke(app, [str(a) for a in args])


def one_error(result) -> str:
    """Exit 1 and one ``Error:`` line ending stderr (notices such as the LR-generation note may precede it)."""
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert result.exit_code == 1, (result.exit_code, result.stderr)
    assert [line for line in lines if line.startswith("Error: ")] == lines[-1:], result.stderr
    assert "Traceback" not in result.output and "bug in srbench" not in result.stderr
    return lines[-1]


@pytest.fixture
def net(tmp_path: Path) -> Path:
    path = tmp_path / "hostile_net.py"
    path.write_text(textwrap.dedent(NET))
    return path


@pytest.fixture
def images(tmp_path: Path) -> Path:
    folder = tmp_path / "hr"
    rng = np.random.default_rng(0)
    for i in range(2):
        write_png(folder / f"img{i}.png", rng.integers(0, 256, (16, 16, 3), dtype=np.uint8))
    return folder


def _command(kind: str, model: str, images: Path, tmp_path: Path) -> list[object]:
    weights = tmp_path / "base.pth"
    torch.save({"conv.weight": torch.randn(12, 3, 3, 3, generator=torch.Generator().manual_seed(0)),
                "conv.bias": torch.zeros(12)}, weights)
    common = ["--model", model, "--scale", "2", "--weights", weights]
    if kind == "eval":
        return ["eval", *common, "--hr", images, "--results", tmp_path / "res"]
    if kind == "upscale":
        return ["upscale", images / "img0.png", *common, "-o", tmp_path / "out"]
    return ["profile", *common, "--size", "16", "--no-runtime", "--results", tmp_path / "res"]


@pytest.mark.parametrize("kind", ["eval", "upscale", "profile"])
@pytest.mark.parametrize(("cls", "returned"), [("Tuple", "a tuple"), ("Dict", "a dict"), ("Numpy", "a numpy.ndarray")])
def test_forward_returning_a_non_tensor_is_the_models_fault(net, images, tmp_path, kind, cls, returned):
    line = one_error(_runner_run(*_command(kind, f"{net}:{cls}", images, tmp_path)))
    assert f"{net}:{cls} failed in forward: it returned {returned}, not a torch.Tensor" in line


@pytest.mark.parametrize(("cls", "phase", "what"), [
    ("Raises", "forward", "ValueError: forward exploded"),
    ("ExitsInForward", "forward", "SystemExit: the code called sys.exit(3)"),
    ("BadInit", "construct", "ValueError: constructor refused"),
])
@pytest.mark.parametrize("kind", ["eval", "upscale"])
def test_model_failures_name_file_phase_and_exception(net, images, tmp_path, kind, cls, phase, what):
    line = one_error(_runner_run(*_command(kind, f"{net}:{cls}", images, tmp_path)))
    assert f"model {net}:{cls} failed in {phase}: {what} (an error in the model's code)" in line


def test_sys_exit_at_import_is_reported(tmp_path, images):
    path = tmp_path / "exits.py"
    path.write_text("import sys\nsys.exit(3)\n")
    line = one_error(_runner_run(*_command("eval", f"{path}:Net", images, tmp_path)))
    assert f"model {path} failed in import: SystemExit: the code called sys.exit(3)" in line


def test_sys_exit_while_counting_is_reported(net, images, tmp_path):
    line = one_error(_runner_run(*_command("profile", f"{net}:ExitsInForward", images, tmp_path)))
    assert "SystemExit: the code called sys.exit(3)" in line


def _rfdn_state(seed: int) -> dict[str, torch.Tensor]:
    torch.manual_seed(seed)
    return get_spec("rfdn").build(4).state_dict()


def test_documented_key_order_when_the_spec_key_is_absent(tmp_path):
    spec_key = get_spec("lgvan").checkpoint(4).key
    assert spec_key == "params_ema"
    torch.manual_seed(5)
    state = get_spec("lgvan").build(4).state_dict()
    path = tmp_path / "only_state_dict.pth"
    torch.save({"state_dict": state, "epoch": 3}, path)
    loaded = resolve_model("lgvan", weights=path)
    assert loaded.checkpoint.key == "state_dict"
    assert all(torch.equal(loaded.module.state_dict()[k], v) for k, v in state.items())
    assert f"{path} has no 'params_ema' entry; loaded 'state_dict' (the next key in the documented order)" in loaded.notices


def test_upper_case_safetensors_suffix(tmp_path):
    state = _rfdn_state(2)
    path = tmp_path / "RFDN.SAFETENSORS"
    save_file({k: v.contiguous() for k, v in state.items()}, str(path))
    loaded = resolve_model("rfdn", weights=path)
    assert all(torch.equal(loaded.module.state_dict()[k], v) for k, v in state.items())


def test_pickle_protocol_warning_never_reaches_stderr(tmp_path):
    path = tmp_path / "legacy4.pth"
    torch.save({"params": {"nothing.weight": torch.zeros(2)}}, path, pickle_protocol=4)
    env = {**os.environ, "PYTHONWARNINGS": "always::UserWarning"}  # torch warns once per process; make every warning visible
    result = subprocess.run([sys.executable, "-m", "sr_bench", "profile", "--model", "rfdn", "--weights", str(path),
                             "--no-runtime", "--size", "16"], capture_output=True, text=True, env=env, timeout=300)
    assert result.returncode == 1
    assert result.stderr.startswith(f"Error: refused to load {path}: the safe weights-only unpickler rejects it")
    assert len(result.stderr.strip().splitlines()) == 1, result.stderr
