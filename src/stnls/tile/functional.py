"""Functional unfold/fold API: patches at absolute positions and batched raster queries."""

from __future__ import annotations

from typing import NamedTuple

import torch
from torch import Tensor

from .._ops import tile as ops
from .. import geometry as geo
from ..params import BORDERS, TileParams, check_rectangle
from ..utils.checks import check_choice, check_int, check_same, check_tensor

__all__ = ["unfold_k", "fold_k", "iunfold", "ifold", "ifoldz", "unfold", "fold", "num_queries"]

NORMALIZE = ("sum", "count")


def _video_shape(vid_shape) -> tuple[int, int, int, int, int]:
    shape = tuple(vid_shape)
    if len(shape) != 5:
        raise ValueError(f"vid_shape must be (B, T, C, H, W), got {shape!r}")
    return tuple(check_int("vid_shape", v, minimum=1) for v in shape)


def unfold_k(vid: Tensor, inds: Tensor, ps: int, pt: int = 1, dilation: int = 1,
             use_adj: bool = False, reflect_bounds: bool = True) -> Tensor:
    """Read the patches at absolute positions (the original ``unfold_k``, "scatter" in dnls).

    Element ``(pk, a, b)`` of the patch at ``(t, h, w)`` is the pixel
    ``(t + pk, h + dilation*(a + o), w + dilation*(b + o))`` with ``o = -(ps//2)``
    (``0`` with ``use_adj``); time is mirrored at the ends, rows and columns
    are mirrored at the borders (``reflect_bounds``) or read as zero.

    Args:
        vid (Tensor[B, T, C, H, W]): the video.
        inds (Tensor[B, Q, K, 3]): int32/int64 absolute ``(t, h, w)``, inside the video.
        ps (int): patch side. pt (int): temporal length, default 1.
        dilation (int): default 1. use_adj (bool): default False.
        reflect_bounds (bool): default True.

    Returns:
        Tensor[B, Q, K, pt, C, ps, ps].

    Examples::

        >>> vid = torch.randn(1, 2, 3, 8, 8)
        >>> inds = torch.tensor([[[[0, 4, 4], [1, 0, 7]]]])
        >>> stnls.tile.unfold_k(vid, inds, ps=3).shape
        torch.Size([1, 1, 2, 1, 3, 3, 3])
    """
    vid = check_tensor("vid", vid, (5,))
    inds = check_tensor("inds", inds, (4,), floating=False)
    check_same(("vid", "inds"), vid, inds, "device")
    B, T, C, H, W = vid.shape
    p = TileParams.create(T, H, W, ps, pt, dilation, use_adj, reflect_bounds)
    return ops.unfold(vid, inds, *p.as_args())


def _normalise(vid: Tensor, counts: Tensor, normalize: str) -> Tensor:
    if normalize == "sum":
        return vid
    return vid / torch.where(counts > 0, counts, 1)


def _fold_counts(patches: Tensor, inds: Tensor, p: TileParams, weights: Tensor | None) -> Tensor:
    """Total weight (or number of patch elements) folded onto each pixel: ``[B, T, 1, H, W]``."""
    B, Q, K = inds.shape[:3]
    ones = patches.new_ones((B, Q, K, p.pt, 1, p.ps, p.ps))
    if weights is not None:
        ones = ones * weights.detach()[..., None, None, None, None]
    return ops.fold(ones, inds, *p.as_args())


