"""Tiled forwards: run a model on overlapping LR tiles and stitch the SR result (``--tile N``).

Tiling is an execution choice like the modes in :mod:`sr_bench.execution`: it bounds the forward's memory for
large images and can move quality numbers along the seams, so it is part of a run's key and record.

    >>> forward = tiled(model, scale=4, tile=256, overlap=32)   # or the model itself when tile is None
    >>> sr = forward(lr)
"""

from __future__ import annotations

from collections.abc import Callable

import torch

Forward = Callable[[torch.Tensor], torch.Tensor]


def _tile_spans(length: int, tile: int, overlap: int) -> list[tuple[int, int, int]]:
    """(tile start, owned start, owned end) per tile along one axis; owned ranges partition [0, length).

    Neighbouring tiles overlap by at least ``overlap`` and split the overlap at its middle, so every owned pixel
    is at least ``overlap // 2`` pixels from the inner edge of the tile that computes it.
    """
    if length <= tile:
        return [(0, 0, length)]
    starts = list(range(0, length - tile, tile - overlap)) + [length - tile]
    bounds = [0] + [(starts[i] + starts[i - 1] + tile) // 2 for i in range(1, len(starts))] + [length]
    return [(s, bounds[i], bounds[i + 1]) for i, s in enumerate(starts)]


def tiled_forward(model: Forward, x: torch.Tensor, scale: int, tile: int, overlap: int) -> torch.Tensor:
    """Run ``model`` on overlapping LR tiles of ``x`` (1, C, H, W) and stitch the SR result.

    Each output pixel comes from exactly one tile (no blending), so for a network whose receptive field reaches
    at most ``overlap // 2`` LR pixels the result equals the untiled output up to float rounding; wider
    receptive fields (attention, deep stacks) give small differences along the seams only.
    """
    _, _, h, w = x.shape
    out: torch.Tensor | None = None
    for y0, oy0, oy1 in _tile_spans(h, tile, overlap):
        for x0, ox0, ox1 in _tile_spans(w, tile, overlap):
            piece = model(x[:, :, y0 : y0 + min(tile, h), x0 : x0 + min(tile, w)])
            if out is None:
                out = piece.new_empty(piece.shape[0], piece.shape[1], h * scale, w * scale)
            out[:, :, oy0 * scale : oy1 * scale, ox0 * scale : ox1 * scale] = piece[
                :, :, (oy0 - y0) * scale : (oy1 - y0) * scale, (ox0 - x0) * scale : (ox1 - x0) * scale
            ]
    assert out is not None
    return out


def tiled(model: Forward, scale: int, tile: int | None, overlap: int) -> Forward:
    """``model`` itself when ``tile`` is None, else a forward that tiles every input."""
    if tile is None:
        return model
    return lambda x: tiled_forward(model, x, scale, tile, overlap)
