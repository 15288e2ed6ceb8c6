"""Index arithmetic shared by every op and every backend.

This module is the single definition of where things are: the strided query
raster, the temporal search window, reflection at the borders, the placement of
the spatial search window, patch pixel offsets and bilinear corner weights.
The reference backend calls these functions directly; the Triton kernels
re-express the same formulas and are tested against them.

Conventions (shared with the original library):

* Indices are 0-based; ``h`` is the row (y) and ``w`` the column (x).
* Queries of one (batch, head) are numbered in raster order over
  ``[T, nH, nW]``: time slowest, column fastest. Query ``(t, nh, nw)`` sits at
  pixel ``(nh * stride0, nw * stride0)``; the grid starts at 0 and is not centred.
* Flow channel 0 is the column displacement (dx), channel 1 the row
  displacement (dy).

Every function accepts tensors and broadcasts; the ones that need plain
integers say so.
"""

from __future__ import annotations

import torch
from torch import Tensor

__all__ = [
    "grid_size",
    "decode_queries",
    "reflect",
    "reflect_between",
    "in_range",
    "last_frame_of_window",
    "frame_of_slot",
    "slot_of_frame",
    "window_offset",
    "window_positions",
    "patch_offsets",
    "patch_coverage",
    "rect_grid_size",
    "raster_positions",
    "bilinear_corners",
]


def grid_size(size: int, stride: int) -> int:
    """Number of strided query positions along an axis: ``(size - 1) // stride + 1``."""
    return (size - 1) // stride + 1


def decode_queries(index: Tensor, nH: int, nW: int) -> tuple[Tensor, Tensor, Tensor]:
    """Split raster query indices into ``(t, nh, nw)``.

    Args:
        index: int64 tensor of query indices within one (batch, head).
        nH, nW: query grid size.
    """
    per_frame = nH * nW
    t = index // per_frame
    rest = index % per_frame
    return t, rest // nW, rest % nW


def reflect(v: Tensor, size: int) -> Tensor:
    """Mirror ``v`` once about the borders of ``[0, size - 1]``, edge not repeated.

    ``-1 -> 1`` and ``size -> size - 2``; works for integer and real ``v``. The
    mirror is applied once: a value more than ``size - 1`` outside stays out of
    range (callers treat it as invalid).
    """
    return torch.where(v < 0, -v, torch.where(v > size - 1, 2 * (size - 1) - v, v))


def reflect_between(v: Tensor, lo: int, hi: int) -> Tensor:
    """Mirror ``v`` once about the borders of ``[lo, hi - 1]`` (:func:`reflect` shifted by ``lo``)."""
    return torch.where(v < lo, 2 * lo - v, torch.where(v > hi - 1, 2 * (hi - 1) - v, v))


def in_range(v: Tensor, size: int) -> Tensor:
    """``0 <= v <= size - 1`` (real values compared directly)."""
    return (v >= 0) & (v <= size - 1)


def last_frame_of_window(t: Tensor, wt: int, T: int) -> Tensor:
    """Last frame ``t_max`` reached going forward from frame ``t``.

    The temporal window of half-size ``wt`` is shifted, not truncated, near the
    ends of the video so that it always holds ``min(2 * wt + 1, T)`` frames.
    """
    shift = torch.clamp(t - wt, max=0) + torch.clamp(t + wt - (T - 1), min=0)
    return torch.clamp(t + wt - shift, max=T - 1)


def frame_of_slot(t: Tensor, slot: Tensor | int, wt: int, T: int) -> Tensor:
    """Frame searched by temporal slot ``slot`` of a query in frame ``t``.

    Slot 0 is ``t`` itself; the next slots go forward to ``t_max`` and then
    backward from ``t - 1``. Example (``T=5, wt=2``): ``t=1 -> [1, 2, 3, 4, 0]``.
    """
    t_max = last_frame_of_window(t, wt, T)
    forward = t + slot
    return torch.where(forward <= t_max, forward, t_max - slot)


def slot_of_frame(t: Tensor, frame: Tensor, wt: int, T: int) -> Tensor:
    """Inverse of :func:`frame_of_slot`: the slot whose frame is ``frame``."""
    t_max = last_frame_of_window(t, wt, T)
    dt = frame - t
    return torch.where(dt >= 0, dt, (t_max - t) - dt)


