"""Reference non-local search: the readable definition, and the CPU backend.

Forward: for a chunk of queries, score every candidate of the space-time
window without autograd, apply ``self_action``, keep the top ``k``. Backward:
for the kept neighbours only, scatter the distance gradients into the two
videos and, on the float path, the flows (explicit formulas, the adjoint of
the forward's reads). Queries are processed in chunks sized from a memory
budget, so peak memory is O(chunk x candidates), never O(queries x candidates).

Tensors here are already normalised by the op layer:
``vid0 [B, HD, T, C, qH, qW]``, ``vid1 [B, HD, T, C, kH, kW]``,
``flows [B, HDf, T, Wf, 2, nH, nW]`` with ``Wf`` in ``{W_t - 1, W_t}``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Iterator, NamedTuple

import torch
import torch.nn.functional as F
from torch import Tensor

from ... import geometry as geo
from ...params import UNWRITTEN_IND, SearchParams
from ...utils.checks import check_finite
from ...utils.env import chunk_size
from .sampling import (Corner, axis_index, channels_last_rows, corners, read, read_gradient,
                       rows_to_video, write_add)


def compute_dtype(dtype: torch.dtype) -> torch.dtype:
    """Accumulation dtype: float64 for float64 inputs, else float32."""
    return torch.float64 if dtype == torch.float64 else torch.float32


@dataclass(frozen=True)
class Layout:
    """Sizes of one search call."""

    B: int
    HD: int
    T: int
    C: int
    qH: int
    qW: int
    kH: int
    kW: int
    nH: int
    nW: int
    HDf: int
    Wf: int

    @classmethod
    def of(cls, vid0: Tensor, vid1: Tensor, flows: Tensor) -> "Layout":
        B, HD, T, C, qH, qW = vid0.shape
        kH, kW = vid1.shape[-2:]
        HDf, Wf, nH, nW = flows.shape[1], flows.shape[3], flows.shape[5], flows.shape[6]
        return cls(B, HD, T, C, qH, qW, kH, kW, nH, nW, HDf, Wf)

    @property
    def queries(self) -> int:
        """Queries per (batch, head)."""
        return self.T * self.nH * self.nW


class Queries(NamedTuple):
    """Decoded positions of a chunk of queries (each ``[N]``)."""

    bhd: Tensor      # batch * HD + head
    flow_head: Tensor  # batch * HDf + head % HDf
    t: Tensor
    nh: Tensor
    nw: Tensor
    key_h: Tensor    # search base in vid1: nh * stride0
    key_w: Tensor
    query_h: Tensor  # query pixel in vid0: (nh * strideQ) % qH
    query_w: Tensor


def decode(index: Tensor, L: Layout, p: SearchParams) -> Queries:
    """Positions of the queries with global indices ``index`` (over ``B * HD * Q``)."""
    bhd = index // L.queries
    t, nh, nw = geo.decode_queries(index % L.queries, L.nH, L.nW)
    flow_head = (bhd // L.HD) * L.HDf + (bhd % L.HD) % L.HDf
    return Queries(bhd, flow_head, t, nh, nw, nh * p.stride0, nw * p.stride0,
                   (nh * p.strideQ) % L.qH, (nw * p.strideQ) % L.qW)


def query_flows(flows: Tensor, Qs: Queries, L: Layout) -> Tensor:
    """Flows of each query, one per flow slot: ``[N, Wf, 2]``."""
    flows = flows.reshape(L.B * L.HDf, L.T, L.Wf, 2, L.nH, L.nW)
    return flows[Qs.flow_head, Qs.t, :, :, Qs.nh, Qs.nw]


def slot_anchors(flows: Tensor, Qs: Queries, L: Layout, p: SearchParams, dtype) -> tuple[Tensor, Tensor, Tensor]:
    """Frame and search centre of every temporal slot: three ``[N, W_t]`` tensors.

    The centre is the flow-displaced query position, reflected into the key
    video (integer on the int path, real on the float path).
    """
    slots = torch.arange(p.window_frames, device=Qs.t.device)
    frames = geo.frame_of_slot(Qs.t[:, None], slots, p.wt, L.T)
    f = query_flows(flows, Qs, L).to(dtype)
    f = F.pad(f, (0, 0, p.window_frames - L.Wf, 0))  # slot 0 has no flow when Wf = W_t - 1
    anchor_h = geo.reflect(Qs.key_h[:, None].to(dtype) + f[..., 1], L.kH)
    anchor_w = geo.reflect(Qs.key_w[:, None].to(dtype) + f[..., 0], L.kW)
    return frames, anchor_h, anchor_w


def step1(p: SearchParams):
    """Window step in the position dtype (an int on the int path)."""
    return int(p.stride1) if p.itype == "int" else p.stride1


def candidate_axis(anchor: Tensor, interior: Tensor | None, size: int, p: SearchParams) -> tuple[Tensor, Tensor]:
    """Candidate positions along one axis ``[N, W_t, ws]`` and which were written ``[N, 1, ws]``.

    With ``ws_interior < ws``, queries off the last grid row and column search
    only a ``ws_interior`` window, written at the first positions.
    """
    positions = geo.window_positions(anchor, step1(p), p.ws, size, p.full_ws)
    written = torch.ones(positions.shape[0], 1, p.ws, dtype=torch.bool, device=anchor.device)
    if interior is None:
        return positions, written
    small = geo.window_positions(anchor, step1(p), p.ws_interior, size, p.full_ws)
    small = torch.cat([small, small[..., :1].expand(*small.shape[:-1], p.ws - p.ws_interior)], -1)
    positions = torch.where(interior[:, None, None], small, positions)
    first = torch.arange(p.ws, device=anchor.device) < p.ws_interior
    written = (~interior[:, None, None]) | first
    return positions, written


# ---------------------------------------------------------------------------------------------
# patch pixels


class PixelPair(NamedTuple):
    """One patch pixel of a query patch and of its candidate patches."""

    query_row: Tensor        # [N] row of the query pixel in the vid0 table
    valid: Tensor            # both pixels inside their video (broadcast shape)
    key_corners: list[Corner]
    key_sign_y: Tensor       # -1 where the key pixel row was reflected, else 1
    key_sign_x: Tensor


def _pixel(v: Tensor, size: int, reflect_bounds: bool) -> tuple[Tensor, Tensor, Tensor]:
    """Reflected (or raw) pixel coordinate, whether it is inside, and d(out)/d(v)."""
    if not reflect_bounds:
        return v, geo.in_range(v, size), torch.ones_like(v, dtype=torch.int8)
    out = geo.reflect(v, size)
    sign = 1 - 2 * (~geo.in_range(v, size)).to(torch.int8)
    return out, geo.in_range(out, size), sign


def _trailing(x: Tensor, rank: int) -> Tensor:
    return x.view(-1, *([1] * (rank - 1)))


def pixel_pairs(Qs: Queries, frames: Tensor, rows: Tensor, cols: Tensor, L: Layout,
                p: SearchParams) -> Iterator[PixelPair]:
    """Walk the ``pt * ps * ps`` pixels of the query patch and of its candidates.

    ``frames``, ``rows`` and ``cols`` give the candidates' key frame and patch
    position; they broadcast to the pair shape ``[N, ...]``.
    """
    rank = max(frames.dim(), rows.dim(), cols.dim())
    offsets = geo.patch_offsets(p.ps, p.dilation, p.use_adj)
    bhd = _trailing(Qs.bhd, rank)
    for pk in range(p.pt):
        query_t = geo.reflect(Qs.t + pk, L.T)
        key_t = geo.reflect(frames + pk, L.T)
        time_ok = _trailing(geo.in_range(query_t, L.T), rank) & geo.in_range(key_t, L.T)
        query_frame = (Qs.bhd * L.T + query_t.clamp(0, L.T - 1)) * (L.qH * L.qW)
        key_frame = (bhd * L.T + key_t.clamp(0, L.T - 1)) * (L.kH * L.kW)
        for dy in offsets:
            qy, qy_ok, _ = _pixel(Qs.query_h + p.off_Hq + dy, L.qH, p.reflect_bounds)
            ky, ky_ok, sign_y = _pixel(rows + dy, L.kH, p.reflect_bounds)
            for dx in offsets:
                qx, qx_ok, _ = _pixel(Qs.query_w + p.off_Wq + dx, L.qW, p.reflect_bounds)
                kx, kx_ok, sign_x = _pixel(cols + dx, L.kW, p.reflect_bounds)
                query_row = query_frame + qy.clamp(0, L.qH - 1) * L.qW + qx.clamp(0, L.qW - 1)
                valid = time_ok & _trailing(qy_ok & qx_ok, rank) & ky_ok & kx_ok
                yield PixelPair(query_row, valid, corners(key_frame, ky, kx, L.kH, L.kW),
                                sign_y, sign_x)


def patch_distances(vid0_rows: Tensor, vid1_rows: Tensor, Qs: Queries, frames: Tensor,
                    rows: Tensor, cols: Tensor, L: Layout, p: SearchParams) -> Tensor:
    """Patch distances between each query and its candidates (pair shape).

    l2 sums ``(v0 - v1)^2`` and prod sums ``v0 * v1`` over the patch pixels and
    channels; a pixel pair where either pixel falls outside its video adds 0.
    ``frames``, ``rows`` and ``cols`` broadcast to the pair shape ``[N, ...]``.

    Bilinear samples of neighbouring patch pixels share corners, so the key
    values are read once per corner row and interpolated along columns, then
    along rows (the same values as :func:`pixel_pairs`, fewer reads). The corners of
    the unreflected position are mirrored one by one, which equals sampling at the
    mirrored position (the frame is symmetric about its edge pixels).
    """
    shape = torch.broadcast_shapes(frames.shape, rows.shape, cols.shape)
    rank, C = len(shape), vid0_rows.shape[1]
    dist = torch.zeros(shape, dtype=vid0_rows.dtype, device=vid0_rows.device)
    offsets = geo.patch_offsets(p.ps, p.dilation, p.use_adj)
    bilinear = rows.is_floating_point()
    row0, col0 = (torch.floor(rows).long(), torch.floor(cols).long()) if bilinear else (rows, cols)
    # lerp is several times faster with dense weights than with broadcast ones
    frac_y = (rows - row0)[..., None].expand(*shape, C).contiguous() if bilinear else None
    frac_x = (cols - col0)[..., None].expand(*shape, C).contiguous() if bilinear else None
    corner_steps = (0, 1) if bilinear else (0,)
    col_shifts = sorted({dx + step for dx in offsets for step in corner_steps})
    col_index = {v: axis_index(col0 + v, L.kW, p.reflect_bounds)[0] for v in col_shifts}
    for pk in range(p.pt):
        query_t = geo.reflect(Qs.t + pk, L.T)
        key_t = geo.reflect(frames + pk, L.T)
        time_ok = _trailing(geo.in_range(query_t, L.T), rank) & geo.in_range(key_t, L.T)
        query_frame = (Qs.bhd * L.T + query_t.clamp(0, L.T - 1)) * (L.qH * L.qW)
        key_frame = (_trailing(Qs.bhd, rank) * L.T + key_t.clamp(0, L.T - 1)) * (L.kH * L.kW)
        lines = {}

        def line(shift):
            """Key values of corner row ``row0 + shift``, interpolated along columns."""
            if shift not in lines:
                base = key_frame + axis_index(row0 + shift, L.kH, p.reflect_bounds)[0] * L.kW
                samples = {v: F.embedding(base + col_index[v], vid1_rows) for v in col_shifts}
                lines[shift] = {dx: samples[dx].lerp(samples[dx + 1], frac_x) if bilinear else samples[dx]
                                for dx in offsets}
            return lines[shift]

        for dy in offsets:
            qy, qy_ok, _ = _pixel(Qs.query_h + p.off_Hq + dy, L.qH, p.reflect_bounds)
            row_ok = time_ok & _pixel(rows + dy, L.kH, p.reflect_bounds)[1]
            top, bottom = line(dy), line(dy + 1) if bilinear else None
            for shift in [s for s in lines if s < dy]:
                del lines[shift]
            for dx in offsets:
                qx, qx_ok, _ = _pixel(Qs.query_w + p.off_Wq + dx, L.qW, p.reflect_bounds)
                query_row = query_frame + qy.clamp(0, L.qH - 1) * L.qW + qx.clamp(0, L.qW - 1)
                query_value = F.embedding(query_row, vid0_rows).view(-1, *([1] * (rank - 1)), C)
                key_value = top[dx].lerp(bottom[dx], frac_y) if bilinear else top[dx]
                if p.dist_type == "l2":
                    term = (key_value - query_value).square_().sum(-1)
                else:
                    term = (key_value * query_value).sum(-1)
                valid = row_ok & _trailing(qy_ok & qx_ok, rank) & _pixel(cols + dx, L.kW, p.reflect_bounds)[1]
                dist += term if bool(valid.all()) else torch.where(valid, term, 0)
    return dist


# ---------------------------------------------------------------------------------------------
# self_action and top-k


def _move_to_front(dists: Tensor, inds: Tensor, pos: Tensor, target: Tensor, apply: Tensor) -> tuple[Tensor, Tensor]:
    """Swap candidate ``pos`` to position 0 and write ``target`` as its index.

    ``dists [M, S]``, ``inds [M, S, 3]``, ``pos [M]``, ``target [M, 3]``; rows
    where ``apply`` is False are left alone. The old entry 0 moves to ``pos``.
    """
    pos = torch.where(apply, pos, 0)
    dists, inds = dists.clone(), inds.clone()
    first_dist, first_ind = dists[:, 0].clone(), inds[:, 0].clone()
    rows = torch.arange(dists.shape[0], device=dists.device)
    found_dist = dists[rows, pos]
    dists[rows, pos] = first_dist
    dists[:, 0] = found_dist
    inds[rows, pos] = first_ind
    inds[:, 0] = torch.where(apply[:, None], target.to(inds.dtype), inds[:, 0])
    return dists, inds


def anchor(dists: Tensor, inds: Tensor, target: Tensor, exact: bool) -> tuple[Tensor, Tensor]:
    """Move the candidate equal to ``target`` (``[M, 3]``) to position 0 of each row.

    Integer indices need an exact match (no match: nothing moves). Real indices
    take the first candidate within 1e-8 in L1, else the nearest one (if closer
    than 10000), and its index is then written as ``target`` exactly.
    """
    l1 = (inds - target[:, None].to(inds.dtype)).abs().sum(-1)
    if exact:
        match = l1 == 0
        return _move_to_front(dists, inds, match.int().argmax(-1), target, match.any(-1))
    close = l1 < 1e-8
    nearest = l1.argmin(-1)
    nearest = torch.where(l1.gather(1, nearest[:, None])[:, 0] < 10000, nearest, 0)
    pos = torch.where(close.any(-1), close.int().argmax(-1), nearest)
    return _move_to_front(dists, inds, pos, target, torch.ones_like(pos, dtype=torch.bool))


def topk(dists: Tensor, inds: Tensor, k: int, descending: bool, anchored: bool) -> tuple[Tensor, Tensor]:
    """Best ``min(k, S)`` of ``dists [M, S]`` (all if ``k <= 0``); with ``anchored``
    position 0 stays first. Ties keep window order (stable sort)."""
    if k <= 0:
        return dists, inds
    first = int(anchored)
    order = torch.sort(dists[:, first:], dim=1, descending=descending, stable=True).indices
    order = order[:, : max(k - first, 0)] + first
    if anchored:
        order = torch.cat([order.new_zeros(order.shape[0], 1), order], 1)
    return dists.gather(1, order), inds.gather(1, order[..., None].expand(-1, -1, 3))


def select(dists: Tensor, inds: Tensor, targets: Tensor, p: SearchParams) -> tuple[Tensor, Tensor]:
    """Apply ``self_action`` then top-k to one chunk.

    ``dists [N, W_t, S1]``, ``inds [N, W_t, S1, 3]`` (``S1 = ws * ws``, window
    order) and ``targets [N, W_t, 3]``, each slot's centre as a relative index.
    Returns ``[N, K]`` and ``[N, K, 3]``.
    """
    N, exact = dists.shape[0], not inds.is_floating_point()
    action = p.self_action
    if p.drops_ref_frame:
        dists, inds, targets = dists[:, 1:], inds[:, 1:], targets[:, 1:]
    slots, S1 = dists.shape[1], dists.shape[2]
    if action in ("anchor", "anchor_self", "remove"):
        flat = anchor(dists.reshape(N, -1), inds.reshape(N, -1, 3), torch.zeros_like(targets[:, 0]), exact)
        dists, inds = flat[0].view(N, slots, S1), flat[1].view(N, slots, S1, 3)
    elif action in ("anchor_each", "anchor_and_remove_ref_frame"):
        each = anchor(dists.reshape(-1, S1), inds.reshape(-1, S1, 3), targets.reshape(-1, 3), exact)
        dists, inds = each[0].view(N, slots, S1), each[1].view(N, slots, S1, 3)

    if p.topk_mode == "each" and p.k > 0:
        kept = [topk(dists[:, s], inds[:, s], p.k, p.descending,
                     p.anchored and (s == 0 or action not in ("anchor", "anchor_self")))
                for s in range(slots)]
        return torch.cat([d for d, _ in kept], 1), torch.cat([i for _, i in kept], 1)
    dists, inds = dists.reshape(N, -1), inds.reshape(N, -1, 3)
    if action == "remove":
        dists, inds = dists[:, 1:], inds[:, 1:]
    return topk(dists, inds, p.k if p.topk_mode == "all" else 0, p.descending, p.anchored)


# ---------------------------------------------------------------------------------------------
# forward


def _prepare(vid0: Tensor, vid1: Tensor, flows: Tensor, p: SearchParams):
    dtype = compute_dtype(vid0.dtype)
    flows = flows.to(dtype)
    if p.itype == "int":
        flows = torch.round(flows).long()
    return dtype, channels_last_rows(vid0, dtype), channels_last_rows(vid1, dtype), flows


def non_local_search(vid0: Tensor, vid1: Tensor, flows: Tensor, p: SearchParams,
                     check_flows: bool = False) -> tuple[Tensor, Tensor]:
    """Forward search. Returns ``dists [B, HD, T, nH, nW, K]`` (vid0 dtype) and
    ``inds [..., K, 3]`` (int32, or float32/float64 for ``itype="float"``). With
    ``check_flows``, non-finite flows are then refused
    (:func:`~stnls.utils.checks.check_finite`: ``ValueError`` on the CPU, all-NaN
    ``dists`` on a GPU)."""
    L = Layout.of(vid0, vid1, flows)
    dtype, vid0_rows, vid1_rows, search_flows = _prepare(vid0, vid1, flows, p)
    K, total = p.num_neighbors, L.B * L.HD * L.queries
    inds_dtype = torch.int32 if p.itype == "int" else dtype
    dists = torch.empty(total, K, dtype=dtype, device=vid0.device)
    inds = torch.empty(total, K, 3, dtype=inds_dtype, device=vid0.device)
    per_query = p.window_frames * p.ws * p.ws * (L.C + 8)
    step = chunk_size(per_query * torch.finfo(dtype).bits // 8 * 4)
    for start in range(0, total, step):
        index = torch.arange(start, min(start + step, total), device=vid0.device)
        chunk_dists, chunk_inds = _search_chunk(vid0_rows, vid1_rows, search_flows, index, L, p,
                                                dtype)
        dists[start:start + len(index)] = chunk_dists
        inds[start:start + len(index)] = chunk_inds.to(inds_dtype)
    shape = (L.B, L.HD, L.T, L.nH, L.nW, K)
    dists = dists.view(shape).to(vid0.dtype)
    if check_flows:
        check_finite("flows", flows, dists)
    return dists, inds.view(*shape, 3)


def _search_chunk(vid0_rows, vid1_rows, flows, index, L: Layout, p: SearchParams, dtype):
    Qs = decode(index, L, p)
    position_dtype = torch.int64 if p.itype == "int" else dtype
    frames, anchor_h, anchor_w = slot_anchors(flows, Qs, L, p, position_dtype)
    interior = None
    if p.ws_interior < p.ws:
        interior = (Qs.nh < L.nH - 1) & (Qs.nw < L.nW - 1)
    rows, rows_written = candidate_axis(anchor_h, interior, L.kH, p)
    cols, cols_written = candidate_axis(anchor_w, interior, L.kW, p)
    frames4, rows4, cols4 = frames[..., None, None], rows[..., :, None], cols[..., None, :]
    dists = patch_distances(vid0_rows, vid1_rows, Qs, frames4, rows4, cols4, L, p)
    valid = geo.in_range(rows4, L.kH) & geo.in_range(cols4, L.kW)
    written = rows_written[..., :, None] & cols_written[..., None, :]
    dists = torch.where(valid & written, dists, p.invalid)

    base_t, base_h, base_w = Qs.t[:, None], Qs.key_h[:, None], Qs.key_w[:, None]
    N, S = len(index), p.window_frames
    inds = torch.stack(torch.broadcast_tensors(
        (frames - base_t)[..., None, None], (rows - base_h[..., None])[..., :, None],
        (cols - base_w[..., None])[..., None, :]), -1)
    inds = torch.where(written[..., None], inds, torch.full_like(inds, UNWRITTEN_IND))
    targets = _targets(frames, anchor_h, anchor_w, Qs)
    return select(dists.reshape(N, S, -1), inds.reshape(N, S, -1, 3), targets, p)


def _targets(frames: Tensor, anchor_h: Tensor, anchor_w: Tensor, Qs: Queries) -> Tensor:
    """Relative index of each slot's search centre: ``[N, W_t, 3]``."""
    return torch.stack([frames - Qs.t[:, None], anchor_h - Qs.key_h[:, None],
                        anchor_w - Qs.key_w[:, None]], -1)


