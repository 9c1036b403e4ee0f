"""Tiny user models for tests/test_models.py (loaded as path/to/user_net.py:ClassName)."""

from torch import nn


class TinyNet(nn.Module):
    """A two-conv pixel-shuffle SR net; ``scale`` comes from --scale, ``channels`` from --model-args."""

    def __init__(self, scale: int = 4, channels: int = 16) -> None:
        super().__init__()
        self.scale = scale
        self.channels = channels
        self.head = nn.Conv2d(3, channels, 3, padding=1)
        self.tail = nn.Conv2d(channels, 3 * scale * scale, 3, padding=1)
        self.shuffle = nn.PixelShuffle(scale)

    def forward(self, x):
        return self.shuffle(self.tail(self.head(x).relu()))


class FactorNet(TinyNet):
    """Spells the scale argument ``upscale_factor``."""

    def __init__(self, upscale_factor: int = 2) -> None:
        super().__init__(scale=upscale_factor, channels=4)


class SameSizeNet(nn.Module):
    """Forgets to upscale: its output has the input's size."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 3, 3, padding=1)

    def forward(self, x):
        return self.conv(x)


class NotAModule:
    def __init__(self, scale: int = 4) -> None:
        self.scale = scale


def make_net(scale: int = 4) -> nn.Module:
    return TinyNet(scale)
