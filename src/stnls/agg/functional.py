"""Functional aggregation API: argument checks, layouts, then the ``stnls::agg_*`` ops.

Every function takes the matches of a search as returned by
:class:`stnls.search.NonLocalSearch`: ``weights [B, HD, T, nH, nW, K]`` (or
any shape that views as ``[B, HD, T*nH*nW, K]``) and ``flows`` of the same
shape plus a last axis of 3, the relative offsets ``(dt, dh, dw)`` of each
neighbour from its query's grid position.
"""

from __future__ import annotations

from typing import NamedTuple

import torch
from torch import Tensor

from .._ops import agg as ops
from ..params import AggParams
from ..utils.checks import check_choice, check_same, check_tensor
from ..utils.layout import split_heads

__all__ = ["gather", "gather_add", "scatter", "scatter_add", "pool", "wpsum"]


class Matches(NamedTuple):
    """Weights and flows normalised to ``[B, HD, T, nH, nW, K(, 3)]``."""

    weights: Tensor
    flows: Tensor


def _heads(vid: Tensor, name: str, nheads: int) -> Tensor:
    if vid.dim() == 6 and vid.shape[1] != nheads:
        raise ValueError(f"{name} has HD={vid.shape[1]} heads ([B, HD, T, C, H, W]) but weights "
                         f"and flows have {nheads}")
    return split_heads(name, vid, nheads)


def _matches(weights: Tensor, flows: Tensor, B: int, T: int, p: AggParams) -> Matches:
    """Check and reshape weights and flows against the video (``B``, ``T``) and the query grid."""
    weights = check_tensor("weights", weights, (4, 5, 6))
    flows = check_tensor("flows", flows, (5, 6, 7), floating=False)
    check_same(("weights", "flows"), weights, flows, "device")
    if flows.shape[-1] != 3:
        raise ValueError(f"flows must end with an axis of 3 offsets (dt, dh, dw), got shape "
                         f"{tuple(flows.shape)}")
    if flows.shape[1] != weights.shape[1]:
        raise ValueError(f"weights and flows must have the same number of heads (axis 1), got "
                         f"{weights.shape[1]} and {flows.shape[1]}")
    if flows.numel() != 3 * weights.numel() or flows.shape[0] != weights.shape[0]:
        raise ValueError(f"flows must hold 3 offsets per weight, e.g. weights.shape + (3,) = "
                         f"{[*weights.shape, 3]}, got {tuple(flows.shape)}")
    n_h, n_w = p.grid
    HD, K = weights.shape[1], weights.shape[-1]
    if weights.shape[0] != B or weights.numel() != B * HD * T * n_h * n_w * K:
        raise ValueError(f"weights {tuple(weights.shape)} do not match the video: with B={B}, T={T} "
                         f"and a {p.in_h}x{p.in_w} frame at stride0={p.stride_in} they must be "
                         f"[B, HD, T, nH, nW, K] = [{B}, {HD}, {T}, {n_h}, {n_w}, K]")
    if p.itype == "int":
        if flows.is_floating_point():
            flows = torch.round(flows).int()
        elif flows.dtype != torch.int32:
            raise TypeError(f"integer flows must be int32 (as NonLocalSearch returns), got "
                            f"{flows.dtype}")
    elif not flows.is_floating_point():
        if flows.dtype != torch.int32:
            raise TypeError(f"integer flows must be int32 (as NonLocalSearch returns), got "
                            f"{flows.dtype}")
        flows = flows.to(weights.dtype)
    shape = (B, HD, T, n_h, n_w, K)
    return Matches(weights.reshape(shape), flows.reshape(*shape, 3))


def _video(name: str, vid: Tensor, weights: Tensor) -> tuple[Tensor, bool]:
    """``vid`` as ``[B, HD, T, C, H, W]`` with the weights' heads; True if it was 5-d."""
    vid = check_tensor(name, vid, (5, 6))
    if not isinstance(weights, Tensor) or weights.dim() < 2:
        raise ValueError("weights must be a [B, HD, T, nH, nW, K] tensor")
    check_same((name, "weights"), vid, weights, "device")
    return _heads(vid, name, weights.shape[1]), vid.dim() == 5


