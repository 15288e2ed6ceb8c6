"""Triton kernels of the non-local search: fused top-k forward, all-candidates
forward, and the backward to the videos and flows.

Distances are kept in a "smaller is better" form inside the kernels (prod
distances negated) so that one comparison serves both dist types. Candidates
are numbered in window order ``pos = slot' * ws * ws + i * ws + j`` (``slot'``
counted from the first searched slot).
"""

from __future__ import annotations

import triton
import triton.language as tl

from .geometry import UNWRITTEN_IND, in_range, slot_of_frame
from .patches import (bilinear_weights, candidate_position, corner, decode_queries, flow_address,
                      patch_distance, patch_walk_step, search_window, slot_anchor)

# Anchor modes (``ANCHOR`` constexpr): how self_action edits the candidate list.
NO_ANCHOR = tl.constexpr(0)
GLOBAL_PIN = tl.constexpr(1)     # "anchor"/"anchor_self": the query's own location first
GLOBAL_REMOVE = tl.constexpr(2)  # "remove": the query's own location dropped
SLOT_PIN = tl.constexpr(3)       # "anchor_each"/"anchor_and_remove_ref_frame": per slot


@triton.jit
def candidate_inds(flows, flow_head, t, nh, nw, key_h, key_w, live, pos, T, wt, Wf, nH, nW, kH, kW,
                   ws, ws_interior, stride1, step, W_T: tl.constexpr, S_FIRST: tl.constexpr,
                   IS_FLOAT: tl.constexpr, FULL_WS: tl.constexpr, INTERIOR: tl.constexpr):
    """Decode window positions ``pos`` into ``(dt, dh, dw, frame, rows, cols, written)``.

    ``(dt, dh, dw)`` is the relative index written to ``inds`` (float32 or
    int32; ``UNWRITTEN_IND`` where ``ws_interior`` left the entry unwritten).
    """
    slot = S_FIRST + pos // (ws * ws)
    i = (pos % (ws * ws)) // ws
    j = pos % ws
    frame, anchor_h, anchor_w = slot_anchor(flows, flow_head, t, nh, nw, slot, key_h, key_w, live,
                                            T, wt, Wf, nH, nW, kH, kW, W_T, IS_FLOAT)
    size, off_h, off_w = search_window(anchor_h, anchor_w, nh, nw, nH, nW, ws, ws_interior,
                                       stride1, kH, kW, FULL_WS, INTERIOR)
    rows = candidate_position(anchor_h, off_h, i, step, IS_FLOAT)
    cols = candidate_position(anchor_w, off_w, j, step, IS_FLOAT)
    written = (i < size) & (j < size)
    dt = frame - t
    if IS_FLOAT:
        dt = dt.to(tl.float32)
        dh = rows - key_h.to(tl.float32)
        dw = cols - key_w.to(tl.float32)
    else:
        dh = rows - key_h
        dw = cols - key_w
    dt = tl.where(written, dt, UNWRITTEN_IND)
    dh = tl.where(written, dh, UNWRITTEN_IND)
    dw = tl.where(written, dw, UNWRITTEN_IND)
    return dt, dh, dw, frame, rows, cols, written


@triton.jit
def anchor_scan(first_close, best_l1, best_pos, target_t, target_h, target_w, frame, anchor_h,
                anchor_w, size, off_h, off_w, t, key_h, key_w, ws, step, pos_base,
                IS_FLOAT: tl.constexpr):
    """Scan one slot's window for the candidate equal to the target index.

    Tracks the first candidate within 1e-8 in L1 (exactly equal on the int
    path) and the first L1 minimum; the caller resolves them (see
    :func:`stnls.backends.reference.search.anchor`).
    """
    dt = frame - t
    if IS_FLOAT:
        dt = dt.to(tl.float32)
    for i in range(ws):
        rows = candidate_position(anchor_h, off_h, i, step, IS_FLOAT)
        for j in range(ws):
            cols = candidate_position(anchor_w, off_w, j, step, IS_FLOAT)
            written = (i < size) & (j < size)
            if IS_FLOAT:
                dh = rows - key_h.to(tl.float32)
                dw = cols - key_w.to(tl.float32)
            else:
                dh = rows - key_h
                dw = cols - key_w
            l1 = (tl.abs(tl.where(written, dt, UNWRITTEN_IND) - target_t)
                  + tl.abs(tl.where(written, dh, UNWRITTEN_IND) - target_h)
                  + tl.abs(tl.where(written, dw, UNWRITTEN_IND) - target_w))
            if IS_FLOAT:
                close = l1 < 1e-8
            else:
                close = l1 == 0
            pos = pos_base + i * ws + j
            first_close = tl.where(close & (first_close < 0), pos, first_close)
            better = l1 < best_l1
            best_l1 = tl.where(better, l1, best_l1)
            best_pos = tl.where(better, pos, best_pos)
    return first_close, best_l1, best_pos


