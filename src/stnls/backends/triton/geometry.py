"""Index arithmetic of :mod:`stnls.geometry`, re-expressed as Triton device functions.

Each function here is the same formula as its namesake in :mod:`stnls.geometry`
(tests compare them); the kernels never compute positions any other way.
Arguments are Triton tensors of any shape, or scalars.
"""

from __future__ import annotations

import triton
import triton.language as tl

# Value of inds entries no candidate ever wrote (``stnls.params.UNWRITTEN_IND``).
UNWRITTEN_IND = tl.constexpr(-100000000)


@triton.jit
def reflect(v, size):
    """Mirror ``v`` once about the borders of ``[0, size - 1]`` (edge not repeated)."""
    return tl.where(v < 0, -v, tl.where(v > size - 1, 2 * (size - 1) - v, v))


@triton.jit
def in_range(v, size):
    """``0 <= v <= size - 1``."""
    return (v >= 0) & (v <= size - 1)


@triton.jit
def last_frame_of_window(t, wt, T):
    """Last frame reached going forward from ``t`` (window shifted at the ends)."""
    shift = tl.minimum(t - wt, 0) + tl.maximum(t + wt - (T - 1), 0)
    return tl.minimum(t + wt - shift, T - 1)


@triton.jit
def frame_of_slot(t, slot, wt, T):
    """Frame searched by temporal slot ``slot`` of a query in frame ``t``."""
    t_max = last_frame_of_window(t, wt, T)
    forward = t + slot
    return tl.where(forward <= t_max, forward, t_max - slot)


@triton.jit
def slot_of_frame(t, frame, wt, T):
    """Inverse of :func:`frame_of_slot`."""
    t_max = last_frame_of_window(t, wt, T)
    dt = frame - t
    return tl.where(dt >= 0, dt, (t_max - t) - dt)


@triton.jit
def window_offset(anchor, stride1, ws, size, FULL_WS: tl.constexpr):
    """Index of the anchor in its window along one axis, in float64.

    ``stride1`` is a float64 scalar and ``ws`` may be a tensor (``ws_interior``).
    """
    half = (ws - 1) // 2
    a = anchor.to(tl.float64)
    offset = a * 0.0 + half
    if FULL_WS:
        offset = tl.where(a - stride1 * half < 0, tl.floor(a / stride1), offset)
        offset = tl.where(a + stride1 * ((ws - 1) - offset) > size - 1,
                          tl.ceil((a - (size - 1)) / stride1 + (ws - 1)), offset)
    return offset


@triton.jit
def pixel(v, size, REFLECT: tl.constexpr):
    """Patch pixel coordinate along one axis: ``(clamped index, inside, d(out)/d(v))``.

    With ``REFLECT`` the coordinate is mirrored once; the sign is -1 where it was.
    Integer or real ``v``; the clamped index is only safe to read where inside.
    """
    if REFLECT:
        out = reflect(v, size)
        sign = tl.where(in_range(v, size), 1.0, -1.0)
    else:
        out = v
        sign = tl.where(in_range(v, size), 1.0, 1.0)
    return out, in_range(out, size), sign