def _merge_heads(out: Tensor) -> Tensor:
    """``[B, HD, T, C, H, W] -> [B, T, HD*C, H, W]``."""
    B, HD, T, C, H, W = out.shape
    return out.transpose(1, 2).reshape(B, T, HD * C, H, W)


def _params(ps, stride_in, stride_out, H, W, out_h, out_w, pt, dilation, reflect_bounds, use_adj,
            itype, sum_k, pooled=False) -> AggParams:
    check_choice("itype", itype, ("int", "float"))
    return AggParams.create(ps, stride_in, stride_out, H, W, out_h, out_w, pt, dilation,
                            reflect_bounds, use_adj, itype, sum_k, pooled)


def _run_gather(vid, weights, flows, p_args) -> tuple[Tensor, bool]:
    vid6, was_5d = _video("vid", vid, weights)
    B, _, T, _, H, W = vid6.shape
    p = _params(*p_args[:3], H, W, *p_args[3:])
    m = _matches(weights, flows, B, T, p)
    return ops.gather(vid6, m.weights, m.flows, *p.as_args(), True), was_5d


def gather(vid: Tensor, weights: Tensor, flows: Tensor, ps: int = 1, stride0: int = 1, pt: int = 1,
           dilation: int = 1, reflect_bounds: bool = True, use_adj: bool = False,
           itype: str = "float") -> Tensor:
    """Stack the weighted neighbour patches of every query into ``K`` videos.

    ``stack[k]`` at a pixel is the average, over the query patches covering the
    pixel, of ``weights[q, k]`` times the pixel that query's ``k``-th neighbour
    patch holds at the same patch position. The average divides by the
    coverage: the number of (query, patch element) pairs landing on the pixel,
    counted from the query grid alone (as the original library does). Patch
    pixels of a neighbour that fall outside the frame are mirrored back
    (``reflect_bounds``) or count as zero, and the neighbour's anchor is
    always mirrored into the video. Real offsets sample bilinearly.

    Args:
        vid (Tensor[B, T, HD*C, H, W] or Tensor[B, HD, T, C, H, W]): values.
        weights (Tensor[B, HD, T, nH, nW, K]): one weight per neighbour;
            ``nH = (H-1)//stride0 + 1``.
        flows (Tensor[B, HD, T, nH, nW, K, 3]): relative ``(dt, dh, dw)`` of each
            neighbour (int32 for ``itype="int"``; real offsets are rounded there).
        ps (int): patch side. Default 1.
        stride0 (int): query grid stride. Default 1.
        pt (int): temporal patch length. Default 1.
        dilation (int): spacing of patch pixels. Default 1.
        reflect_bounds (bool): mirror neighbour patch pixels at the borders. Default True.
        use_adj (bool): patch positions are top-left corners instead of centres. Default False.
        itype (str): ``"float"`` (bilinear, differentiable offsets) or ``"int"``. Default ``"float"``.

    Returns:
        Tensor[B, HD, K, T, C, H, W]: the stacked videos, in ``vid``'s dtype.

    Examples::

        >>> vid = torch.randn(1, 3, 8, 16, 16)
        >>> dists, flows = stnls.search.NonLocalSearch(ws=3, wt=1, ps=3, k=4, nheads=2)(vid, vid)
        >>> stnls.agg.gather(vid, dists.softmax(-1), flows, ps=3).shape
        torch.Size([1, 2, 4, 3, 4, 16, 16])
    """
    out, _ = _run_gather(vid, weights, flows, (ps, stride0, stride0, 0, 0, pt, dilation,
                                               reflect_bounds, use_adj, itype, False))
    return out


