"""Ops ``stnls::non_local_search`` and ``stnls::non_local_search_backward``.

Inputs are normalised by :mod:`stnls.search`: ``vid0 [B, HD, T, C, qH, qW]``,
``vid1 [B, HD, T, C, kH, kW]``, ``flows [B, HDf, T, Wf, 2, nH, nW]`` followed by
the packed fields of :class:`stnls.params.SearchParams` (``as_args``).
"""

from __future__ import annotations

import torch
from torch import Tensor

from .. import backends
from ..params import PARAMS_SCHEMA, SearchParams
from .eager import direct_call, eager_call


def check_search_tensors(vid0: Tensor, vid1: Tensor, flows: Tensor, p: SearchParams) -> None:
    """Shape rules of the normalised inputs (eager and fake kernels alike)."""
    B, HD, T, C = vid0.shape[:4]
    if vid1.shape[:4] != vid0.shape[:4]:
        raise ValueError(f"vid0 and vid1 must share [B, HD, T, C], got {tuple(vid0.shape[:4])} "
                         f"and {tuple(vid1.shape[:4])}")
    if T < p.window_frames:
        raise ValueError(f"the video has T={T} frames; wt={p.wt} needs T >= 2*wt+1 = {p.window_frames}")
    kH, kW = vid1.shape[-2:]
    nH, nW = (kH - 1) // p.stride0 + 1, (kW - 1) // p.stride0 + 1
    W_t = p.window_frames
    if (flows.dim() != 7 or flows.shape[0] != B or flows.shape[2] != T or flows.shape[4] != 2
            or flows.shape[3] not in (W_t - 1, W_t) or tuple(flows.shape[5:]) != (nH, nW)
            or flows.shape[1] not in (1, HD)):
        raise ValueError(f"flows must be [B, T, W_t-1 or W_t, 2, nH, nW] = [{B}, {T}, {W_t - 1} or "
                         f"{W_t}, 2, {nH}, {nW}] (or with a head axis of 1 or {HD} after B), "
                         f"got {tuple(flows.shape)}")


def _output_shapes(vid0: Tensor, vid1: Tensor, p: SearchParams):
    B, HD, T = vid0.shape[:3]
    kH, kW = vid1.shape[-2:]
    shape = (B, HD, T, (kH - 1) // p.stride0 + 1, (kW - 1) // p.stride0 + 1, p.num_neighbors)
    inds_dtype = torch.int32 if p.itype == "int" else (
        torch.float64 if vid0.dtype == torch.float64 else torch.float32)
    return shape, inds_dtype


def _forward(vid0, vid1, flows, *params):
    """The search, then the finite check of ``flows``
    (:func:`~stnls.utils.checks.check_finite`: ``ValueError`` on the CPU, all-NaN ``dists``
    on a GPU, without waiting for the device; the Triton kernel folds it into its writes).
    Both backends clamp every address they read, so non-finite flows never index memory
    and the check can follow the work."""
    p = SearchParams.from_args(*params)
    check_search_tensors(vid0, vid1, flows, p)
    backend = backends.choose(vid0.device, "non_local_search")
    return backend.non_local_search(vid0, vid1, flows, p, True)


non_local_search = torch.library.custom_op(
    "stnls::non_local_search", _forward, mutates_args=(),
    schema=f"(Tensor vid0, Tensor vid1, Tensor flows, {PARAMS_SCHEMA}) -> (Tensor, Tensor)")


@non_local_search.register_fake
def _forward_fake(vid0, vid1, flows, *params):
    p = SearchParams.from_args(*params)
    check_search_tensors(vid0, vid1, flows, p)
    shape, inds_dtype = _output_shapes(vid0, vid1, p)
    return vid0.new_empty(shape), vid0.new_empty((*shape, 3), dtype=inds_dtype)


def _backward(grad_dists, grad_inds, vid0, vid1, flows, inds, flows_need_grad, *params):
    p = SearchParams.from_args(*params)
    backend = backends.choose(vid0.device, "non_local_search_backward")
    return backend.non_local_search_backward(grad_dists, grad_inds, vid0, vid1, flows, inds,
                                             flows_need_grad, p)


non_local_search_backward = torch.library.custom_op(
    "stnls::non_local_search_backward", _backward, mutates_args=(),
    schema=(f"(Tensor grad_dists, Tensor grad_inds, Tensor vid0, Tensor vid1, Tensor flows, "
            f"Tensor inds, bool flows_need_grad, {PARAMS_SCHEMA}) -> (Tensor, Tensor, Tensor)"))


@non_local_search_backward.register_fake
def _backward_fake(grad_dists, grad_inds, vid0, vid1, flows, inds, flows_need_grad, *params):
    # the kernels return contiguous gradients, whatever the inputs' strides
    return vid0.new_empty(vid0.shape), vid1.new_empty(vid1.shape), flows.new_empty(flows.shape)


def _setup_context(ctx, inputs, output):
    vid0, vid1, flows, *params = inputs
    ctx.params = params
    ctx.flows_need_grad = flows.requires_grad
    ctx.save_for_backward(vid0, vid1, flows, output[1])
    # an unused output's gradient stays None instead of a zero tensor of its size
    # (the indices alone can be several times the videos)
    ctx.set_materialize_grads(False)


_backward_call = direct_call(non_local_search_backward, _backward)


def _autograd(ctx, grad_dists, grad_inds):
    vid0, vid1, flows, inds = ctx.saved_tensors
    if grad_dists is None:
        grad_dists = vid0.new_zeros(inds.shape[:-1])
    if grad_inds is None or not grad_inds.is_floating_point():
        # a broadcast zero, which takes no memory and which backends need not copy
        grad_inds = grad_dists.new_zeros(()).expand(inds.shape)
    grads = _backward_call(grad_dists, grad_inds, vid0, vid1, flows, inds, ctx.flows_need_grad,
                           *ctx.params)
    grad_flows = grads[2] if ctx.flows_need_grad else None
    return (grads[0], grads[1], grad_flows) + (None,) * len(ctx.params)


non_local_search.register_autograd(_autograd, setup_context=_setup_context)
# The public API's call (see .eager).
search = eager_call("non_local_search", non_local_search, _forward, _setup_context, _autograd)
