"""RFDN (residual feature distillation network), the NTIRE 2022/2023 Efficient SR baseline.

Written from ``specs/models.md``. Works in the [0, 255] range. Activations are modules (one LeakyReLU
reused per block, Sigmoid and ReLU in ESA) because the NTIRE 2022/2023 hook counter prices them;
max-pooling and the bilinear resize inside ESA are functional and count zero there.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn



def _conv(cin: int, cout: int, k: int, stride: int = 1, padding: int | None = None) -> nn.Conv2d:
    return nn.Conv2d(cin, cout, k, stride=stride, padding=(k - 1) // 2 if padding is None else padding)


class ESA(nn.Module):
    """Enhanced spatial attention: a strided, pooled branch gives a coarse mask that gates the features."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        f = channels // 4
        self.conv1 = _conv(channels, f, 1)
        self.conv_f = _conv(f, f, 1)
        self.conv_max = _conv(f, f, 3)
        self.conv2 = _conv(f, f, 3, stride=2, padding=0)
        self.conv3 = _conv(f, f, 3)
        self.conv3_ = _conv(f, f, 3)
        self.conv4 = _conv(f, channels, 1)
        self.sigmoid = nn.Sigmoid()
        self.relu = nn.ReLU(inplace=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        a = self.conv1(x)
        m = F.max_pool2d(self.conv2(a), kernel_size=7, stride=3)
        m = self.relu(self.conv_max(m))
        m = self.relu(self.conv3(m))
        m = self.conv3_(m)
        m = F.interpolate(m, size=x.shape[2:], mode="bilinear", align_corners=False)
        return x * self.sigmoid(self.conv4(m + self.conv_f(a)))


class RFDB(nn.Module):
    """Residual feature distillation block: three distill/refine steps, a fuse conv, then ESA."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        dc = channels // 2
        self.c1_d = _conv(channels, dc, 1)
        self.c1_r = _conv(channels, channels, 3)
        self.c2_d = _conv(channels, dc, 1)
        self.c2_r = _conv(channels, channels, 3)
        self.c3_d = _conv(channels, dc, 1)
        self.c3_r = _conv(channels, channels, 3)
        self.c4 = _conv(channels, dc, 3)
        self.act = nn.LeakyReLU(0.05, inplace=True)
        self.c5 = _conv(dc * 4, channels, 1)
        self.esa = ESA(channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        d1 = self.act(self.c1_d(x))
        r1 = self.act(self.c1_r(x) + x)
        d2 = self.act(self.c2_d(r1))
        r2 = self.act(self.c2_r(r1) + r1)
        d3 = self.act(self.c3_d(r2))
        r3 = self.act(self.c3_r(r2) + r2)
        r4 = self.act(self.c4(r3))
        return self.esa(self.c5(torch.cat([d1, d2, d3, r4], dim=1)))


class RFDN(nn.Module):
    """RFDN for RGB input in [0, 255]; no global input skip."""

    def __init__(self, in_ch: int = 3, channels: int = 50, blocks: int = 4, out_ch: int = 3, scale: int = 4) -> None:
        super().__init__()
        self.fea_conv = _conv(in_ch, channels, 3)
        for i in range(blocks):
            self.add_module(f"B{i + 1}", RFDB(channels))
        self.blocks = blocks
        self.c = nn.Sequential(_conv(channels * blocks, channels, 1), nn.LeakyReLU(0.05, inplace=True))
        self.LR_conv = _conv(channels, channels, 3)
        self.upsampler = nn.Sequential(_conv(channels, out_ch * scale * scale, 3), nn.PixelShuffle(scale))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        fea = self.fea_conv(x)
        outs = []
        h = fea
        for i in range(self.blocks):
            h = getattr(self, f"B{i + 1}")(h)
            outs.append(h)
        lr = self.LR_conv(self.c(torch.cat(outs, dim=1))) + fea
        return self.upsampler(lr)


def build(scale: int) -> RFDN:
    return RFDN(scale=scale)