def gather_add(vid: Tensor, weights: Tensor, flows: Tensor, ps: int = 3, strideIn: int = 1,
               strideOut: int = 1, outH: int = 0, outW: int = 0, pt: int = 1, dilation: int = 1,
               reflect_bounds: bool = True, use_adj: bool = False, itype: str = "float") -> Tensor:
    """Weighted patch sum over the ``K`` neighbours, written on an output grid.

    Equal to ``gather(...).sum(2)`` when ``strideIn == strideOut``. Query
    ``(t, i, j)`` reads its neighbours around ``(i*strideIn, j*strideIn)`` and
    writes its patch around ``(i*strideOut, j*strideOut)`` of an
    ``outH x outW`` video, normalised by the output coverage (see :func:`gather`).

    Args:
        vid (Tensor[B, T, HD*C, H, W] or Tensor[B, HD, T, C, H, W]): values.
        weights (Tensor[B, HD, T, nH, nW, K]): ``nH = (H-1)//strideIn + 1``.
        flows (Tensor[B, HD, T, nH, nW, K, 3]): relative offsets.
        ps (int): patch side. Default 3.
        strideIn, strideOut (int): input and output query strides. Default 1.
        outH, outW (int): output size; 0 picks ``H`` (``W``), or ``nH`` (``nW``)
            when ``strideOut == 1 < strideIn``. It must give the same query grid
            at ``strideOut``. Default 0.
        Other arguments: as :func:`gather`.

    Returns:
        Tensor[B, HD, T, C, outH, outW] (6-d, as in the original library).
    """
    out, _ = _run_gather(vid, weights, flows, (ps, strideIn, strideOut, outH, outW, pt, dilation,
                                               reflect_bounds, use_adj, itype, True))
    return out


def wpsum(vid: Tensor, weights: Tensor, flows: Tensor, ps: int, stride0: int = 1, pt: int = 1,
          dilation: int = 1, reflect_bounds: bool = True, use_adj: bool = False,
          itype: str = "float") -> Tensor:
    """Weighted patch sum (attention output) in the input's layout.

    The same as :func:`gather_add` with ``strideIn = strideOut = stride0`` and
    the output at the input's size, but the result keeps ``vid``'s layout:
    ``[B, T, HD*C, H, W]`` for a 5-d input. With ``ps=1, stride0=1`` it is
    attention-weighted warping, ``out = sum_k weights_k * vid(x + flow_k)``.

    Returns:
        Tensor[B, T, HD*C, H, W] or Tensor[B, HD, T, C, H, W] (like ``vid``).

    Examples::

        >>> v = torch.randn(1, 5, 16, 32, 32)
        >>> dists, flows = stnls.search.NonLocalSearch(ws=5, wt=2, ps=3, k=10, nheads=2)(v, v)
        >>> stnls.agg.wpsum(v, torch.softmax(-dists, -1), flows, ps=3).shape
        torch.Size([1, 5, 16, 32, 32])
    """
    out, was_5d = _run_gather(vid, weights, flows, (ps, stride0, stride0, 0, 0, pt, dilation,
                                                    reflect_bounds, use_adj, itype, True))
    return _merge_heads(out) if was_5d else out


def pool(vid: Tensor, weights: Tensor, flows: Tensor, ps: int, stride0: int = 1, pt: int = 1,
         dilation: int = 1, reflect_bounds: bool = True, use_adj: bool = False,
         itype: str = "float") -> Tensor:
    """Weighted patch sum kept in tiles: query ``(t, i, j)`` owns the output tile
    ``[i*ps, (i+1)*ps) x [j*ps, (j+1)*ps)`` of frame ``t`` and writes there
    ``sum_k weights[q, k] * patch_k`` (no normalisation, no overlap). ``pt`` must be 1.

    Returns:
        Tensor[B, HD, T, C, ps*nH, ps*nW].
    """
    out, _ = _run_gather(vid, weights, flows, (ps, stride0, stride0, 0, 0, pt, dilation,
                                               reflect_bounds, use_adj, itype, True, True))
    return out


