"""Ops ``stnls::agg_gather``, ``stnls::agg_scatter``, ``stnls::agg_pair_grads`` and
``stnls::agg_gather_backward``.

``agg_gather(vid, weights, flows, *AggParams, check_flows=True)`` stacks (or,
with ``sum_k``, sums) the weighted neighbour patches of every query into videos
normalised by their coverage; ``agg_scatter`` is its exact adjoint in the video
(same arguments); ``check_flows`` refuses non-finite real offsets (the backward
passes, whose offsets were checked by the forward, skip it); and
``agg_pair_grads(y, vid, ..., want_flows)`` differentiates ``<y, agg_gather(vid, ...)>``
by the weights and (an empty tensor without ``want_flows``) the offsets;
``agg_gather_backward`` returns the scatter and the pair gradients of one upstream
gradient together (one pass over the pairs on the GPU), the gather's backward. The
scatter's backward is made of the pair gradients and the gather.
Inputs are normalised by :mod:`stnls.agg`: ``vid [B, HD, T, C, in_h, in_w]``,
``weights [B, HD, T, nH, nW, K]``, ``flows [B, HD, T, nH, nW, K, 3]``.
"""

from __future__ import annotations

import torch
from torch import Tensor

from .. import backends
from ..params import PARAMS_SCHEMA, AggParams
from .eager import direct_call, eager_call

_N_PARAMS = len(PARAMS_SCHEMA.split(","))


def gathered_shape(B: int, HD: int, T: int, C: int, K: int, p: AggParams) -> tuple[int, ...]:
    """Shape of ``agg_gather``'s output."""
    if p.sum_k:
        return (B, HD, T, C, p.out_h, p.out_w)
    return (B, HD, K, T, C, p.out_h, p.out_w)


def check_agg_tensors(vid_shape, weights: Tensor, flows: Tensor, p: AggParams) -> None:
    """Shape and dtype rules shared by the eager and fake kernels.

    ``vid_shape`` is the ``[B, HD, T, C, H, W]`` of the video being read (gather)
    or written (scatter).
    """
    B, HD, T, C, H, W = vid_shape
    if (H, W) != (p.in_h, p.in_w):
        raise ValueError(f"the video is {H}x{W} but the parameters expect {p.in_h}x{p.in_w}")
    n_h, n_w = p.grid
    if weights.dim() != 6 or tuple(weights.shape[:5]) != (B, HD, T, n_h, n_w):
        raise ValueError(f"weights must be [B, HD, T, nH, nW, K] = [{B}, {HD}, {T}, {n_h}, {n_w}, K] "
                         f"(query grid of a {H}x{W} video at stride0={p.stride_in}), got "
                         f"{tuple(weights.shape)}")
    if tuple(flows.shape) != (*weights.shape, 3):
        raise ValueError(f"flows must be [B, HD, T, nH, nW, K, 3] = {[*weights.shape, 3]}, got "
                         f"{tuple(flows.shape)}")
    if p.itype == "int" and flows.dtype != torch.int32:
        raise TypeError(f"itype='int' needs int32 flows, got {flows.dtype}")
    if p.itype == "float" and not flows.is_floating_point():
        raise TypeError(f"itype='float' needs floating-point flows, got {flows.dtype}")
    if not weights.is_floating_point():
        raise TypeError(f"weights must have a floating-point dtype, got {weights.dtype}")


def _gather_params(vid: Tensor, weights: Tensor, flows: Tensor, params) -> AggParams:
    """Checked parameters of a gather (eager and fake)."""
    p = AggParams.from_args(*params)
    check_agg_tensors(vid.shape, weights, flows, p)
    return p


def _scatter_params(y: Tensor, weights: Tensor, flows: Tensor, params) -> AggParams:
    """Checked parameters of a scatter: ``y`` must have the gather's output shape."""
    p = AggParams.from_args(*params)
    B, HD, T = weights.shape[:3]
    expected = gathered_shape(B, HD, T, y.shape[-3], weights.shape[-1], p)
    if tuple(y.shape) != expected:
        raise ValueError(f"the gathered tensor must be {list(expected)}, got {tuple(y.shape)}")
    check_agg_tensors((B, HD, T, y.shape[-3], p.in_h, p.in_w), weights, flows, p)
    return p


def _run(op: str, first: Tensor, check_flows: bool, *args) -> Tensor:
    """Run ``op`` on ``first``'s backend, which (``check_flows``) refuses non-finite real
    offsets (:func:`~stnls.utils.checks.check_finite`: ``ValueError`` on the CPU, an
    all-NaN result on a GPU, without waiting for the device).

    Every backend masks neighbours whose offsets are not finite (they never index
    memory), so the check runs after the work is queued (the Triton kernels fold it into
    their last write). The ops' own backward passes skip it (their flows were checked by
    the forward).
    """
    return getattr(backends.choose(first.device, op), op)(*args, check_flows)


# -- gather and scatter --------------------------------------------------------------------------


def _split(params_and_check) -> tuple[tuple, bool]:
    """The parameter fields and ``check_flows`` (True when the caller left it out)."""
    check = params_and_check[_N_PARAMS] if len(params_and_check) > _N_PARAMS else True
    return params_and_check[:_N_PARAMS], bool(check)


def _gather(vid, weights, flows, *params_and_check):
    params, check_flows = _split(params_and_check)
    p = _gather_params(vid, weights, flows, params)
    return _run("agg_gather", vid, check_flows, vid, weights, flows, p)


