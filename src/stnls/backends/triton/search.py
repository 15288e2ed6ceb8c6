"""Launchers of the Triton non-local search (same contract as the reference backend).

Routes of the forward:

* ``topk``: ``k > 0`` with ``topk_mode`` "all" or "each" and at most
  ``MAX_KEPT`` kept per group: one fused kernel, running top-k in registers,
  memory = the outputs.
* ``all``: every candidate kept in window order (``k <= 0`` or "none", and a
  self_action that does not reorder): one kernel writing the outputs directly.
* ``select``: everything else (more than ``MAX_KEPT`` kept per group, ``k <= 0``
  with a reordering self_action, "anchor" + "each" on the float path with a
  flow for the query's own frame, where the anchor may sit in another frame, and
  a per-slot anchor with one group for the whole window):
  the ``all`` kernel over chunks of queries, then the reference's
  self_action and top-k on each chunk. Memory is one chunk of candidates
  (``STNLS_CHUNK_BYTES``).

The forward reads channels-last copies of the videos (:func:`channels_last`)
and, for bilinear patches with an integer ``stride1``, stages each query's key
region once per slot (:func:`region_plan`). float64 videos run the reference
backend. The backward adds with atomics;
when ``torch.are_deterministic_algorithms_enabled()`` it adds int64 fixed-point
values instead (bitwise-reproducible, see :func:`fixed_point_scales`).
"""

from __future__ import annotations

import functools

import torch
from torch import Tensor

from ...params import SearchParams
from ...utils.checks import check_finite, checked_probe
from ...utils.env import chunk_size
from ..reference import search as reference
from .launch import cdiv, device_guard, interpreting, next_power_of_2, register_cap
from .search_kernels import (GLOBAL_PIN, GLOBAL_REMOVE, NO_ANCHOR, SLOT_PIN,
                             search_backward_kernel, search_forward_kernel)

# Largest number of neighbours kept per group by the fused top-k kernel.
MAX_KEPT = 128
# Whether the forward stages key regions where it can (see region_plan), and the fewest
# programs per multiprocessor a staged launch runs.
USE_REGION = True
PROGRAMS_PER_SM = 8
# Register cap per thread of the forward kernel (None: the compiler's choice). At 128 a
# multiprocessor holds 16 warps (four 4-warp programs); on an H200 this was 10-20% faster
# than the compiler's choice on the benchmark configs, except na_ps1 (3% slower).
FORWARD_MAX_REGISTERS: int | None = 128
# Warps a multiprocessor holds at that cap.
RESIDENT_WARPS = 16
# Lower caps by forward_reads (more warps per multiprocessor; the staged reads keep 128).
# Swept on an H200 at 128 / 96 / 80 / 64: direct reads 96 (readme_int 1.657 -> 1.573 ms,
# na_ps1 2.190 -> 2.089), wide bilinear pixels 80 (gda 7.745 -> 7.530); the staged configs
# were 13-40% slower at 96.
READ_MAX_REGISTERS = {"direct": 96, "bilinear_pixels": 80}
# Largest staged window (padded to a power of two) always read one 16-byte vector per
# lane: its program is then one warp (float32), whose top-k merge needs no barrier.
SMALL_WINDOW = 128
# Smallest pixel (channels x element size) whose bilinear ps = 1 reads go by 64-byte blocks:
# on an H200 64 float32 channels (gda) read faster by blocks, 16 and 32 slower.
WIDE_PIXEL_BYTES = 256

_ANCHOR_MODES = {None: NO_ANCHOR, "remove_ref_frame": NO_ANCHOR, "anchor": GLOBAL_PIN,
                 "anchor_self": GLOBAL_PIN, "remove": GLOBAL_REMOVE, "anchor_each": SLOT_PIN,
                 "anchor_and_remove_ref_frame": SLOT_PIN}


def _kernel_flows(flows: Tensor, p: SearchParams) -> Tensor:
    """Flows as the kernels read them: contiguous float32 (float path) or rounded int32."""
    flows = flows.float()
    flows = torch.round(flows).to(torch.int32) if p.itype == "int" else flows.contiguous()
    if flows.numel() == 0:  # no flow slot: pass a valid (never read) pointer
        flows = flows.new_zeros(1)
    return flows


