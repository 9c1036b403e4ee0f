"""DLGSANet (Li, Pan, Tang, Dong, ICCV 2023): the Tiny and Light lightweight SR variants, written from the spec.

Module names are the state_dict keys of the official BasicSR checkpoints, so they load with ``strict=True``.
Input and output are RGB in [0, 1]; the output is not clamped.

The dynamic depthwise convolution (upstream: a cupy CUDA kernel) is one custom operator, so that a
``torch.jit.trace`` (fvcore) shows it as a single node that a FLOP counter can price, and the convolutions
that predict its kernels stay in the graph because their output feeds a real node::

    torch.ops.srbench.idynamic_dwconv(x, kernels, groups, impl="shift") -> Tensor
        x:       (B, C, H, W)
        kernels: (B, groups * K * K, H, W), viewed as (B, groups, K, K, H, W); K odd (7 here)
        groups:  channel groups; group g = channels [g * C // groups, (g + 1) * C // groups) shares one kernel
        impl:    "shift" (default: K * K shifted multiply-adds, no extra memory, float16/bfloat16 summed in
                 float32) or "unfold" (im2col, one product and a sum: K * K times the activation memory)
        out[b, c, y, x] = sum_{i, j < K} kernels[b, c // (C // groups), i, j, y, x] * x[b, c, y + i - K // 2,
        x + j - K // 2], with zeros outside the image; no bias. Cost: C * K * K multiply-adds per pixel.

It works on CPU and CUDA in float32, float16, bfloat16 and float64, has a fake (meta) kernel for
``torch.compile`` and a backward, so the model also trains.

The layer norms are written with means and elementwise ops (not ``F.layer_norm``) and the attention uses ``@``,
as upstream does, so that fvcore's default op table counts the same operations as on the upstream code. In eval
mode the TLC window layout is computed from the input shape in Python, so ``torch.jit.trace`` warns
(TracerWarning) that the trace is specialised to that shape, which it is anyway.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from sr_bench.errors import ModelSpecError

RGB_MEAN = (0.4488, 0.4371, 0.4040)
TLC_KERNELS = {2: 96, 3: 72, 4: 48}  # TLC window per scale, from the official option files
DWCONV_IMPLS = ("shift", "unfold")


# ---------------------------------------------------------------------------------------------------------------
# The dynamic depthwise convolution operator


def _kernel_size(x: Tensor, kernels: Tensor, groups: int) -> int:
    """The odd kernel size K implied by the shapes; a mismatch is a programming error, not a user one."""
    b, c, h, w = x.shape
    k = math.isqrt(kernels.shape[1] // groups)
    expected = (b, groups * k * k, h, w)
    if c % groups or k % 2 == 0 or tuple(kernels.shape) != expected:
        raise ValueError(f"idynamic_dwconv: x {tuple(x.shape)} and kernels {tuple(kernels.shape)} do not fit "
                         f"groups={groups} and an odd kernel size")
    return k


def _accumulator_dtype(dtype: torch.dtype) -> torch.dtype:
    """Sum 49 taps of float16/bfloat16 in float32, as their matmuls and reductions do."""
    return torch.float32 if dtype in (torch.float16, torch.bfloat16) else dtype


def _dwconv_shift(x: Tensor, kernels: Tensor, groups: int, k: int) -> Tensor:
    """Accumulate the K*K shifted products in place: no buffer beyond the padded input and the output."""
    b, c, h, w = x.shape
    p = k // 2
    xp = F.pad(x, (p, p, p, p)).view(b, groups, c // groups, h + 2 * p, w + 2 * p)
    kern = kernels.view(b, groups, k * k, 1, h, w)
    out = x.new_zeros(b, groups, c // groups, h, w, dtype=_accumulator_dtype(x.dtype))
    for t in range(k * k):  # row-major taps, the order of the upstream CUDA loop
        i, j = divmod(t, k)
        out.addcmul_(xp[..., i : i + h, j : j + w], kern[:, :, t])
    return out.view(b, c, h, w).to(x.dtype)


def _dwconv_unfold(x: Tensor, kernels: Tensor, groups: int, k: int) -> Tensor:
    """im2col then one broadcast product: fewer kernel launches, K*K times the activation memory."""
    b, c, h, w = x.shape
    cols = F.unfold(x, k, padding=k // 2).view(b, groups, c // groups, k * k, h, w)
    return (cols * kernels.view(b, groups, 1, k * k, h, w)).sum(3).view(b, c, h, w)


def _check_impl(impl: str) -> str:
    if impl not in DWCONV_IMPLS:
        raise ModelSpecError(f"unknown dynamic-conv implementation {impl!r}: use one of {', '.join(DWCONV_IMPLS)}")
    return impl


@torch.library.custom_op("srbench::idynamic_dwconv", mutates_args=())
def idynamic_dwconv(x: Tensor, kernels: Tensor, groups: int, impl: str = "shift") -> Tensor:
    """Per-pixel, per-channel-group depthwise convolution (see the module docstring for the formula)."""
    k = _kernel_size(x, kernels, groups)
    fn = _dwconv_unfold if _check_impl(impl) == "unfold" else _dwconv_shift
    return fn(x.contiguous(), kernels.contiguous(), groups, k)


@idynamic_dwconv.register_fake
def _idynamic_dwconv_fake(x: Tensor, kernels: Tensor, groups: int, impl: str = "shift") -> Tensor:
    _kernel_size(x, kernels, groups)
    return x.new_empty(x.shape)


def _dwconv_grads(grad: Tensor, x: Tensor, kernels: Tensor, groups: int) -> tuple[Tensor, Tensor]:
    """Gradients w.r.t. input and kernels, by the same shift loop as the forward."""
    b, c, h, w = x.shape
    k = _kernel_size(x, kernels, groups)
    p = k // 2
    xp = F.pad(x, (p, p, p, p)).view(b, groups, c // groups, h + 2 * p, w + 2 * p)
    kern = kernels.reshape(b, groups, k * k, 1, h, w)
    g = grad.reshape(b, groups, c // groups, h, w)
    grad_xp = torch.zeros_like(xp)
    grad_k = kernels.new_empty(b, groups, k * k, h, w)
    for t in range(k * k):
        i, j = divmod(t, k)
        grad_xp[..., i : i + h, j : j + w].addcmul_(g, kern[:, :, t])
        grad_k[:, :, t] = (g * xp[..., i : i + h, j : j + w]).sum(2)
    grad_x = grad_xp[..., p : p + h, p : p + w].reshape(b, c, h, w)
    return grad_x, grad_k.view(b, groups * k * k, h, w)


def _setup_context(ctx: torch.autograd.function.FunctionCtx, inputs: tuple, output: Tensor) -> None:
    x, kernels, groups, _ = inputs
    ctx.save_for_backward(x, kernels)
    ctx.groups = groups


def _backward(ctx: torch.autograd.function.FunctionCtx, grad: Tensor) -> tuple[Tensor | None, ...]:
    x, kernels = ctx.saved_tensors
    grad_x, grad_k = _dwconv_grads(grad, x, kernels, ctx.groups)
    return grad_x, grad_k, None, None


idynamic_dwconv.register_autograd(_backward, setup_context=_setup_context)


# ---------------------------------------------------------------------------------------------------------------
# Test-time local converter (TLC) windows


def _window_origins(size: int, window: int) -> list[int]:
    """Origins along one axis: evenly stepped, the last one moved back so the window ends at the border."""
    count = (size - 1) // window + 1
    step = window if count == 1 else math.ceil((size - window) / (count - 1) - 1e-8)
    origins, i = [], 0
    while i + window < size:
        origins.append(i)
        i += step
    origins.append(size - window)
    return origins


def tlc_windows(height: int, width: int, tlc_kernel: int) -> tuple[int, int, list[tuple[int, int]]]:
    """(window_h, window_w, [(top, left), ...] row-major) for a feature map of ``height`` x ``width``."""
    k1, k2 = min(height, tlc_kernel), min(width, tlc_kernel)
    tops, lefts = _window_origins(height, k1), _window_origins(width, k2)
    return k1, k2, [(i, j) for i in tops for j in lefts]


def _tlc_pixel_index(height: int, width: int, tlc_kernel: int) -> tuple[int, int, list[int], list[int], np.ndarray]:
    """(window_h, window_w, tops, lefts, index) for TLC on ``height`` x ``width``.

    ``index`` lists the flat position (y * width + x) of every window pixel, window after window in
    :func:`tlc_windows` order and row-major inside each window. It is built with numpy from the shape alone,
    so a ``torch.jit.trace`` records it as one constant, not as ops.
    """
    k1, k2 = min(height, tlc_kernel), min(width, tlc_kernel)
    tops, lefts = _window_origins(height, k1), _window_origins(width, k2)
    ys = (np.asarray(tops, dtype=np.int64)[:, None] + np.arange(k1, dtype=np.int64)) * width  # (rows, k1)
    xs = np.asarray(lefts, dtype=np.int64)[:, None] + np.arange(k2, dtype=np.int64)  # (columns, k2)
    return k1, k2, tops, lefts, (ys[:, None, :, None] + xs[None, :, None, :]).reshape(-1)


def _window_runs(t: Tensor, dim: int, origins: list[int], window: int) -> list[tuple[slice, Tensor]]:
    """The windows of ``t`` along ``dim`` as (window positions, view) pairs: the view has the window index at
    ``dim`` and the offset inside the window appended as its last dim.

    The origins are evenly stepped except the last (:func:`_window_origins`), so there are at most two views:
    one ``unfold`` for the evenly stepped run, one slice for the last window.
    """
    runs = []
    regular = len(origins) - 1
    if regular:
        step = origins[1] - origins[0] if regular > 1 else window
        span = (regular - 1) * step + window
        runs.append((slice(0, regular), t.narrow(dim, 0, span).unfold(dim, window, step)))
    last = t.narrow(dim, origins[-1], window).unsqueeze(dim).transpose(dim + 1, -1)
    runs.append((slice(regular, regular + 1), last))
    return runs


def _gather_windows(x: Tensor, k1: int, k2: int, tops: list[int], lefts: list[int]) -> Tensor:
    """(B, C, H, W) -> (B * n, C, k1, k2): every TLC window, image-major then :func:`tlc_windows` order.

    At most 2 x 2 strided views of ``x`` (see :func:`_window_runs`), each copied once into place: a fixed
    number of ops whatever the window count, and plain strided copies (faster than an index gather).
    """
    b, c = int(x.shape[0]), int(x.shape[1])  # plain ints while tracing too (no traced size arithmetic)
    out = x.new_empty(b, len(tops), len(lefts), c, k1, k2)
    dst = out.permute(0, 3, 1, 2, 4, 5)  # (B, C, rows, columns, k1, k2) view of ``out``
    for rows, band in _window_runs(x, 2, tops, k1):  # band: (B, C, rows', W, k1)
        for cols, block in _window_runs(band, 3, lefts, k2):  # block: (B, C, rows', columns', k1, k2)
            dst[:, :, rows, cols].copy_(block)
    return out.view(b * len(tops) * len(lefts), c, k1, k2)


# ---------------------------------------------------------------------------------------------------------------
# Building blocks


class _ChannelLayerNorm(nn.Module):
    """Layer norm over the channels of an NCHW tensor (biased variance, eps 1e-5), without a layout copy."""

    def __init__(self, dim: int) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.ones(dim))
        self.bias = nn.Parameter(torch.zeros(dim))

    def forward(self, x: Tensor) -> Tensor:
        centred = x - x.mean(1, keepdim=True)
        var = (centred * centred).mean(1, keepdim=True)  # two-pass biased variance; faster than a strided var
        return centred / torch.sqrt(var + 1e-5) * self.weight.view(-1, 1, 1) + self.bias.view(-1, 1, 1)


class LayerNorm2d(nn.Module):
    """Wrapper that exists so the parameters are named ``norm*.body.weight`` / ``.bias`` as upstream."""

    def __init__(self, dim: int) -> None:
        super().__init__()
        self.body = _ChannelLayerNorm(dim)

    def forward(self, x: Tensor) -> Tensor:
        return self.body(x)


class GDFN(nn.Module):
    """Gated depthwise feed-forward (Restormer): 1x1 expand, dw 3x3, gelu(a) * b, 1x1 project; no biases."""

    def __init__(self, dim: int, expansion: float = 2.0) -> None:
        super().__init__()
        hidden = int(dim * expansion)
        self.project_in = nn.Conv2d(dim, hidden * 2, 1, bias=False)
        self.dwconv = nn.Conv2d(hidden * 2, hidden * 2, 3, padding=1, groups=hidden * 2, bias=False)
        self.project_out = nn.Conv2d(hidden, dim, 1, bias=False)

    def forward(self, x: Tensor) -> Tensor:
        a, b = self.dwconv(self.project_in(x)).chunk(2, dim=1)
        return self.project_out(F.gelu(a) * b)


class DynamicDWConv(nn.Module):
    """Predicts a K x K kernel per pixel and channel group, then applies it with ``idynamic_dwconv``."""

    def __init__(self, dim: int, kernel_size: int = 7, group_channels: int = 6, reduction: int = 4,
                 impl: str = "shift") -> None:
        super().__init__()
        self.kernel_size = kernel_size
        self.groups = dim // group_channels
        self.impl = _check_impl(impl)
        hidden = dim // reduction
        self.conv1 = nn.Sequential(
            nn.Conv2d(dim, hidden, 1),
            nn.Conv2d(hidden, hidden, kernel_size, padding=kernel_size // 2, groups=hidden),
        )
        self.conv2 = nn.Sequential(nn.Conv2d(hidden, kernel_size * kernel_size * self.groups, 1))

    def forward(self, x: Tensor) -> Tensor:
        return idynamic_dwconv(x, self.conv2(self.conv1(x)), self.groups, self.impl)


class IDynamicDWConvBlock(nn.Module):
    """1x1 conv, dynamic depthwise conv, 1x1 conv (the local mixing of a local block)."""

    def __init__(self, dim: int, window_size: int = 7, heads: int = 6, impl: str = "shift") -> None:
        super().__init__()
        self.conv0 = nn.Conv2d(dim, dim, 1, bias=False)
        self.conv = DynamicDWConv(dim, window_size, group_channels=heads, impl=impl)
        self.conv1 = nn.Conv2d(dim, dim, 1, bias=False)

    def forward(self, x: Tensor) -> Tensor:
        return self.conv1(self.conv(self.conv0(x)))


class SparseAttention(nn.Module):
    """Channel ("transposed") attention with ReLU instead of softmax, optionally on TLC windows at test time.

    ``act`` is an ``nn.ReLU`` module, as upstream, so the NTIRE hook counter sees it.
    """

    def __init__(self, dim: int, heads: int = 6, tlc: bool = True, tlc_kernel: int = 48) -> None:
        super().__init__()
        self.heads = heads
        self.tlc = tlc
        self.tlc_kernel = tlc_kernel
        self.temperature = nn.Parameter(torch.ones(heads, 1, 1))
        self.qkv = nn.Conv2d(dim, dim * 3, 1, bias=False)
        self.qkv_dwconv = nn.Conv2d(dim * 3, dim * 3, 3, padding=1, groups=dim * 3, bias=False)
        self.project_out = nn.Conv2d(dim, dim, 1, bias=False)
        self.act = nn.ReLU()

    def _attend(self, qkv: Tensor) -> Tensor:
        """Attention of each (window) image over all its pixels: (n, 3C, h, w) -> (n, C, h, w)."""
        n, c3, h, w = qkv.shape
        q, k, v = qkv.reshape(n, 3, self.heads, c3 // (3 * self.heads), h * w).unbind(1)
        q = F.normalize(q, dim=-1)
        k = F.normalize(k, dim=-1)
        attn = self.act((q @ k.transpose(-2, -1)) * self.temperature)
        return (attn @ v).reshape(n, c3 // 3, h, w)

    def _attend_tlc(self, qkv: Tensor) -> Tensor:
        """All windows in one batched call; overlaps averaged by coverage count, in the working dtype.

        A fixed number of tensor ops whatever the window count (so a trace stays small): at most four strided
        copies gather the windows, then the batched attention, one ``index_add_`` of the window outputs back
        onto the image by a flat pixel index, the same for a tensor of ones (the coverage count), one division.
        """
        b, c3, h, w = (int(d) for d in qkv.shape)  # plain ints while tracing too: the layout is per shape
        k1, k2, tops, lefts, flat = _tlc_pixel_index(h, w, self.tlc_kernel)
        n = len(tops) * len(lefts)
        if n == 1:
            return self._attend(qkv)
        c, pixels = c3 // 3, k1 * k2
        outs = self._attend(_gather_windows(qkv, k1, k2, tops, lefts))  # (b * n, C, k1, k2)
        outs = outs.view(b, n, c, pixels).transpose(1, 2).reshape(b, c, n * pixels)
        index = torch.from_numpy(flat).to(qkv.device)
        total = qkv.new_zeros(b, c, h * w).index_add_(2, index, outs)
        count = qkv.new_zeros(h * w).index_add_(0, index, qkv.new_full((n * pixels,), 1.0))
        return total.view(b, c, h, w) / count.view(h, w)

    def forward(self, x: Tensor) -> Tensor:
        qkv = self.qkv_dwconv(self.qkv(x))
        use_tlc = self.tlc and not self.training
        return self.project_out(self._attend_tlc(qkv) if use_tlc else self._attend(qkv))


class LocalBlock(nn.Module):
    """Dynamic local mixing + GDFN, pre-norm residuals (upstream ``IDynamicLayerBlock``)."""

    def __init__(self, dim: int, window_size: int, heads: int, expansion: float, impl: str) -> None:
        super().__init__()
        self.norm1 = LayerNorm2d(dim)
        self.IDynamicDWConv = IDynamicDWConvBlock(dim, window_size, heads, impl=impl)
        self.norm2 = LayerNorm2d(dim)
        self.IDynamic_ffn = GDFN(dim, expansion)

    def forward(self, x: Tensor) -> Tensor:
        x = self.IDynamicDWConv(self.norm1(x)) + x
        return self.IDynamic_ffn(self.norm2(x)) + x


class GlobalBlock(nn.Module):
    """Sparse global attention + GDFN, pre-norm residuals (upstream ``SparseAttentionLayerBlock``)."""

    def __init__(self, dim: int, heads: int, expansion: float, tlc: bool, tlc_kernel: int) -> None:
        super().__init__()
        self.norm3 = LayerNorm2d(dim)
        self.restormer_attn = SparseAttention(dim, heads, tlc=tlc, tlc_kernel=tlc_kernel)
        self.norm4 = LayerNorm2d(dim)
        self.restormer_ffn = GDFN(dim, expansion)

    def forward(self, x: Tensor) -> Tensor:
        x = self.restormer_attn(self.norm3(x)) + x
        return self.restormer_ffn(self.norm4(x)) + x


class ResidualGroup(nn.Module):
    """``blocks`` pairs of [local, global] blocks and a 3x3 conv, with a group skip (upstream ``BuildBlock``)."""

    def __init__(self, dim: int, blocks: int, window_size: int, heads: int, expansion: float, tlc: bool,
                 tlc_kernel: int, impl: str) -> None:
        super().__init__()
        body: list[nn.Module] = []
        for _ in range(blocks):
            body.append(LocalBlock(dim, window_size, heads, expansion, impl))
            body.append(GlobalBlock(dim, heads, expansion, tlc, tlc_kernel))
        body.append(nn.Conv2d(dim, dim, 3, padding=1))
        self.body = nn.Sequential(*body)

    def forward(self, x: Tensor) -> Tensor:
        return self.body(x) + x


class _PatchEmbed(nn.Module):
    """3x3 conv without bias; a module of its own so the key reads ``overlap_embed.0.proj.weight``."""

    def __init__(self, in_ch: int, dim: int) -> None:
        super().__init__()
        self.proj = nn.Conv2d(in_ch, dim, 3, padding=1, bias=False)

    def forward(self, x: Tensor) -> Tensor:
        return self.proj(x)


def _rgb_mean(device: torch.device) -> Tensor:
    """Upstream's mean: built in float32 and cast to the input dtype in forward (the fixtures depend on it)."""
    return torch.tensor(RGB_MEAN, dtype=torch.float32, device=device).view(1, 3, 1, 1)