def _run_scatter(name, y, weights, flows, in_hw, p_args, ndim_6d) -> tuple[Tensor, bool]:
    y = check_tensor(name, y, (ndim_6d - 1, ndim_6d) if ndim_6d == 6 else (7,))
    if not isinstance(weights, Tensor) or weights.dim() < 2:
        raise ValueError("weights must be a [B, HD, T, nH, nW, K] tensor")
    was_5d = y.dim() == 5
    y = _heads(y, name, weights.shape[1]) if ndim_6d == 6 else y
    if ndim_6d == 7 and y.shape[1] != weights.shape[1]:
        raise ValueError(f"{name} has HD={y.shape[1]} heads ([B, HD, K, T, C, H, W]) but weights "
                         f"and flows have {weights.shape[1]}")
    out_h, out_w = y.shape[-2:]
    in_h, in_w = in_hw
    p = _params(p_args[0], p_args[1], p_args[2], in_h or out_h, in_w or out_w, out_h, out_w,
                *p_args[3:])
    B, T = y.shape[0], y.shape[2] if ndim_6d == 6 else y.shape[3]
    m = _matches(weights, flows, B, T, p)
    if ndim_6d == 7 and y.shape[2] != m.weights.shape[-1]:
        raise ValueError(f"{name} stacks {y.shape[2]} videos but weights have K={m.weights.shape[-1]}")
    return ops.scatter(y, m.weights, m.flows, *p.as_args(), True), was_5d


def scatter(stack: Tensor, weights: Tensor, flows: Tensor, ps: int = 1, stride0: int = 1,
            pt: int = 1, dilation: int = 1, reflect_bounds: bool = True, use_adj: bool = False,
            itype: str = "float") -> Tensor:
    """Exact adjoint of :func:`gather` in the video: push each stacked video back
    along the matches.

    ``<gather(vid, w, f), stack> == <vid, scatter(stack, w, f)>`` for every
    ``vid`` and ``stack``. Each value of ``stack`` is first divided by the
    coverage of its pixel, then every (query, neighbour, patch element) adds
    ``weights[q, k] * stack[k, ref pixel]`` to the neighbour pixel (spread over
    the four bilinear corners for real offsets, mirrored like the gather).

    Args:
        stack (Tensor[B, HD, K, T, C, H, W]): one video per neighbour.
        weights, flows, other arguments: as :func:`gather`.

    Returns:
        Tensor[B, HD, T, C, H, W].
    """
    out, _ = _run_scatter("stack", stack, weights, flows, (0, 0),
                          (ps, stride0, stride0, pt, dilation, reflect_bounds, use_adj, itype, False),
                          7)
    return out


def scatter_add(vid: Tensor, weights: Tensor, flows: Tensor, ps: int = 3, strideIn: int = 1,
                strideOut: int = 1, outH: int = 0, outW: int = 0, inH: int = 0, inW: int = 0,
                pt: int = 1, dilation: int = 1, reflect_bounds: bool = True, use_adj: bool = False,
                itype: str = "float") -> Tensor:
    """Exact adjoint of :func:`gather_add` (same arguments) in the video.

    ``vid`` has :func:`gather_add`'s output size (``outH x outW``, which must
    be its actual size if given); the result has the size of the video
    :func:`gather_add` reads, ``inH x inW`` (default: the input's size; needed
    when ``strideIn != strideOut``). Values are divided by the output coverage,
    then pushed along the matches as in :func:`scatter`.

    Returns:
        Tensor[B, T, HD*C, inH, inW] or Tensor[B, HD, T, C, inH, inW] (like ``vid``).
    """
    check_tensor("vid", vid, (5, 6))
    if (outH and outH != vid.shape[-2]) or (outW and outW != vid.shape[-1]):
        raise ValueError(f"outH, outW = {outH}, {outW} but vid is {vid.shape[-2]}x{vid.shape[-1]}")
    if strideIn != strideOut and not (inH and inW):
        raise ValueError("scatter_add with strideIn != strideOut needs inH and inW (the size of "
                         "the video gather_add reads)")
    out, was_5d = _run_scatter("vid", vid, weights, flows, (inH, inW),
                               (ps, strideIn, strideOut, pt, dilation, reflect_bounds, use_adj,
                                itype, True), 6)
    return _merge_heads(out) if was_5d else out