def group_size(p: SearchParams) -> int:
    """Neighbours kept per top-k group: the whole window ("all") or one slot ("each")."""
    if p.topk_mode == "each":
        return min(p.k, p.ws * p.ws)
    return p.num_neighbors


def route(p: SearchParams, Wf: int) -> str:
    """Which forward path runs: ``"topk"``, ``"all"`` or ``"select"`` (see the module doc)."""
    anchor = _ANCHOR_MODES[p.self_action]
    if p.k <= 0 or p.topk_mode == "none":
        return "all" if anchor == NO_ANCHOR else "select"
    if p.topk_mode == "each" and anchor == GLOBAL_PIN and p.itype == "float" and Wf == p.window_frames:
        return "select"
    if p.topk_mode != "each" and anchor == SLOT_PIN:  # a swap per slot within one group
        return "select"
    return "topk" if group_size(p) <= MAX_KEPT else "select"


def channel_block(C: int, dtype: torch.dtype, whole_pixel: bool) -> int:
    """Channels read together (``CB``, a power of two): one 16-byte vector per lane,
    or (``whole_pixel``) all channels up to 64 bytes, split over neighbouring lanes
    so that a warp's read covers whole cache lines of neighbouring pixels."""
    limit = 64 if whole_pixel else 16
    return min(limit // dtype.itemsize, next_power_of_2(C))


def channels_last(vid: Tensor, width: int) -> Tensor:
    """``[B, HD, T, C, H, W]`` as contiguous ``[B, HD, T, H, W, CP]``, channels zero-padded
    to ``CP``, the next multiple of ``width`` (padding adds 0 to l2 and prod distances)."""
    B, HD, T, C, H, W = vid.shape
    pixels = vid.permute(0, 1, 2, 4, 5, 3)
    if C % width == 0:
        return pixels.contiguous()
    padded = vid.new_zeros((B, HD, T, H, W, cdiv(C, width) * width))
    padded[..., :C] = pixels
    return padded


def channels_first(padded: Tensor, C: int) -> Tensor:
    """Inverse of :func:`channels_last` (contiguous)."""
    return padded[..., :C].permute(0, 1, 2, 5, 3, 4).contiguous()


def _geometry_args(L: reference.Layout, p: SearchParams) -> tuple:
    """Scalar kernel arguments from ``Q`` to ``ws_interior`` (same order in every forward kernel)."""
    step = int(p.stride1) if p.itype == "int" else float(p.stride1)
    return (L.queries, L.HD, L.HDf, L.T, L.qH, L.qW, L.kH, L.kW, L.nH, L.nW, L.Wf, p.wt,
            p.stride0, p.strideQ, step, p.off_Hq, p.off_Wq, p.dilation, p.ws, p.ws_interior)


def _geometry_constants(p: SearchParams, first_slot: int, vid: Tensor, cb: int) -> dict:
    return dict(CP=vid.shape[-1], CB=cb, W_T=p.window_frames, S_FIRST=first_slot, PS=p.ps, PT=p.pt,
                IS_FLOAT=p.itype == "float", L2=p.dist_type == "l2", FULL_WS=p.full_ws,
                REFLECT=p.reflect_bounds, USE_ADJ=p.use_adj, INTERIOR=p.ws_interior < p.ws)


def _block(items: int, block: int) -> int:
    """Tile size: ``block`` on a GPU; under the interpreter, whose cost is per
    program rather than per element, one tile covering up to 4096 items."""
    return min(4096, next_power_of_2(items)) if interpreting() else block


def _clamp(value: int, low: int, high: int) -> int:
    return max(low, min(high, value))


def forward_reads(p: SearchParams, C: int, dtype: torch.dtype) -> tuple[str, int]:
    """How the forward reads the keys, and its channel block ``CB``:

    * ``"region"``: staged regions (:func:`region_plan`), one 16-byte vector per lane;
    * ``"region_pixels"``: staged regions of windows over :data:`SMALL_WINDOW` read by
      whole pixels, unless 16-byte vectors pad the channels less (9 channels: 12
      against 16);
    * ``"bilinear"``: bilinear patches (``ps > 1``) read from the video, one vector per lane;
    * ``"bilinear_pixels"``: bilinear pixels (``ps = 1``) of at least
      :data:`WIDE_PIXEL_BYTES`, read from the video by 64-byte blocks;
    * ``"direct"``: everything else, one vector per lane.
    """
    vector = channel_block(C, dtype, whole_pixel=False)
    whole = channel_block(C, dtype, whole_pixel=True)
    if region_plan(p) is None:
        if p.itype == "float" and p.ps > 1:
            return "bilinear", vector
        if p.itype == "float" and C * dtype.itemsize >= WIDE_PIXEL_BYTES:
            return "bilinear_pixels", whole
        return "direct", vector
    window = next_power_of_2(p.ws * p.ws)
    if window > SMALL_WINDOW and cdiv(C, whole) * whole <= cdiv(C, vector) * vector:
        return "region_pixels", whole
    return "region", vector


def forward_tile(window: int, cb: int, reads: str) -> tuple[int, int]:
    """``(BQ, num_warps)`` of the forward's ``[BQ, window, cb]`` reads (the fastest of
    ``benchmarks/tune_search.py``'s sweep and of the sweeps in docs/performance.md, on an
    H200), by :func:`forward_reads`: one query per program with staged regions (16 values
    per thread, 32 for whole pixels) and with wide bilinear pixels (32 values per thread),
    one warp of 8 values per thread for bilinear patches read directly, one warp of 16
    values per thread otherwise (there ``window`` is the widest tile of
    :func:`window_chunks`)."""
    if reads in ("region_pixels", "bilinear_pixels"):
        return 1, _clamp(window * cb // 1024, 1, 16)
    if reads == "region":
        return 1, _clamp(window * cb // 512, 1, 16)
    if reads == "bilinear":
        return _clamp(256 // (window * cb), 1, 16), 1
    return _clamp(512 // (window * cb), 1, 16), 1


def forward_shape(p: SearchParams, reads: str, cb: int) -> tuple[int, int, int, int]:
    """``(WW, WW2, BQ, num_warps)`` of the forward: the tiles a slot's window is scored in
    (:func:`window_chunks`; staged windows stay one tile, two measured slower: mid 92.9
    against 89.2 ms) and the program shape (:func:`forward_tile`)."""
    window = next_power_of_2(p.ws * p.ws)
    ww, ww2 = (window, 0) if reads.startswith("region") else window_chunks(p.ws * p.ws)
    return (ww, ww2, *forward_tile(ww if reads == "direct" else window, cb, reads))


def forward_registers(reads: str) -> int | None:
    """Register cap of the forward kernel for :func:`forward_reads`'s ``reads`` (None: the
    compiler's choice, when :data:`FORWARD_MAX_REGISTERS` is None)."""
    if FORWARD_MAX_REGISTERS is None:
        return None
    return READ_MAX_REGISTERS.get(reads, FORWARD_MAX_REGISTERS)


def region_plan(p: SearchParams) -> dict | None:
    """Constants of the staged-region forward, or None where it does not apply.

    With one-frame patches and an integer ``stride1``, every candidate patch of
    a slot reads the ``R x R`` grid of key positions that starts at the
    window's first patch pixel (spaced by whole pixels), staged once per query
    and slot (up to 1024 positions). It is used where it measured faster than
    reading the video directly: bilinear patches of 3 pixels or more.
    """
    if (not USE_REGION or p.pt != 1 or p.itype != "float" or p.ps < 3
            or float(p.stride1) != round(float(p.stride1))):
        return None
    su = round(float(p.stride1))
    side = (p.ws - 1) * su + (p.ps - 1) * p.dilation + 1
    rr = next_power_of_2(side * side)
    return dict(R=side, RR=rr, SU=su) if rr <= 1024 else None


def window_chunks(candidates: int) -> tuple[int, int]:
    """Lane widths ``(WW, WW2)`` of the tiles a slot's ``candidates = ws * ws`` window
    positions are scored in when read from the video: one power of two (``WW2 = 0``), or
    where that would leave more than a quarter of its lanes empty, half of it and the next
    power of two of the rest (``ws = 9``: 64 + 32 lanes instead of 128; gda's forward on an
    H200 10.24 to 7.77 ms)."""
    whole = next_power_of_2(candidates)
    if 4 * candidates <= 3 * whole:
        return whole // 2, next_power_of_2(candidates - whole // 2)
    return whole, 0


def _programs(tiles: int, warps: int, device: torch.device) -> int:
    """Programs of a staged-region launch (each loops over tiles): enough to fill every
    multiprocessor at the register cap, at least :data:`PROGRAMS_PER_SM` per multiprocessor."""
    if interpreting():
        return min(tiles, 2)
    per_sm = max(PROGRAMS_PER_SM, RESIDENT_WARPS // warps)
    return min(tiles, torch.cuda.get_device_properties(device).multi_processor_count * per_sm)


def _launch_forward(vid0c, vid1c, flows_k, stride1, dists, inds, q_start, n_queries, first_slot,
                    kept, reads: tuple[str, int], L: reference.Layout, p: SearchParams,
                    probe: Tensor | None = None) -> None:
    """Queries ``[q_start, q_start + n_queries)`` into ``dists``/``inds``: the best ``kept``
    per group, or (``kept == 0``) every candidate of the slots from ``first_slot``;
    ``reads`` is :func:`forward_reads`'s answer; distances are NaN if a ``probe``
    (:func:`stnls.utils.checks.finite_probe`) is given and not finite."""
    anchor = _ANCHOR_MODES[p.self_action] if kept else NO_ANCHOR
    reads, cb = reads
    plan = region_plan(p) if reads.startswith("region") else None
    ww, ww2, bq, warps = forward_shape(p, reads, cb)
    bq = _block(n_queries, bq)
    tiles = cdiv(n_queries, bq)
    if plan is None:
        programs = tiles
        scratch, scratch_ok = dists.new_empty(1), dists.new_empty(1, dtype=torch.int8)
        region = dict(REGION=False, R=1, RR=1, RC=1, SU=1)
    else:
        programs = _programs(tiles, warps, dists.device)
        rows = programs * bq * plan["RR"]
        scratch = torch.empty(rows * vid0c.shape[-1], dtype=torch.float32, device=dists.device)
        scratch_ok = torch.empty(rows, dtype=torch.int8, device=dists.device)
        # staged in chunks of about 8 values per thread and read
        chunk = plan["RR"] if interpreting() else max(1, min(plan["RR"], 256 * warps // (bq * cb)))
        region = dict(REGION=True, RC=chunk, **plan)
    search_forward_kernel[(programs,)](
        vid0c, vid1c, flows_k, stride1, stride1 if probe is None else probe, dists, inds, scratch,
        scratch_ok, q_start, n_queries,
        *_geometry_args(L, p), kept, dists.shape[1], **_geometry_constants(p, first_slot, vid0c, cb),
        EACH=p.topk_mode == "each", ANCHOR=anchor, PINNED=anchor in (GLOBAL_PIN, SLOT_PIN),
        KEEP_ALL=kept == 0, **region, WW=ww, WW2=ww2,
        KP=next_power_of_2(kept), BQ=bq, PROBE=probe is not None, num_warps=warps,
        **register_cap(forward_registers(reads)))


@functools.lru_cache(maxsize=64)
def _stride1_tensor(stride1: float, device: torch.device) -> Tensor:
    """``stride1`` as the float64 ``[1]`` tensor the forward kernel reads (a float64 scalar
    argument does not exist), made once per value and device: making it copies from the
    host, which waits for the device."""
    return torch.tensor([stride1], dtype=torch.float64, device=device)


def non_local_search(vid0: Tensor, vid1: Tensor, flows: Tensor, p: SearchParams,
                     check_flows: bool = False) -> tuple[Tensor, Tensor]:
    """Forward search; same contract as :func:`stnls.backends.reference.search.non_local_search`
    (the flows' check read by the kernel as it writes the distances)."""
    if vid0.dtype == torch.float64:
        return reference.non_local_search(vid0, vid1, flows, p, check_flows)
    L = reference.Layout.of(vid0, vid1, flows)
    K, total = p.num_neighbors, L.B * L.HD * L.queries
    inds_dtype = torch.int32 if p.itype == "int" else torch.float32
    shape = (L.B, L.HD, L.T, L.nH, L.nW, K)
    path = route(p, L.Wf)
    with device_guard(vid0):
        reads = forward_reads(p, L.C, vid0.dtype)
        vid0c, vid1c = channels_last(vid0, reads[1]), channels_last(vid1, reads[1])
        flows_k = _kernel_flows(flows, p)
        stride1 = _stride1_tensor(float(p.stride1), vid0.device)
        dists = torch.empty(total, K, dtype=torch.float32, device=vid0.device)
        inds = torch.empty(total, K, 3, dtype=inds_dtype, device=vid0.device)
        if path in ("topk", "all"):
            kept = group_size(p) if path == "topk" else 0
            probe = checked_probe(flows, check_flows)
            _launch_forward(vid0c, vid1c, flows_k, stride1, dists, inds, 0, total,
                            int(p.drops_ref_frame), kept, reads, L, p, probe)
        else:
            _select_in_chunks(vid0c, vid1c, flows, flows_k, stride1, dists, inds, reads, L, p)
            if check_flows:
                check_finite("flows", flows, dists)
    return dists.view(shape).to(vid0.dtype), inds.view(*shape, 3)


def _select_in_chunks(vid0c, vid1c, flows, flows_k, stride1, dists, inds, reads: tuple[str, int],
                      L: reference.Layout, p: SearchParams) -> None:
    """All candidates of a chunk of queries, then the reference's self_action and top-k."""
    total, S1 = dists.shape[0], p.ws * p.ws
    S = p.window_frames * S1
    flows_ref = torch.round(flows.float()).long() if p.itype == "int" else flows.float()
    step = chunk_size(S * 48)
    for start in range(0, total, step):
        n = min(step, total - start)
        chunk_dists = torch.empty(n, S, dtype=torch.float32, device=dists.device)
        chunk_inds = torch.empty(n, S, 3, dtype=inds.dtype, device=dists.device)
        _launch_forward(vid0c, vid1c, flows_k, stride1, chunk_dists, chunk_inds, start, n, 0, 0,
                        reads, L, p)
        index = torch.arange(start, start + n, device=dists.device)
        targets = reference.slot_targets(flows_ref, reference.decode(index, L, p), L, p)
        kept_dists, kept_inds = reference.select(
            chunk_dists.view(n, p.window_frames, S1), chunk_inds.view(n, p.window_frames, S1, 3),
            targets, p)
        dists[start:start + n] = kept_dists
        inds[start:start + n] = kept_inds.to(inds.dtype)


def fixed_point_scales(grad_dists: Tensor, grad_inds: Tensor, vid0: Tensor, vid1: Tensor,
                       pairs: int, p: SearchParams) -> Tensor:
    """Scales ``[3]`` (grad vid0, grad vid1, grad flows) of the deterministic backward.

    Each gradient is summed as int64 multiples of ``1 / scale``; integer sums do
    not depend on the order of the atomic adds, so results are bitwise
    reproducible. The scale is the largest power of two for which the sum of
    the absolute values of all contributions (bounded from the inputs' maxima)
    stays below 2^61, which leaves about 2^31 units for the largest single
    contribution: far finer than float32 rounding of the same sums.
    """
    g = grad_dists.detach().abs().amax().float()
    v0, v1 = vid0.detach().abs().amax().float(), vid1.detach().abs().amax().float()
    contribution = 2 * g * (v0 + v1) if p.dist_type == "l2" else g * torch.maximum(v0, v1)
    terms = pairs * p.pt * p.ps * p.ps * 4
    bound_vid = contribution * terms
    bound_flows = pairs * (contribution * p.pt * p.ps * p.ps * vid0.shape[3] * 2 * v1
                           + grad_inds.detach().abs().amax().float())
    bounds = torch.stack([bound_vid, bound_vid, bound_flows]).clamp(min=1e-30)
    exponent = torch.floor(61 - torch.log2(bounds)).clamp(-120, 120)
    return torch.exp2(exponent).float()


def backward_tile(neighbours: int, cb: int) -> tuple[int, int]:
    """``(BQ, num_warps)`` of the backward's ``[BQ, neighbours, cb]`` reads: 16 values per
    thread, one warp unless one query's neighbours exceed 512 values (the fastest tiles
    of ``benchmarks/tune_search.py --backward-only`` on an H200 with relaxed atomics)."""
    bq = _clamp(512 // (neighbours * cb), 1, 16)
    return bq, _clamp(bq * neighbours * cb // 512, 1, 16)


def _index_gradient(grad_inds: Tensor, want_flows: bool, total: int, K_full: int) -> tuple[Tensor, int]:
    """``grad_inds`` as the backward kernel reads it, ``[total, K_full, 3]`` float32, and its
    step: 1, or 0 where it is one broadcast value (autograd's zero when the indices
    get no gradient), passed as one element instead of a copy of the indices' size."""
    if want_flows and any(stride != 0 for stride in grad_inds.stride()):
        return grad_inds.reshape(total, K_full, 3).float().contiguous(), 1
    if want_flows and grad_inds.numel() > 0:
        return grad_inds.reshape(-1)[:1].float().view(1, 1, 1), 0
    return torch.zeros(1, 1, 1, device=grad_inds.device), 0  # never read


def non_local_search_backward(grad_dists: Tensor, grad_inds: Tensor, vid0: Tensor, vid1: Tensor,
                              flows: Tensor, inds: Tensor, flows_need_grad: bool,
                              p: SearchParams) -> tuple[Tensor, Tensor, Tensor]:
    """Backward; same contract as :func:`stnls.backends.reference.search.non_local_search_backward`."""
    if vid0.dtype == torch.float64:
        return reference.non_local_search_backward(grad_dists, grad_inds, vid0, vid1, flows, inds,
                                                   flows_need_grad, p)
    L = reference.Layout.of(vid0, vid1, flows)
    total = L.B * L.HD * L.queries
    K_full = inds.shape[-2]
    K = K_full if p.k_agg <= 0 else min(p.k_agg, K_full)
    want_flows = flows_need_grad and p.itype == "float" and L.Wf > 0
    fixed_point = torch.are_deterministic_algorithms_enabled()
    acc_dtype = torch.int64 if fixed_point else torch.float32
    pairs = total * K
    with device_guard(vid0):
        width = channel_block(L.C, vid0.dtype, whole_pixel=True)
        vid0c, vid1c = channels_last(vid0, width), channels_last(vid1, width)
        flows_k = _kernel_flows(flows, p)
        grad_dists_c = grad_dists.reshape(total, K_full).contiguous()
        grad_inds_c, grad_inds_step = _index_gradient(grad_inds, want_flows, total, K_full)
        inds_c = inds.reshape(total, K_full, 3).contiguous()
        grad0 = torch.zeros(vid0c.shape, dtype=acc_dtype, device=vid0.device)
        grad1 = torch.zeros(vid1c.shape, dtype=acc_dtype, device=vid0.device)
        grad_flows = torch.zeros(max(flows.numel(), 1), dtype=acc_dtype, device=vid0.device)
        if fixed_point:
            scales = fixed_point_scales(grad_dists_c[:, :K], grad_inds_c[:, :K], vid0, vid1,
                                        pairs, p)
        else:
            scales = torch.ones(3, dtype=torch.float32, device=vid0.device)
        neighbours = next_power_of_2(K)
        bq, warps = backward_tile(neighbours, width)
        bq = _block(total, bq)
        if pairs > 0:
            search_backward_kernel[(cdiv(total, bq),)](
                grad_dists_c, grad_inds_c, inds_c, vid0c, vid1c, flows_k, grad0, grad1, grad_flows,
                scales, grad_inds_step, total, K_full, K, L.queries, L.HD, L.HDf, L.T, L.qH, L.qW,
                L.kH, L.kW, L.nH, L.nW, L.Wf, p.wt, p.stride0, p.strideQ, p.off_Hq, p.off_Wq, p.dilation,
                CP=vid0c.shape[-1], CB=width, W_T=p.window_frames, PS=p.ps, PT=p.pt,
                IS_FLOAT=p.itype == "float",
                L2=p.dist_type == "l2", REFLECT=p.reflect_bounds, USE_ADJ=p.use_adj,
                FLOWS=want_flows, FIXED_POINT=fixed_point, BQ=bq, KK=neighbours, num_warps=warps)
        if fixed_point:
            grad0, grad1, grad_flows = (buf.double() / scale.double()
                                        for buf, scale in zip((grad0, grad1, grad_flows), scales))
        grad0, grad1 = channels_first(grad0.float(), L.C), channels_first(grad1.float(), L.C)
        if p.normalize_bwd:
            grad0 = grad0 / reference.coverage_counts(L.qH, L.qW, p.stride0, p.ps, grad0.dtype, vid0.device)
            grad1 = grad1 / reference.coverage_counts(L.kH, L.kW, int(p.stride1), p.ps, grad1.dtype,
                                                      vid0.device)
        grad_flows = grad_flows[:flows.numel()].float().view(flows.shape)
    return grad0.to(vid0.dtype), grad1.to(vid1.dtype), grad_flows.to(flows.dtype)
