"""Reference aggregation ops: gather, its adjoint scatter, and their gradients.

Normalised inputs (see :mod:`stnls._ops.agg`): ``vid [B, HD, T, C, in_h, in_w]``,
``weights [B, HD, T, nH, nW, K]``, ``flows [..., K, 3]`` relative ``(dt, dh, dw)``
(int32 for ``itype="int"``, real otherwise). The gathered tensor ``out`` is
``[B, HD, K, T, C, out_h, out_w]``, or ``[B, HD, T, C, out_h, out_w]`` with
``sum_k``.

Geometry of neighbour ``k`` of query ``(t, i, j)`` at patch element ``(pk, a, b)``,
with ``d = patch_offsets(ps, dilation, use_adj)``:

* anchor ``A = reflect((t, i*stride_in, j*stride_in) + flow)`` in t, h and w
  (always; still outside after one mirror means invalid, as does any offset
  component of magnitude >= 1e7, the "no neighbour" marker);
* source pixel ``(A_t + pk, A_h + d[a], A_w + d[b])``, mirrored into the frame
  if ``reflect_bounds`` (time too), else skipped when outside; bilinear for
  real offsets, the time offset rounded;
* destination pixel ``(t + pk, i*stride_out + d[a], j*stride_out + d[b])``,
  skipped when outside (``t + pk >= T`` included); with ``pooled`` it is
  ``(t, i*ps + a, j*ps + b)``.

``out = (sum over taps of w * source) / coverage`` where the coverage of a
destination pixel counts the (query, patch element) pairs whose destination
it is, whatever the neighbours (1 everywhere when pooled). Scatter is the
exact adjoint: ``scatter(y) = A^T (y / coverage)``.
"""

from __future__ import annotations

from typing import Iterator

import torch
from torch import Tensor

from ... import geometry as geo
from ...params import AggParams
from ...utils.checks import check_finite
from .patch_map import Tap, chunks, gather_rows, pair_gradients, scatter_rows
from .sampling import channels_last_rows, corners
from .search import _pixel, compute_dtype

# Offsets this large mark a missing neighbour (the original's "inf" test).
MISSING_OFFSET = 1e7


def _sizes(vid_shape, weights: Tensor):
    B, HD, T = weights.shape[:3]
    return B, HD, T, vid_shape[3], weights.shape[-1]


def coverage(T: int, p: AggParams, dtype, device) -> Tensor:
    """``[T, out_h, out_w, 1]``: destination pairs per output pixel (see the module doc).

    Uncovered pixels count 1: nothing is added there, so they stay 0 (no 0/0).
    """
    if p.pooled:
        return torch.ones(T, p.out_h, p.out_w, 1, dtype=dtype, device=device)
    n_h, n_w = p.grid
    offsets = geo.patch_offsets(p.ps, p.dilation, p.use_adj)
    rows = geo.patch_coverage(p.out_h, p.stride_out, n_h, offsets, device)
    cols = geo.patch_coverage(p.out_w, p.stride_out, n_w, offsets, device)
    frames = geo.patch_coverage(T, 1, T, list(range(p.pt)), device)
    counts = frames[:, None, None] * rows[:, None] * cols[None, :]
    return counts.clamp(min=1).to(dtype)[..., None]