@triton.jit
def resolve_anchor(first_close, best_l1, best_pos, IS_FLOAT: tl.constexpr):
    """Anchor position: the first close match, else (float) the nearest if < 10000, else 0."""
    if IS_FLOAT:
        fallback = tl.where(best_l1 < 10000, best_pos, 0)
    else:
        fallback = best_pos * 0
    return tl.where(first_close >= 0, first_close, fallback)


@triton.jit
def empty_best(lanes, n_keep, BQ: tl.constexpr, KP: tl.constexpr):
    """Running top-k state ``(dist, order key, pos)``, each ``[BQ, KP]``.

    Lanes below ``n_keep`` start as (+inf, a key after every candidate); the
    others can never be the worst and are never written.
    """
    real = lanes < n_keep
    zeros = tl.zeros([BQ, KP], dtype=tl.int32)
    best_d = zeros.to(tl.float32) + tl.where(real, float("inf"), float("-inf"))[None, :]
    best_key = zeros + tl.where(real, 2147483000 + lanes, -1)[None, :]
    return best_d, best_key, zeros


@triton.jit
def insert(best_d, best_key, best_pos, d, key, pos, enabled):
    """Replace each row's worst kept entry by ``(d, key, pos)`` if it is better.

    Entries are ordered by ``(d, key)``; keys are unique, so exactly one entry is the worst.
    """
    worst_d = tl.max(best_d, 1)
    at_worst = best_d == worst_d[:, None]
    worst_key = tl.max(tl.where(at_worst, best_key, -1), 1)
    take = enabled & ((d < worst_d) | ((d == worst_d) & (key < worst_key)))
    replace = at_worst & (best_key == worst_key[:, None]) & take[:, None]
    best_d = tl.where(replace, d[:, None], best_d)
    best_key = tl.where(replace, key[:, None], best_key)
    best_pos = tl.where(replace, pos[:, None], best_pos)
    return best_d, best_key, best_pos


@triton.jit
def rank_best(best_d, best_key, lanes, n_keep, KP: tl.constexpr):
    """Output rank of each kept entry: the number of kept entries before it in ``(d, key)``."""
    rank = tl.zeros(best_key.shape, dtype=tl.int32)
    for b in range(KP):
        pick = (lanes == b)[None, :]
        d_b = tl.max(tl.where(pick, best_d, float("-inf")), 1)[:, None]
        key_b = tl.max(tl.where(pick, best_key, -2147483647), 1)[:, None]
        before = (d_b < best_d) | ((d_b == best_d) & (key_b < best_key))
        rank += tl.where(before & (b < n_keep), 1, 0)
    return rank


@triton.jit
def store_entries(dists_out, inds_out, out, mask, d, dt, dh, dw, L2: tl.constexpr):
    """Write distances (sign restored) and relative indices at output entries ``out``."""
    if L2:
        tl.store(dists_out + out, d, mask=mask)
    else:
        tl.store(dists_out + out, -d, mask=mask)
    tl.store(inds_out + out * 3, dt, mask=mask)
    tl.store(inds_out + out * 3 + 1, dh, mask=mask)
    tl.store(inds_out + out * 3 + 2, dw, mask=mask)


