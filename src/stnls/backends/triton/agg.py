"""Launchers of the Triton aggregation ops (same contract as :mod:`stnls.backends.reference.agg`).

* ``agg_gather`` (``NonLocalGather``, ``NonLocalGatherAdd``/``WeightedPatchSum``,
  ``PooledPatchSum``): one program per block of output pixels gathers every
  (query, patch element, neighbour) landing on them and writes the normalised
  result once. No atomics, so it is deterministic, and with ``sum_k`` no ``K``
  stack ever exists. Each (query, neighbour) pair is first reduced to a 16-byte
  record (first source row, bilinear fractions, weight) that the ``ps*ps``
  pixels it covers read instead of re-evaluating its flow; records are made for a
  chunk of frames at a time, at most about the output's size. The summed gather
  with mirrored borders (``WeightedPatchSum``'s forward; patch sizes of
  :data:`QUERY_PATCH_SIZES`, ``pt = 1``, dilation 1) runs query by query instead:
  each query sums its neighbours' patches in registers, read at fixed offsets from
  a copy of the video mirrored beyond its borders, and adds the sum to a float32
  table with atomic adds (so not under ``torch.use_deterministic_algorithms``).
* ``agg_scatter`` (the adjoint; the video gradient of the gathers, and
  ``NonLocalScatter``/``NonLocalScatterAdd``): one program per block of queries
  pushes ``w * y / coverage`` to the neighbours' source pixels with atomic adds into
  a float32 channels-last buffer. A pair whose patch lies inside the frame adds at
  fixed offsets; with real offsets and dilation 1 its bilinear corners merge first
  (one add per pixel of the ``(ps+1)^2`` grid instead of ``4*ps*ps``). Under
  ``torch.use_deterministic_algorithms(True)`` the adds are int64 fixed point
  (bitwise reproducible, see :func:`.launch.fixed_point_scale`).
* ``agg_pair_grads`` (gradients by the weights and the offsets): one row per
  (query, neighbour) pair, reduced in registers; no atomics.
* ``agg_gather_backward`` (the gather's backward): where it measured faster, the
  pair-gradient kernel also does the scatter's atomic adds from the same reads.

The fast paths (records, fixed offsets) need ``pt = 1``; other pairs and other
``pt`` go element by element with the full geometry. If a fast-path kernel fails to
compile on the installed Triton, that op falls back to the element-by-element
kernel (a warning says so; :data:`FALLBACKS` lists them). float64 inputs run the
reference backend.
"""

from __future__ import annotations

import functools
import logging
import warnings

import torch
import triton
from torch import Tensor

from ...params import AggParams
from ...utils.checks import checked_probe
from ..reference import agg as reference
from . import launch
from .agg_kernels import (agg_gather_kernel, agg_pair_grads_kernel, agg_patch_sum_kernel,
                          agg_scatter_kernel, pair_records_kernel)
from .launch import (block_programs, cdiv, channel_block, channels_last, device_guard,
                     fixed_point_scale, square_block, tile_blocks)

logger = logging.getLogger("stnls")

# Fast-path specialisations that failed to compile here (they run the general kernel):
# "<kernel>(<constexpr>=<value>, ...)".
FALLBACKS: set[str] = set()
# Use the fast paths where they apply (tests switch them off to check the general path).
USE_FAST = True
# Patch sizes at which the gather's backward on real offsets at dilation 1 runs as one
# pass (see _fused).
FUSED_PATCH_SIZES = (1, 3)
# Patch sizes at which the summed gather (WeightedPatchSum) runs query by query with
# atomic adds (see _patch_sum) instead of pixel by pixel (measured on an H200: faster at 3
# and 7, slower at 1); not under torch.use_deterministic_algorithms(True), whose sums must
# not depend on the order of the adds.
QUERY_PATCH_SIZES = (3, 7)
# Elements of one [queries, channels] tile of the query-by-query patch sum (four per thread).
QUERY_TILE_ELEMENTS = 512
# Tiles of the gather kernel by channel block, (elements, warps) (else TILE_ELEMENTS and
# NUM_WARPS of .launch). Swept on an H200 (kernel time): 8 channels (NonLocalGather on readme
# and readme_int) 357 -> 311 and 236 -> 208 us in two warps of 32 rows, 64 channels (gda's
# WeightedPatchSum) 226 -> 200 us in eight warps of 16 rows; 16 channels (mid) stay at 512 x 4.
GATHER_TILES = {8: (256, 2), 64: (1024, 8)}
# Registers per thread the kernels are compiled for (None: the compiler's choice). Measured
# on an H200: more programs per multiprocessor hide the gather's load latency better.
MAX_REGISTERS: dict[str, int | None] = {"agg_gather_kernel": 64, "agg_pair_grads_kernel": 96,
                                        "agg_scatter_kernel": 96}