def _taps(index: Tensor, flows: Tensor, T: int, K: int, p: AggParams, dtype) -> Iterator[Tap]:
    """Taps of the queries ``index`` (global over ``B * HD * Q``); ``flows [B*HD*Q, K, 3]``."""
    n_h, n_w = p.grid
    Q = T * n_h * n_w
    bhd = index // Q
    t, i, j = geo.decode_queries(index % Q, n_h, n_w)
    f = flows[index]
    missing = (f.abs() >= MISSING_OFFSET).any(-1)
    if p.itype == "int":
        f = f.long()
        f_t = f[..., 0]
    else:
        f = f.to(dtype)
        f_t = torch.round(f[..., 0]).long()
    anchor_t = geo.reflect(t[:, None] + f_t, T)
    raw_h = (i * p.stride_in)[:, None] + f[..., 1]
    raw_w = (j * p.stride_in)[:, None] + f[..., 2]
    anchor_h, anchor_w = geo.reflect(raw_h, p.in_h), geo.reflect(raw_w, p.in_w)
    anchor_ok = (~missing & geo.in_range(anchor_t, T) & geo.in_range(anchor_h, p.in_h)
                 & geo.in_range(anchor_w, p.in_w))
    sign_h = 1 - 2 * (~geo.in_range(raw_h, p.in_h)).to(torch.int8)
    sign_w = 1 - 2 * (~geo.in_range(raw_w, p.in_w)).to(torch.int8)
    k = torch.arange(K, device=index.device)
    plane = 0 if p.sum_k else k
    planes = 1 if p.sum_k else K
    offsets = geo.patch_offsets(p.ps, p.dilation, p.use_adj)
    for pk in range(p.pt):
        dest_t = t + pk
        src_t, src_t_ok, _ = _pixel(anchor_t + pk, T, p.reflect_bounds)
        src_frame = (bhd[:, None] * T + src_t.clamp(0, T - 1)) * (p.in_h * p.in_w)
        dest_frame = ((bhd[:, None] * planes + plane) * T + dest_t[:, None]) * (p.out_h * p.out_w)
        ok_t = anchor_ok & src_t_ok & (dest_t < T)[:, None]
        for a, dy in enumerate(offsets):
            dest_h = i * p.ps + a if p.pooled else i * p.stride_out + dy
            src_h, src_h_ok, flip_h = _pixel(anchor_h + dy, p.in_h, p.reflect_bounds)
            for b, dx in enumerate(offsets):
                dest_w = j * p.ps + b if p.pooled else j * p.stride_out + dx
                src_w, src_w_ok, flip_w = _pixel(anchor_w + dx, p.in_w, p.reflect_bounds)
                dest_ok = geo.in_range(dest_h, p.out_h) & geo.in_range(dest_w, p.out_w)
                valid = ok_t & src_h_ok & src_w_ok & dest_ok[:, None]
                dest = dest_frame + (dest_h * p.out_w + dest_w)[:, None]
                yield Tap(torch.where(valid, dest, 0), corners(src_frame, src_h, src_w, p.in_h, p.in_w, mirror=True),
                          valid, sign_h * flip_h, sign_w * flip_w)


def _flat(weights: Tensor, flows: Tensor, dtype):
    K = weights.shape[-1]
    return weights.reshape(-1, K).to(dtype), flows.reshape(-1, K, 3)


