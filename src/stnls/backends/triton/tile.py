"""Triton patch unfold/fold at absolute positions (same contract as
:mod:`stnls.backends.reference.tile`): ``unfold_k`` reads, ``fold_k`` and
``fold_k_accumulate_`` add back with atomics (int64 fixed point under
``torch.use_deterministic_algorithms(True)``). The batched ``iunfold``/``ifold``
of :mod:`stnls.tile` run on these. float64 runs the reference backend.

One program covers ``BLOCK`` consecutive patch elements of the flat
``[B, Q, K, pt, C, ps, ps]`` patch tensor, so the patch side of the traffic is
contiguous; :func:`patch_source` is the one place that maps an element to its
video pixel.
"""

from __future__ import annotations

import torch
import triton
import triton.language as tl
from torch import Tensor

from ...params import TileParams
from ..reference import tile as reference
from .geometry import in_range, reflect
from .launch import cdiv, device_guard, elementwise_block, fixed_point_scale

BLOCK = 1024


@triton.jit
def mirror_between(v, lo, hi, REFLECT: tl.constexpr):
    """``v`` mirrored once into ``[lo, hi - 1]`` with ``REFLECT``, and whether it is inside."""
    if REFLECT:
        v = tl.where(v < lo, 2 * lo - v, tl.where(v > hi - 1, 2 * (hi - 1) - v, v))
    return v, (v >= lo) & (v < hi)