def fold_k(patches: Tensor, inds: Tensor, vid_shape, weights: Tensor | None = None,
           dilation: int = 1, use_adj: bool = False, reflect_bounds: bool = True,
           normalize: str = "sum") -> Tensor:
    """Add patches back into a video at absolute positions: the exact adjoint of :func:`unfold_k`
    (the original ``fold_k``, "gather" in dnls).

    Every patch element goes where :func:`unfold_k` with the same arguments
    reads it (mirrored positions included), times ``weights[b, q, k]`` if given.

    Args:
        patches (Tensor[B, Q, K, pt, C, ps, ps]): the patches.
        inds (Tensor[B, Q, K, 3]): int32/int64 absolute ``(t, h, w)``.
        vid_shape (tuple): ``(B, T, C, H, W)`` of the result.
        weights (Tensor[B, Q, K] or None): per-patch weights. Default None (all 1).
        normalize (str): ``"sum"`` (the adjoint) or ``"count"``: divide each pixel
            by the total weight folded onto it (the number of patch elements when
            ``weights`` is None); pixels nothing lands on stay 0. Default ``"sum"``.
        dilation, use_adj, reflect_bounds: as :func:`unfold_k`.

    Returns:
        Tensor[B, T, C, H, W].
    """
    check_choice("normalize", normalize, NORMALIZE)
    patches = check_tensor("patches", patches, (7,))
    inds = check_tensor("inds", inds, (4,), floating=False)
    check_same(("patches", "inds"), patches, inds, "device")
    B, T, C, H, W = _video_shape(vid_shape)
    if patches.shape[0] != B or patches.shape[4] != C or patches.shape[5] != patches.shape[6]:
        raise ValueError(f"patches must be [B, Q, K, pt, C, ps, ps] with B={B}, C={C} from vid_shape, "
                         f"got {tuple(patches.shape)}")
    p = TileParams.create(T, H, W, patches.shape[5], patches.shape[3], dilation, use_adj,
                          reflect_bounds)
    if weights is not None:
        weights = check_tensor("weights", weights, (3,))
        if tuple(weights.shape) != tuple(inds.shape[:3]):
            raise ValueError(f"weights must be [B, Q, K] = {list(inds.shape[:3])}, got "
                             f"{tuple(weights.shape)}")
        patches = patches * weights[..., None, None, None, None]
    vid = ops.fold(patches, inds, *p.as_args())
    if normalize == "count":
        vid = _normalise(vid, _fold_counts(patches, inds, p, weights), normalize)
    return vid


# -- batched raster queries on a rectangle -------------------------------------------------------


class Raster(NamedTuple):
    """Query raster of a rectangle: ``n_h x n_w`` per frame from ``(origin_h, origin_w)``."""

    n_h: int
    n_w: int
    origin_h: int
    origin_w: int
    stride: int
    T: int

    @property
    def total(self) -> int:
        return self.T * self.n_h * self.n_w


def _raster(T, H, W, ps, coords, stride, dilation, use_adj, only_full) -> tuple[Raster, tuple]:
    top, left, btm, right = check_rectangle("coords", coords, H, W)
    stride = check_int("stride", stride, minimum=1)
    offsets = geo.patch_offsets(check_int("ps", ps, minimum=1), check_int("dilation", dilation, 1),
                                use_adj)
    span = offsets[-1] - offsets[0] + 1
    n_h = geo.rect_grid_size(btm - top, stride, span, only_full)
    n_w = geo.rect_grid_size(right - left, stride, span, only_full)
    shift = -offsets[0] if only_full else 0
    return Raster(n_h, n_w, top + shift, left + shift, stride, T), (top, left, btm, right)


def num_queries(vid_shape, ps: int, coords=None, stride: int = 1, dilation: int = 1,
                use_adj: bool = False, only_full: bool = False) -> int:
    """Number of raster queries of :func:`iunfold` (all frames): sweep ``start`` over
    ``range(0, num_queries(...), batch)`` to cover the rectangle."""
    B, T, C, H, W = _video_shape(vid_shape)
    return _raster(T, H, W, ps, coords, stride, dilation, use_adj, only_full)[0].total


def _batch_inds(raster: Raster, start: int, num: int, B: int, device) -> Tensor:
    start = check_int("start", start)
    num = check_int("num", num)
    if num == -1:
        num = raster.total - start
    if not (0 <= start < raster.total) or num < 1 or start + num > raster.total:
        raise ValueError(f"the query batch [start, start + num) = [{start}, {start + num}) must be a "
                         f"non-empty range inside [0, {raster.total}) (the rectangle has "
                         f"{raster.total} queries)")
    index = torch.arange(start, start + num, device=device)
    t, h, w = geo.raster_positions(index, raster.n_h, raster.n_w, raster.stride,
                                   raster.origin_h, raster.origin_w)
    return torch.stack([t, h, w], -1)[None, :, None].expand(B, num, 1, 3)


