"""A small challenge repository in the NTIRE ESR layout, written for the tests (issue 11, item 4).

``make_repo(root)`` writes ``test_demo.py`` (a ``select_model`` with one branch per case), ``models/teamXX_*.py``,
``utils/`` and ``model_zoo/`` with seeded checkpoints, and returns the expected facts of every team, computed
here from the architectures (k·k·Cin·Cout·H·W per conv, bias ignored; activations = conv output elements).

Teams: 0 plain strict load (range 255); 1 ``strict=False``; 2 ``switch_deploy`` after loading; 3 ``.cuda()`` in
the constructor; 4 ``params`` chosen although ``params_ema`` exists; 5 its own ``load_state_dict`` (fuses two
branches); 6 an overridden ``.to()``; 7 input-dependent routing; 8 a missing checkpoint; 9 an import error.
"""

from __future__ import annotations

import textwrap
from dataclasses import dataclass
from pathlib import Path

import torch

SIZE = 256  # the official profiling input
HW = SIZE * SIZE
YEAR = 2025


def conv(cin: int, cout: int, k: int) -> tuple[int, int, int]:
    """(params, FLOPs at SIZE², output elements) of one conv with bias."""
    return cin * cout * k * k + cout, k * k * cin * cout * HW, cout * HW


@dataclass(frozen=True)
class Expected:
    team_id: int
    name: str
    file: str  # models/teamXX_*.py
    model_class: str
    checkpoint: str
    params: int
    flops: int  # both conventions (convs only)
    activations: int
    num_conv: int
    data_range: float = 1.0
    tile: int | None = None


def _sum(*convs: tuple[int, int, int]) -> tuple[int, int, int, int]:
    return sum(c[0] for c in convs), sum(c[1] for c in convs), sum(c[2] for c in convs), len(convs)


HEAD, BODY, BODY1, TAIL = conv(3, 8, 3), conv(8, 8, 3), conv(8, 8, 1), conv(8, 48, 3)

COMMON = '''
import torch
from torch import nn


class Tiny(nn.Module):
    """head 3->8 (3x3), tail 8->48 (3x3), pixel shuffle x4."""

    def __init__(self):
        super().__init__()
        self.head = nn.Conv2d(3, 8, 3, padding=1)
        self.tail = nn.Conv2d(8, 48, 3, padding=1)
        self.up = nn.PixelShuffle(4)

    def finish(self, y):
        return self.up(self.tail(y))
'''

TEAM_FILES = {
    "team00_Plain.py": COMMON + '''

class PlainSR(Tiny):
    def forward(self, x):
        return self.finish(self.head(x / 255.0)) * 255.0
''',
    "team01_Loose.py": COMMON + '''

class LooseSR(Tiny):
    def __init__(self):
        super().__init__()
        self.scale_hint = nn.Parameter(torch.ones(4))  # not in the checkpoint: the team loads strict=False

    def forward(self, x):
        return self.finish(self.head(x))
''',
    "team02_Rep.py": COMMON + '''

class RepSR(Tiny):
    def __init__(self):
        super().__init__()
        self.body3 = nn.Conv2d(8, 8, 3, padding=1)
        self.body1 = nn.Conv2d(8, 8, 1)
        self.deployed = False

    def switch_deploy(self):
        fused = nn.Conv2d(8, 8, 3, padding=1)
        w = self.body3.weight.data.clone()
        w[:, :, 1:2, 1:2] += self.body1.weight.data
        fused.weight.data, fused.bias.data = w, self.body3.bias.data + self.body1.bias.data
        self.body = fused
        del self.body3, self.body1
        self.deployed = True

    def forward(self, x):
        y = self.head(x)
        y = self.body(y) if self.deployed else self.body3(y) + self.body1(y)
        return self.finish(y)
''',
    "team03_Cuda.py": COMMON + '''

class CudaSR(Tiny):
    def __init__(self):
        super().__init__()
        self.register_buffer("shift", torch.zeros(1, 3, 1, 1).cuda())
        self.cuda()

    def forward(self, x):
        return self.finish(self.head(x - self.shift))
''',
    "team04_Key.py": COMMON + '''

class KeySR(Tiny):
    def forward(self, x):
        return self.finish(self.head(x))
''',
    "team05_OwnLoad.py": COMMON + '''

class OwnLoadSR(Tiny):
    def __init__(self):
        super().__init__()
        self.body = nn.Conv2d(8, 8, 3, padding=1)

    def load_state_dict(self, state_dict, strict=True):
        state = dict(state_dict)
        for part in ("weight", "bias"):
            state[f"body.{part}"] = state.pop(f"body_a.{part}") + state.pop(f"body_b.{part}")
        return super().load_state_dict(state, strict=strict)

    def forward(self, x):
        return self.finish(self.body(self.head(x)))
''',
    "team06_To.py": COMMON + '''

class ToSR(Tiny):
    def to(self, device):  # no dtype / memory_format: the way some submissions override it
        return super().to(device)

    def forward(self, x):
        return self.finish(self.head(x))
''',
    "team07_Route.py": COMMON + '''

class RouteSR(Tiny):
    def __init__(self):
        super().__init__()
        self.body = nn.Conv2d(8, 8, 3, padding=1)

    def forward(self, x):
        y = self.head(x)
        for _ in range(2 if bool(x[0, 0, 0, 0] > 0.5) else 1):  # routing on the input's values
            y = self.body(y)
        return self.finish(y)
''',
    "team08_Gone.py": COMMON + '''

class GoneSR(Tiny):
    def forward(self, x):
        return self.finish(self.head(x))
''',
    "team09_Mamba.py": '''
import mamba_ssm  # not installed here
from torch import nn


class MambaSR(nn.Module):
    pass
''',
}

