"""LGVAN, team 18's NTIRE 2023 Efficient SR entry (local-global convolutional attention).

Written from ``specs/models.md``; module names are the official checkpoint's state-dict keys (including
the misspelt ``upsapling``). Which activations are modules matters for the NTIRE 2022/2023 FLOP counter:
LeakyReLU after upsampling is a module, GELU is functional (the hook counter ignores both kinds of GELU).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn



class LayerNorm2d(nn.Module):
    """Layer norm over the channel axis of an NCHW tensor (biased variance, eps 1e-6)."""

    def __init__(self, channels: int, eps: float = 1e-6) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.ones(channels))
        self.bias = nn.Parameter(torch.zeros(channels))
        self.eps = eps

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        mean = x.mean(1, keepdim=True)
        var = (x - mean).pow(2).mean(1, keepdim=True)
        x = (x - mean) / torch.sqrt(var + self.eps)
        return self.weight[:, None, None] * x + self.bias[:, None, None]


def _dw(channels: int, kernel: int | tuple[int, int], padding: int | tuple[int, int], dilation: int = 1) -> nn.Conv2d:
    return nn.Conv2d(channels, channels, kernel, padding=padding, dilation=dilation, groups=channels)


class LocalGlobalGating(nn.Module):
    """The LGCA unit: four parallel depthwise branches summed into a 1x1 gate that multiplies the input.

    The strip convolutions pad the axis their kernel does *not* cover (e.g. kernel (1, 5), padding (2, 0)),
    so the intermediate tensor is (H+4, W-4); the official checkpoint was trained that way.
    """

    def __init__(self, dim: int) -> None:
        super().__init__()
        self.head = nn.Conv2d(dim, dim, 1)
        self.conv0 = _dw(dim, 5, 2)
        self.conv_spatial = _dw(dim, 5, 6, dilation=3)
        self.conv_v = _dw(dim, (1, 5), (2, 0))
        self.conv_h = _dw(dim, (5, 1), (0, 2))
        self.conv_v_2 = _dw(dim, (1, 3), (1, 0))
        self.conv_h_2 = _dw(dim, (3, 1), (0, 1))
        self.conv1 = nn.Conv2d(dim, dim, 1)

    def forward(self, t: torch.Tensor) -> torch.Tensor:
        h = self.head(t)
        wide = self.conv_spatial(self.conv0(h))
        strip5 = self.conv_h(self.conv_v(h))
        strip3 = self.conv_h_2(self.conv_v_2(h))
        return t * self.conv1(wide + strip5 + h + strip3)


class Attention(nn.Module):
    """Norm, 1x1, GELU, LGCA gate, 1x1, then a learned per-channel scale on the residual."""

    def __init__(self, dim: int) -> None:
        super().__init__()
        self.norm = LayerNorm2d(dim)
        self.scale = nn.Parameter(torch.zeros(1, dim, 1, 1))
        self.proj_1 = nn.Conv2d(dim, dim, 1)
        self.spatial_gating_unit = LocalGlobalGating(dim)
        self.proj_2 = nn.Conv2d(dim, dim, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = F.gelu(self.proj_1(self.norm(x)))
        y = self.proj_2(self.spatial_gating_unit(y))
        return y * self.scale + x


class LocallyEnhancedFFN(nn.Module):
    """LEFN: 1x1 expand, depthwise 3x3 (no bias) added back, GELU, 1x1 project, scaled residual."""

    def __init__(self, dim: int, hidden: int) -> None:
        super().__init__()
        self.norm = LayerNorm2d(dim)
        self.scale = nn.Parameter(torch.zeros(1, dim, 1, 1))
        self.fc1 = nn.Conv2d(dim, hidden, 1)
        self.dwconv = nn.Conv2d(hidden, hidden, 3, padding=1, groups=hidden, bias=False)
        self.fc2 = nn.Conv2d(hidden, dim, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        f = self.fc1(self.norm(x))
        y = F.gelu(self.dwconv(f) + f)
        return self.fc2(y) * self.scale + x


class Block(nn.Module):
    def __init__(self, dim: int) -> None:
        super().__init__()
        self.atten = Attention(dim)
        self.MLP = LocallyEnhancedFFN(dim, dim * 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.MLP(self.atten(x))


class LGVAN(nn.Module):
    """LGVAN for RGB input in [0, 1]; output = learned residual + bilinear upsampling of the input."""

    def __init__(self, in_ch: int = 3, out_ch: int = 3, dim: int = 32, blocks: int = 9, scale: int = 4) -> None:
        super().__init__()
        self.scale = scale
        self.conv_first = nn.Conv2d(in_ch, dim, 3, padding=1)
        self.layers = nn.Sequential(*[Block(dim) for _ in range(blocks)])
        self.conv_after_body = nn.Conv2d(dim, dim, 3, padding=1, groups=2)
        if scale == 4:
            self.upsapling = nn.Sequential(
                nn.Conv2d(dim, dim * 4, 1), nn.PixelShuffle(2), nn.Conv2d(dim, dim * 4, 1), nn.PixelShuffle(2)
            )
        else:
            self.upsapling = nn.Sequential(nn.Conv2d(dim, dim * scale * scale, 1), nn.PixelShuffle(scale))
        self.act = nn.LeakyReLU(0.2)
        self.conv_last = nn.Conv2d(dim, out_ch, 3, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        shallow = self.conv_first(x)
        res = self.conv_after_body(self.layers(shallow)) + shallow
        out = self.conv_last(self.act(self.upsapling(res)))
        return out + F.interpolate(x, scale_factor=self.scale, mode="bilinear", align_corners=False)


def build(scale: int) -> LGVAN:
    return LGVAN(scale=scale)