def _chunks(weights: Tensor, C: int, p: AggParams, dtype):
    K = weights.shape[-1]
    per_query = K * (C + 16) * 4 * torch.finfo(dtype).bits // 8
    return chunks(weights.numel() // K, per_query, weights.device)


def _out_rows_to_tensor(rows: Tensor, B, HD, T, C, K, p: AggParams) -> Tensor:
    planes = 1 if p.sum_k else K
    out = rows.view(B, HD, planes, T, p.out_h, p.out_w, C).permute(0, 1, 2, 3, 6, 4, 5)
    return out[:, :, 0] if p.sum_k else out


def _tensor_to_out_rows(y: Tensor, dtype, p: AggParams) -> Tensor:
    """Destination table of a gather-shaped tensor."""
    if p.sum_k:
        y = y[:, :, None]
    C = y.shape[4]
    return y.to(dtype).permute(0, 1, 2, 3, 5, 6, 4).reshape(-1, C)


def agg_gather(vid: Tensor, weights: Tensor, flows: Tensor, p: AggParams,
               check_flows: bool = False) -> Tensor:
    """``out = A vid / coverage`` (see the module doc), after which ``check_flows`` refuses
    non-finite real offsets (:func:`checked`)."""
    B, HD, T, C, K = _sizes(vid.shape, weights)
    dtype = compute_dtype(vid.dtype)
    src = channels_last_rows(vid, dtype)
    w, f = _flat(weights, flows, dtype)
    planes = 1 if p.sum_k else K
    dest = torch.zeros(B * HD * planes * T * p.out_h * p.out_w, C, dtype=dtype, device=vid.device)
    for index in _chunks(weights, C, p, dtype):
        gather_rows(src, dest, _taps(index, f, T, K, p, dtype), w[index])
    dest = dest.view(B, HD, planes, T, p.out_h, p.out_w, C) / coverage(T, p, dtype, vid.device)
    out = _out_rows_to_tensor(dest.view(-1, C), B, HD, T, C, K, p).contiguous().to(vid.dtype)
    return checked(out, flows, check_flows)


def agg_scatter(y: Tensor, weights: Tensor, flows: Tensor, p: AggParams,
                check_flows: bool = False) -> Tensor:
    """``vid = A^T (y / coverage)``: the adjoint of :func:`agg_gather` in the video (same
    ``check_flows``)."""
    B, HD, T = weights.shape[:3]
    K = weights.shape[-1]
    C = y.shape[-3]
    dtype = compute_dtype(y.dtype)
    dest = _tensor_to_out_rows(_normalised(y, T, p, dtype), dtype, p)
    w, f = _flat(weights, flows, dtype)
    out = torch.zeros(B * HD * T * p.in_h * p.in_w, C, dtype=dtype, device=y.device)
    for index in _chunks(weights, C, p, dtype):
        scatter_rows(dest, out, _taps(index, f, T, K, p, dtype), w[index])
    out = out.view(B, HD, T, p.in_h, p.in_w, C).permute(0, 1, 2, 5, 3, 4).contiguous().to(y.dtype)
    return checked(out, flows, check_flows)


def checked(out: Tensor, flows: Tensor, check_flows: bool) -> Tensor:
    """``out``, with ``check_flows`` after :func:`~stnls.utils.checks.check_finite` of real
    ``flows``: ``ValueError`` on the CPU, ``out`` NaN everywhere on a GPU."""
    if check_flows and flows.is_floating_point():
        check_finite("flows", flows, out)
    return out


def _normalised(y: Tensor, T: int, p: AggParams, dtype) -> Tensor:
    cover = coverage(T, p, dtype, y.device)[..., 0]          # [T, out_h, out_w]
    return y.to(dtype) / cover[:, None]


def agg_pair_grads(y: Tensor, vid: Tensor, weights: Tensor, flows: Tensor, want_flows: bool,
                   p: AggParams) -> tuple[Tensor, Tensor]:
    """Gradients of ``<y, agg_gather(vid, weights, flows)>`` by ``weights`` and ``flows``.

    ``grad_flows[..., 0]`` (time) is 0; ``grad_flows`` is all zeros for ``itype="int"``
    and an empty tensor without ``want_flows``.
    """
    B, HD, T, C, K = _sizes(vid.shape, weights)
    dtype = compute_dtype(vid.dtype)
    dest = _tensor_to_out_rows(_normalised(y, T, p, dtype), dtype, p)
    src = channels_last_rows(vid, dtype)
    w, f = _flat(weights, flows, dtype)
    offsets = want_flows and p.itype == "float"
    grad_w = torch.zeros_like(w)
    grad_f = torch.zeros(w.shape + (3,), dtype=dtype, device=vid.device)
    for index in _chunks(weights, C, p, dtype):
        g_w, g_y, g_x = pair_gradients(dest, src, _taps(index, f, T, K, p, dtype), w[index], offsets)
        grad_w[index] = g_w
        if offsets:
            grad_f[index, :, 1], grad_f[index, :, 2] = g_y, g_x
    flows_dtype = flows.dtype if flows.is_floating_point() else weights.dtype
    grad_f = (grad_f.view(flows.shape).to(flows_dtype) if want_flows
              else flows.new_empty(0, dtype=flows_dtype))
    return grad_w.view(weights.shape).to(weights.dtype), grad_f


def agg_gather_backward(y: Tensor, vid: Tensor, weights: Tensor, flows: Tensor, want_vid: bool,
                        want_flows: bool, p: AggParams) -> tuple[Tensor, Tensor, Tensor]:
    """Gradients of ``<y, agg_gather(vid, weights, flows)>``: ``(grad_vid, grad_weights,
    grad_flows)``, the first :func:`agg_scatter` of ``y`` (an empty tensor without
    ``want_vid``), the others :func:`agg_pair_grads`."""
    grad_w, grad_f = agg_pair_grads(y, vid, weights, flows, want_flows, p)
    grad_vid = agg_scatter(y, weights, flows, p) if want_vid else vid.new_empty(0)
    return grad_vid, grad_w, grad_f
