"""Ops ``stnls::unfold_k`` and ``stnls::fold_k`` (exact adjoints of each other).

``unfold_k(vid, inds, *TileParams)`` reads ``patches [B, Q, K, pt, C, ps, ps]``
at absolute integer positions ``inds [B, Q, K, 3]`` of ``vid [B, T, C, H, W]``;
``fold_k(patches, inds, *TileParams)`` adds them back into a video. The
batched ``iunfold``/``ifold`` of :mod:`stnls.tile` are these ops at raster
positions.
"""

from __future__ import annotations

import torch
from torch import Tensor

from .. import backends
from ..params import PARAMS_SCHEMA, TileParams
from .eager import direct_call, eager_call


def check_inds(inds: Tensor, B: int) -> None:
    """``inds`` must be an integer ``[B, Q, K, 3]`` tensor."""
    if inds.dim() != 4 or inds.shape[0] != B or inds.shape[-1] != 3:
        raise ValueError(f"inds must be [B, Q, K, 3] = [{B}, Q, K, 3] absolute (t, h, w), "
                         f"got {tuple(inds.shape)}")
    if inds.dtype not in (torch.int32, torch.int64):
        raise TypeError(f"inds must be int32 or int64 absolute positions, got {inds.dtype}")


def check_video(name: str, vid: Tensor, p: TileParams) -> None:
    if vid.dim() != 5 or (vid.shape[1], vid.shape[3], vid.shape[4]) != (p.T, p.H, p.W):
        raise ValueError(f"{name} must be [B, T, C, H, W] with T, H, W = {p.T}, {p.H}, {p.W}, "
                         f"got {tuple(vid.shape)}")


def check_patches(patches: Tensor, inds: Tensor, p: TileParams) -> None:
    B, Q, K = inds.shape[:3]
    if (patches.dim() != 7 or tuple(patches.shape[:4]) != (B, Q, K, p.pt)
            or tuple(patches.shape[5:]) != (p.ps, p.ps)):
        raise ValueError(f"patches must be [B, Q, K, pt, C, ps, ps] = [{B}, {Q}, {K}, {p.pt}, C, "
                         f"{p.ps}, {p.ps}], got {tuple(patches.shape)}")


def check_positions(inds: Tensor, p: TileParams) -> None:
    """Every position must lie in the video (eager only: it reads the values)."""
    if inds.numel() == 0:
        return
    low = inds.amin(dim=(0, 1, 2))
    high = inds.amax(dim=(0, 1, 2))
    for axis, name, size in ((0, "t", p.T), (1, "h", p.H), (2, "w", p.W)):
        if int(low[axis]) < 0 or int(high[axis]) >= size:
            raise ValueError(f"inds[..., {axis}] ({name}) must lie in [0, {size - 1}], got values in "
                             f"[{int(low[axis])}, {int(high[axis])}]")


def _unfold_params(vid: Tensor, inds: Tensor, params) -> TileParams:
    p = TileParams.from_args(*params)
    check_video("vid", vid, p)
    check_inds(inds, vid.shape[0])
    return p


def _fold_params(patches: Tensor, inds: Tensor, params, out: Tensor | None = None) -> TileParams:
    p = TileParams.from_args(*params)
    check_inds(inds, patches.shape[0])
    check_patches(patches, inds, p)
    if out is not None:
        check_accumulator(out, patches, p)
    return p


def _backend(first: Tensor, inds: Tensor, p: TileParams, op: str):
    check_positions(inds, p)
    return getattr(backends.choose(first.device, op), op)


def _unfold(vid, inds, *params):
    p = _unfold_params(vid, inds, params)
    return _backend(vid, inds, p, "unfold_k")(vid, inds, p)


def _fold(patches, inds, *params):
    p = _fold_params(patches, inds, params)
    return _backend(patches, inds, p, "fold_k")(patches, inds, p)


def _fold_accumulate(out, patches, inds, *params):
    p = _fold_params(patches, inds, params, out)
    _backend(out, inds, p, "fold_k_accumulate_")(out, patches, inds, p)


unfold_k = torch.library.custom_op("stnls::unfold_k", _unfold, mutates_args=(),
                                   schema=f"(Tensor vid, Tensor inds, {PARAMS_SCHEMA}) -> Tensor")
fold_k = torch.library.custom_op("stnls::fold_k", _fold, mutates_args=(),
                                 schema=f"(Tensor patches, Tensor inds, {PARAMS_SCHEMA}) -> Tensor")
fold_k_accumulate_ = torch.library.custom_op(
    "stnls::fold_k_accumulate_", _fold_accumulate, mutates_args=("out",),
    schema=f"(Tensor(a!) out, Tensor patches, Tensor inds, {PARAMS_SCHEMA}) -> ()")


@unfold_k.register_fake
def _unfold_fake(vid, inds, *params):
    p = _unfold_params(vid, inds, params)
    B, Q, K = inds.shape[:3]
    return vid.new_empty((B, Q, K, p.pt, vid.shape[2], p.ps, p.ps))


@fold_k.register_fake
def _fold_fake(patches, inds, *params):
    p = _fold_params(patches, inds, params)
    return patches.new_empty((patches.shape[0], p.T, patches.shape[4], p.H, p.W))


@fold_k_accumulate_.register_fake
def _fold_accumulate_fake(out, patches, inds, *params):
    _fold_params(patches, inds, params, out)


def check_accumulator(out: Tensor, patches: Tensor, p: TileParams) -> None:
    """``out`` must be a contiguous float32/float64 ``[B, T, C, H, W]`` video."""
    expected = (patches.shape[0], p.T, patches.shape[4], p.H, p.W)
    if tuple(out.shape) != expected:
        raise ValueError(f"out must be [B, T, C, H, W] = {list(expected)}, got {tuple(out.shape)}")
    if out.dtype not in (torch.float32, torch.float64) or not out.is_contiguous():
        raise ValueError(f"out must be a contiguous float32 or float64 tensor, got {out.dtype}"
                         f"{'' if out.is_contiguous() else ' (not contiguous)'}")


def _setup(ctx, inputs, output):
    ctx.params = inputs[2:]
    ctx.save_for_backward(inputs[1])


_unfold_call = direct_call(unfold_k, _unfold)
_fold_call = direct_call(fold_k, _fold)


def _unfold_backward(ctx, grad):
    (inds,) = ctx.saved_tensors
    return (_fold_call(grad, inds, *ctx.params), None) + (None,) * len(ctx.params)


def _fold_backward(ctx, grad):
    (inds,) = ctx.saved_tensors
    return (_unfold_call(grad, inds, *ctx.params), None) + (None,) * len(ctx.params)


unfold_k.register_autograd(_unfold_backward, setup_context=_setup)
fold_k.register_autograd(_fold_backward, setup_context=_setup)
# The public API's calls (see .eager).
unfold = eager_call("unfold_k", unfold_k, _unfold, _setup, _unfold_backward)
fold = eager_call("fold_k", fold_k, _fold, _setup, _fold_backward)
