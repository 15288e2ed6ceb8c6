"""Reference patch unfold/fold at absolute positions (``unfold_k`` and its adjoint ``fold_k``).

Normalised inputs (see :mod:`stnls._ops.tile`): ``vid [B, T, C, H, W]``,
``inds [B, Q, K, 3]`` absolute integer ``(t, h, w)`` patch positions,
``patches [B, Q, K, pt, C, ps, ps]``. Element ``(pk, a, b)`` of the patch at
``(t, h, w)`` is the pixel ``(reflect_T(t + pk), h + d[a], w + d[b])`` with
``d = patch_offsets(ps, dilation, use_adj)``; rows and columns outside the box
``[top, btm) x [left, right)`` are mirrored into it once (``reflect``) or read
as zero. ``fold_k`` adds every patch element back where ``unfold_k`` read it,
so the two are exact adjoints.
"""

from __future__ import annotations

from typing import Iterator

import torch
from torch import Tensor

from ... import geometry as geo
from ...params import TileParams
from .patch_map import Tap, chunks, gather_rows, scatter_rows
from .sampling import Corner, corners
from .search import compute_dtype


def _axis(v: Tensor, lo: int, hi: int, reflect: bool) -> tuple[Tensor, Tensor]:
    if reflect:
        v = geo.reflect_between(v, lo, hi)
    return v, (v >= lo) & (v < hi)


def _taps(index: Tensor, inds: Tensor, Q: int, K: int, p: TileParams) -> Iterator[Tap]:
    """Taps of items ``index`` (global over ``B * Q``); ``inds [B*Q, K, 3]``."""
    batch = index // Q
    at = inds[index].long()
    offsets = geo.patch_offsets(p.ps, p.dilation, p.use_adj)
    first = (index[:, None] * K + torch.arange(K, device=index.device)) * p.pt
    for pk in range(p.pt):
        src_t = geo.reflect(at[..., 0] + pk, p.T)
        frame = (batch[:, None] * p.T + src_t.clamp(0, p.T - 1)) * (p.H * p.W)
        ok_t = geo.in_range(src_t, p.T)
        for a, dy in enumerate(offsets):
            y, ok_y = _axis(at[..., 1] + dy, p.top, p.btm, p.reflect)
            for b, dx in enumerate(offsets):
                x, ok_x = _axis(at[..., 2] + dx, p.left, p.right, p.reflect)
                valid = ok_t & ok_y & ok_x
                dest = ((first + pk) * p.ps + a) * p.ps + b
                yield Tap(dest, corners(frame, y, x, p.H, p.W), valid, None, None)


def _items(inds: Tensor, C: int, p: TileParams, dtype):
    B, Q, K = inds.shape[:3]
    per_item = K * p.pt * p.ps * p.ps * (C * 2 + 8) * torch.finfo(dtype).bits // 8
    return chunks(B * Q, per_item, inds.device)


def _channels_first_index(row: Tensor, C: int, plane: int) -> Tensor:
    """Flat indices ``[..., C]`` in a contiguous ``[B, T, C, H, W]`` video of the pixels
    ``row`` of its channels-last table (pixel ``row % plane`` of frame ``row // plane``)."""
    channel = torch.arange(C, device=row.device) * plane
    return (row // plane * C * plane + row % plane)[..., None] + channel


def _read_channels_first(C: int, plane: int, dtype):
    """A ``reader`` for :func:`gather_rows` sampling a flat ``[B, T, C, H, W]`` video in place
    (no channels-last copy of the video)."""
    def reader(flat: Tensor, corner_list: list[Corner]) -> Tensor:
        (corner,) = corner_list  # integer positions: one corner
        return flat[_channels_first_index(corner.row, C, plane)].to(dtype)
    return reader


def unfold_k(vid: Tensor, inds: Tensor, p: TileParams) -> Tensor:
    """``patches [B, Q, K, pt, C, ps, ps]`` read at ``inds`` (see the module doc)."""
    B, Q, K = inds.shape[:3]
    C = vid.shape[2]
    dtype = compute_dtype(vid.dtype)
    reader = _read_channels_first(C, p.H * p.W, dtype)
    src = vid.contiguous().view(-1)
    flat = inds.reshape(B * Q, K, 3)
    dest = torch.zeros(B * Q * K * p.pt * p.ps * p.ps, C, dtype=dtype, device=vid.device)
    for index in _items(inds, C, p, dtype):
        ones = torch.ones(len(index), K, dtype=dtype, device=vid.device)
        gather_rows(src, dest, _taps(index, flat, Q, K, p), ones, reader)
    patches = dest.view(B, Q, K, p.pt, p.ps, p.ps, C).permute(0, 1, 2, 3, 6, 4, 5)
    return patches.contiguous().to(vid.dtype)


def fold_k(patches: Tensor, inds: Tensor, p: TileParams) -> Tensor:
    """Adjoint of :func:`unfold_k`: ``vid [B, T, C, H, W]`` summing every patch element."""
    out = torch.zeros(inds.shape[0], p.T, patches.shape[4], p.H, p.W,
                      dtype=compute_dtype(patches.dtype), device=patches.device)
    fold_k_accumulate_(out, patches, inds, p)
    return out.to(patches.dtype)


def _write_channels_first(plane: int):
    """A ``write`` for :func:`scatter_rows` adding into a flat contiguous ``[B, T, C, H, W]`` video."""
    def write(flat: Tensor, corner_list: list[Corner], values: Tensor) -> None:
        for corner in corner_list:
            index = _channels_first_index(corner.row.expand(values.shape[:-1]), values.shape[-1],
                                          plane)
            flat.index_add_(0, index.reshape(-1), values.reshape(-1).to(flat.dtype))
    return write


def fold_k_accumulate_(out: Tensor, patches: Tensor, inds: Tensor, p: TileParams) -> None:
    """``out += fold_k(patches, inds)`` in place (``out`` contiguous ``[B, T, C, H, W]``),
    with memory bounded by the chunk budget however large ``out`` is."""
    B, Q, K = inds.shape[:3]
    C = patches.shape[4]
    dtype = out.dtype
    rows = patches.to(dtype).permute(0, 1, 2, 3, 5, 6, 4).reshape(-1, C)
    flat = inds.reshape(B * Q, K, 3)
    write = _write_channels_first(p.H * p.W)
    for index in _items(inds, C, p, dtype):
        ones = torch.ones(len(index), K, dtype=dtype, device=out.device)
        scatter_rows(rows, out.view(-1), _taps(index, flat, Q, K, p), ones, write)