def window_offset(anchor: Tensor, stride1: float, ws: int, size: int, full_ws: bool) -> Tensor:
    """Index of the anchor inside its ``ws``-candidate window along one axis.

    Candidate ``i`` sits at ``anchor + stride1 * (i - offset)``. Without
    ``full_ws`` the window is centred (``offset = (ws - 1) // 2``, leaning to +
    for even ``ws``); with ``full_ws`` it slides so that it stays inside
    ``[0, size - 1]`` where it can, and the anchor is always one of the
    candidates. Returned in float64.
    """
    half = (ws - 1) // 2
    a = anchor.to(torch.float64)
    offset = torch.full_like(a, float(half))
    if full_ws:
        s = float(stride1)
        offset = torch.where(a - s * half < 0, torch.floor(a / s), offset)
        offset = torch.where(a + s * ((ws - 1) - offset) > size - 1,
                             torch.ceil((a - (size - 1)) / s + (ws - 1)), offset)
    return offset


def window_positions(anchor: Tensor, stride1: float, ws: int, size: int, full_ws: bool) -> Tensor:
    """Positions of the ``ws`` candidates around ``anchor`` along one axis.

    Returns ``anchor.shape + (ws,)`` in the anchor's dtype (integer anchors and
    an integer ``stride1`` give exact integer positions).
    """
    offset = window_offset(anchor, stride1, ws, size, full_ws).to(anchor.dtype)
    steps = torch.arange(ws, device=anchor.device, dtype=anchor.dtype)
    return anchor[..., None] + stride1 * (steps - offset[..., None])


def patch_offsets(ps: int, dilation: int = 1, use_adj: bool = False) -> list[int]:
    """Offsets of the ``ps`` patch pixels from the patch position along one axis.

    Patches are centred (``-(ps // 2)`` first; even ``ps`` leans to -) unless
    ``use_adj``, where the position is the patch's first pixel.
    """
    first = 0 if use_adj else -(ps // 2)
    return [dilation * (first + p) for p in range(ps)]


def patch_coverage(size: int, stride: int, count: int, offsets: list[int], device=None) -> Tensor:
    """How many (grid position, patch offset) pairs land on each pixel of an axis.

    Grid position ``i < count`` sits at ``i * stride``; with ``offsets`` from
    :func:`patch_offsets` the result ``[size]`` (int64) counts the pairs with
    ``i * stride + offset == pixel``. The 2-d coverage of a frame is the outer
    product of the two axes.
    """
    positions = torch.arange(count, device=device)[:, None] * stride + torch.tensor(offsets, device=device)
    positions = positions[(positions >= 0) & (positions < size)]
    return torch.bincount(positions, minlength=size)


def rect_grid_size(extent: int, stride: int, span: int, only_full: bool) -> int:
    """Query positions along one side of a rectangle of ``extent`` pixels.

    Every ``stride``-th pixel from the rectangle's start, or with ``only_full``
    only those whose whole patch (``span = dilation * (ps - 1) + 1`` pixels from
    the position) fits inside: ``(extent - span) // stride + 1`` (at least 0).
    """
    if only_full:
        return max(0, (extent - span) // stride + 1)
    return grid_size(extent, stride)


def raster_positions(index: Tensor, n_h: int, n_w: int, stride: int, origin_h: int = 0,
                     origin_w: int = 0) -> tuple[Tensor, Tensor, Tensor]:
    """Absolute ``(t, h, w)`` of raster queries on a grid of ``n_h x n_w`` per frame
    starting at ``(origin_h, origin_w)`` with step ``stride``."""
    t, i, j = decode_queries(index, n_h, n_w)
    return t, origin_h + i * stride, origin_w + j * stride


def bilinear_corners(y: Tensor) -> tuple[Tensor, Tensor, Tensor]:
    """Lower corner and the two weights of linear interpolation at real ``y``.

    Returns ``(y0, w0, w1)`` with ``y0 = floor(y)`` (int64), ``w0 = 1 - (y - y0)``
    the weight of ``y0`` and ``w1 = y - y0`` the weight of ``y0 + 1``. The
    weights are differentiable in ``y``; at an integer ``y`` the derivative is
    the right-sided difference.
    """
    floor = torch.floor(y)
    w1 = y - floor.detach()
    return floor.long(), 1 - w1, w1