@triton.jit
def search_topk_kernel(
        vid0, vid1, flows, stride1_ptr, dists_out, inds_out,
        total, Q, HD, HDf, T, C, qH, qW, kH, kW, nH, nW, Wf, wt,
        stride0, strideQ, step, off_Hq, off_Wq, dilation, ws, ws_interior, k_group, K_out,
        W_T: tl.constexpr, S_FIRST: tl.constexpr, PS: tl.constexpr, PT: tl.constexpr,
        IS_FLOAT: tl.constexpr, L2: tl.constexpr, FULL_WS: tl.constexpr, REFLECT: tl.constexpr,
        USE_ADJ: tl.constexpr, INTERIOR: tl.constexpr, EACH: tl.constexpr, ANCHOR: tl.constexpr,
        PINNED: tl.constexpr, KP: tl.constexpr, BQ: tl.constexpr, BC: tl.constexpr):
    """Search with a running top-k per query (``topk_mode`` "all" or "each", ``k > 0``).

    One program scores every candidate of ``BQ`` queries, one candidate at a
    time over ``[BQ, BC]`` channel tiles, and keeps the best ``k_group`` per
    group (the whole window, or each slot with ``EACH``) in registers; ties
    keep window order after the self_action swap. Writes ``dists [total, K_out]``
    and ``inds [total, K_out, 3]``.
    """
    qid = tl.program_id(0).to(tl.int64) * BQ + tl.arange(0, BQ)
    live = qid < total
    bhd, flow_head, t, nh, nw = decode_queries(qid, Q, HD, HDf, nH, nW)
    bhd, flow_head, t, nh, nw = bhd.to(tl.int32), flow_head.to(tl.int32), t.to(tl.int32), nh.to(tl.int32), nw.to(tl.int32)
    key_h = nh * stride0
    key_w = nw * stride0
    query_h = (nh * strideQ) % qH + off_Hq
    query_w = (nw * strideQ) % qW + off_Wq
    stride1 = tl.load(stride1_ptr)
    S1 = ws * ws
    lanes = tl.arange(0, KP)
    zero = nh * 0
    if IS_FLOAT:
        zero_ind = zero.to(tl.float32)
        far = zero_ind + float("inf")
    else:
        zero_ind = zero
        far = zero + 2147483647

    global_pos = zero
    if ANCHOR == GLOBAL_PIN or ANCHOR == GLOBAL_REMOVE:
        first_close, best_l1, best_at = zero - 1, far, zero
        for s in range(S_FIRST, W_T):
            frame, anchor_h, anchor_w = slot_anchor(flows, flow_head, t, nh, nw, s, key_h, key_w, live,
                                                    T, wt, Wf, nH, nW, kH, kW, W_T, IS_FLOAT)
            size, off_h, off_w = search_window(anchor_h, anchor_w, nh, nw, nH, nW, ws, ws_interior,
                                               stride1, kH, kW, FULL_WS, INTERIOR)
            first_close, best_l1, best_at = anchor_scan(
                first_close, best_l1, best_at, zero_ind, zero_ind, zero_ind, frame, anchor_h, anchor_w,
                size, off_h, off_w, t, key_h, key_w, ws, step, (s - S_FIRST) * S1, IS_FLOAT)
        global_pos = resolve_anchor(first_close, best_l1, best_at, IS_FLOAT)

    n_keep = k_group - PINNED
    best_d, best_key, best_pos = empty_best(lanes, n_keep, BQ, KP)
    anchor_d = far.to(tl.float32)
    anchor_pos = zero
    for s in range(S_FIRST, W_T):
        slot = s - S_FIRST
        frame, anchor_h, anchor_w = slot_anchor(flows, flow_head, t, nh, nw, s, key_h, key_w, live,
                                                T, wt, Wf, nH, nW, kH, kW, W_T, IS_FLOAT)
        size, off_h, off_w = search_window(anchor_h, anchor_w, nh, nw, nH, nW, ws, ws_interior,
                                           stride1, kH, kW, FULL_WS, INTERIOR)
        if EACH:
            group_base = 0
            if ANCHOR == SLOT_PIN:
                slot_pins = 1
            elif ANCHOR == GLOBAL_PIN:
                slot_pins = 1 - tl.minimum(s - S_FIRST, 1)  # 1 in the first slot only
            else:
                slot_pins = 0
            n_keep = k_group - slot_pins
            best_d, best_key, best_pos = empty_best(lanes, n_keep, BQ, KP)
        else:
            group_base = slot * S1
        # The self_action swap: group keys swap_a and swap_b trade places.
        if ANCHOR == SLOT_PIN:
            dt = frame - t
            if IS_FLOAT:
                target_t = dt.to(tl.float32)
                target_h = anchor_h - key_h.to(tl.float32)
                target_w = anchor_w - key_w.to(tl.float32)
            else:
                target_t, target_h, target_w = dt, anchor_h - key_h, anchor_w - key_w
            first_close, best_l1, best_at = anchor_scan(
                zero - 1, far, zero, target_t, target_h, target_w, frame, anchor_h, anchor_w,
                size, off_h, off_w, t, key_h, key_w, ws, step, group_base, IS_FLOAT)
            swap_a = zero + group_base
            swap_b = resolve_anchor(first_close, best_l1, best_at, IS_FLOAT)
        elif ANCHOR == GLOBAL_PIN or ANCHOR == GLOBAL_REMOVE:
            if EACH:
                swap_a = tl.where(s == S_FIRST, zero, zero - 1)
                swap_b = tl.where(s == S_FIRST, global_pos, zero - 1)
            else:
                swap_a, swap_b = zero, global_pos
        else:
            swap_a, swap_b = zero - 1, zero - 1
        for i in range(ws):
            rows = candidate_position(anchor_h, off_h, i, step, IS_FLOAT)
            for j in range(ws):
                cols = candidate_position(anchor_w, off_w, j, step, IS_FLOAT)
                valid = (i < size) & (j < size) & in_range(rows, kH) & in_range(cols, kW)
                d = patch_distance(vid0, vid1, bhd, t, query_h, query_w, frame, rows, cols,
                                   live & valid, T, C, qH, qW, kH, kW, dilation, PS, PT, USE_ADJ,
                                   REFLECT, IS_FLOAT, L2, BC)
                if not L2:
                    d = -d
                d = tl.where(valid, d, float("inf"))
                x = group_base + i * ws + j
                key = tl.where(x == swap_a, swap_b, tl.where(x == swap_b, swap_a, x))
                pos = slot * S1 + i * ws + j
                first = (key == 0) & (swap_a == 0)
                if PINNED:
                    anchor_d = tl.where(first, d, anchor_d)
                    anchor_pos = tl.where(first, pos, anchor_pos)
                if ANCHOR == NO_ANCHOR:
                    enabled = live
                else:
                    enabled = live & ~first
                best_d, best_key, best_pos = insert(best_d, best_key, best_pos, d, key, zero + pos,
                                                    enabled)
        if EACH:
            group_write(dists_out, inds_out, flows, qid, live, flow_head, t, nh, nw, key_h, key_w,
                        best_d, best_key, best_pos, lanes, n_keep, slot * k_group, slot_pins,
                        anchor_d, anchor_pos, K_out, T, wt, Wf, nH, nW, kH, kW, ws, ws_interior,
                        stride1, step, W_T, S_FIRST, IS_FLOAT, FULL_WS, INTERIOR, L2, ANCHOR, KP)
    if not EACH:
        group_write(dists_out, inds_out, flows, qid, live, flow_head, t, nh, nw, key_h, key_w,
                    best_d, best_key, best_pos, lanes, n_keep, 0, PINNED, anchor_d, anchor_pos,
                    K_out, T, wt, Wf, nH, nW, kH, kW, ws, ws_interior, stride1, step, W_T, S_FIRST,
                    IS_FLOAT, FULL_WS, INTERIOR, L2, ANCHOR, KP)