class DLGSANet(nn.Module):
    """DLGSANet with the one-step pixel-shuffle upsampler of the lightweight variants.

    Args:
        scale: upscaling factor (2, 3 or 4 have official TLC windows; others need ``tlc_kernel``).
        groups: residual groups (Tiny 3, Light 4).
        blocks: [local, global] block pairs per group.
        dim: embedding channels.
        tlc: use TLC windows for the global attention in eval mode (the official setting).
        tlc_kernel: TLC window size; default from the scale (96 / 72 / 48 for x2 / x3 / x4).
        dwconv_impl: "shift" (low memory, default) or "unfold" (K*K times the memory) for the dynamic conv.
    """

    def __init__(self, scale: int = 4, groups: int = 3, blocks: int = 3, dim: int = 48, tlc: bool = True,
                 tlc_kernel: int | None = None, dwconv_impl: str = "shift") -> None:
        super().__init__()
        if tlc_kernel is None:
            if scale not in TLC_KERNELS:
                raise ModelSpecError(f"DLGSANet x{scale} has no official TLC window: pass tlc_kernel")
            tlc_kernel = TLC_KERNELS[scale]
        _check_impl(dwconv_impl)
        heads, window_size, expansion = 6, 7, 2.0
        self.register_buffer("rgb_mean", _rgb_mean(torch.device("cpu")), persistent=False)
        self.overlap_embed = nn.Sequential(_PatchEmbed(3, dim))
        self.deep_feature_extraction = nn.Sequential(
            *(ResidualGroup(dim, blocks, window_size, heads, expansion, tlc, tlc_kernel, dwconv_impl)
              for _ in range(groups)),
            nn.Conv2d(dim, dim, 3, padding=1),
        )
        self.upsample = nn.Sequential(nn.Conv2d(dim, 3 * scale * scale, 3, padding=1), nn.PixelShuffle(scale))

    def _apply(self, fn: Callable[[Tensor], Tensor], recurse: bool = True) -> DLGSANet:
        """Moves follow the model, but the mean stays the float32 constant: a ``.half()`` then ``.float()``
        round trip must not round it."""
        super()._apply(fn, recurse)
        self.rgb_mean = _rgb_mean(self.rgb_mean.device)
        return self

    def forward(self, x: Tensor) -> Tensor:
        mean = self.rgb_mean.to(x.dtype)
        feat = self.overlap_embed(x - mean)
        feat = self.deep_feature_extraction(feat) + feat
        return self.upsample(feat) + mean


