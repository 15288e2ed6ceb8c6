"""Triton kernels of the non-local search: the forward (fused running top-k, or
every candidate) and the backward to the videos and flows.

Distances are kept in a "smaller is better" form inside the kernels (prod
distances negated) so that one comparison serves both dist types. Candidates
are numbered in window order ``pos = slot' * ws * ws + i * ws + j`` (``slot'``
counted from the first searched slot). The forward lays the ``ws * ws``
candidates of one slot along a tensor axis (``[BQ, WW]`` tiles, ``WW`` the next
power of two) and merges each slot into the kept entries (or writes it out).
"""

from __future__ import annotations

import triton
import triton.language as tl

from .geometry import UNWRITTEN_IND, in_range, slot_of_frame
from .patches import (bilinear_mix, candidate_position, channel_block, decode_queries, flow_address,
                      key_corners, load_block, patch_distance, patch_walk_step, read_corner_blocks,
                      region_distance, region_inside, search_window, slot_anchor, stage_region)

# Order key of entries that must never be kept (removed, pinned, or past the window).
EXCLUDED = tl.constexpr(2147483647)
# Order keys of the not-yet-filled kept entries: after every candidate, before EXCLUDED.
EMPTY = tl.constexpr(2147483000)
# Bounds of the int64 sort keys (see sort_key).
LOWEST_KEY = tl.constexpr(-9223372036854775807)
HIGHEST_KEY = tl.constexpr(9223372036854775807)

# Anchor modes (``ANCHOR`` constexpr): how self_action edits the candidate list.
NO_ANCHOR = tl.constexpr(0)
GLOBAL_PIN = tl.constexpr(1)     # "anchor"/"anchor_self": the query's own location first
GLOBAL_REMOVE = tl.constexpr(2)  # "remove": the query's own location dropped
SLOT_PIN = tl.constexpr(3)       # "anchor_each"/"anchor_and_remove_ref_frame": per slot