def slot_targets(flows: Tensor, Qs: Queries, L: Layout, p: SearchParams) -> Tensor:
    """Relative index of each slot's search centre (the targets of :func:`select`): ``[N, W_t, 3]``.

    ``flows`` as prepared for the search (rounded int64 on the int path).
    """
    dtype = torch.int64 if p.itype == "int" else flows.dtype
    return _targets(*slot_anchors(flows, Qs, L, p, dtype), Qs)


# ---------------------------------------------------------------------------------------------
# backward


def non_local_search_backward(grad_dists: Tensor, grad_inds: Tensor, vid0: Tensor, vid1: Tensor,
                              flows: Tensor, inds: Tensor, flows_need_grad: bool,
                              p: SearchParams) -> tuple[Tensor, Tensor, Tensor]:
    """Gradients of the search outputs with respect to ``vid0``, ``vid1`` and ``flows``.

    Only the first ``k_agg`` neighbours (all if ``k_agg <= 0``) propagate, and
    only neighbours whose centre lies inside the key video. ``grad_inds`` (float
    path) reaches the flows through the search centre; the window offset is
    treated as a constant. Returns zeros for ``flows`` unless ``flows_need_grad``.
    """
    L = Layout.of(vid0, vid1, flows)
    dtype, vid0_rows, vid1_rows, flows_c = _prepare(vid0, vid1, flows, p)
    K = inds.shape[-2] if p.k_agg <= 0 else min(p.k_agg, inds.shape[-2])
    total = L.B * L.HD * L.queries
    grad_dists = grad_dists.reshape(total, -1)[:, :K].to(dtype)
    grad_inds = grad_inds.reshape(total, -1, 3)[:, :K].to(dtype)
    inds = inds.reshape(total, -1, 3)[:, :K]
    grad0, grad1 = torch.zeros_like(vid0_rows), torch.zeros_like(vid1_rows)
    grad_flows = torch.zeros(flows.numel(), dtype=dtype, device=flows.device)
    want_flows = flows_need_grad and p.itype == "float"
    step = chunk_size(K * p.pt * (L.C + 8) * torch.finfo(dtype).bits // 8 * 8)
    for start in range(0, total, step):
        index = torch.arange(start, min(start + step, total), device=vid0.device)
        sl = slice(start, start + len(index))
        _backward_chunk(grad_dists[sl], grad_inds[sl], inds[sl], index, vid0_rows, vid1_rows,
                        flows_c, grad0, grad1, grad_flows if want_flows else None, L, p, dtype)
    grad0 = rows_to_video(grad0, vid0.shape)
    grad1 = rows_to_video(grad1, vid1.shape)
    if p.normalize_bwd:
        grad0 = grad0 / coverage_counts(L.qH, L.qW, p.stride0, p.ps, dtype, vid0.device)
        grad1 = grad1 / coverage_counts(L.kH, L.kW, int(p.stride1), p.ps, dtype, vid0.device)
    return (grad0.to(vid0.dtype), grad1.to(vid1.dtype),
            grad_flows.view(flows.shape).to(flows.dtype))


def _backward_chunk(grad_dists, grad_inds, inds, index, vid0_rows, vid1_rows, flows, grad0, grad1,
                    grad_flows, L: Layout, p: SearchParams, dtype):
    Qs = decode(index, L, p)
    position_dtype = torch.int64 if p.itype == "int" else dtype
    inds = inds.to(position_dtype)
    frames = Qs.t[:, None] + inds[..., 0].long()
    rows = Qs.key_h[:, None].to(position_dtype) + inds[..., 1]
    cols = Qs.key_w[:, None].to(position_dtype) + inds[..., 2]
    centre_ok = geo.in_range(frames, L.T) & geo.in_range(rows, L.kH) & geo.in_range(cols, L.kW)
    weight = torch.where(centre_ok, grad_dists, 0)
    grad_h = grad_w = 0
    C = vid0_rows.shape[1]
    for pair in pixel_pairs(Qs, frames, rows, cols, L, p):
        query_value = F.embedding(pair.query_row, vid0_rows)[:, None]
        key_value = read(vid1_rows, pair.key_corners)
        g = torch.where(pair.valid, weight, 0)[..., None]
        if p.dist_type == "l2":
            grad_query = 2 * g * (query_value - key_value)
            grad_key = -grad_query
        else:
            grad_query, grad_key = g * key_value, g * query_value
        grad0.index_add_(0, pair.query_row, grad_query.sum(1).reshape(-1, C))
        write_add(grad1, pair.key_corners, grad_key)
        if grad_flows is not None:
            d_dy, d_dx = read_gradient(vid1_rows, pair.key_corners)
            grad_h = grad_h + (grad_key * d_dy).sum(-1) * pair.key_sign_y
            grad_w = grad_w + (grad_key * d_dx).sum(-1) * pair.key_sign_x
    if grad_flows is not None:
        _flow_backward(grad_h, grad_w, grad_inds, Qs, frames, centre_ok, flows, grad_flows, L, p)


def _flow_backward(grad_h, grad_w, grad_inds, Qs: Queries, frames, centre_ok, flows, grad_flows,
                   L: Layout, p: SearchParams) -> None:
    """Chain the candidate-position gradients through the reflected search centre
    into the flow of the candidate's temporal slot (none for a slot without flow)."""
    if L.Wf == 0:
        return
    flow_slot = geo.slot_of_frame(Qs.t[:, None], frames, p.wt, L.T) - (p.window_frames - L.Wf)
    has_flow = (flow_slot >= 0) & centre_ok
    flow_slot = flow_slot.clamp(min=0)
    f = query_flows(flows, Qs, L).gather(1, flow_slot[..., None].expand(-1, -1, 2))
    sign_h = torch.where(geo.in_range(Qs.key_h[:, None] + f[..., 1], L.kH), 1.0, -1.0)
    sign_w = torch.where(geo.in_range(Qs.key_w[:, None] + f[..., 0], L.kW), 1.0, -1.0)
    position = (Qs.flow_head[:, None] * L.T + Qs.t[:, None]) * L.Wf + flow_slot
    pixel = (Qs.nh * L.nW + Qs.nw)[:, None]
    for channel, sign, grad, grad_ind in ((1, sign_h, grad_h, grad_inds[..., 1]),
                                          (0, sign_w, grad_w, grad_inds[..., 2])):
        contribution = torch.where(has_flow, sign * (grad + grad_ind), 0)
        index = (position * 2 + channel) * (L.nH * L.nW) + pixel
        grad_flows.index_add_(0, index.reshape(-1), contribution.reshape(-1))


def coverage_counts(H: int, W: int, stride: int, ps: int, dtype, device) -> Tensor:
    """Number of stride-``stride`` grid patches covering each pixel: ``[H, W]``.

    ``c(h) = #{i in 0..(H-1)//stride : |h - i * stride| <= (ps - 1) // 2}``, and
    the count of a pixel is ``c(h) * c(w)``.
    """
    half = (ps - 1) // 2
    offsets = list(range(-half, half + 1))
    rows, cols = (geo.patch_coverage(size, stride, geo.grid_size(size, stride), offsets, device)
                  for size in (H, W))
    return (rows[:, None] * cols[None, :]).to(dtype)