def _scatter(y, weights, flows, *params_and_check):
    params, check_flows = _split(params_and_check)
    p = _scatter_params(y, weights, flows, params)
    return _run("agg_scatter", y, check_flows, y, weights, flows, p)


_SIGNATURE = f"Tensor weights, Tensor flows, {PARAMS_SCHEMA}, bool check_flows=True) -> Tensor"
agg_gather = torch.library.custom_op("stnls::agg_gather", _gather, mutates_args=(),
                                     schema=f"(Tensor vid, {_SIGNATURE}")
agg_scatter = torch.library.custom_op("stnls::agg_scatter", _scatter, mutates_args=(),
                                      schema=f"(Tensor y, {_SIGNATURE}")


@agg_gather.register_fake
def _gather_fake(vid, weights, flows, *params_and_check):
    p = _gather_params(vid, weights, flows, _split(params_and_check)[0])
    B, HD, T, C = vid.shape[:4]
    return vid.new_empty(gathered_shape(B, HD, T, C, weights.shape[-1], p))


@agg_scatter.register_fake
def _scatter_fake(y, weights, flows, *params_and_check):
    p = _scatter_params(y, weights, flows, _split(params_and_check)[0])
    B, HD, T = weights.shape[:3]
    return y.new_empty((B, HD, T, y.shape[-3], p.in_h, p.in_w))


# -- gradients by weights and offsets ------------------------------------------------------------


def _pair_grads(y, vid, weights, flows, want_flows, *params):
    p = AggParams.from_args(*params)
    return backends.choose(vid.device, "agg_pair_grads").agg_pair_grads(
        y, vid, weights, flows, want_flows, p)


agg_pair_grads = torch.library.custom_op(
    "stnls::agg_pair_grads", _pair_grads, mutates_args=(),
    schema=(f"(Tensor y, Tensor vid, Tensor weights, Tensor flows, bool want_flows, "
            f"{PARAMS_SCHEMA}) -> (Tensor, Tensor)"))


@agg_pair_grads.register_fake
def _pair_grads_fake(y, vid, weights, flows, want_flows, *params):
    flows_dtype = flows.dtype if flows.is_floating_point() else weights.dtype
    return torch.empty_like(weights), flows.new_empty(flows.shape if want_flows else 0,
                                                      dtype=flows_dtype)


def _gather_backward_op(y, vid, weights, flows, want_vid, want_flows, *params):
    p = AggParams.from_args(*params)
    return backends.choose(vid.device, "agg_gather_backward").agg_gather_backward(
        y, vid, weights, flows, want_vid, want_flows, p)


agg_gather_backward = torch.library.custom_op(
    "stnls::agg_gather_backward", _gather_backward_op, mutates_args=(),
    schema=(f"(Tensor y, Tensor vid, Tensor weights, Tensor flows, bool want_vid, "
            f"bool want_flows, {PARAMS_SCHEMA}) -> (Tensor, Tensor, Tensor)"))


@agg_gather_backward.register_fake
def _gather_backward_fake(y, vid, weights, flows, want_vid, want_flows, *params):
    grad_w, grad_f = _pair_grads_fake(y, vid, weights, flows, want_flows, *params)
    grad_vid = y.new_empty(vid.shape) if want_vid else vid.new_empty(0)
    return grad_vid, grad_w, grad_f


# -- autograd ----------------------------------------------------------------------------------


def _setup(ctx, inputs, output):
    first, weights, flows, *params_and_check = inputs
    ctx.params = _split(params_and_check)[0]
    ctx.flows_need_grad = flows.requires_grad
    ctx.save_for_backward(first, weights, flows)


def _offset_grad(ctx, grad_flows):
    return grad_flows if ctx.flows_need_grad else None


def _no_grads(ctx) -> tuple:
    """Gradients of the parameters and of ``check_flows``."""
    return (None,) * (_N_PARAMS + 1)


_gather_call = direct_call(agg_gather, _gather)
_pair_grads_call = direct_call(agg_pair_grads, _pair_grads)
_gather_backward_call = direct_call(agg_gather_backward, _gather_backward_op)


def _gather_backward(ctx, grad):
    vid, weights, flows = ctx.saved_tensors
    want_vid = ctx.needs_input_grad[0]
    grad_vid, grad_w, grad_f = _gather_backward_call(grad, vid, weights, flows, want_vid,
                                                     ctx.flows_need_grad, *ctx.params)
    return (grad_vid if want_vid else None, grad_w, _offset_grad(ctx, grad_f)) + _no_grads(ctx)


def _scatter_backward(ctx, grad):
    y, weights, flows = ctx.saved_tensors
    grad_w, grad_f = _pair_grads_call(y, grad, weights, flows, ctx.flows_need_grad, *ctx.params)
    grad_y = (_gather_call(grad, weights, flows, *ctx.params, False)
              if ctx.needs_input_grad[0] else None)
    return (grad_y, grad_w, _offset_grad(ctx, grad_f)) + _no_grads(ctx)


agg_gather.register_autograd(_gather_backward, setup_context=_setup)
agg_scatter.register_autograd(_scatter_backward, setup_context=_setup)
# The public API's calls (see .eager): every schema argument, check_flows included.
gather = eager_call("agg_gather", agg_gather, _gather, _setup, _gather_backward)
scatter = eager_call("agg_scatter", agg_scatter, _scatter, _setup, _scatter_backward)