BRANCHES = [
    (0, "team00_Plain", "PlainSR", "team00_plain.pth", "255.0",
     "model.load_state_dict(torch.load(model_path), strict=True)"),
    (1, "team01_Loose", "LooseSR", "team01_loose.pth", "1.0",
     "model.load_state_dict(torch.load(model_path), strict=False)"),
    (2, "team02_Rep", "RepSR", "team02_rep.pth", "1.0",
     "model.load_state_dict(torch.load(model_path)['params'], strict=True)\n        model.switch_deploy()"),
    (3, "team03_Cuda", "CudaSR", "team03_cuda.pth", "1.0",
     "model.load_state_dict(torch.load(model_path), strict=True)\n        model = model.cuda()"),
    (4, "team04_Key", "KeySR", "team04_key.pth", "1.0",
     "model.load_state_dict(torch.load(model_path)['params'], strict=True)"),
    (5, "team05_OwnLoad", "OwnLoadSR", "team05_ownload.pth", "1.0",
     "model.load_state_dict(torch.load(model_path), strict=True)"),
    (6, "team06_To", "ToSR", "team06_to.pth", "1.0",
     "model.load_state_dict(torch.load(model_path), strict=True)"),
    (7, "team07_Route", "RouteSR", "team07_route.pth", "1.0",
     "model.load_state_dict(torch.load(model_path), strict=True)"),
    (8, "team08_Gone", "GoneSR", "team08_gone.pth", "1.0",
     "model.load_state_dict(torch.load(model_path), strict=True)"),
    (9, "team09_Mamba", "MambaSR", "team09_mamba.pth", "1.0",
     "model.load_state_dict(torch.load(model_path), strict=True)"),
]


def _demo() -> str:
    lines = [
        "import os.path", "import logging", "import argparse", "import torch", "",
        "from utils import utils_logger", "from utils.model_summary import get_model_activation", "", "",
        "def select_model(args, device):",
        "    # Model ID is assigned according to the order of the submissions.",
        "    model_id = args.model_id",
    ]
    for i, (team_id, module, cls, ckpt, data_range, load) in enumerate(BRANCHES):
        keyword = "if" if i == 0 else "elif"
        lines += [
            f"    {keyword} model_id == {team_id}:",
            f"        from models.{module} import {cls}",
            f"        name, data_range = f\"{{model_id:02}}_{cls}\", {data_range}",
            f"        model_path = os.path.join('model_zoo', '{ckpt}')",
            f"        model = {cls}()",
            f"        {load}",
        ]
    lines += [
        "    else:",
        "        raise NotImplementedError(f\"Model {model_id} is not implemented.\")",
        "    model.eval()",
        "    tile = None",
        "    for k, v in model.named_parameters():",
        "        v.requires_grad = False",
        "    model = model.to(device)",
        "    return model, name, data_range, tile",
        "", "",
        "def main(args):",
        f"    utils_logger.logger_info(\"NTIRE{YEAR}-EfficientSR\", log_path=\"NTIRE{YEAR}-EfficientSR.log\")",
        f"    logger = logging.getLogger(\"NTIRE{YEAR}-EfficientSR\")",
        "    device = torch.device('cuda' if torch.cuda.is_available() else 'cpu')",
        "    model, model_name, data_range, tile = select_model(args, device)",
        "    logger.info(model_name)",
        "", "",
        "if __name__ == '__main__':",
        "    parser = argparse.ArgumentParser(\"NTIRE-EfficientSR\")",
        "    parser.add_argument('--model_id', default=0, type=int)",
        "    main(parser.parse_args())",
    ]
    return "\n".join(lines) + "\n"