@triton.jit
def group_write(dists_out, inds_out, flows, qid, live, flow_head, t, nh, nw, key_h, key_w,
                best_d, best_key, best_pos, lanes, n_keep, out_first, pins, anchor_d, anchor_pos,
                K_out, T, wt, Wf, nH, nW, kH, kW, ws, ws_interior, stride1, step,
                W_T: tl.constexpr, S_FIRST: tl.constexpr, IS_FLOAT: tl.constexpr,
                FULL_WS: tl.constexpr, INTERIOR: tl.constexpr, L2: tl.constexpr,
                ANCHOR: tl.constexpr, KP: tl.constexpr):
    """Write one group: the pinned anchor (if ``pins``) then the kept entries in order."""
    row = qid * K_out + out_first
    if pins != 0:
        dt, dh, dw, _, _, _, _ = candidate_inds(
            flows, flow_head, t, nh, nw, key_h, key_w, live, anchor_pos, T, wt, Wf, nH, nW, kH, kW,
            ws, ws_interior, stride1, step, W_T, S_FIRST, IS_FLOAT, FULL_WS, INTERIOR)
        if IS_FLOAT and ANCHOR == GLOBAL_PIN:
            dt, dh, dw = dt * 0.0, dh * 0.0, dw * 0.0  # the query's own index, written exactly
        store_entries(dists_out, inds_out, row, live, anchor_d, dt, dh, dw, L2)
        row += 1
    rank = rank_best(best_d, best_key, lanes, n_keep, KP)
    mask = live[:, None] & (lanes < n_keep)[None, :]
    dt, dh, dw, _, _, _, _ = candidate_inds(
        flows, flow_head[:, None], t[:, None], nh[:, None], nw[:, None], key_h[:, None],
        key_w[:, None], mask, best_pos, T, wt, Wf, nH, nW, kH, kW, ws, ws_interior, stride1, step,
        W_T, S_FIRST, IS_FLOAT, FULL_WS, INTERIOR)
    store_entries(dists_out, inds_out, row[:, None] + rank, mask, best_d, dt, dh, dw, L2)