# Largest table row a 32-bit pair record holds.
_MAX_RECORD_ROW = 2**31 - 1


def _specialisation(kernel, constants: dict) -> str:
    settings = ", ".join(f"{k}={v}" for k, v in sorted(constants.items()) if k != "FAST")
    return f"{kernel.fn.__name__}({settings})"


def _fast_compiles(kernel, constants: dict) -> bool:
    """False once the fast variant of this specialisation failed to compile."""
    return not FALLBACKS or _specialisation(kernel, constants) not in FALLBACKS


def _launch(kernel, grid, args, constants) -> None:
    """Launch ``kernel`` (with its register cap, :data:`MAX_REGISTERS`); if its ``FAST``
    variant fails to compile, warn and run (and from then on use, for this
    specialisation) the general one."""
    constants = {**constants, **launch.register_cap(MAX_REGISTERS.get(kernel.fn.__name__))}
    if constants.get("FAST") and not _fast_compiles(kernel, constants):
        constants = {**constants, "FAST": False}
    try:
        kernel[grid](*args, **constants)
    except Exception as error:  # compilation errors of the installed triton
        if not constants.get("FAST") or launch.interpreting():
            raise
        _fall_back(_specialisation(kernel, constants), error)
        kernel[grid](*args, **{**constants, "FAST": False})


def _fall_back(key: str, error: Exception) -> None:
    """Record (:data:`FALLBACKS`) and warn that the fast specialisation ``key`` does not
    compile; the caller runs the general kernel."""
    FALLBACKS.add(key)
    message = (f"stnls: the fast path of {key} does not compile with triton "
               f"{triton.__version__} ({type(error).__name__}: {str(error)[:200]}); "
               "using the general kernel")
    warnings.warn(message, RuntimeWarning, stacklevel=4)
    logger.warning(message)


@functools.lru_cache(maxsize=64)
def _coverage(T: int, p: AggParams, device: torch.device) -> Tensor:
    """``[T, out_h, out_w]`` float32 coverage (the reference's, at least 1)."""
    return reference.coverage(T, p, torch.float32, device)[..., 0].contiguous()


@functools.lru_cache(maxsize=16)
def _unit(device: torch.device) -> Tensor:
    """A float32 ``[1]`` one (the scale of the float atomics)."""
    return torch.ones(1, dtype=torch.float32, device=device)


def _geometry(p: AggParams, T: int, K: int) -> tuple:
    """Scalar kernel arguments from ``T`` to ``dilation`` (same order in every kernel)."""
    n_h, n_w = p.grid
    return (T, p.in_h, p.in_w, p.out_h, p.out_w, n_h, n_w, K, p.stride_in, p.stride_out,
            p.dilation)


def _constants(p: AggParams) -> dict:
    return dict(PS=p.ps, PT=p.pt, IS_FLOAT=p.itype == "float", REFLECT=p.reflect_bounds,
                USE_ADJ=p.use_adj, SUM_K=p.sum_k, POOLED=p.pooled, num_warps=launch.NUM_WARPS)


def _fast(p: AggParams) -> bool:
    """Whether the fixed-offset fast paths apply (``pt = 1``)."""
    return USE_FAST and p.pt == 1