@triton.jit
def patch_source(inds, element, n, QK, T, C, H, W, dilation, top, left, btm, right,
                 PS: tl.constexpr, PT: tl.constexpr, USE_ADJ: tl.constexpr, REFLECT: tl.constexpr):
    """Flat index into the channels-first video ``[B, T, C, H, W]`` of the pixel read by the
    patch elements ``element`` (flat in ``[B, Q, K, pt, C, ps, ps]``, ``n`` of them;
    ``QK = Q * K``), and whether it is inside (else it reads zero)."""
    live = element < n
    col = (element % PS).to(tl.int32)
    row = ((element // PS) % PS).to(tl.int32)
    c = (element // (PS * PS)) % C
    pk = ((element // (PS * PS * C)) % PT).to(tl.int32)
    item = element // (PS * PS * C * PT)  # (b * Q + q) * K + k
    at = inds + tl.where(live, item, 0) * 3
    t = tl.load(at, mask=live, other=0).to(tl.int32)
    h = tl.load(at + 1, mask=live, other=0).to(tl.int32)
    w = tl.load(at + 2, mask=live, other=0).to(tl.int32)
    if USE_ADJ:
        first = 0
    else:
        first = -(PS // 2)
    st = reflect(t + pk, T)
    y, ok_y = mirror_between(h + dilation * (row + first), top, btm, REFLECT)
    x, ok_x = mirror_between(w + dilation * (col + first), left, right, REFLECT)
    ok = live & in_range(st, T) & ok_y & ok_x
    frame = (item // QK) * T + tl.where(ok, st, 0)
    return ((frame * C + c) * H + tl.where(ok, y, 0)) * W + tl.where(ok, x, 0), ok


@triton.jit
def unfold_kernel(vid, inds, patches, n, QK, T, C, H, W, dilation, top, left, btm, right,
                  PS: tl.constexpr, PT: tl.constexpr, USE_ADJ: tl.constexpr,
                  REFLECT: tl.constexpr, BLOCK: tl.constexpr):
    """``patches[e] = vid[source(e)]`` (0 outside) for ``BLOCK`` patch elements."""
    element = tl.program_id(0).to(tl.int64) * BLOCK + tl.arange(0, BLOCK)
    source, ok = patch_source(inds, element, n, QK, T, C, H, W, dilation, top, left, btm, right,
                              PS, PT, USE_ADJ, REFLECT)
    value = tl.load(vid + source, mask=ok, other=0.0)
    tl.store(patches + element, value.to(patches.dtype.element_ty), mask=element < n)


@triton.jit
def fold_kernel(patches, inds, out, scale_ptr, n, QK, T, C, H, W, dilation, top, left, btm, right,
                PS: tl.constexpr, PT: tl.constexpr, USE_ADJ: tl.constexpr, REFLECT: tl.constexpr,
                FIXED_POINT: tl.constexpr, BLOCK: tl.constexpr):
    """``out[source(e)] += patches[e]`` (atomic; int64 units of ``1 / scale`` with
    ``FIXED_POINT``) for ``BLOCK`` patch elements."""
    element = tl.program_id(0).to(tl.int64) * BLOCK + tl.arange(0, BLOCK)
    source, ok = patch_source(inds, element, n, QK, T, C, H, W, dilation, top, left, btm, right,
                              PS, PT, USE_ADJ, REFLECT)
    value = tl.load(patches + element, mask=ok, other=0.0).to(tl.float32)
    if FIXED_POINT:
        tl.atomic_add(out + source, (value * tl.load(scale_ptr)).to(tl.int64), mask=ok,
                      sem="relaxed")
    else:
        tl.atomic_add(out + source, value, mask=ok, sem="relaxed")


def _args(inds: Tensor, n: int, C: int, p: TileParams) -> tuple:
    QK = inds.shape[1] * inds.shape[2]
    return (n, QK, p.T, C, p.H, p.W, p.dilation, p.top, p.left, p.btm, p.right)


def _constants(p: TileParams) -> dict:
    return dict(PS=p.ps, PT=p.pt, USE_ADJ=p.use_adj, REFLECT=p.reflect)


def unfold_k(vid: Tensor, inds: Tensor, p: TileParams) -> Tensor:
    """``patches [B, Q, K, pt, C, ps, ps]``; same contract as :func:`stnls.backends.reference.tile.unfold_k`."""
    if vid.dtype == torch.float64:
        return reference.unfold_k(vid, inds, p)
    B, Q, K = inds.shape[:3]
    C = vid.shape[2]
    with device_guard(vid):
        patches = torch.empty(B, Q, K, p.pt, C, p.ps, p.ps, dtype=vid.dtype, device=vid.device)
        n = patches.numel()
        if n:
            block = elementwise_block(n, BLOCK)
            unfold_kernel[(cdiv(n, block),)](vid.contiguous(), inds.contiguous(), patches,
                                                    *_args(inds, n, C, p), **_constants(p),
                                                    BLOCK=block, num_warps=4)
    return patches


def fold_k(patches: Tensor, inds: Tensor, p: TileParams) -> Tensor:
    """Adjoint of :func:`unfold_k`; same contract as :func:`stnls.backends.reference.tile.fold_k`."""
    if patches.dtype == torch.float64:
        return reference.fold_k(patches, inds, p)
    out = torch.zeros(inds.shape[0], p.T, patches.shape[4], p.H, p.W, dtype=torch.float32,
                      device=patches.device)
    fold_k_accumulate_(out, patches, inds, p)
    return out.to(patches.dtype)


def fold_k_accumulate_(out: Tensor, patches: Tensor, inds: Tensor, p: TileParams) -> None:
    """``out += fold_k(patches, inds)`` in place (``out`` contiguous float32; float64 runs the
    reference backend)."""
    if out.dtype == torch.float64 or patches.dtype == torch.float64:
        return reference.fold_k_accumulate_(out, patches, inds, p)
    n = patches.numel()
    if n == 0:
        return None
    C = patches.shape[4]
    fixed_point = torch.are_deterministic_algorithms_enabled()
    block = elementwise_block(n, BLOCK)
    with device_guard(out):
        patches, inds = patches.contiguous(), inds.contiguous()
        if fixed_point:
            # every element of patches adds to one pixel: their total bounds any pixel's sum
            scale = fixed_point_scale(patches.detach().abs().amax().float() * n)
            target = torch.zeros(out.shape, dtype=torch.int64, device=out.device)
        else:
            scale, target = torch.ones(1, device=out.device), out
        fold_kernel[(cdiv(n, block),)](patches, inds, target, scale, *_args(inds, n, C, p),
                                              **_constants(p), FIXED_POINT=fixed_point,
                                              BLOCK=block, num_warps=4)
        if fixed_point:
            out += (target.double() / scale.double()).to(out.dtype)
    return None