def _border_params(T, H, W, ps, pt, dilation, use_adj, border, box) -> TileParams:
    check_choice("border", border, BORDERS)
    if border == "reflect":
        return TileParams.create(T, H, W, ps, pt, dilation, use_adj, True, box)
    return TileParams.create(T, H, W, ps, pt, dilation, use_adj, False)


def iunfold(vid: Tensor, ps: int, coords=None, stride: int = 1, dilation: int = 1, pt: int = 1,
            use_adj: bool = False, only_full: bool = False, border: str = "reflect",
            start: int = 0, num: int = -1) -> Tensor:
    """Unfold the patches of a batch of raster queries of a rectangle.

    The queries of the rectangle ``coords = (top, left, btm, right)`` (half-open,
    default the whole frame) sit every ``stride`` pixels from its top-left
    corner, frame by frame, in raster order (time slowest); this call unfolds
    queries ``start .. start + num - 1``, so sweeping ``start`` gives the same
    patches as one call with memory bounded by the batch. With ``only_full``
    only positions whose whole patch fits in the rectangle are queries.

    Args:
        vid (Tensor[B, T, C, H, W]): the video.
        ps (int): patch side.
        coords (tuple or None): ``(top, left, btm, right)``. Default None (the frame).
        stride (int): query step. Default 1.
        dilation (int): default 1. pt (int): default 1.
        use_adj (bool): patch positions are top-left corners. Default False.
        only_full (bool): keep only patches inside the rectangle. Default False.
        border (str): ``"reflect"`` mirrors patch pixels at the rectangle's borders
            (the original library's default); ``"zero"`` reads the real pixels
            outside the rectangle and zero outside the frame. Default ``"reflect"``.
        start (int): first query. Default 0.
        num (int): number of queries; -1 means up to the last. Default -1.

    Returns:
        Tensor[B, num, 1, pt, C, ps, ps].

    Examples::

        >>> vid = torch.randn(1, 2, 3, 32, 32)
        >>> n = stnls.tile.num_queries(vid.shape, ps=5, coords=(4, 4, 20, 28), stride=2)
        >>> parts = [stnls.tile.iunfold(vid, 5, (4, 4, 20, 28), 2, start=s, num=min(64, n - s))
        ...          for s in range(0, n, 64)]
        >>> torch.cat(parts, 1).shape
        torch.Size([1, 192, 1, 1, 3, 5, 5])
    """
    vid = check_tensor("vid", vid, (5,))
    B, T, C, H, W = vid.shape
    raster, box = _raster(T, H, W, ps, coords, stride, dilation, use_adj, only_full)
    p = _border_params(T, H, W, ps, pt, dilation, use_adj, border, box)
    inds = _batch_inds(raster, start, num, B, vid.device)
    return ops.unfold(vid, inds, *p.as_args())


def _fold_batch(patches: Tensor, vid_shape, coords, stride, dilation, use_adj, only_full, border,
                start) -> tuple[Tensor, TileParams]:
    """Checked positions and parameters of a batch of :func:`iunfold` patches."""
    patches = check_tensor("patches", patches, (7,))
    B, T, C, H, W = _video_shape(vid_shape)
    if patches.shape[0] != B or patches.shape[2] != 1 or patches.shape[4] != C \
            or patches.shape[5] != patches.shape[6]:
        raise ValueError(f"patches must be [B, num, 1, pt, C, ps, ps] with B={B}, C={C}, got "
                         f"{tuple(patches.shape)}")
    ps, pt = patches.shape[5], patches.shape[3]
    raster, box = _raster(T, H, W, ps, coords, stride, dilation, use_adj, only_full)
    p = _border_params(T, H, W, ps, pt, dilation, use_adj, border, box)
    return _batch_inds(raster, start, patches.shape[1], B, patches.device), p


def _accumulate(out: Tensor, patches: Tensor, inds: Tensor, p: TileParams) -> Tensor:
    check_same(("out", "patches"), out, patches, "device")
    torch.ops.stnls.fold_k_accumulate_(out, patches, inds, *p.as_args())
    return out