def _matches(weights: Tensor, flows: Tensor, p: AggParams) -> tuple[Tensor, Tensor]:
    """Weights (own dtype) and flows (float32, or int32) as the kernels read them."""
    flows = flows.float() if p.itype == "float" else flows.to(torch.int32)
    return weights.contiguous(), flows.contiguous()


def _covering_steps(p: AggParams) -> int:
    """Grid positions per axis whose patch may cover a given output pixel."""
    return 1 if p.pooled else p.dilation * (p.ps - 1) // p.stride_out + 1


def _gradient_table(y: Tensor, T: int, p: AggParams) -> Tensor:
    """``y / coverage`` as a float32 padded channels-last table (``y`` of the gather's shape)."""
    cov = _coverage(T, p, y.device).view(T, p.out_h * p.out_w)
    return channels_last(y, torch.float32, cov)


def _record_frames(n_frames: int, frame_pairs: int, out_bytes: int) -> int:
    """Frames per chunk of the gather: their pair records (16 bytes each) take at most
    about the output's size (at least 32 MiB, at least one frame) and are indexed in
    int32."""
    budget = min(max(out_bytes, 32 << 20), _MAX_RECORD_ROW)
    return max(1, min(n_frames, budget // max(1, 16 * frame_pairs)))


def agg_gather(vid: Tensor, weights: Tensor, flows: Tensor, p: AggParams,
               check_flows: bool = False) -> Tensor:
    """``out = A vid / coverage``; same contract as :func:`stnls.backends.reference.agg.agg_gather`."""
    if vid.dtype == torch.float64:
        return reference.agg_gather(vid, weights, flows, p, check_flows)
    B, HD, T, C, H, W = vid.shape
    K = weights.shape[-1]
    probe = checked_probe(flows, check_flows)
    if _by_queries(p) and K > 0 and vid.numel() > 0:
        with device_guard(vid):
            summed = _patch_sum(vid, weights, flows, probe, p)
        if summed is not None:
            return summed
    planes = 1 if p.sum_k else K
    shape = (B, HD, T, C, p.out_h, p.out_w) if p.sum_k else (B, HD, K, T, C, p.out_h, p.out_w)
    with device_guard(vid):
        out = torch.empty(shape, dtype=vid.dtype, device=vid.device)
        if out.numel() == 0 or K == 0:
            return out.zero_()
        cb, c_pad = channel_block(C)
        table = channels_last(vid, vid.dtype)
        w, f = _matches(weights, flows, p)
        n_frames = B * HD * T
        n_h, n_w = p.grid
        elements, warps = GATHER_TILES.get(cb, (launch.TILE_ELEMENTS, launch.NUM_WARPS))
        bp, bh, bw, _ = tile_blocks(n_frames, p.out_h, p.out_w, cb, elements, warps)
        constants = {**_constants(p), "num_warps": warps}
        constants.update(C_PAD=c_pad, CB=cb, BP=bp, BH=bh, BW=bw, FAST=True,
                         PROBE=probe is not None)
        fast = (_fast(p) and n_frames * H * W <= _MAX_RECORD_ROW
                and _fast_compiles(agg_gather_kernel, constants))
        constants["FAST"] = fast
        frame_pairs = n_h * n_w * K
        out_bytes = out.numel() * out.element_size()
        chunk = _record_frames(n_frames, frame_pairs, out_bytes) if fast else n_frames
        records = torch.empty(chunk * frame_pairs if fast else 1, 4, dtype=torch.float32,
                              device=vid.device)
        border = torch.empty(chunk * n_h * n_w if fast else 1, dtype=torch.int32, device=vid.device)
        steps = _covering_steps(p)
        cov = _coverage(T, p, vid.device)
        for frame0 in range(0, n_frames, chunk):
            frames = min(chunk, n_frames - frame0)
            if fast:
                n_pairs = frames * frame_pairs
                block = launch.elementwise_block(n_pairs, 512)
                border.zero_()
                pair_records_kernel[(cdiv(n_pairs, block),)](
                    f, w, records, border, frame0, n_pairs, T, H, W, n_h, n_w, K, p.stride_in,
                    p.dilation, PS=p.ps, IS_FLOAT=p.itype == "float", USE_ADJ=p.use_adj,
                    BLOCK=block, num_warps=4)
            programs = block_programs(frames, p.out_h, p.out_w, bp, bh, bw)
            _launch(agg_gather_kernel, (programs, c_pad // cb, planes),
                    (table, w, f, records.view(torch.int32), records, border, cov,
                     cov if probe is None else probe, out, frame0,
                     frames, T, C, H, W, p.out_h, p.out_w, n_h, n_w, K, p.stride_in,
                     p.stride_out, p.dilation, steps, steps), constants)
    return out


def _by_queries(p: AggParams) -> bool:
    """Whether the summed gather runs query by query (:func:`_patch_sum`): patches read
    from a mirrored copy of the video need mirrored borders (``reflect_bounds``) and
    frames larger than the mirrored margin."""
    return (_fast(p) and p.sum_k and p.dilation == 1 and p.reflect_bounds
            and p.ps in QUERY_PATCH_SIZES and _mirror_pad(p) < min(p.in_h, p.in_w)
            and not torch.are_deterministic_algorithms_enabled())


def _mirror_pad(p: AggParams) -> int:
    """Pixels of mirrored video beyond each border that hold the corner grid of every patch
    of an anchor inside the frame."""
    first = 0 if p.use_adj else -(p.ps // 2)
    return max(-first, p.ps + first)


def _query_tiles(n_frames: int, n_h: int, n_w: int, cb: int) -> tuple[int, int, int, int, int]:
    """``(BQ, BH, BW, programs, num_warps)`` of the query-by-query patch sum: ``[BQ, cb]``
    tiles of about :data:`QUERY_TILE_ELEMENTS` elements, 8 to 64 queries. No 16-query tiles:
    Triton 3.6 fails to compile them (``TritonGPURemoveLayoutConversions``)."""
    if launch.interpreting():
        bq, bh, bw, programs = tile_blocks(n_frames, n_h, n_w, cb)
        return bq, bh, bw, programs, launch.NUM_WARPS
    bq = max(8, min(64, QUERY_TILE_ELEMENTS // cb))
    if bq == 16:
        bq = 32
    warps = max(4, min(8, bq * cb // 128))
    bh, bw = square_block(bq, n_w)
    return bq, bh, bw, block_programs(n_frames, n_h, n_w, bq, bh, bw), warps


def _patch_rows(ps: int) -> int:
    """Patch rows per pass of the query-by-query patch sum: at most 4 (measured on an H200
    at ``ps = 7``: passes of 4 rows beat passes of 1 to 3; ``ps = 3`` in one pass)."""
    passes = cdiv(ps, 4)
    return cdiv(ps, passes)


def _patch_sum(vid: Tensor, weights: Tensor, flows: Tensor, probe: Tensor | None,
               p: AggParams) -> Tensor | None:
    """The summed gather query by query (:func:`.agg_kernels.agg_patch_sum_kernel`; NaN
    everywhere if ``probe`` is given and not finite), or None if that kernel does not
    compile with the installed Triton (a warning says so)."""
    B, HD, T, C = vid.shape[:4]
    K = weights.shape[-1]
    cb, c_pad = channel_block(C)
    n_frames = B * HD * T
    bq, bh, bw, programs, warps = _query_tiles(n_frames, *p.grid, cb)
    constants = dict(C_PAD=c_pad, CB=cb, PS=p.ps, ROWS=_patch_rows(p.ps),
                     IS_FLOAT=p.itype == "float", USE_ADJ=p.use_adj, POOLED=p.pooled, BQ=bq,
                     BH=bh, BW=bw, num_warps=warps)
    if not _fast_compiles(agg_patch_sum_kernel, constants):
        return None
    acc = torch.zeros(n_frames * p.out_h * p.out_w, c_pad, dtype=torch.float32, device=vid.device)
    w, f = _matches(weights, flows, p)
    pad = _mirror_pad(p)
    try:
        agg_patch_sum_kernel[(programs, c_pad // cb)](
            channels_last(vid, vid.dtype, pad=pad), w, f, acc, n_frames, *_geometry(p, T, K),
            pad, **constants)
    except Exception as error:  # compilation errors of the installed triton
        if launch.interpreting():
            raise
        _fall_back(_specialisation(agg_patch_sum_kernel, constants), error)
        return None
    return _from_table(acc, vid.dtype, (B, HD, T), C, p.out_h, p.out_w,
                       _coverage(T, p, vid.device), probe)


def agg_scatter(y: Tensor, weights: Tensor, flows: Tensor, p: AggParams,
                check_flows: bool = False) -> Tensor:
    """``vid = A^T (y / coverage)``; same contract as :func:`stnls.backends.reference.agg.agg_scatter`."""
    if y.dtype == torch.float64:
        return reference.agg_scatter(y, weights, flows, p, check_flows)
    B, HD, T = weights.shape[:3]
    K = weights.shape[-1]
    C = y.shape[-3]
    fixed_point = torch.are_deterministic_algorithms_enabled()
    with device_guard(y):
        cb, c_pad = channel_block(C)
        if fixed_point:  # int64 adds on wider tiles trip a layout bug of triton 3.6
            cb = min(cb, 16)
        n_frames = B * HD * T
        n_q = n_frames * p.grid[0] * p.grid[1]
        acc = torch.zeros(n_frames * p.in_h * p.in_w, c_pad,
                          dtype=torch.int64 if fixed_point else torch.float32, device=y.device)
        if n_q > 0 and K > 0 and C > 0:
            g = _gradient_table(y, T, p)
            w, f = _matches(weights, flows, p)
            if fixed_point:
                contributions = n_q * K * p.pt * p.ps * p.ps * 4
                scale = fixed_point_scale(w.abs().amax().float() * g.abs().amax() * contributions)
            else:
                scale = _unit(y.device)
            bq, bh, bw, programs = tile_blocks(n_frames, *p.grid, cb)
            _launch(agg_scatter_kernel, (programs, c_pad // cb),
                    (g, w, f, acc, scale, n_frames, *_geometry(p, T, K)),
                    dict(C_PAD=c_pad, CB=cb, BQ=bq, BH=bh, BW=bw, FAST=_fast(p), MERGE=_merge(p),
                         FIXED_POINT=fixed_point,
                         **_constants(p)))
            if fixed_point:
                acc = acc.double() / scale.double()
        return _from_table(acc, y.dtype, (B, HD, T), C, p.in_h, p.in_w,
                           probe=checked_probe(flows, check_flows))


def agg_pair_grads(y: Tensor, vid: Tensor, weights: Tensor, flows: Tensor, want_flows: bool,
                   p: AggParams) -> tuple[Tensor, Tensor]:
    """Gradients of ``<y, agg_gather(vid, weights, flows)>`` by the weights and the offsets;
    same contract as :func:`stnls.backends.reference.agg.agg_pair_grads`."""
    if vid.dtype == torch.float64 or y.dtype == torch.float64:
        return reference.agg_pair_grads(y, vid, weights, flows, want_flows, p)
    with device_guard(vid):
        grad_w, grad_f, _ = _pair_grads(y, vid, weights, flows, want_flows, False, p)
    return grad_w, grad_f


def agg_gather_backward(y: Tensor, vid: Tensor, weights: Tensor, flows: Tensor, want_vid: bool,
                        want_flows: bool, p: AggParams) -> tuple[Tensor, Tensor, Tensor]:
    """The gather's gradients, from one pass over the pairs where that measured faster
    (:func:`_fused`), else from :func:`agg_scatter` and the pair-gradient kernel; same
    contract as :func:`stnls.backends.reference.agg.agg_gather_backward`. Under
    ``torch.use_deterministic_algorithms(True)`` the video gradient comes from the
    fixed-point :func:`agg_scatter`."""
    if vid.dtype == torch.float64 or y.dtype == torch.float64:
        return reference.agg_gather_backward(y, vid, weights, flows, want_vid, want_flows, p)
    fused = want_vid and _fused(p) and not torch.are_deterministic_algorithms_enabled()
    with device_guard(vid):
        grad_w, grad_f, acc = _pair_grads(y, vid, weights, flows, want_flows, fused, p)
        if fused:
            grad_vid = _from_table(acc, y.dtype, weights.shape[:3], y.shape[-3], p.in_h, p.in_w)
        elif want_vid:
            grad_vid = agg_scatter(y, weights, flows, p)
        else:
            grad_vid = vid.new_empty(0)
    return grad_vid, grad_w, grad_f


def _pair_grads(y: Tensor, vid: Tensor, weights: Tensor, flows: Tensor, want_flows: bool,
                scatter: bool, p: AggParams) -> tuple[Tensor, Tensor, Tensor | None]:
    """``(grad_w, grad_f, acc)``: the pair gradients (``grad_f`` empty without
    ``want_flows``) and (``scatter``) the float32 channels-last accumulator of the video
    gradient, else None."""
    B, HD, T, C = vid.shape[:4]
    K = weights.shape[-1]
    offsets = want_flows and p.itype == "float"
    flows_dtype = flows.dtype if flows.is_floating_point() else weights.dtype
    cb, c_pad = channel_block(C)
    n_frames = B * HD * T
    n_q = n_frames * p.grid[0] * p.grid[1]
    grad_w = torch.empty(n_q * K, dtype=torch.float32, device=vid.device)
    grad_f = ((torch.empty if offsets and C > 0 else torch.zeros)(
        n_q * K, 3, dtype=torch.float32, device=vid.device) if want_flows else grad_w)
    acc = (torch.zeros(n_frames * p.in_h * p.in_w, c_pad, dtype=torch.float32, device=vid.device)
           if scatter else None)
    if C == 0:
        grad_w.zero_()
    if n_q > 0 and K > 0 and C > 0:
        g = _gradient_table(y, T, p)
        table = channels_last(vid, vid.dtype)
        w, f = _matches(weights, flows, p)
        bq, bh, bw, programs = tile_blocks(n_frames, *p.grid, cb)
        _launch(agg_pair_grads_kernel, (programs,),
                (g, table, w, f, grad_w, grad_f, grad_w if acc is None else acc, _unit(vid.device),
                 n_frames, *_geometry(p, T, K), c_pad // cb),
                dict(C_PAD=c_pad, CB=cb, FLOWS=offsets, SCATTER=scatter, BQ=bq, BH=bh, BW=bw,
                     FAST=_fast(p), MERGE=_merge(p), **_constants(p)))
    grad_f = (grad_f.view(flows.shape).to(flows_dtype) if want_flows
              else flows.new_empty(0, dtype=flows_dtype))
    return grad_w.view(weights.shape).to(weights.dtype), grad_f, acc


def _fused(p: AggParams) -> bool:
    """Whether the gather's backward runs as one pass (scatter and pair gradients from the
    same reads). Exact and dilated pairs save reads; on real offsets at dilation 1 the
    pass goes over the corner grid, which on an H200 beat the two separate kernels at
    ``ps`` 1 and 3 and lost at ``ps = 7`` (``docs/performance.md``)."""
    return not _merge(p) or p.ps in FUSED_PATCH_SIZES


def _merge(p: AggParams) -> bool:
    """Whether a pair inside the frame goes over its bilinear corner grid (real offsets,
    dilation 1)."""
    return p.itype == "float" and p.dilation == 1


def _from_table(acc: Tensor, dtype: torch.dtype, frames: tuple, C: int, H: int, W: int,
                cov: Tensor | None = None, probe: Tensor | None = None) -> Tensor:
    """A channels-last accumulator ``[B*HD*T*H*W, C_PAD]`` as a ``dtype`` video
    ``[B, HD, T, C, H, W]``, divided by ``cov [T, H, W]`` if given, NaN everywhere if
    ``probe`` is given and not finite."""
    return launch.from_channels_last(acc, (*frames, C, H, W), dtype, cov, probe)