def set_tlc(model: nn.Module, enabled: bool) -> int:
    """Switch TLC on or off in every DLGSANet attention of ``model``; returns how many were set."""
    attns = [m for m in model.modules() if isinstance(m, SparseAttention)]
    if not attns:
        raise ModelSpecError("set_tlc: the model has no DLGSANet attention; use it on a DLGSANet model")
    for m in attns:
        m.tlc = enabled
    return len(attns)


def set_dwconv_impl(model: nn.Module, impl: str) -> int:
    """Choose "shift" or "unfold" for every dynamic conv of ``model``; returns how many were set."""
    _check_impl(impl)
    convs = [m for m in model.modules() if isinstance(m, DynamicDWConv)]
    if not convs:
        raise ModelSpecError("set_dwconv_impl: the model has no dynamic conv; use it on a DLGSANet model")
    for m in convs:
        m.impl = impl
    return len(convs)


def dlgsanet_tiny(scale: int, **kwargs: object) -> DLGSANet:
    """DLGSANet-Tiny: 3 groups of 3 block pairs, 48 channels."""
    return DLGSANet(scale=scale, groups=3, **kwargs)


def dlgsanet_light(scale: int, **kwargs: object) -> DLGSANet:
    """DLGSANet-Light: 4 groups of 3 block pairs, 48 channels."""
    return DLGSANet(scale=scale, groups=4, **kwargs)