def ifoldz(patches: Tensor, vid_shape, coords=None, stride: int = 1, dilation: int = 1,
           use_adj: bool = False, only_full: bool = False, border: str = "reflect",
           start: int = 0, out: Tensor | None = None,
           counts: Tensor | None = None) -> tuple[Tensor, Tensor]:
    """Fold a batch of :func:`iunfold` patches and count the contributions.

    Returns ``(vid, counts)``: ``vid [B, T, C, H, W]`` is the exact adjoint of
    :func:`iunfold` with the same arguments applied to ``patches`` (each element
    added where it was read), ``counts [B, T, 1, H, W]`` the number of patch
    elements added to each pixel. Sum both over the batches of a sweep and
    divide (where ``counts > 0``) to average the overlapping patches.

    Other Parameters:
        out (Tensor[B, T, C, H, W] or None): if given (contiguous float32/float64),
            the folded batch is added into it in place and it is returned; memory
            then stays bounded by the batch, however large the video. Not
            differentiable. Default None.
        counts (Tensor[B, T, 1, H, W] or None): the same for the counts. Default None.
    """
    inds, p = _fold_batch(patches, vid_shape, coords, stride, dilation, use_adj, only_full,
                          border, start)
    ones = patches.new_ones((*patches.shape[:4], 1, p.ps, p.ps))
    if out is not None:
        vid = _accumulate(out, patches.detach(), inds, p)
    else:
        vid = ops.fold(patches, inds, *p.as_args())
    if counts is not None:
        return vid, _accumulate(counts, ones, inds, p)
    return vid, ops.fold(ones, inds, *p.as_args())


def ifold(patches: Tensor, vid_shape, coords=None, stride: int = 1, dilation: int = 1,
          use_adj: bool = False, only_full: bool = False, border: str = "reflect",
          start: int = 0, normalize: str = "sum", out: Tensor | None = None) -> Tensor:
    """Fold a batch of :func:`iunfold` patches (queries ``start .. start + len - 1``).

    ``normalize="sum"`` returns the exact adjoint of :func:`iunfold` (sum over a
    sweep's batches to fold a whole rectangle); ``"count"`` divides by the
    number of elements this call added to each pixel (use :func:`ifoldz` to
    normalise over several batches). Arguments as :func:`iunfold`; ``vid_shape``
    is ``(B, T, C, H, W)``.

    Other Parameters:
        out (Tensor[B, T, C, H, W] or None): accumulate in place (see
            :func:`ifoldz`); needs ``normalize="sum"``. Default None.

    Returns:
        Tensor[B, T, C, H, W].
    """
    check_choice("normalize", normalize, NORMALIZE)
    if out is not None:
        if normalize != "sum":
            raise ValueError("ifold(out=...) accumulates sums and needs normalize='sum'")
        inds, p = _fold_batch(patches, vid_shape, coords, stride, dilation, use_adj, only_full,
                              border, start)
        return _accumulate(out, patches.detach(), inds, p)
    vid, counts = ifoldz(patches, vid_shape, coords, stride, dilation, use_adj, only_full, border,
                         start)
    return _normalise(vid, counts, normalize)


def unfold(vid: Tensor, ps: int, stride: int = 1, dilation: int = 1, pt: int = 1,
           use_adj: bool = False, only_full: bool = False, border: str = "zero", start: int = 0,
           num: int = -1) -> Tensor:
    """Full-frame :func:`iunfold` with zero borders by default.

    With ``only_full=True`` it equals ``torch.nn.functional.unfold(x, ps,
    dilation, padding=0, stride)``; with odd ``ps``, centred patches and zero
    borders it equals ``unfold`` with ``padding = dilation * (ps // 2)``.

    Returns:
        Tensor[B, num, 1, pt, C, ps, ps].
    """
    return iunfold(vid, ps, None, stride, dilation, pt, use_adj, only_full, border, start, num)


def fold(patches: Tensor, vid_shape, stride: int = 1, dilation: int = 1, use_adj: bool = False,
         only_full: bool = False, border: str = "zero", start: int = 0,
         normalize: str = "sum") -> Tensor:
    """Full-frame :func:`ifold` (the adjoint of :func:`unfold`; equals
    ``torch.nn.functional.fold`` in the same cases)."""
    return ifold(patches, vid_shape, None, stride, dilation, use_adj, only_full, border, start,
                 normalize)
