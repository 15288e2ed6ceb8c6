"""Host-side helpers shared by the aggregation and tiling launchers.

Tile sizes, the device guard, the deterministic (fixed-point) accumulation
scale and the conversion of channels-first videos into the padded
channels-last tables that the gather and scatter kernels read and write.
"""

from __future__ import annotations

import contextlib
import os

import torch
import triton
import triton.language as tl
from torch import Tensor

from .geometry import reflect

# Largest channel block of a tile: more channels are split over programs (or looped over).
MAX_CHANNEL_BLOCK = 64
# Tiles: at most TILE_ELEMENTS elements of [rows, channels] per program and NUM_WARPS warps.
TILE_ELEMENTS = 512
NUM_WARPS = 4


def cdiv(a: int, b: int) -> int:
    """``ceil(a / b)`` of Python ints (``triton.cdiv`` is much slower to call from the host)."""
    return -(-a // b)


def next_power_of_2(n: int) -> int:
    """The smallest power of two ``>= n`` (1 for ``n <= 1``), for host-side sizes."""
    return 1 << max(n - 1, 0).bit_length()


# Triton picks its interpreter when a kernel is defined, which is when this package's kernel
# modules are imported, so the switch is read once (it was read a dozen times per call).
_INTERPRETING = os.environ.get("TRITON_INTERPRET", "0") == "1"


def interpreting() -> bool:
    """Whether Triton runs kernels through its CPU interpreter (``TRITON_INTERPRET=1`` when
    the backend was imported)."""
    return _INTERPRETING


def register_cap(cap: int | None) -> dict:
    """Launch options compiling a kernel for at most ``cap`` registers per thread (none for
    ``None`` or under the interpreter)."""
    return {} if cap is None or interpreting() else {"maxnreg": cap}


def device_guard(tensor: Tensor):
    """Launch on ``tensor``'s GPU (any ``cuda:N``)."""
    return torch.cuda.device(tensor.device) if tensor.is_cuda else contextlib.nullcontext()


def channel_block(C: int) -> tuple[int, int]:
    """``(CB, C_PAD)``: channels per tile (a power of two, at most 64) and the padded channel
    count of the channels-last tables (a multiple of ``CB``, so rows are aligned)."""
    cb = min(next_power_of_2(C), MAX_CHANNEL_BLOCK)
    return cb, cdiv(C, cb) * cb


def tile_blocks(n_frames: int, H: int, W: int, cb: int, elements: int = 0,
                warps: int = 0) -> tuple[int, int, int, int]:
    """``(rows, BH, BW, programs)`` of ``[rows, cb]`` tiles over ``n_frames`` frames of
    ``H x W`` pixels (or queries): each program takes a ``BH x BW`` block of
    ``rows // (BH * BW)`` frames (see ``block_rows`` in :mod:`.agg_kernels`).

    On a GPU a block is about square and within one frame, with at most
    ``elements // cb`` rows (default :data:`TILE_ELEMENTS`) and at most half the threads of
    the program (``warps`` warps, default :data:`NUM_WARPS`). The
    second bound keeps the per-row index arithmetic in the row layout of the 2-d
    tile: with more rows than threads Triton computes it one row per thread and moves
    every per-row value through shared memory (a barrier each) before the tile can
    use it. Under the interpreter, whose cost is per program rather than per element,
    a block covers whole frames, up to 4096 rows.
    """
    if interpreting():
        bh, bw = next_power_of_2(H), next_power_of_2(W)
        frames = max(1, min(4096 // (bh * bw), next_power_of_2(n_frames)))
        rows = frames * bh * bw
    else:
        rows = max(4, min((elements or TILE_ELEMENTS) // cb, 16 * (warps or NUM_WARPS)))
        bh, bw = square_block(rows, W)
    return rows, bh, bw, block_programs(n_frames, H, W, rows, bh, bw)


def square_block(rows: int, W: int) -> tuple[int, int]:
    """``(BH, BW)``: a block of ``rows`` (a power of two) pixels or queries of a frame
    ``W`` wide, about square and no wider than the frame (rounded up to a power of two)."""
    bw = max(1, min(rows, next_power_of_2(int(rows ** 0.5)), next_power_of_2(W)))
    return rows // bw, bw


def block_programs(n_frames: int, H: int, W: int, rows: int, bh: int, bw: int) -> int:
    """Programs covering ``n_frames`` frames of ``H x W`` with the blocks of :func:`tile_blocks`."""
    frames = rows // (bh * bw)
    return cdiv(n_frames, frames) * cdiv(H, bh) * cdiv(W, bw)


def elementwise_block(n: int, block: int = 1024) -> int:
    """Block of a 1-d elementwise kernel (the interpreter takes up to 65536 per program)."""
    return min(1 << 16, next_power_of_2(n)) if interpreting() else block


def fixed_point_scale(bound: Tensor) -> Tensor:
    """Scale ``[1]`` (float32, on the device) of a deterministic accumulation.

    Values are added as int64 multiples of ``1 / scale``; integer sums do not depend
    on the order of the atomic adds, so the result is bitwise reproducible. ``bound``
    bounds the sum of the absolute values of all contributions to any one element;
    the scale is the largest power of two that keeps it below 2^61.
    """
    exponent = torch.floor(61 - torch.log2(bound.float().clamp(min=1e-30))).clamp(-120, 120)
    return torch.exp2(exponent).reshape(1)


@triton.jit
def channels_last_kernel(src, dst, cov, n_pix, frames, H, W, pad, C, n1, n2, s0, s1, s2, s_c,
                         NORMALISE: tl.constexpr, C_PAD: tl.constexpr, CB: tl.constexpr,
                         BP: tl.constexpr):
    """``dst[p, c] = src[f, c, y, x] / cov[f % frames, y, x]`` for pixel ``p`` of a table of
    frames of ``(H + 2 pad) x (W + 2 pad)`` pixels, ``p = (f * (H + 2 pad) + y + pad) *
    (W + 2 pad) + x + pad``, mirrored once beyond the borders (``pad < H, W``), from a
    channels-first video whose frame ``f = (i0 * n1 + i1) * n2 + i2`` starts at
    ``i0 * s0 + i1 * s1 + i2 * s2`` and whose channels are ``s_c`` apart (pixels
    contiguous); no division without ``NORMALISE``. Channels ``C <= c < C_PAD`` are
    written as 0."""
    pix = tl.program_id(0).to(tl.int64) * BP + tl.arange(0, BP)
    c = tl.program_id(1) * CB + tl.arange(0, CB)
    live = pix < n_pix
    padded_w = W + 2 * pad
    padded_hw = (H + 2 * pad) * padded_w
    frame = pix // padded_hw
    y = reflect((pix % padded_hw) // padded_w - pad, H)
    x = reflect(pix % padded_w - pad, W)
    spot = y * W + x
    start = (frame // (n1 * n2)) * s0 + ((frame // n2) % n1) * s1 + (frame % n2) * s2
    mask = live[:, None] & (c < C)[None, :]
    value = tl.load(src + (start + spot)[:, None] + c[None, :].to(tl.int64) * s_c,
                    mask=mask, other=0.0).to(tl.float32)
    if NORMALISE:
        value = value / tl.load(cov + (frame % frames) * (H * W) + spot, mask=live,
                                other=1.0)[:, None]
    tl.store(dst + pix[:, None] * C_PAD + c[None, :], value.to(dst.dtype.element_ty),
             mask=live[:, None] & (c < C_PAD)[None, :])


@triton.jit
def from_channels_last_kernel(src, dst, cov, probe, n_pix, frames, HW, C,
                              NORMALISE: tl.constexpr, PROBE: tl.constexpr,
                              C_PAD: tl.constexpr, CB: tl.constexpr, BP: tl.constexpr):
    """``dst[f, c, s] = src[f * HW + s, c] / cov[f % frames, s]`` (no division without
    ``NORMALISE``; with ``PROBE``, NaN everywhere unless ``probe[0]`` is finite, see
    :func:`stnls.utils.checks.finite_probe`): a channels-last table ``[n_pix, C_PAD]`` as a
    contiguous channels-first video of ``C`` channels and ``HW`` pixels per frame."""
    pix = tl.program_id(0).to(tl.int64) * BP + tl.arange(0, BP)
    c = tl.program_id(1) * CB + tl.arange(0, CB)
    live = pix < n_pix
    mask = live[:, None] & (c < C)[None, :]
    value = tl.load(src + pix[:, None] * C_PAD + c[None, :], mask=mask, other=0.0).to(tl.float32)
    frame = pix // HW
    spot = pix % HW
    if NORMALISE:
        value = value / tl.load(cov + (frame % frames) * HW + spot, mask=live, other=1.0)[:, None]
    if PROBE:
        value = tl.where(tl.abs(tl.load(probe)) < float("inf"), value, float("nan"))
    tl.store(dst + (frame * C)[:, None] * HW + c[None, :] * HW + spot[:, None],
             value.to(dst.dtype.element_ty), mask=mask)


def _frame_layout(src: Tensor) -> tuple[Tensor, list[int], list[int]]:
    """``src [..., C, H, W]`` (made contiguous if its pixels are not, or if its leading axes
    do not merge into three) with the sizes and strides of three leading axes."""
    H, W = src.shape[-2:]
    if src.stride(-1) != 1 and W > 1 or src.stride(-2) != W and H > 1:
        src = src.contiguous()
    sizes, strides = [], []
    for size, stride in zip(src.shape[:-3], src.stride()[:-3]):
        if size == 1:
            continue
        if sizes and strides[-1] == stride * size:
            sizes[-1], strides[-1] = sizes[-1] * size, stride
        else:
            sizes.append(size)
            strides.append(stride)
    if len(sizes) > 3:
        return _frame_layout(src.contiguous())
    pad = 3 - len(sizes)
    return src, [1] * pad + sizes, [0] * pad + strides


def channels_last(src: Tensor, dtype: torch.dtype, cov: Tensor | None = None,
                  pad: int = 0) -> Tensor:
    """A channels-first video ``[..., C, H, W]`` (any strides; no copy where its pixels are
    contiguous) as a padded channels-last table ``[frames * (H + 2 pad) * (W + 2 pad), C_PAD]``
    of ``dtype``, frames in the order of the leading axes, divided by ``cov [n, H * W]``
    (frame ``f`` by row ``f % n``) if given, each frame mirrored ``pad < H, W`` pixels
    beyond its borders (edge not repeated, as :func:`stnls.geometry.reflect`)."""
    C, H, W = src.shape[-3:]
    src, sizes, strides = _frame_layout(src)
    n_pix = src.numel() // max(C * H * W, 1) * (H + 2 * pad) * (W + 2 * pad)
    cb, c_pad = channel_block(C)
    dst = torch.empty(n_pix, c_pad, dtype=dtype, device=src.device)
    if n_pix == 0:
        return dst
    bp = min(4096, next_power_of_2(n_pix)) if interpreting() else 64
    frames = 1 if cov is None else cov.shape[0]
    channels_last_kernel[(cdiv(n_pix, bp), c_pad // cb)](
        src, dst, src if cov is None else cov, n_pix, frames, H, W, pad, C, sizes[1], sizes[2],
        *strides, src.stride(-3), NORMALISE=cov is not None, C_PAD=c_pad, CB=cb, BP=bp,
        num_warps=NUM_WARPS)
    return dst


def from_channels_last(table: Tensor, shape: tuple[int, ...], dtype: torch.dtype,
                       cov: Tensor | None = None, probe: Tensor | None = None) -> Tensor:
    """A channels-last table ``[frames * H * W, C_PAD]`` as a contiguous ``dtype`` video of
    ``shape`` ``[..., C, H, W]`` (frames in the order of the leading axes), divided by
    ``cov [n, H, W]`` (frame ``f`` by ``cov[f % n]``) if given: the inverse of
    :func:`channels_last` without padding; NaN everywhere if a ``probe``
    (:func:`stnls.utils.checks.finite_probe`) is given and not finite."""
    C, H, W = shape[-3:]
    dst = torch.empty(shape, dtype=dtype, device=table.device)
    n_pix = table.shape[0]
    if dst.numel() == 0:
        return dst
    cb, _ = channel_block(C)
    bp = min(4096, next_power_of_2(n_pix)) if interpreting() else 64
    frames = 1 if cov is None else cov.shape[0]
    from_channels_last_kernel[(cdiv(n_pix, bp), cdiv(C, cb))](
        table, dst, table if cov is None else cov, table if probe is None else probe, n_pix,
        frames, H * W, C, NORMALISE=cov is not None, PROBE=probe is not None,
        C_PAD=table.shape[1], CB=cb, BP=bp, num_warps=NUM_WARPS)
    return dst