@triton.jit
def search_all_kernel(
        vid0, vid1, flows, stride1_ptr, dists_out, inds_out,
        q_start, total_pairs, S, Q, HD, HDf, T, C, qH, qW, kH, kW, nH, nW, Wf, wt,
        stride0, strideQ, step, off_Hq, off_Wq, dilation, ws, ws_interior,
        W_T: tl.constexpr, S_FIRST: tl.constexpr, PS: tl.constexpr, PT: tl.constexpr,
        IS_FLOAT: tl.constexpr, L2: tl.constexpr, FULL_WS: tl.constexpr, REFLECT: tl.constexpr,
        USE_ADJ: tl.constexpr, INTERIOR: tl.constexpr, BLOCK: tl.constexpr, BC: tl.constexpr):
    """Every candidate, in window order: ``dists [pairs]`` and ``inds [pairs, 3]``.

    A program takes ``BLOCK`` consecutive (query, candidate) pairs of the
    queries from ``q_start``; each query has ``S`` candidates (slots from
    ``S_FIRST``). Out-of-image candidates get the invalid distance.
    """
    pair = tl.program_id(0).to(tl.int64) * BLOCK + tl.arange(0, BLOCK)
    live = pair < total_pairs
    qid = q_start + pair // S
    pos = (pair % S).to(tl.int32)
    bhd, flow_head, t, nh, nw = decode_queries(qid, Q, HD, HDf, nH, nW)
    bhd, flow_head, t, nh, nw = bhd.to(tl.int32), flow_head.to(tl.int32), t.to(tl.int32), nh.to(tl.int32), nw.to(tl.int32)
    key_h = nh * stride0
    key_w = nw * stride0
    stride1 = tl.load(stride1_ptr)
    dt, dh, dw, frame, rows, cols, written = candidate_inds(
        flows, flow_head, t, nh, nw, key_h, key_w, live, pos, T, wt, Wf, nH, nW, kH, kW, ws,
        ws_interior, stride1, step, W_T, S_FIRST, IS_FLOAT, FULL_WS, INTERIOR)
    valid = written & in_range(rows, kH) & in_range(cols, kW)
    d = patch_distance(vid0, vid1, bhd, t, (nh * strideQ) % qH + off_Hq, (nw * strideQ) % qW + off_Wq,
                       frame, rows, cols, live & valid, T, C, qH, qW, kH, kW, dilation, PS, PT,
                       USE_ADJ, REFLECT, IS_FLOAT, L2, BC)
    if not L2:
        d = -d
    d = tl.where(valid, d, float("inf"))
    store_entries(dists_out, inds_out, pair, live, d, dt, dh, dw, L2)


@triton.jit
def accumulate(pointer, value, mask, scale, FIXED_POINT: tl.constexpr):
    """Atomic add; with ``FIXED_POINT`` into int64 units of ``1 / scale`` (order-independent)."""
    if FIXED_POINT:
        tl.atomic_add(pointer, (value * scale).to(tl.int64), mask=mask)
    else:
        tl.atomic_add(pointer, value, mask=mask)