@triton.jit
def candidate_inds(flows, flow_head, t, nh, nw, key_h, key_w, live, pos, T, wt, Wf, nH, nW, kH, kW,
                   ws, ws_interior, stride1, step, W_T: tl.constexpr, S_FIRST: tl.constexpr,
                   IS_FLOAT: tl.constexpr, FULL_WS: tl.constexpr, INTERIOR: tl.constexpr):
    """Decode window positions ``pos`` into the relative indices ``(dt, dh, dw)``.

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
    return dt, dh, dw


@triton.jit
def window_scan(first_close, best_l1, best_pos, target_t, target_h, target_w, dt, dh, dw, pos,
                in_window, IS_FLOAT: tl.constexpr):
    """Anchor search over one slot's window ``[BQ, WW]``, slots visited in order.

    Tracks the first candidate within 1e-8 in L1 of the target (exactly equal on
    the int path) and the first L1 minimum; :func:`resolve_anchor` picks between
    them (see :func:`stnls.backends.reference.search.anchor`).
    """
    l1 = tl.abs(dt - target_t) + tl.abs(dh - target_h) + tl.abs(dw - target_w)
    if IS_FLOAT:
        close = l1 < 1e-8
        far = float("inf")
    else:
        close = l1 == 0
        far = 2147483647
    slot_first = tl.min(tl.where(close & in_window, pos, EXCLUDED), 1)
    first_close = tl.where((first_close < 0) & (slot_first < EXCLUDED), slot_first, first_close)
    l1 = tl.where(in_window, l1, far)
    slot_min = tl.min(l1, 1)
    slot_at = tl.min(tl.where(l1 == slot_min[:, None], pos, EXCLUDED), 1)
    better = slot_min < best_l1
    return first_close, tl.where(better, slot_min, best_l1), tl.where(better, slot_at, best_pos)


@triton.jit
def resolve_anchor(first_close, best_l1, best_pos, IS_FLOAT: tl.constexpr):
    """Anchor position: the first close match, else (float) the nearest if < 10000, else 0."""
    if IS_FLOAT:
        fallback = tl.where(best_l1 < 10000, best_pos, 0)
    else:
        fallback = best_pos * 0
    return tl.where(first_close >= 0, first_close, fallback)


@triton.jit
def sort_key(d, key):
    """int64 ordered as ``(d, key)`` lexicographically (float32 ``d``, int32 ``key >= 0``)."""
    bits = (d + 0.0).to(tl.int32, bitcast=True)  # + 0.0: -0.0 orders as 0.0
    ordered = bits ^ ((bits >> 31) & 0x7FFFFFFF)
    return (ordered.to(tl.int64) << 32) | key.to(tl.int64)


@triton.jit
def sort_key_distance(sort):
    """The ``d`` of a :func:`sort_key`."""
    ordered = (sort >> 32).to(tl.int32)
    return (ordered ^ ((ordered >> 31) & 0x7FFFFFFF)).to(tl.float32, bitcast=True)


@triton.jit
def empty_best(lanes, n_keep, BQ: tl.constexpr, KP: tl.constexpr):
    """Kept entries (sort keys ``[BQ, KP]``) before any candidate."""
    zeros = tl.zeros([BQ, KP], dtype=tl.int32)
    key = zeros + tl.where(lanes < n_keep, EMPTY + lanes, EXCLUDED)[None, :]
    return sort_key(zeros.to(tl.float32) + float("inf"), key)


@triton.jit
def merge_best(kept, d, key, lanes, n_keep):
    """The ``n_keep`` smallest ``(d, key)`` of the kept entries and a block of candidates.

    Kept entries are unordered (:func:`group_write` ranks them and recovers their
    window positions from the keys). Each step moves the block's best candidate
    into the place of the worst kept entry if it is better; only as many steps run
    as the most candidates of one query that beat its worst kept entry (at most
    ``n_keep``). Keys are unique but EXCLUDED.
    """
    block = sort_key(d, key)
    kept_lane = (lanes < n_keep)[None, :]
    worst = tl.max(tl.where(kept_lane, kept, LOWEST_KEY), 1)
    steps = tl.minimum(tl.max(tl.sum((block < worst[:, None]).to(tl.int32), 1), 0), n_keep)
    for r in range(steps):
        best = tl.min(block, 1)
        worst = tl.max(tl.where(kept_lane, kept, LOWEST_KEY), 1)
        replaced = kept_lane & (kept == worst[:, None]) & (best < worst)[:, None]
        kept = tl.where(replaced, best[:, None], kept)
        block = tl.where(block == best[:, None], HIGHEST_KEY, block)
    return kept


@triton.jit
def kept_positions(kept, swap_a, swap_b, first):
    """Window positions ``[BQ, KP]`` of kept entries: their order keys with the
    self_action swap of ``swap_a`` and ``swap_b`` (``[BQ]``) undone, plus ``first``
    (the group's first position); 0 for entries no candidate filled."""
    order = kept.to(tl.int32)  # the low half of the sort key
    swap_a = swap_a[:, None]
    swap_b = swap_b[:, None]
    x = tl.where(order == swap_a, swap_b, tl.where(order == swap_b, swap_a, order))
    return tl.where(order < EMPTY, first + x, 0)


@triton.jit
def store_entries(dists_out, inds_out, out, mask, d, dt, dh, dw, finite, L2: tl.constexpr):
    """Write distances (sign restored; NaN unless ``finite``) and relative indices at output
    entries ``out``."""
    if not L2:
        d = -d
    tl.store(dists_out + out, tl.where(finite, d, float("nan")), mask=mask)
    tl.store(inds_out + out * 3, dt, mask=mask)
    tl.store(inds_out + out * 3 + 1, dh, mask=mask)
    tl.store(inds_out + out * 3 + 2, dw, mask=mask)


@triton.jit
def search_forward_kernel(
        vid0, vid1, flows, stride1_ptr, probe, dists_out, inds_out, scratch, scratch_ok,
        q_start, n_queries, Q, HD, HDf, T, qH, qW, kH, kW, nH, nW, Wf, wt,
        stride0, strideQ, step, off_Hq, off_Wq, dilation, ws, ws_interior, k_group, K_out,
        CP: tl.constexpr, CB: tl.constexpr, W_T: tl.constexpr, S_FIRST: tl.constexpr,
        PS: tl.constexpr, PT: tl.constexpr, IS_FLOAT: tl.constexpr, L2: tl.constexpr, FULL_WS: tl.constexpr, REFLECT: tl.constexpr,
        USE_ADJ: tl.constexpr, INTERIOR: tl.constexpr, EACH: tl.constexpr, ANCHOR: tl.constexpr,
        PINNED: tl.constexpr, KEEP_ALL: tl.constexpr, REGION: tl.constexpr, R: tl.constexpr,
        RR: tl.constexpr, RC: tl.constexpr, SU: tl.constexpr, WW: tl.constexpr,
        WW2: tl.constexpr, KP: tl.constexpr, BQ: tl.constexpr, PROBE: tl.constexpr):
    """Search of queries ``[q_start, q_start + n_queries)`` (global ids over ``B * HD * Q``).

    A program takes ``BQ`` queries; for each slot it scores the slot's window
    as a ``[BQ, WW]`` tile, then (``WW2 > 0``) the window positions from ``WW``
    on as a ``[BQ, WW2]`` tile (two powers of two pad less than one). With
    ``KEEP_ALL`` it writes every candidate in
    window order (slots from ``S_FIRST``; out-of-image candidates get the invalid
    distance). Otherwise it merges each tile into the best ``k_group`` entries
    of the group (the whole window, or each slot with ``EACH``) kept in
    registers; ties keep window order after the self_action swap. Writes
    ``dists [n_queries, K_out]`` and ``inds [n_queries, K_out, 3]``.

    Programs loop over query tiles. With ``REGION`` each slot's key values are
    first staged in the program's part of ``scratch`` (:func:`stage_region`;
    ``BQ * RR`` pixel rows per program), then every candidate reads them there.

    With ``PROBE`` every distance is written as NaN unless ``probe[0]`` is finite (the
    flows' check, :func:`stnls.utils.checks.finite_probe`).
    """
    if PROBE:
        finite = tl.abs(tl.load(probe)) < float("inf")
    else:
        finite = True
    for tile in range(tl.program_id(0), tl.cdiv(n_queries, BQ), tl.num_programs(0)):
        search_tile(vid0, vid1, flows, stride1_ptr, finite, dists_out, inds_out, scratch,
                    scratch_ok, tile,
                    q_start, n_queries, Q, HD, HDf, T, qH, qW, kH, kW, nH, nW, Wf, wt,
                    stride0, strideQ, step, off_Hq, off_Wq, dilation, ws, ws_interior, k_group,
                    K_out, CP, CB, W_T, S_FIRST, PS, PT, IS_FLOAT, L2, FULL_WS, REFLECT, USE_ADJ,
                    INTERIOR, EACH, ANCHOR, PINNED, KEEP_ALL, REGION, R, RR, RC, SU, WW, WW2,
                    KP, BQ)


@triton.jit
def window_tile(part: tl.constexpr, WW: tl.constexpr, WW2: tl.constexpr):
    """Window lanes ``[1, W]`` of tile ``part`` of a slot: positions ``0 .. WW - 1``, then
    (``part == 1``) ``WW .. WW + WW2 - 1``."""
    if part == 0:
        return tl.arange(0, WW)[None, :]
    else:
        return WW + tl.arange(0, WW2)[None, :]


@triton.jit
def window_candidates(window, ws, size, anchor_h, anchor_w, off_h, off_w, step,
                      IS_FLOAT: tl.constexpr):
    """Window lanes ``window [1, W]`` of each query's slot window: ``(i, j, in_window,
    rows, cols, written)``, the lanes' window row and column, whether the lane is a
    window position, the candidate positions ``[BQ, W]`` and whether they are written
    (inside the query's window side ``size``)."""
    in_window = window < ws * ws
    i = window // ws
    j = window % ws
    rows = candidate_position(anchor_h[:, None], off_h[:, None], i, step, IS_FLOAT)
    cols = candidate_position(anchor_w[:, None], off_w[:, None], j, step, IS_FLOAT)
    written = in_window & (i < size[:, None]) & (j < size[:, None])
    return i, j, in_window, rows, cols, written


@triton.jit
def slot_scan(first_close, best_l1, best_at, window, first_pos, target_t, target_h, target_w,
              frame, t, base_h, base_w, ws, size, anchor_h, anchor_w, off_h, off_w, step,
              IS_FLOAT: tl.constexpr):
    """:func:`window_scan` of window lanes ``window`` of one slot (positions from
    ``first_pos``) for the relative index ``(target_t, target_h, target_w)``."""
    _, _, in_window, rows, cols, written = window_candidates(window, ws, size, anchor_h, anchor_w,
                                                             off_h, off_w, step, IS_FLOAT)
    dt = (frame - t)[:, None].to(base_h.dtype)
    return window_scan(first_close, best_l1, best_at, target_t, target_h, target_w,
                       tl.where(written, dt, UNWRITTEN_IND),
                       tl.where(written, rows - base_h, UNWRITTEN_IND),
                       tl.where(written, cols - base_w, UNWRITTEN_IND), first_pos + window,
                       in_window, IS_FLOAT)


@triton.jit
def search_tile(
        vid0, vid1, flows, stride1_ptr, finite, dists_out, inds_out, scratch, scratch_ok, tile,
        q_start, n_queries, Q, HD, HDf, T, qH, qW, kH, kW, nH, nW, Wf, wt,
        stride0, strideQ, step, off_Hq, off_Wq, dilation, ws, ws_interior, k_group, K_out,
        CP: tl.constexpr, CB: tl.constexpr, W_T: tl.constexpr, S_FIRST: tl.constexpr,
        PS: tl.constexpr, PT: tl.constexpr, IS_FLOAT: tl.constexpr, L2: tl.constexpr,
        FULL_WS: tl.constexpr, REFLECT: tl.constexpr, USE_ADJ: tl.constexpr,
        INTERIOR: tl.constexpr, EACH: tl.constexpr, ANCHOR: tl.constexpr, PINNED: tl.constexpr,
        KEEP_ALL: tl.constexpr, REGION: tl.constexpr, R: tl.constexpr, RR: tl.constexpr,
        RC: tl.constexpr, SU: tl.constexpr, WW: tl.constexpr, WW2: tl.constexpr,
        KP: tl.constexpr, BQ: tl.constexpr):
    """One tile of :func:`search_forward_kernel`: queries ``tile * BQ ...`` of the range."""
    row = (tile * BQ + tl.arange(0, BQ)).to(tl.int64)
    live = row < n_queries
    # lanes past the end decode the last query, so that every address stays inside the videos
    qid = q_start + tl.minimum(row, n_queries - 1)
    bhd, flow_head, t, nh, nw = decode_queries(qid, Q, HD, HDf, nH, nW)
    bhd, flow_head, t, nh, nw = bhd.to(tl.int32), flow_head.to(tl.int32), t.to(tl.int32), nh.to(tl.int32), nw.to(tl.int32)
    key_h = nh * stride0
    key_w = nw * stride0
    query_h = ((nh * strideQ) % qH + off_Hq)[:, None]
    query_w = ((nw * strideQ) % qW + off_Wq)[:, None]
    stride1 = tl.load(stride1_ptr)
    S1 = ws * ws
    lanes = tl.arange(0, KP)
    TILES: tl.constexpr = 2 if WW2 > 0 else 1
    zero = nh * 0
    if IS_FLOAT:
        far = zero.to(tl.float32) + float("inf")
        base_h = key_h.to(tl.float32)[:, None]
        base_w = key_w.to(tl.float32)[:, None]
    else:
        far = zero + 2147483647
        base_h = key_h[:, None]
        base_w = key_w[:, None]

    global_pos = zero
    if ANCHOR == GLOBAL_PIN or ANCHOR == GLOBAL_REMOVE:
        first_close, best_l1, best_at = zero - 1, far, zero
        for s in range(S_FIRST, W_T):
            frame, anchor_h, anchor_w = slot_anchor(flows, flow_head, t, nh, nw, s, key_h, key_w, live,
                                                    T, wt, Wf, nH, nW, kH, kW, W_T, IS_FLOAT)
            size, off_h, off_w = search_window(anchor_h, anchor_w, nh, nw, nH, nW, ws, ws_interior,
                                               stride1, kH, kW, FULL_WS, INTERIOR)
            for part in tl.static_range(TILES):
                first_close, best_l1, best_at = slot_scan(
                    first_close, best_l1, best_at, window_tile(part, WW, WW2), (s - S_FIRST) * S1,
                    0, 0, 0, frame, t, base_h, base_w, ws, size, anchor_h, anchor_w, off_h, off_w,
                    step, IS_FLOAT)
        global_pos = resolve_anchor(first_close, best_l1, best_at, IS_FLOAT)

    n_keep = k_group - PINNED
    kept = empty_best(lanes, n_keep, BQ, KP)
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
                slot_pins = 1 - tl.minimum(slot, 1)  # 1 in the first slot only
            else:
                slot_pins = 0
            n_keep = k_group - slot_pins
            kept = empty_best(lanes, n_keep, BQ, KP)
        else:
            group_base = slot * S1
        # The self_action swap: group keys swap_a and swap_b trade places.
        if ANCHOR == SLOT_PIN:
            target_t = (frame - t)[:, None].to(base_h.dtype)
            target_h = anchor_h[:, None] - base_h
            target_w = anchor_w[:, None] - base_w
            first_close, best_l1, best_at = zero - 1, far, zero
            for part in tl.static_range(TILES):
                first_close, best_l1, best_at = slot_scan(
                    first_close, best_l1, best_at, window_tile(part, WW, WW2), group_base,
                    target_t, target_h, target_w, frame, t, base_h, base_w, ws, size, anchor_h,
                    anchor_w, off_h, off_w, step, IS_FLOAT)
            swap_a = zero + group_base
            swap_b = resolve_anchor(first_close, best_l1, best_at, IS_FLOAT)
        elif ANCHOR == GLOBAL_PIN or ANCHOR == GLOBAL_REMOVE:
            if EACH:
                swap_a = tl.where(slot == 0, zero, zero - 1)
                swap_b = tl.where(slot == 0, global_pos, zero - 1)
            else:
                swap_a, swap_b = zero, global_pos
        else:
            swap_a, swap_b = zero - 1, zero - 1
        region_first = zero.to(tl.int64)
        unchecked = False
        if REGION:
            region_first = (tl.program_id(0) * BQ + tl.arange(0, BQ)).to(tl.int64) * RR
            first = dilation * (0 if USE_ADJ else -(PS // 2))
            origin_h = candidate_position(anchor_h, off_h, 0, step, IS_FLOAT) + first
            origin_w = candidate_position(anchor_w, off_w, 0, step, IS_FLOAT) + first
            stage_region(vid1, scratch, scratch_ok, region_first, bhd, frame, origin_h, origin_w,
                         T, kH, kW, CP, CB, R, RR, RC, REFLECT, IS_FLOAT)
            tl.debug_barrier()
            unchecked = region_inside(origin_h, origin_w, query_h, query_w, live, qH, qW, kH, kW,
                                      dilation, PS, R, USE_ADJ)
        for part in tl.static_range(TILES):
            kept, anchor_d, anchor_pos = score_candidates(
                vid0, vid1, scratch, scratch_ok, dists_out, inds_out, finite,
                window_tile(part, WW, WW2), kept, anchor_d, anchor_pos, swap_a, swap_b,
                group_base, slot, row, live, bhd, t, frame, query_h, query_w, base_h, base_w,
                size, anchor_h, anchor_w, off_h, off_w, region_first, unchecked, lanes, n_keep,
                T, qH, qW, kH, kW, ws, step, dilation, K_out, CP, CB, PS, PT, IS_FLOAT, L2,
                REFLECT, USE_ADJ, ANCHOR, PINNED, KEEP_ALL, REGION, R, SU)
        if REGION:
            tl.debug_barrier()  # the next slot overwrites the region
        if EACH and not KEEP_ALL:
            group_write(dists_out, inds_out, finite, flows, qid, live, flow_head, t, nh, nw, key_h,
                        key_w, kept, kept_positions(kept, swap_a, swap_b, slot * S1), lanes, n_keep,
                        row * K_out + slot * k_group, slot_pins, anchor_d, anchor_pos, T, wt,
                        Wf, nH, nW, kH, kW, ws, ws_interior, stride1, step, W_T, S_FIRST,
                        IS_FLOAT, FULL_WS, INTERIOR, L2, ANCHOR)
    if not EACH and not KEEP_ALL:
        # one swap for the whole window (the launcher routes per-slot swaps elsewhere)
        tl.static_assert(ANCHOR != SLOT_PIN, "per-slot anchors need topk_mode 'each'")
        if ANCHOR == NO_ANCHOR:
            swap_a, swap_b = zero - 1, zero - 1
        else:
            swap_a, swap_b = zero, global_pos
        group_write(dists_out, inds_out, finite, flows, qid, live, flow_head, t, nh, nw, key_h,
                    key_w, kept, kept_positions(kept, swap_a, swap_b, 0), lanes, n_keep,
                    row * K_out, PINNED, anchor_d, anchor_pos, T, wt, Wf, nH, nW, kH, kW, ws,
                    ws_interior, stride1, step, W_T, S_FIRST, IS_FLOAT, FULL_WS, INTERIOR, L2,
                    ANCHOR)


@triton.jit
def score_candidates(
        vid0, vid1, scratch, scratch_ok, dists_out, inds_out, finite, window, kept, anchor_d,
        anchor_pos, swap_a, swap_b, group_base, slot, row, live, bhd, t, frame, query_h, query_w,
        base_h, base_w, size, anchor_h, anchor_w, off_h, off_w, region_first, unchecked, lanes,
        n_keep, T, qH, qW, kH, kW, ws, step, dilation, K_out, CP: tl.constexpr, CB: tl.constexpr,
        PS: tl.constexpr, PT: tl.constexpr, IS_FLOAT: tl.constexpr, L2: tl.constexpr,
        REFLECT: tl.constexpr, USE_ADJ: tl.constexpr, ANCHOR: tl.constexpr,
        PINNED: tl.constexpr, KEEP_ALL: tl.constexpr, REGION: tl.constexpr, R: tl.constexpr,
        SU: tl.constexpr):
    """Distances of one slot's window lanes ``window [1, W]``, then (``KEEP_ALL``) written out
    (NaN unless ``finite``) or merged into ``kept``. Returns ``(kept, anchor_d,
    anchor_pos)``; ``unchecked`` says that the staged regions and query patches lie inside
    their frames (:func:`region_inside`)."""
    S1 = ws * ws
    i, j, in_window, rows, cols, written = window_candidates(window, ws, size, anchor_h, anchor_w,
                                                             off_h, off_w, step, IS_FLOAT)
    valid = written & in_range(rows, kH) & in_range(cols, kW)
    lane_ok = live[:, None] & valid
    if REGION:
        if unchecked:
            d = region_distance(vid0, scratch, scratch_ok, region_first[:, None], bhd[:, None],
                                t[:, None], query_h, query_w, i, j, lane_ok, T, qH, qW,
                                dilation, CP, CB, PS, R, SU, USE_ADJ, REFLECT, L2, False)
        else:
            d = region_distance(vid0, scratch, scratch_ok, region_first[:, None], bhd[:, None],
                                t[:, None], query_h, query_w, i, j, lane_ok, T, qH, qW,
                                dilation, CP, CB, PS, R, SU, USE_ADJ, REFLECT, L2, True)
    else:
        d = patch_distance(vid0, vid1, bhd[:, None], t[:, None], query_h, query_w,
                           frame[:, None], rows, cols, lane_ok, T, qH, qW, kH,
                           kW, dilation, CP, CB, PS, PT, USE_ADJ, REFLECT, IS_FLOAT, L2)
    if not L2:
        d = -d
    d = tl.where(valid, d, float("inf"))
    if KEEP_ALL:
        out = row[:, None] * K_out + (slot * S1 + window)
        store_entries(dists_out, inds_out, out, live[:, None] & in_window, d,
                      tl.where(written, (frame - t)[:, None].to(base_h.dtype), UNWRITTEN_IND),
                      tl.where(written, rows - base_h, UNWRITTEN_IND),
                      tl.where(written, cols - base_w, UNWRITTEN_IND), finite, L2)
    else:
        x = group_base + window
        pair_a = swap_a[:, None]
        pair_b = swap_b[:, None]
        key = tl.where(x == pair_a, pair_b, tl.where(x == pair_b, pair_a, x))
        pos = slot * S1 + window + (t * 0)[:, None]
        excluded = ~in_window
        if ANCHOR != NO_ANCHOR:
            first = (key == 0) & (pair_a == 0) & in_window
            excluded = excluded | first
            if PINNED:
                has_first = tl.max(first.to(tl.int32), 1) > 0
                anchor_d = tl.where(has_first, tl.sum(tl.where(first, d, 0.0), 1), anchor_d)
                anchor_pos = tl.where(has_first, tl.max(tl.where(first, pos, -1), 1), anchor_pos)
        d = tl.where(excluded, float("inf"), d)
        key = tl.where(excluded, EXCLUDED, key)
        kept = merge_best(kept, d, key, lanes, n_keep)
    return kept, anchor_d, anchor_pos


@triton.jit
def group_write(dists_out, inds_out, finite, flows, qid, live, flow_head, t, nh, nw, key_h,
                key_w, kept, kept_pos, lanes, n_keep, out_first, pins, anchor_d, anchor_pos,
                T, wt, Wf, nH, nW, kH, kW, ws, ws_interior, stride1, step,
                W_T: tl.constexpr, S_FIRST: tl.constexpr, IS_FLOAT: tl.constexpr,
                FULL_WS: tl.constexpr, INTERIOR: tl.constexpr, L2: tl.constexpr,
                ANCHOR: tl.constexpr):
    """Write one group from entry ``out_first``: the pinned anchor (if ``pins``) then the
    kept entries, best first (distances NaN unless ``finite``)."""
    row = out_first
    if pins != 0:
        dt, dh, dw = candidate_inds(
            flows, flow_head, t, nh, nw, key_h, key_w, live, anchor_pos, T, wt, Wf, nH, nW, kH, kW,
            ws, ws_interior, stride1, step, W_T, S_FIRST, IS_FLOAT, FULL_WS, INTERIOR)
        if IS_FLOAT and ANCHOR == GLOBAL_PIN:
            dt, dh, dw = dt * 0.0, dh * 0.0, dw * 0.0  # the query's own index, written exactly
        store_entries(dists_out, inds_out, row, live, anchor_d, dt, dh, dw, finite, L2)
        row += 1
    rank = tl.sum((kept[:, None, :] < kept[:, :, None]).to(tl.int32), 2)
    mask = live[:, None] & (lanes < n_keep)[None, :]
    dt, dh, dw = candidate_inds(
        flows, flow_head[:, None], t[:, None], nh[:, None], nw[:, None], key_h[:, None],
        key_w[:, None], mask, kept_pos, T, wt, Wf, nH, nW, kH, kW, ws, ws_interior, stride1, step,
        W_T, S_FIRST, IS_FLOAT, FULL_WS, INTERIOR)
    store_entries(dists_out, inds_out, row[:, None] + rank, mask, sort_key_distance(kept), dt, dh,
                  dw, finite, L2)


@triton.jit
def accumulate(pointer, value, mask, scale, FIXED_POINT: tl.constexpr):
    """Atomic add; with ``FIXED_POINT`` into int64 units of ``1 / scale`` (order-independent)."""
    if FIXED_POINT:
        tl.atomic_add(pointer, (value * scale).to(tl.int64), mask=mask, sem="relaxed")
    else:
        tl.atomic_add(pointer, value, mask=mask, sem="relaxed")


@triton.jit
def corner_add(grad, pixel, mask, value, corner_weight, c0, scale, CP: tl.constexpr,
               CB: tl.constexpr, FIXED_POINT: tl.constexpr):
    """Add ``value [..., CB]`` times the corner's bilinear weight ``[...]`` to ``pixel``'s channels."""
    accumulate(grad + channel_block(pixel, c0, CP, CB), value * tl.expand_dims(corner_weight, -1),
               tl.expand_dims(mask, -1), scale, FIXED_POINT)


@triton.jit
def search_backward_kernel(
        grad_dists, grad_inds, inds, vid0, vid1, flows, grad0, grad1, grad_flows, scales,
        grad_inds_step, total, K_full, K_agg, Q, HD, HDf, T, qH, qW, kH, kW, nH, nW, Wf, wt,
        stride0, strideQ, off_Hq, off_Wq, dilation,
        CP: tl.constexpr, CB: tl.constexpr, W_T: tl.constexpr, PS: tl.constexpr,
        PT: tl.constexpr, IS_FLOAT: tl.constexpr,
        L2: tl.constexpr, REFLECT: tl.constexpr, USE_ADJ: tl.constexpr, FLOWS: tl.constexpr,
        FIXED_POINT: tl.constexpr, BQ: tl.constexpr, KK: tl.constexpr):
    """Gradients of the first ``K_agg`` neighbours of ``BQ`` queries, by atomic adds.

    Neighbours lie along the second axis of ``[BQ, KK]`` tiles. For each patch
    pixel and channel the query pixel's gradient is summed over the neighbours
    before one add; the key pixels (bilinear corners on the float path) get one
    add per neighbour. With ``FLOWS``, ``grad_flows`` gets the gradient of the
    candidate position chained through the search centre (plus ``grad_inds``).
    With ``FIXED_POINT`` the buffers are int64 in units of ``1 / scales[i]``.
    ``grad_inds_step`` is 1, or 0 for a broadcast ``grad_inds`` of one element.
    """
    qid = tl.program_id(0).to(tl.int64) * BQ + tl.arange(0, BQ)
    neighbour = tl.arange(0, KK)[None, :]
    live = (qid < total)[:, None] & (neighbour < K_agg)
    entry = qid[:, None] * K_full + neighbour
    bhd, flow_head, t, nh, nw = decode_queries(tl.minimum(qid, total - 1), Q, HD, HDf, nH, nW)
    bhd, flow_head, t, nh, nw = bhd.to(tl.int32), flow_head.to(tl.int32), t.to(tl.int32), nh.to(tl.int32), nw.to(tl.int32)
    key_h = (nh * stride0)[:, None]
    key_w = (nw * stride0)[:, None]
    scale0 = tl.load(scales)
    scale1 = tl.load(scales + 1)
    dt = tl.load(inds + entry * 3, mask=live, other=0)
    dh = tl.load(inds + entry * 3 + 1, mask=live, other=0)
    dw = tl.load(inds + entry * 3 + 2, mask=live, other=0)
    frame = t[:, None] + dt.to(tl.int32)
    if IS_FLOAT:
        rows = key_h.to(tl.float32) + dh
        cols = key_w.to(tl.float32) + dw
    else:
        rows = key_h + dh
        cols = key_w + dw
    centre_ok = live & in_range(frame, T) & in_range(rows, kH) & in_range(cols, kW)
    weight = tl.where(centre_ok, tl.load(grad_dists + entry, mask=live, other=0).to(tl.float32), 0.0)
    query_h = ((nh * strideQ) % qH + off_Hq)[:, None]
    query_w = ((nw * strideQ) % qW + off_Wq)[:, None]
    grad_h = weight * 0.0
    grad_w = weight * 0.0
    FIRST: tl.constexpr = 0 if USE_ADJ else -(PS // 2)
    for pk in range(PT):
        for py in range(PS):
            for px in range(PS):
                query_pixel, query_ok, key_frame, ky, kx, key_ok, sign_y, sign_x = patch_walk_step(
                    bhd[:, None], t[:, None], query_h, query_w, frame, rows, cols, pk,
                    dilation * (FIRST + py), dilation * (FIRST + px), T, qH, qW, kH, kW, REFLECT)
                valid = centre_ok & query_ok & key_ok
                g = tl.expand_dims(tl.where(valid, weight, 0.0), -1)
                query_add = tl.max(valid.to(tl.int32), 1) > 0
                query_row = tl.max(query_pixel, 1)
                o00, o01, o10, o11, m00, m01, m10, m11, wy0, wy1, wx0, wx1 = key_corners(
                    ky, kx, kH, kW, valid, IS_FLOAT)
                for block in range(CP // CB):
                    c0 = block * CB
                    query = load_block(vid0, query_pixel, query_ok, c0, CP, CB)
                    if IS_FLOAT:
                        v00, v01, v10, v11 = read_corner_blocks(vid1, key_frame, o00, o01, o10, o11,
                                                                m00, m01, m10, m11, c0, CP, CB)
                        key = bilinear_mix(v00, v01, v10, v11, wy0, wy1, wx0, wx1)
                    else:
                        key = load_block(vid1, key_frame + o00, m00, c0, CP, CB)
                    if L2:
                        grad_query = 2.0 * g * (query - key)
                        grad_key = -grad_query
                    else:
                        grad_query = g * key
                        grad_key = g * query
                    accumulate(grad0 + channel_block(query_row, c0, CP, CB), tl.sum(grad_query, 1),
                               query_add[:, None], scale0, FIXED_POINT)
                    if IS_FLOAT:
                        corner_add(grad1, key_frame + o00, m00, grad_key, wy0 * wx0, c0, scale1, CP, CB, FIXED_POINT)
                        corner_add(grad1, key_frame + o01, m01, grad_key, wy0 * wx1, c0, scale1, CP, CB, FIXED_POINT)
                        corner_add(grad1, key_frame + o10, m10, grad_key, wy1 * wx0, c0, scale1, CP, CB, FIXED_POINT)
                        corner_add(grad1, key_frame + o11, m11, grad_key, wy1 * wx1, c0, scale1, CP, CB, FIXED_POINT)
                        if FLOWS:
                            # d(bilinear value)/dy and /dx over the in-frame corners
                            wx0e, wx1e = tl.expand_dims(wx0, -1), tl.expand_dims(wx1, -1)
                            wy0e, wy1e = tl.expand_dims(wy0, -1), tl.expand_dims(wy1, -1)
                            grad_h += tl.sum(grad_key * (wx0e * (v10 - v00) + wx1e * (v11 - v01)), -1) * sign_y
                            grad_w += tl.sum(grad_key * (wy0e * (v01 - v00) + wy1e * (v11 - v10)), -1) * sign_x
                    else:
                        accumulate(grad1 + channel_block(key_frame + o00, c0, CP, CB), grad_key,
                                   tl.expand_dims(m00, -1), scale1, FIXED_POINT)
    if FLOWS:
        flow_slot = slot_of_frame(t[:, None], frame, wt, T) - (W_T - Wf)
        has_flow = centre_ok & (flow_slot >= 0)
        address = flow_address(flow_head[:, None], t[:, None], tl.maximum(flow_slot, 0),
                               nh[:, None], nw[:, None], T, Wf, nH, nW)
        flow_x = tl.load(flows + address, mask=has_flow, other=0)
        flow_y = tl.load(flows + address + nH * nW, mask=has_flow, other=0)
        sign_h = tl.where(in_range(key_h.to(tl.float32) + flow_y, kH), 1.0, -1.0)
        sign_w = tl.where(in_range(key_w.to(tl.float32) + flow_x, kW), 1.0, -1.0)
        grad_ind_h = tl.load(grad_inds + (entry * 3 + 1) * grad_inds_step, mask=has_flow,
                             other=0).to(tl.float32)
        grad_ind_w = tl.load(grad_inds + (entry * 3 + 2) * grad_inds_step, mask=has_flow,
                             other=0).to(tl.float32)
        scale2 = tl.load(scales + 2)
        accumulate(grad_flows + address + nH * nW, sign_h * (grad_h + grad_ind_h), has_flow, scale2, FIXED_POINT)
        accumulate(grad_flows + address, sign_w * (grad_w + grad_ind_w), has_flow, scale2, FIXED_POINT)