def seeded(shapes: dict[str, tuple[int, ...]], seed: int) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return {k: torch.randn(shape, generator=g) * 0.1 for k, shape in shapes.items()}


def conv_shapes(prefix: str, cin: int, cout: int, k: int) -> dict[str, tuple[int, ...]]:
    return {f"{prefix}.weight": (cout, cin, k, k), f"{prefix}.bias": (cout,)}


TINY = {**conv_shapes("head", 3, 8, 3), **conv_shapes("tail", 8, 48, 3)}


def checkpoints() -> dict[str, object]:
    """What model_zoo/ holds; team 8's file is deliberately absent."""
    return {
        "team00_plain.pth": seeded(TINY, 0),
        "team01_loose.pth": {**seeded(TINY, 1), "teacher.weight": torch.zeros(2)},  # one unexpected key
        "team02_rep.pth": {"params": seeded({**TINY, **conv_shapes("body3", 8, 8, 3),
                                             **conv_shapes("body1", 8, 8, 1)}, 2)},
        "team03_cuda.pth": {**seeded(TINY, 3), "shift": torch.zeros(1, 3, 1, 1)},
        "team04_key.pth": {"params": seeded(TINY, 4), "params_ema": seeded(TINY, 40)},
        "team05_ownload.pth": seeded({**TINY, **conv_shapes("body_a", 8, 8, 3), **conv_shapes("body_b", 8, 8, 3)}, 5),
        "team06_to.pth": seeded(TINY, 6),
        "team07_route.pth": seeded({**TINY, **conv_shapes("body", 8, 8, 3)}, 7),
    }


def _expected() -> dict[int, Expected]:
    def make(team_id: int, module: str, cls: str, ckpt: str, convs: tuple, extra_params: int = 0,
             data_range: float = 1.0) -> Expected:
        params, flops, acts, n = _sum(*convs)
        return Expected(team_id, f"{team_id:02}_{cls}", f"models/{module}.py", cls, f"model_zoo/{ckpt}",
                        params + extra_params, flops, acts, n, data_range)

    return {
        0: make(0, "team00_Plain", "PlainSR", "team00_plain.pth", (HEAD, TAIL), data_range=255.0),
        1: make(1, "team01_Loose", "LooseSR", "team01_loose.pth", (HEAD, TAIL), extra_params=4),
        2: make(2, "team02_Rep", "RepSR", "team02_rep.pth", (HEAD, BODY, TAIL)),  # deployed: one fused 3x3
        3: make(3, "team03_Cuda", "CudaSR", "team03_cuda.pth", (HEAD, TAIL)),
        4: make(4, "team04_Key", "KeySR", "team04_key.pth", (HEAD, TAIL)),
        5: make(5, "team05_OwnLoad", "OwnLoadSR", "team05_ownload.pth", (HEAD, BODY, TAIL)),
        6: make(6, "team06_To", "ToSR", "team06_to.pth", (HEAD, TAIL)),
        7: make(7, "team07_Route", "RouteSR", "team07_route.pth", (HEAD, BODY, TAIL)),  # seed 0: one body pass
    }


EXPECTED = _expected()
ROUTE_SEED1 = _sum(HEAD, BODY, BODY, TAIL)  # seed 1's input takes the body twice (params counted once)
REP_TRAINING = _sum(HEAD, BODY, BODY1, TAIL)  # the graph before switch_deploy
FAILED = {8: "missing file", 9: "needs the package 'mamba_ssm'"}


def make_repo(root: Path) -> Path:
    (root / "models").mkdir(parents=True)
    (root / "models" / "__init__.py").write_text("")
    for name, text in TEAM_FILES.items():
        (root / "models" / name).write_text(textwrap.dedent(text))
    (root / "utils").mkdir()
    (root / "utils" / "__init__.py").write_text("")
    (root / "utils" / "utils_logger.py").write_text("def logger_info(name, log_path):\n    return None\n")
    (root / "utils" / "model_summary.py").write_text("def get_model_activation(model, input_dim):\n    return 0, 0\n")
    (root / "test_demo.py").write_text(_demo())
    (root / "model_zoo").mkdir()
    for name, obj in checkpoints().items():
        torch.save(obj, root / "model_zoo" / name)
    return root