@triton.jit
def scatter_key(grad1, row, inside, grad_key, weight, chans, mask, scale, C,
                FIXED_POINT: tl.constexpr):
    """Adjoint of one bilinear corner read: add ``weight * grad_key`` at ``row``."""
    accumulate(grad1 + row[:, None] * C + chans, grad_key * weight[:, None],
               mask & inside[:, None], scale, FIXED_POINT)


@triton.jit
def search_backward_kernel(
        grad_dists, grad_inds, inds, vid0, vid1, flows, grad0, grad1, grad_flows, scales,
        total_pairs, K_full, K_agg, Q, HD, HDf, T, C, qH, qW, kH, kW, nH, nW, Wf, wt,
        stride0, strideQ, off_Hq, off_Wq, dilation,
        W_T: tl.constexpr, PS: tl.constexpr, PT: tl.constexpr, IS_FLOAT: tl.constexpr,
        L2: tl.constexpr, REFLECT: tl.constexpr, USE_ADJ: tl.constexpr, FLOWS: tl.constexpr,
        FIXED_POINT: tl.constexpr, BLOCK: tl.constexpr, BC: tl.constexpr):
    """Gradients of the first ``K_agg`` neighbours of every query, by atomic adds.

    A program takes ``BLOCK`` (query, neighbour) pairs and walks their patch
    pixels: ``grad0``/``grad1`` get the distance gradients (bilinear corners on
    the float path) and, with ``FLOWS``, ``grad_flows`` gets the gradient of the
    candidate position chained through the search centre (plus ``grad_inds``).
    With ``FIXED_POINT`` the buffers are int64 in units of ``1 / scales[i]``.
    """
    pair = tl.program_id(0).to(tl.int64) * BLOCK + tl.arange(0, BLOCK)
    live = pair < total_pairs
    qid = pair // K_agg
    entry = qid * K_full + pair % K_agg
    bhd, flow_head, t, nh, nw = decode_queries(qid, Q, HD, HDf, nH, nW)
    bhd, flow_head, t, nh, nw = bhd.to(tl.int32), flow_head.to(tl.int32), t.to(tl.int32), nh.to(tl.int32), nw.to(tl.int32)
    key_h = nh * stride0
    key_w = nw * stride0
    scale0 = tl.load(scales)
    scale1 = tl.load(scales + 1)
    dt = tl.load(inds + entry * 3, mask=live, other=0)
    dh = tl.load(inds + entry * 3 + 1, mask=live, other=0)
    dw = tl.load(inds + entry * 3 + 2, mask=live, other=0)
    frame = t + dt.to(tl.int32)
    if IS_FLOAT:
        rows = key_h.to(tl.float32) + dh
        cols = key_w.to(tl.float32) + dw
    else:
        rows = key_h + dh
        cols = key_w + dw
    centre_ok = live & in_range(frame, T) & in_range(rows, kH) & in_range(cols, kW)
    weight = tl.where(centre_ok, tl.load(grad_dists + entry, mask=live, other=0).to(tl.float32), 0.0)
    query_h = (nh * strideQ) % qH + off_Hq
    query_w = (nw * strideQ) % qW + off_Wq
    grad_h = weight * 0.0
    grad_w = weight * 0.0
    FIRST: tl.constexpr = 0 if USE_ADJ else -(PS // 2)
    for pk in tl.static_range(PT):
        for py in tl.static_range(PS):
            for px in tl.static_range(PS):
                query_row, key_frame, ky, kx, valid, sign_y, sign_x = patch_walk_step(
                    bhd, t, query_h, query_w, frame, rows, cols, centre_ok, pk,
                    dilation * (FIRST + py), dilation * (FIRST + px), T, qH, qW, kH, kW, REFLECT)
                for c0 in range(0, C, BC):
                    chans = (c0 + tl.arange(0, BC))[None, :]
                    mask = valid[:, None] & (chans < C)
                    g = weight[:, None]
                    query = tl.load(vid0 + query_row[:, None] * C + chans, mask=mask, other=0).to(tl.float32)
                    if IS_FLOAT:
                        y0, wy0, wy1 = bilinear_weights(ky)
                        x0, wx0, wx1 = bilinear_weights(kx)
                        row00, in00 = corner(key_frame, y0, x0, kH, kW)
                        row01, in01 = corner(key_frame, y0, x0 + 1, kH, kW)
                        row10, in10 = corner(key_frame, y0 + 1, x0, kH, kW)
                        row11, in11 = corner(key_frame, y0 + 1, x0 + 1, kH, kW)
                        v00 = tl.load(vid1 + row00[:, None] * C + chans, mask=mask & in00[:, None], other=0).to(tl.float32)
                        v01 = tl.load(vid1 + row01[:, None] * C + chans, mask=mask & in01[:, None], other=0).to(tl.float32)
                        v10 = tl.load(vid1 + row10[:, None] * C + chans, mask=mask & in10[:, None], other=0).to(tl.float32)
                        v11 = tl.load(vid1 + row11[:, None] * C + chans, mask=mask & in11[:, None], other=0).to(tl.float32)
                        key = ((wy0 * wx0)[:, None] * v00 + (wy0 * wx1)[:, None] * v01
                               + (wy1 * wx0)[:, None] * v10 + (wy1 * wx1)[:, None] * v11)
                    else:
                        key_row, _ = corner(key_frame, ky, kx, kH, kW)
                        key = tl.load(vid1 + key_row[:, None] * C + chans, mask=mask, other=0).to(tl.float32)
                    if L2:
                        grad_query = 2.0 * g * (query - key)
                        grad_key = -grad_query
                    else:
                        grad_query = g * key
                        grad_key = g * query
                    accumulate(grad0 + query_row[:, None] * C + chans, grad_query, mask, scale0, FIXED_POINT)
                    if IS_FLOAT:
                        scatter_key(grad1, row00, in00, grad_key, wy0 * wx0, chans, mask, scale1, C, FIXED_POINT)
                        scatter_key(grad1, row01, in01, grad_key, wy0 * wx1, chans, mask, scale1, C, FIXED_POINT)
                        scatter_key(grad1, row10, in10, grad_key, wy1 * wx0, chans, mask, scale1, C, FIXED_POINT)
                        scatter_key(grad1, row11, in11, grad_key, wy1 * wx1, chans, mask, scale1, C, FIXED_POINT)
                        if FLOWS:
                            # d(bilinear value)/dy and /dx over the in-frame corners
                            d_dy = (wx0[:, None] * (v10 - v00) + wx1[:, None] * (v11 - v01))
                            d_dx = (wy0[:, None] * (v01 - v00) + wy1[:, None] * (v11 - v10))
                            grad_h += tl.sum(grad_key * d_dy, 1) * sign_y
                            grad_w += tl.sum(grad_key * d_dx, 1) * sign_x
                    else:
                        accumulate(grad1 + key_row[:, None] * C + chans, grad_key, mask, scale1, FIXED_POINT)
    if FLOWS:
        flow_slot = slot_of_frame(t, frame, wt, T) - (W_T - Wf)
        has_flow = centre_ok & (flow_slot >= 0)
        address = flow_address(flow_head, t, tl.maximum(flow_slot, 0), nh, nw, T, Wf, nH, nW)
        flow_x = tl.load(flows + address, mask=has_flow, other=0)
        flow_y = tl.load(flows + address + nH * nW, mask=has_flow, other=0)
        sign_h = tl.where(in_range(key_h.to(tl.float32) + flow_y, kH), 1.0, -1.0)
        sign_w = tl.where(in_range(key_w.to(tl.float32) + flow_x, kW), 1.0, -1.0)
        grad_ind_h = tl.load(grad_inds + entry * 3 + 1, mask=has_flow, other=0).to(tl.float32)
        grad_ind_w = tl.load(grad_inds + entry * 3 + 2, mask=has_flow, other=0).to(tl.float32)
        scale2 = tl.load(scales + 2)
        accumulate(grad_flows + address + nH * nW, sign_h * (grad_h + grad_ind_h), has_flow, scale2, FIXED_POINT)
        accumulate(grad_flows + address, sign_w * (grad_w + grad_ind_w), has_flow, scale2, FIXED_POINT)
