"""Triton kernels of the aggregation ops: gather (per output pixel; summed over the
neighbours also per query, atomic adds), its adjoint scatter (per query, atomic adds) and
the gradients by the weights and the offsets (per query).

The geometry is that of :mod:`stnls.backends.reference.agg` (read its module doc).
Neighbour ``k`` of query ``(t, i, j)`` has an anchor (:func:`neighbour_anchor`); patch
element ``(pk, a, b)`` reads the source pixel ``anchor + (pk, d[a], d[b])`` (exact, or
bilinear for real offsets: :func:`bilinear_axis`) and writes the destination pixel
``(t + pk, i * stride_out + d[a], j * stride_out + d[b])`` (:func:`destination`), with
``d[a] = dilation * (a + FIRST)``. Every position is computed by these functions.

Videos are read and gradients written as padded channels-last tables
``[pixels, C_PAD]`` (see :func:`stnls.backends.triton.launch.channels_last`): one
tap moves ``C_PAD`` contiguous values. Tiles are ``[rows, CB]`` (rows = output pixels
or queries, ``CB`` channels); everything accumulates in float32.
"""

from __future__ import annotations

import triton
import triton.language as tl

from .geometry import in_range, pixel, reflect

# Offsets this large mark a missing neighbour (``stnls.backends.reference.agg.MISSING_OFFSET``).
MISSING = tl.constexpr(1e7)
MISSING_INT = tl.constexpr(10000000)



@triton.jit
def round_half_even(x):
    """``torch.round``: nearest integer, ties to even."""
    r = tl.floor(x + 0.5)
    odd = (r - 2.0 * tl.floor(r * 0.5)) != 0.0
    return tl.where(((r - x) == 0.5) & odd, r - 1.0, r)


@triton.jit
def block_rows(block, n_frames, H, W, BP: tl.constexpr, BH: tl.constexpr, BW: tl.constexpr):
    """Rows of program ``block`` in an ``n_frames x H x W`` raster (pixels, or queries on
    their grid): a ``BH x BW`` block of ``BP // (BH * BW)`` consecutive frames (one frame on
    a GPU; whole small frames under the interpreter), so that neighbouring rows read
    neighbouring memory. Returns ``(frame, y, x, live)``, all vectors."""
    FB: tl.constexpr = BP // (BH * BW)
    blocks_w = (W + BW - 1) // BW
    per_group = blocks_w * ((H + BH - 1) // BH)
    r = tl.arange(0, BP)
    spot = r % (BH * BW)
    rest = block % per_group
    frame = (block.to(tl.int64) // per_group) * FB + r // (BH * BW)
    y = (rest // blocks_w) * BH + spot // BW
    x = (rest % blocks_w) * BW + spot % BW
    live = (frame < n_frames) & (y < H) & (x < W)
    return frame, y.to(tl.int32), x.to(tl.int32), live


@triton.jit
def covering_query(y, m, stride, dilation, n, steps, FIRST: tl.constexpr, PS: tl.constexpr,
                   POOLED: tl.constexpr):
    """The ``m``-th grid position ``i`` (of ``steps``) whose patch covers pixel ``y`` along one
    axis, the patch element ``a`` landing there, and whether the pair exists.

    ``y = i * stride + dilation * (a + FIRST)`` with ``0 <= i < n``, ``0 <= a < PS``;
    pooled: ``y = i * PS + a``. ``steps = dilation * (PS - 1) // stride + 1`` (1 pooled).
    """
    if POOLED:
        i = y // PS
        a = y - i * PS
        ok = i < n
    else:
        top = dilation * (PS - 1 + FIRST)
        i = (y - top + steps * stride + stride - 1) // stride - steps + m  # ceil, all terms >= 0
        rem = y - i * stride - dilation * FIRST
        ok = (i >= 0) & (i < n) & (rem >= 0) & (rem < dilation * PS)
        ok = ok & ((tl.where(ok, rem, 0) % dilation) == 0)
        a = tl.where(ok, rem, 0) // dilation
    return i, a, ok


@triton.jit
def destination(t, i, j, pk, a, b, T, out_h, out_w, stride_out, dilation, FIRST: tl.constexpr,
                PS: tl.constexpr, POOLED: tl.constexpr):
    """Destination pixel ``(t + pk, rh, rw)`` of patch element ``(pk, a, b)`` of query
    ``(t, i, j)``, and whether it is inside the output (never mirrored)."""
    if POOLED:
        rh = i * PS + a
        rw = j * PS + b
    else:
        rh = i * stride_out + dilation * (a + FIRST)
        rw = j * stride_out + dilation * (b + FIRST)
    ok = (t + pk < T) & in_range(rh, out_h) & in_range(rw, out_w)
    return t + pk, tl.where(ok, rh, 0), tl.where(ok, rw, 0), ok


@triton.jit
def neighbour_anchor(flows, pair, live, t, i, j, stride_in, T, in_h, in_w, IS_FLOAT: tl.constexpr):
    """Anchor ``(t, h, w)`` of neighbour ``pair`` (global index into ``[..., K, 3]`` flows) of
    query ``(t, i, j)``: mirrored once into the video; whether it is usable (inside after the
    mirror, offsets finite and below the "missing" marker); and ``d anchor / d offset`` (-1
    where the mirror flipped it) for rows and columns. Real offsets give real ``h, w`` and a
    rounded time."""
    f = flows + pair * 3
    ft = tl.load(f, mask=live, other=0)
    fh = tl.load(f + 1, mask=live, other=0)
    fw = tl.load(f + 2, mask=live, other=0)
    if IS_FLOAT:
        ft, fh, fw = ft.to(tl.float32), fh.to(tl.float32), fw.to(tl.float32)
        present = (tl.abs(ft) < MISSING) & (tl.abs(fh) < MISSING) & (tl.abs(fw) < MISSING)  # NaN too
        dt = round_half_even(tl.where(present, ft, 0.0)).to(tl.int32)
        raw_h = (i * stride_in).to(tl.float32) + tl.where(present, fh, 0.0)
        raw_w = (j * stride_in).to(tl.float32) + tl.where(present, fw, 0.0)
    else:
        present = ((ft < MISSING_INT) & (ft > -MISSING_INT) & (fh < MISSING_INT)
                   & (fh > -MISSING_INT) & (fw < MISSING_INT) & (fw > -MISSING_INT))
        dt = tl.where(present, ft, 0)
        raw_h = i * stride_in + tl.where(present, fh, 0)
        raw_w = j * stride_in + tl.where(present, fw, 0)
    anchor_t = reflect(t + dt, T)
    anchor_h = reflect(raw_h, in_h)
    anchor_w = reflect(raw_w, in_w)
    ok = (live & present & in_range(anchor_t, T) & in_range(anchor_h, in_h)
          & in_range(anchor_w, in_w))
    sign_h = tl.where(in_range(raw_h, in_h), 1.0, -1.0)
    sign_w = tl.where(in_range(raw_w, in_w), 1.0, -1.0)
    return (tl.where(ok, anchor_t, 0), tl.where(ok, anchor_h, 0), tl.where(ok, anchor_w, 0), ok,
            sign_h, sign_w)


@triton.jit
def bilinear_axis(s, ok, size):
    """Bilinear corners of real coordinates ``s`` along one axis: ``(c0, c1, w0, w1, in0, in1)``.

    ``c0 = floor(s)`` and ``c1 = c0 + 1``, each mirrored once and clamped (always safe to
    read); ``w0, w1`` their weights, zero for a corner still outside after the mirror (only
    a zero-weight corner at ``s == size - 1``, or a size-1 axis); ``in0, in1`` (float 0/1)
    whether the corner is inside.
    """
    s = tl.where(ok, s, 0.0)
    lo = tl.floor(s)
    frac = s - lo
    c0 = lo.to(tl.int32)
    r0 = reflect(c0, size)
    r1 = reflect(c0 + 1, size)
    in0 = in_range(r0, size).to(tl.float32)
    in1 = in_range(r1, size).to(tl.float32)
    r0 = tl.minimum(tl.maximum(r0, 0), size - 1)
    r1 = tl.minimum(tl.maximum(r1, 0), size - 1)
    return r0, r1, (1.0 - frac) * in0, frac * in1, in0, in1


@triton.jit
def load_cells(table, row, mask, c, C_PAD: tl.constexpr):
    """``table[row, c]`` as float32 (0 where ``mask`` is false); the arguments broadcast
    together into the shape of the result."""
    return tl.load(table + row * C_PAD + c, mask=mask, other=0.0).to(tl.float32)


@triton.jit
def load_rows(table, row, mask, c, C_PAD: tl.constexpr):
    """``table[row, c]`` as float32 ``[rows, CB]`` (0 where ``mask`` is false)."""
    return load_cells(table, row[:, None], mask[:, None], c[None, :], C_PAD)


@triton.jit
def source_pixel(anchor_t, anchor_h, anchor_w, ok, pk, dy, dx, T, H, W, REFLECT: tl.constexpr):
    """Source position of the patch element at offsets ``(pk, dy, dx)`` of an anchor:
    ``(t, y, x, valid, flip_y, flip_x)``, mirrored at the borders with ``REFLECT`` (else
    invalid outside); ``flip`` is -1 where a mirror flipped the coordinate."""
    st, ok_t, _ = pixel(anchor_t + pk, T, REFLECT)
    sy, ok_y, flip_y = pixel(anchor_h + dy, H, REFLECT)
    sx, ok_x, flip_x = pixel(anchor_w + dx, W, REFLECT)
    valid = ok & ok_t & ok_y & ok_x
    return tl.where(valid, st, 0), sy, sx, valid, flip_y, flip_x


@triton.jit
def sample(vid, bhd, st, sy, sx, valid, c, T, H, W, C_PAD: tl.constexpr, IS_FLOAT: tl.constexpr):
    """Value ``[rows, CB]`` of the channels-last video at ``(bhd, st, sy, sx)`` (bilinear for
    real positions), 0 where not ``valid``."""
    frame = (bhd * T + st) * H
    if IS_FLOAT:
        y0, y1, wy0, wy1, _, _ = bilinear_axis(sy, valid, H)
        x0, x1, wx0, wx1, _, _ = bilinear_axis(sx, valid, W)
        value = (wy0 * wx0)[:, None] * load_rows(vid, (frame + y0) * W + x0, valid, c, C_PAD)
        value += (wy0 * wx1)[:, None] * load_rows(vid, (frame + y0) * W + x1, valid, c, C_PAD)
        value += (wy1 * wx0)[:, None] * load_rows(vid, (frame + y1) * W + x0, valid, c, C_PAD)
        value += (wy1 * wx1)[:, None] * load_rows(vid, (frame + y1) * W + x1, valid, c, C_PAD)
    else:
        value = load_rows(vid, (frame + tl.where(valid, sy, 0)) * W + tl.where(valid, sx, 0), valid,
                          c, C_PAD)
    return value


@triton.jit
def sample_with_gradient(vid, bhd, st, sy, sx, valid, c, T, H, W, C_PAD: tl.constexpr):
    """Bilinear value and its derivatives by the row and the column, each ``[rows, CB]``
    (right-sided differences of the mirrored frame at integer positions)."""
    frame = (bhd * T + st) * H
    y0, y1, wy0, wy1, iy0, iy1 = bilinear_axis(sy, valid, H)
    x0, x1, wx0, wx1, ix0, ix1 = bilinear_axis(sx, valid, W)
    v00 = load_rows(vid, (frame + y0) * W + x0, valid, c, C_PAD)
    v01 = load_rows(vid, (frame + y0) * W + x1, valid, c, C_PAD)
    v10 = load_rows(vid, (frame + y1) * W + x0, valid, c, C_PAD)
    v11 = load_rows(vid, (frame + y1) * W + x1, valid, c, C_PAD)
    value = ((wy0 * wx0)[:, None] * v00 + (wy0 * wx1)[:, None] * v01
             + (wy1 * wx0)[:, None] * v10 + (wy1 * wx1)[:, None] * v11)
    d_dy = ((wx0 * iy1)[:, None] * v10 + (wx1 * iy1)[:, None] * v11
            - (wx0 * iy0)[:, None] * v00 - (wx1 * iy0)[:, None] * v01)
    d_dx = ((wy0 * ix1)[:, None] * v01 + (wy1 * ix1)[:, None] * v11
            - (wy0 * ix0)[:, None] * v00 - (wy1 * ix0)[:, None] * v10)
    return value, d_dy, d_dx


@triton.jit
def accumulate(pointer, value, mask, scale, FIXED_POINT: tl.constexpr):
    """Relaxed atomic add; with ``FIXED_POINT`` into int64 units of ``1 / scale``."""
    if FIXED_POINT:
        tl.atomic_add(pointer, (value * scale).to(tl.int64), mask=mask, sem="relaxed")
    else:
        tl.atomic_add(pointer, value, mask=mask, sem="relaxed")


@triton.jit
def interior_corner(anchor_h, anchor_w, ok, in_h, in_w, dilation, FIRST: tl.constexpr,
                    PS: tl.constexpr, IS_FLOAT: tl.constexpr):
    """Pairs whose patch lies inside the frame with room for the bilinear ``+1`` corners
    (no patch pixel is mirrored or skipped), their first source corner ``(y0, x0)`` (of
    patch element ``(0, 0)``) and the bilinear fractions ``(fy, fx)`` all their elements
    share. Returns ``(interior, y0, x0, fy, fx)``."""
    low = dilation * FIRST
    high = dilation * (PS - 1 + FIRST)
    if IS_FLOAT:
        interior = (ok & (anchor_h + low >= 0) & (anchor_h + high < in_h - 1)
                    & (anchor_w + low >= 0) & (anchor_w + high < in_w - 1))
        top = tl.floor(tl.where(interior, anchor_h, 0.0))
        left = tl.floor(tl.where(interior, anchor_w, 0.0))
        fy = tl.where(interior, anchor_h, 0.0) - top
        fx = tl.where(interior, anchor_w, 0.0) - left
        y0 = top.to(tl.int32) + low
        x0 = left.to(tl.int32) + low
    else:
        interior = (ok & (anchor_h + low >= 0) & (anchor_h + high <= in_h - 1)
                    & (anchor_w + low >= 0) & (anchor_w + high <= in_w - 1))
        y0 = tl.where(interior, anchor_h, 0) + low
        x0 = tl.where(interior, anchor_w, 0) + low
        fy = y0.to(tl.float32) * 0.0
        fx = fy
    return interior, y0, x0, fy, fx


@triton.jit
def interpolate(vid, row, W, fy, fx, mask, c, C_PAD: tl.constexpr, IS_FLOAT: tl.constexpr):
    """Value ``[rows, CB]`` at table row ``row`` (+ fractions ``fy, fx`` towards the next row
    ``+ W`` and column ``+ 1``, all inside the frame); 0 where not ``mask``."""
    if IS_FLOAT:
        value = ((1.0 - fy) * (1.0 - fx))[:, None] * load_rows(vid, row, mask, c, C_PAD)
        value += ((1.0 - fy) * fx)[:, None] * load_rows(vid, row + 1, mask, c, C_PAD)
        value += (fy * (1.0 - fx))[:, None] * load_rows(vid, row + W, mask, c, C_PAD)
        value += (fy * fx)[:, None] * load_rows(vid, row + W + 1, mask, c, C_PAD)
    else:
        value = load_rows(vid, row, mask, c, C_PAD)
    return value


@triton.jit
def pair_records_kernel(
        flows, weights, records, border, frame0, n_pairs, T, in_h, in_w, nH, nW, K, stride_in,
        dilation, PS: tl.constexpr, IS_FLOAT: tl.constexpr, USE_ADJ: tl.constexpr,
        BLOCK: tl.constexpr):
    """Records ``[n_pairs, 4]`` (float32; ``code`` stored as its int32 bits) of the
    (query, neighbour) pairs of the frames ``frame0, ...`` (over ``B*HD*T``) for the gather,
    one ``(code, fy, fx, w)`` per pair, and ``border[q]`` (zeroed by the caller, ``q`` from
    the first query of ``frame0``) set where some neighbour of the query needs the flows.

    ``code`` is the table row of the pair's first source corner when its patch lies
    inside the frame (:func:`interior_corner`), -2 when the pair is usable but its patch
    leaves the frame (the gather evaluates it from the flows), -1 when it is not usable
    (anchor outside the video, missing neighbour; ``w`` is 0 then). A program takes
    ``BLOCK`` consecutive pairs; indices within the chunk fit in int32 (the caller
    bounds the chunk)."""
    FIRST: tl.constexpr = 0 if USE_ADJ else -(PS // 2)
    record = tl.program_id(0) * BLOCK + tl.arange(0, BLOCK)
    live = record < n_pairs
    local = record // K
    j = local % nW
    i = (local // nW) % nH
    frame = frame0 + local // (nH * nW)
    t = (frame % T).to(tl.int32)
    pair = (tl.full([], 0, tl.int64) + frame0) * (nH * nW) * K + record
    anchor_t, anchor_h, anchor_w, ok, _, _ = neighbour_anchor(
        flows, pair, live, t, i, j, stride_in, T, in_h, in_w, IS_FLOAT)
    interior, y0, x0, fy, fx = interior_corner(anchor_h, anchor_w, ok, in_h, in_w, dilation,
                                               FIRST, PS, IS_FLOAT)
    base = (((frame - t) + anchor_t) * in_h + y0) * in_w + x0
    code = tl.where(interior, base.to(tl.int32), tl.where(ok, -2, -1))
    w = tl.where(ok, tl.load(weights + pair, mask=live, other=0.0).to(tl.float32), 0.0)
    fields = tl.reshape(tl.join(tl.join(code.to(tl.float32, bitcast=True), fx), tl.join(fy, w)),
                        [BLOCK, 4])
    tl.store(records + record[:, None] * 4 + tl.arange(0, 4)[None, :], fields, mask=live[:, None])
    tl.atomic_max(border + local, 1, mask=live & (code == -2))


@triton.jit
def gather_tap(vid, weights, flows, pair, mask, bhd, tq, i, j, a, b, pk, c, T, in_h, in_w,
               stride_in, dilation, FIRST: tl.constexpr, C_PAD: tl.constexpr,
               IS_FLOAT: tl.constexpr, REFLECT: tl.constexpr):
    """``w * source`` ``[rows, CB]`` of patch element ``(pk, a, b)`` of neighbour ``pair`` of
    query ``(tq, i, j)``, from the flows (any pair; 0 where not ``mask``)."""
    w = tl.load(weights + pair, mask=mask, other=0.0).to(tl.float32)
    anchor_t, anchor_h, anchor_w, ok, _, _ = neighbour_anchor(
        flows, pair, mask, tq, i, j, stride_in, T, in_h, in_w, IS_FLOAT)
    st, sy, sx, valid, _, _ = source_pixel(
        anchor_t, anchor_h, anchor_w, ok, pk, dilation * (a + FIRST), dilation * (b + FIRST), T,
        in_h, in_w, REFLECT)
    value = sample(vid, bhd, st, sy, sx, valid, c, T, in_h, in_w, C_PAD, IS_FLOAT)
    return tl.where(valid, w, 0.0)[:, None] * value


@triton.jit
def agg_gather_kernel(
        vid, weights, flows, rec_i, rec_f, border, cov, probe, out, frame0, n_frames, T, C, in_h,
        in_w, out_h, out_w, nH, nW, K, stride_in, stride_out, dilation, steps_h, steps_w,
        C_PAD: tl.constexpr, CB: tl.constexpr, PS: tl.constexpr, PT: tl.constexpr,
        IS_FLOAT: tl.constexpr, REFLECT: tl.constexpr, USE_ADJ: tl.constexpr,
        SUM_K: tl.constexpr, POOLED: tl.constexpr, FAST: tl.constexpr, PROBE: tl.constexpr,
        BP: tl.constexpr, BH: tl.constexpr, BW: tl.constexpr):
    """``out = A vid / coverage`` written once per output pixel, without atomics.

    A program takes a block of ``BP`` output pixels (:func:`block_rows`) of the output
    frames ``frame0 .. frame0 + n_frames - 1`` (over ``B*HD*T``) and ``CB`` channels
    (axis 1); axis 2 is the neighbour plane ``k`` when stacking (``SUM_K`` off). For each
    pixel it visits the (query, patch element) pairs landing there
    (:func:`covering_query`) and their neighbours, and adds ``w * source``. With ``FAST``
    (``pt = 1``) a neighbour is read from its record (:func:`pair_records_kernel`, queries
    of these frames): a patch inside the frame costs four table rows at fixed offsets;
    only where the tile holds a query with a neighbour whose patch leaves the frame
    (``border``) are those neighbours evaluated from the flows.
    ``vid`` is the padded channels-last table; ``out`` is channels-first
    ``[B*HD, (K,) T, C, out_h, out_w]``; ``cov`` is ``[T, out_h, out_w]``; with ``PROBE``
    every value is NaN unless ``probe[0]`` is finite (:func:`stnls.utils.checks.finite_probe`).
    """
    FIRST: tl.constexpr = 0 if USE_ADJ else -(PS // 2)
    frame, y, x, live = block_rows(tl.program_id(0), n_frames, out_h, out_w, BP, BH, BW)
    frame = frame + frame0
    c = tl.program_id(1) * CB + tl.arange(0, CB)
    plane = tl.program_id(2)
    t = (frame % T).to(tl.int32)
    bhd = frame // T
    Q = T * nH * nW
    if SUM_K:
        k_first = 0
        k_end = K
    else:
        k_first = plane
        k_end = plane + 1
    acc = tl.zeros([BP, CB], dtype=tl.float32)
    for pk in tl.static_range(PT):
        tq = t - pk
        for m in range(steps_h):
            i, a, ok_i = covering_query(y, m, stride_out, dilation, nH, steps_h, FIRST, PS, POOLED)
            for n in range(steps_w):
                j, b, ok_j = covering_query(x, n, stride_out, dilation, nW, steps_w, FIRST, PS, POOLED)
                ok_q = live & (tq >= 0) & ok_i & ok_j
                qid = bhd * Q + ((tl.where(ok_q, tq, 0) * nH + tl.where(ok_q, i, 0)) * nW
                                 + tl.where(ok_q, j, 0))
                if FAST:
                    offset = dilation * (a * in_w + b)
                    local = qid - frame0 * nH * nW
                    flagged = tl.load(border + local, mask=ok_q, other=0)
                    any_border = tl.max(flagged, 0) > 0
                    for k in range(k_first, k_end):
                        record = (local * K + k) * 4
                        code = tl.load(rec_i + record, mask=ok_q, other=-1)
                        fast = ok_q & (code >= 0)
                        w = tl.load(rec_f + record + 3, mask=fast, other=0.0)
                        if IS_FLOAT:
                            fy = tl.load(rec_f + record + 1, mask=fast, other=0.0)
                            fx = tl.load(rec_f + record + 2, mask=fast, other=0.0)
                        else:
                            fy = w * 0.0
                            fx = fy
                        # (not tl.where(fast, ...): Triton 3.6 fails to compile that here)
                        row = (tl.maximum(code, 0) + offset).to(tl.int64)
                        acc += w[:, None] * interpolate(vid, row, in_w, fy, fx, fast, c, C_PAD,
                                                        IS_FLOAT)
                        if any_border:
                            acc += gather_tap(vid, weights, flows, qid * K + k,
                                              ok_q & (code == -2), bhd, tq, i, j, a, b, pk, c, T,
                                              in_h, in_w, stride_in, dilation, FIRST, C_PAD,
                                              IS_FLOAT, REFLECT)
                else:
                    for k in range(k_first, k_end):
                        acc += gather_tap(vid, weights, flows, qid * K + k, ok_q, bhd, tq, i,
                                          j, a, b, pk, c, T, in_h, in_w, stride_in, dilation,
                                          FIRST, C_PAD, IS_FLOAT, REFLECT)
    spot = (t * out_h + y) * out_w + x
    acc = acc / tl.load(cov + spot, mask=live, other=1.0)[:, None]
    if PROBE:
        acc = tl.where(tl.abs(tl.load(probe)) < float("inf"), acc, float("nan"))
    frame_out = bhd * T + t if SUM_K else (bhd * K + plane) * T + t
    target = (frame_out * C)[:, None] * (out_h * out_w) + c[None, :].to(tl.int64) * (out_h * out_w)
    tl.store(out + target + (y * out_w + x)[:, None], acc.to(out.dtype.element_ty),
             mask=live[:, None] & (c < C)[None, :])


@triton.jit
def grid_cells(vid, row, c, mask, fx, C_PAD: tl.constexpr, PS: tl.constexpr):
    """The ``PS`` values ``[rows, CB]`` of table rows ``row + b`` interpolated towards
    ``row + b + 1`` by ``fx`` (``b < PS``): one row of the queries' bilinear patches from one
    row of their corner grids, each of its ``PS + 1`` pixels loaded once; 0 where not
    ``mask``."""
    left = load_cells(vid, row[:, None], mask, c[None, :], C_PAD)
    cells = ()
    for b in tl.static_range(PS):
        right = load_cells(vid, (row + b + 1)[:, None], mask, c[None, :], C_PAD)
        cells = cells + (left + fx[:, None] * (right - left),)
        left = right
    return cells


@triton.jit
def agg_patch_sum_kernel(
        vid, weights, flows, acc, n_frames, T, in_h, in_w, out_h, out_w, nH, nW, K, stride_in,
        stride_out, dilation, PAD,
        C_PAD: tl.constexpr, CB: tl.constexpr, PS: tl.constexpr, ROWS: tl.constexpr,
        IS_FLOAT: tl.constexpr, USE_ADJ: tl.constexpr, POOLED: tl.constexpr, BQ: tl.constexpr,
        BH: tl.constexpr, BW: tl.constexpr):
    """``acc += A vid`` (not normalised) with the neighbours summed (``sum_k``), query by
    query (``pt = 1``, dilation 1, mirrored borders): each query's weighted patch is
    summed over its neighbours in registers, then added to the output with one atomic add
    per patch element.

    ``vid`` is the padded channels-last table of the video mirrored ``PAD`` pixels beyond
    each border (``(in_h + 2 PAD) x (in_w + 2 PAD)`` per frame, ``PAD`` large enough for
    every patch of an anchor inside the frame, and at most ``in_h - 1``, ``in_w - 1``):
    one mirror commutes with bilinear interpolation, so every patch reads its ``(ps+1)^2``
    corner grid at fixed offsets. A program takes a block of ``BQ`` queries
    (:func:`query_block`) and ``CB`` channels (axis 1) and keeps one ``[BQ, CB]`` sum per
    patch element of ``ROWS`` patch rows at a time (passes over the neighbours for rows
    ``0..ROWS-1``, ``ROWS..``; fewer registers than the whole patch); each pixel of a
    pass's corner grid rows is loaded once (:func:`grid_cells`). ``acc`` is a float32
    padded channels-last table over ``[B*HD, T, out_h, out_w]``, zeroed by the caller.
    """
    FIRST: tl.constexpr = 0 if USE_ADJ else -(PS // 2)
    bhd, t, i, j, qid, live = query_block(tl.program_id(0), n_frames, T, nH, nW, BQ, BH, BW)
    c = tl.program_id(1) * CB + tl.arange(0, CB)
    padded_h = in_h + 2 * PAD
    padded_w = in_w + 2 * PAD
    rq, cq, step = output_corner(t, i, j, stride_out, 1, FIRST, PS, POOLED)
    for first in tl.static_range(0, PS, ROWS):
        sums = ()  # element (a, b) of patch row first + a at a * PS + b
        for e in tl.static_range(ROWS * PS):
            sums = sums + (tl.zeros([BQ, CB], dtype=tl.float32),)
        for k in range(K):
            w = tl.load(weights + qid * K + k, mask=live, other=0.0).to(tl.float32)
            anchor_t, anchor_h, anchor_w, ok, sign_h, sign_w = neighbour_anchor(
                flows, qid * K + k, live, t, i, j, stride_in, T, in_h, in_w, IS_FLOAT)
            if IS_FLOAT:
                top = tl.floor(anchor_h)
                left = tl.floor(anchor_w)
                fy = anchor_h - top
                fx = anchor_w - left
                y0 = top.to(tl.int32)
                x0 = left.to(tl.int32)
            else:
                fy = w * 0.0
                fx = fy
                y0 = anchor_h
                x0 = anchor_w
            base = (((bhd * T + anchor_t) * padded_h + y0 + FIRST + PAD + first) * padded_w + x0
                    + FIRST + PAD)
            w = tl.where(ok, w, 0.0)
            mask = ok[:, None] & (c < C_PAD)[None, :]
            if IS_FLOAT:
                upper = grid_cells(vid, base, c, mask, fx, C_PAD, PS)
            added = ()
            for a in tl.static_range(ROWS):
                if first + a < PS:
                    if IS_FLOAT:
                        lower = grid_cells(vid, base + (a + 1) * padded_w, c, mask, fx, C_PAD, PS)
                        for b in tl.static_range(PS):
                            value = upper[b] + fy[:, None] * (lower[b] - upper[b])
                            added = added + (sums[a * PS + b] + w[:, None] * value,)
                        upper = lower
                    else:
                        for b in tl.static_range(PS):
                            value = load_cells(vid, (base + a * padded_w + b)[:, None], mask,
                                               c[None, :], C_PAD)
                            added = added + (sums[a * PS + b] + w[:, None] * value,)
                else:  # past the last patch row
                    for b in tl.static_range(PS):
                        added = added + (sums[a * PS + b],)
            sums = added
        for a in tl.static_range(ROWS):
            if first + a < PS:
                rh = rq + first + a
                for b in tl.static_range(PS):
                    rw = cq + b
                    row = ((bhd * T + t) * out_h + rh) * out_w + rw
                    ok_out = live & in_range(rh, out_h) & in_range(rw, out_w)
                    tl.atomic_add(acc + row[:, None] * C_PAD + c[None, :], sums[a * PS + b],
                                  mask=ok_out[:, None] & (c < C_PAD)[None, :], sem="relaxed")


@triton.jit
def query_block(block, n_frames, T, nH, nW, BQ: tl.constexpr, BH: tl.constexpr,
                BW: tl.constexpr):
    """Queries of program ``block`` (:func:`block_rows` on the query grid):
    ``(bhd, t, i, j, qid, live)`` with ``qid`` global over ``B*HD*Q``."""
    frame, i, j, live = block_rows(block, n_frames, nH, nW, BQ, BH, BW)
    return frame // T, (frame % T).to(tl.int32), i, j, (frame * nH + i) * nW + j, live


@triton.jit
def query_neighbour(weights, flows, qid, k, live, bhd, t, i, j, T, K, in_h, in_w, out_h, out_w,
                    stride_in, dilation, FIRST: tl.constexpr, PS: tl.constexpr,
                    IS_FLOAT: tl.constexpr, SUM_K: tl.constexpr):
    """Neighbour ``k`` of the queries ``qid``: ``(pair, w, anchor_t, anchor_h, anchor_w, ok,
    sign_h, sign_w, gq, inside, base, fy, fx)``: its weight, anchor (:func:`neighbour_anchor`),
    the row ``gq`` of the query's frame in the upstream gradient table, and, for a patch
    inside the frame (``inside``, :func:`interior_corner`), the table row ``base`` of its
    first source corner and its bilinear fractions."""
    pair = qid * K + k
    w = tl.load(weights + pair, mask=live, other=0.0).to(tl.float32)
    anchor_t, anchor_h, anchor_w, ok, sign_h, sign_w = neighbour_anchor(
        flows, pair, live, t, i, j, stride_in, T, in_h, in_w, IS_FLOAT)
    plane = bhd * T if SUM_K else (bhd * K + k) * T
    gq = (plane + t) * (out_h * out_w)
    inside, y0, x0, fy, fx = interior_corner(anchor_h, anchor_w, ok, in_h, in_w, dilation, FIRST,
                                             PS, IS_FLOAT)
    base = ((bhd * T + anchor_t) * in_h + y0) * in_w + x0
    return pair, w, anchor_t, anchor_h, anchor_w, ok, sign_h, sign_w, gq, inside, base, fy, fx


@triton.jit
def element_pair(g, gq, anchor_t, anchor_h, anchor_w, mask, t, i, j, pk, a, b, c, T, in_h, in_w,
                 out_h, out_w, stride_out, dilation, FIRST: tl.constexpr, C_PAD: tl.constexpr,
                 PS: tl.constexpr, REFLECT: tl.constexpr, POOLED: tl.constexpr):
    """Patch element ``(pk, a, b)`` of the pairs in ``mask`` with the full geometry: its
    source ``(st, sy, sx, valid, flip_y, flip_x)`` (:func:`source_pixel`) and the upstream
    gradient ``[rows, CB]`` at its destination (0 where not ``valid``)."""
    dest_t, rh, rw, ok_d = destination(t, i, j, pk, a, b, T, out_h, out_w, stride_out, dilation,
                                       FIRST, PS, POOLED)
    st, sy, sx, valid, flip_y, flip_x = source_pixel(
        anchor_t, anchor_h, anchor_w, mask & ok_d, pk, dilation * (a + FIRST),
        dilation * (b + FIRST), T, in_h, in_w, REFLECT)
    grad_out = load_rows(g, gq + ((dest_t - t) * out_h + rh) * out_w + rw, valid, c, C_PAD)
    return st, sy, sx, valid, flip_y, flip_x, grad_out


@triton.jit
def scatter_elements(g, grad, scale, gq, w, anchor_t, anchor_h, anchor_w, mask, bhd, t, i, j, c,
                     T, in_h, in_w, out_h, out_w, stride_out, dilation, FIRST: tl.constexpr,
                     C_PAD: tl.constexpr, PS: tl.constexpr, PT: tl.constexpr,
                     IS_FLOAT: tl.constexpr, REFLECT: tl.constexpr, POOLED: tl.constexpr,
                     FIXED_POINT: tl.constexpr):
    """Element by element, with the full geometry (mirrors, skips, every ``pk``): add
    ``w * g[destination]`` to the source pixels (bilinear corners) of the pairs in ``mask``.
    ``gq`` is the ``g`` row of frame ``t`` of the pairs' plane, pixel ``(0, 0)``."""
    for pk in tl.static_range(PT):
        for a in range(PS):
            for b in range(PS):
                st, sy, sx, valid, _, _, grad_out = element_pair(
                    g, gq, anchor_t, anchor_h, anchor_w, mask, t, i, j, pk, a, b, c, T, in_h,
                    in_w, out_h, out_w, stride_out, dilation, FIRST, C_PAD, PS, REFLECT, POOLED)
                value = w[:, None] * grad_out
                frame = (bhd * T + st) * in_h
                if IS_FLOAT:
                    y0, y1, wy0, wy1, _, _ = bilinear_axis(sy, valid, in_h)
                    x0, x1, wx0, wx1, _, _ = bilinear_axis(sx, valid, in_w)
                    for corner in tl.static_range(4):
                        yy = y1 if corner // 2 == 1 else y0
                        xx = x1 if corner % 2 == 1 else x0
                        cw = (wy1 if corner // 2 == 1 else wy0) * (wx1 if corner % 2 == 1 else wx0)
                        row = (frame + yy) * in_w + xx
                        accumulate(grad + row[:, None] * C_PAD + c[None, :], cw[:, None] * value,
                                   valid[:, None], scale, FIXED_POINT)
                else:
                    row = (frame + tl.where(valid, sy, 0)) * in_w + tl.where(valid, sx, 0)
                    accumulate(grad + row[:, None] * C_PAD + c[None, :], value, valid[:, None],
                               scale, FIXED_POINT)


@triton.jit
def output_corner(t, i, j, stride_out, dilation, FIRST: tl.constexpr, PS: tl.constexpr,
                  POOLED: tl.constexpr):
    """Destination ``(row, col)`` of patch element ``(0, 0)`` of query ``(t, i, j)`` and the
    step between elements (``pt = 1``; element ``(a, b)`` is ``+ step * (a, b)``)."""
    if POOLED:
        return i * PS, j * PS, 1
    else:
        return i * stride_out + dilation * FIRST, j * stride_out + dilation * FIRST, dilation


@triton.jit
def scatter_corners(grad, row, in_w, fy, fx, value, mask, c, scale, C_PAD: tl.constexpr,
                    IS_FLOAT: tl.constexpr, FIXED_POINT: tl.constexpr):
    """Add ``value [rows, CB]`` to table row ``row`` (exact), or to its four bilinear corners
    ``row, row + 1, row + in_w, row + in_w + 1`` with the weights of ``fy, fx`` (all inside
    the frame), where ``mask``."""
    if IS_FLOAT:
        for corner in tl.static_range(4):
            shift = (in_w if corner // 2 == 1 else 0) + corner % 2
            weight = (fy if corner // 2 == 1 else 1.0 - fy) * (fx if corner % 2 == 1 else 1.0 - fx)
            accumulate(grad + (row + shift)[:, None] * C_PAD + c[None, :], weight[:, None] * value,
                       mask[:, None], scale, FIXED_POINT)
    else:
        accumulate(grad + row[:, None] * C_PAD + c[None, :], value, mask[:, None], scale,
                   FIXED_POINT)


@triton.jit
def gradient_column(g, gq, rq, cq, ga, b, fy, inside, out_h, out_w, c, C_PAD: tl.constexpr,
                    PS: tl.constexpr):
    """Column ``b`` of the upstream gradient patch of pairs whose patch lies inside the frame
    (``pt = 1``, dilation 1), pulled onto row ``ga`` of their ``(ps+1)^2`` corner grid along
    the rows: ``((1 - fy) * g[ga, b] + fy * g[ga - 1, b], g[ga - 1, b] - g[ga, b])``
    ``[rows, CB]``, with ``g[a, b]`` the gradient at the destination of patch element
    ``(a, b)`` (0 outside the patch or the output; ``(rq, cq)`` is element ``(0, 0)``)."""
    rw = cq + b
    column_ok = inside & (b < PS) & in_range(rw, out_w)
    lower_ok = column_ok & (ga < PS) & in_range(rq + ga, out_h)
    upper_ok = column_ok & (ga >= 1) & in_range(rq + ga - 1, out_h)
    lower = load_rows(g, gq + (rq + ga) * out_w + rw, lower_ok, c, C_PAD)
    upper = load_rows(g, gq + (rq + ga - 1) * out_w + rw, upper_ok, c, C_PAD)
    return lower + fy[:, None] * (upper - lower), upper - lower


@triton.jit
def scatter_corner_grid(g, vid, grad, scale, gq, rq, cq, base, w, fy, fx, inside, in_w, out_h,
                        out_w, c, C_PAD: tl.constexpr, PS: tl.constexpr, SUMS: tl.constexpr,
                        FLOWS: tl.constexpr, FIXED_POINT: tl.constexpr, BQ: tl.constexpr,
                        CB: tl.constexpr):
    """Add ``w * A^T g`` of the pairs ``inside`` (patch inside the frame, ``pt = 1``, dilation
    1) over their ``(ps+1)^2`` corner grids from first row ``base``: one atomic add per grid
    pixel. With ``SUMS`` also return, per pair and channel, the partial sums ``<g, patch>``
    and (``FLOWS``) its derivatives by the row and column fractions from the grid's values
    in ``vid`` (``[rows, CB]`` each; zeros otherwise).

    Grid pixel ``(ga, gb)`` collects the patch elements ``(ga - da, gb - db)``, ``da, db``
    in ``{0, 1}``, each with its bilinear weight of that corner. The sum is separable:
    rows first (:func:`gradient_column`), then columns, carrying column ``gb - 1`` along
    the grid row, so that each patch element is read twice instead of four times.
    """
    DERIVATIVES: tl.constexpr = SUMS and FLOWS
    acc_w = tl.zeros([BQ, CB], dtype=tl.float32)
    acc_y = tl.zeros([BQ, CB], dtype=tl.float32)
    acc_x = tl.zeros([BQ, CB], dtype=tl.float32)
    for ga in range(PS + 1):
        left = tl.zeros([BQ, CB], dtype=tl.float32)  # column gb - 1 (none left of the grid)
        left_dy = tl.zeros([BQ, CB], dtype=tl.float32)
        for gb in range(PS + 1):
            here, here_dy = gradient_column(g, gq, rq, cq, ga, gb, fy, inside, out_h, out_w, c,
                                            C_PAD, PS)
            value = here + fx[:, None] * (left - here)
            row = base + ga * in_w + gb
            accumulate(grad + row[:, None] * C_PAD + c[None, :], w[:, None] * value,
                       inside[:, None], scale, FIXED_POINT)
            if SUMS:
                corner = load_rows(vid, row, inside, c, C_PAD)
                acc_w += value * corner
                if DERIVATIVES:
                    acc_y += (here_dy + fx[:, None] * (left_dy - here_dy)) * corner
                    acc_x += (left - here) * corner
            left = here
            left_dy = here_dy
    return acc_w, acc_y, acc_x


@triton.jit
def corner_terms(v00, v01, v10, v11, fy, fx):
    """Bilinear value ``[rows, CB]`` of four corners (row ``y``/``y+1``, column ``x``/``x+1``)
    at the fractions ``fy, fx`` ``[rows]``, and its derivatives by ``fy`` and ``fx``."""
    top = v00 + fx[:, None] * (v01 - v00)
    bottom = v10 + fx[:, None] * (v11 - v10)
    left = v00 + fy[:, None] * (v10 - v00)
    right = v01 + fy[:, None] * (v11 - v01)
    return top + fy[:, None] * (bottom - top), bottom - top, right - left


@triton.jit
def grid_pair_sums(g, vid, gq, rq, cq, base, fy, fx, inside, in_w, out_h, out_w, c,
                   C_PAD: tl.constexpr, PS: tl.constexpr, FLOWS: tl.constexpr, BQ: tl.constexpr,
                   CB: tl.constexpr):
    """Partial sums ``[rows, CB]`` of ``<g, patch>`` and (``FLOWS``) of its derivatives by
    the row and column fractions, for the pairs ``inside`` (patch inside the frame,
    ``pt = 1``, dilation 1) whose ``(ps+1)^2`` corner grid starts at table row ``base``:
    each grid pixel is loaded once (two grid rows at a time) and each upstream gradient
    element once, instead of four corners per element."""
    acc_w = tl.zeros([BQ, CB], dtype=tl.float32)
    acc_y = tl.zeros([BQ, CB], dtype=tl.float32)
    acc_x = tl.zeros([BQ, CB], dtype=tl.float32)
    upper = ()
    for b in tl.static_range(PS + 1):
        upper = upper + (load_rows(vid, base + b, inside, c, C_PAD),)
    for a in range(PS):  # not unrolled: the compiler would hoist every load of the grid
        lower = ()
        for b in tl.static_range(PS + 1):
            lower = lower + (load_rows(vid, base + (a + 1) * in_w + b, inside, c, C_PAD),)
        for b in tl.static_range(PS):
            use = inside & in_range(rq + a, out_h) & in_range(cq + b, out_w)
            grad_out = load_rows(g, gq + (rq + a) * out_w + cq + b, use, c, C_PAD)
            value, d_fy, d_fx = corner_terms(upper[b], upper[b + 1], lower[b], lower[b + 1],
                                             fy, fx)
            acc_w += grad_out * value
            if FLOWS:
                acc_y += grad_out * d_fy
                acc_x += grad_out * d_fx
        upper = lower
    return acc_w, acc_y, acc_x


@triton.jit
def agg_scatter_kernel(
        g, weights, flows, grad, scale_ptr, n_frames, T, in_h, in_w, out_h, out_w, nH, nW, K,
        stride_in, stride_out, dilation,
        C_PAD: tl.constexpr, CB: tl.constexpr, PS: tl.constexpr, PT: tl.constexpr,
        IS_FLOAT: tl.constexpr, REFLECT: tl.constexpr, USE_ADJ: tl.constexpr,
        SUM_K: tl.constexpr, POOLED: tl.constexpr, FAST: tl.constexpr, MERGE: tl.constexpr,
        FIXED_POINT: tl.constexpr, BQ: tl.constexpr, BH: tl.constexpr, BW: tl.constexpr):
    """``grad += A^T g``: every (query, neighbour, patch element) adds ``w * g[destination]``
    to its source pixel (the bilinear corners for real offsets), by atomic adds.

    ``g`` is the normalised output gradient ``y / coverage`` as a padded channels-last
    table over ``[B*HD, (K,) T, out_h, out_w]``; ``grad`` the channels-last accumulator
    over ``[B*HD, T, in_h, in_w]`` (int64 units of ``1 / scale`` with ``FIXED_POINT``).
    A program takes a block of ``BQ`` queries (:func:`block_rows` on the query grid of
    the ``n_frames = B*HD*T`` frames) and ``CB`` channels (axis 1) and walks their
    neighbours. With ``FAST`` (``pt = 1``) a pair whose patch lies inside the frame adds
    at fixed offsets from its first corner; with ``MERGE`` (real offsets, dilation 1) its
    ``4*ps*ps`` corner adds merge into one add per pixel of the ``(ps+1)^2`` corner grid
    (the elements share one bilinear fraction). Pairs whose patch leaves the frame, or
    all pairs without ``FAST``, go element by element (:func:`scatter_elements`), only
    in tiles that hold one.
    """
    FIRST: tl.constexpr = 0 if USE_ADJ else -(PS // 2)
    bhd, t, i, j, qid, live = query_block(tl.program_id(0), n_frames, T, nH, nW, BQ, BH, BW)
    c = tl.program_id(1) * CB + tl.arange(0, CB)
    scale = tl.load(scale_ptr)
    rq, cq, step = output_corner(t, i, j, stride_out, dilation, FIRST, PS, POOLED)
    for k in range(K):
        pair, w, anchor_t, anchor_h, anchor_w, ok, _, _, gq, inside, base, fy, fx = query_neighbour(
            weights, flows, qid, k, live, bhd, t, i, j, T, K, in_h, in_w, out_h, out_w, stride_in,
            dilation, FIRST, PS, IS_FLOAT, SUM_K)
        if FAST:
            if MERGE:
                # (named: a loop-carried "_" would clash with the one above on triton 3.6)
                no_w, no_y, no_x = scatter_corner_grid(g, g, grad, scale, gq, rq, cq, base, w, fy,
                                                       fx, inside, in_w, out_h, out_w, c, C_PAD,
                                                       PS, False, False, FIXED_POINT, BQ, CB)
            else:
                for a in range(PS):
                    for b in range(PS):
                        rh = rq + step * a
                        rw = cq + step * b
                        use = inside & in_range(rh, out_h) & in_range(rw, out_w)
                        value = w[:, None] * load_rows(g, gq + rh * out_w + rw, use, c, C_PAD)
                        scatter_corners(grad, base + dilation * (a * in_w + b), in_w, fy, fx,
                                        value, use, c, scale, C_PAD, IS_FLOAT, FIXED_POINT)
            border = ok & ~inside
            if tl.max(border.to(tl.int32), 0) > 0:
                scatter_elements(g, grad, scale, gq, w, anchor_t, anchor_h, anchor_w, border, bhd,
                                 t, i, j, c, T, in_h, in_w, out_h, out_w, stride_out, dilation,
                                 FIRST, C_PAD, PS, PT, IS_FLOAT, REFLECT, POOLED, FIXED_POINT)
        else:
            scatter_elements(g, grad, scale, gq, w, anchor_t, anchor_h, anchor_w, ok, bhd, t, i, j,
                             c, T, in_h, in_w, out_h, out_w, stride_out, dilation, FIRST, C_PAD,
                             PS, PT, IS_FLOAT, REFLECT, POOLED, FIXED_POINT)


@triton.jit
def pair_grad_elements(g, vid, gq, anchor_t, anchor_h, anchor_w, mask, sign_h, sign_w, bhd, t, i,
                       j, c, T, in_h, in_w, out_h, out_w, stride_out, dilation,
                       FIRST: tl.constexpr, C_PAD: tl.constexpr, PS: tl.constexpr,
                       PT: tl.constexpr, IS_FLOAT: tl.constexpr, REFLECT: tl.constexpr,
                       POOLED: tl.constexpr, FLOWS: tl.constexpr, BQ: tl.constexpr,
                       CB: tl.constexpr):
    """Element by element, with the full geometry: ``(sum g * source, sum g * d source/dy *
    sign, ... dx)`` ``[rows, CB]`` over the patch elements of the pairs in ``mask``."""
    acc_w = tl.zeros([BQ, CB], dtype=tl.float32)
    acc_y = tl.zeros([BQ, CB], dtype=tl.float32)
    acc_x = tl.zeros([BQ, CB], dtype=tl.float32)
    for pk in tl.static_range(PT):
        for a in range(PS):
            for b in range(PS):
                st, sy, sx, valid, flip_y, flip_x, grad_out = element_pair(
                    g, gq, anchor_t, anchor_h, anchor_w, mask, t, i, j, pk, a, b, c, T, in_h,
                    in_w, out_h, out_w, stride_out, dilation, FIRST, C_PAD, PS, REFLECT, POOLED)
                if FLOWS:
                    value, d_dy, d_dx = sample_with_gradient(vid, bhd, st, sy, sx, valid, c, T,
                                                             in_h, in_w, C_PAD)
                    acc_y += (sign_h * flip_y)[:, None] * grad_out * d_dy
                    acc_x += (sign_w * flip_x)[:, None] * grad_out * d_dx
                else:
                    value = sample(vid, bhd, st, sy, sx, valid, c, T, in_h, in_w, C_PAD, IS_FLOAT)
                acc_w += grad_out * value
    return acc_w, acc_y, acc_x


@triton.jit
def agg_pair_grads_kernel(
        g, vid, weights, flows, grad_w, grad_f, grad, scale_ptr, n_frames, T, in_h, in_w, out_h,
        out_w, nH, nW, K, stride_in, stride_out, dilation, n_cblocks,
        C_PAD: tl.constexpr, CB: tl.constexpr, PS: tl.constexpr, PT: tl.constexpr,
        IS_FLOAT: tl.constexpr, REFLECT: tl.constexpr, USE_ADJ: tl.constexpr,
        SUM_K: tl.constexpr, POOLED: tl.constexpr, FAST: tl.constexpr, MERGE: tl.constexpr,
        FLOWS: tl.constexpr, SCATTER: tl.constexpr, BQ: tl.constexpr, BH: tl.constexpr,
        BW: tl.constexpr):
    """Gradients of ``<g, A vid>`` by the weights and (``FLOWS``) the row/column offsets,
    one (query, neighbour) pair per row, reduced over patch elements and channels in
    registers (no atomics; each pair is written once); with ``SCATTER`` also the video
    gradient ``grad += A^T g`` (float32 atomic adds, as :func:`agg_scatter_kernel`),
    from the same reads.

    ``g``: normalised output gradient table (as for :func:`agg_scatter_kernel`); ``vid``:
    padded channels-last video table; ``grad_w [pairs]`` float32; ``grad_f [pairs, 3]``
    float32 (time component 0). With ``FAST`` (``pt = 1``) a pair whose patch lies inside
    the frame reads its elements at fixed offsets with one shared bilinear fraction; with
    ``MERGE`` (real offsets, dilation 1) it reads each pixel of its ``(ps+1)^2`` corner
    grid once (:func:`grid_pair_sums`), and with ``SCATTER`` as well goes over the grid
    pixel by pixel (:func:`scatter_corner_grid`): one atomic add and one video read per
    pixel. The other pairs go element by element with the full geometry, only
    in tiles holding one.
    """
    FIRST: tl.constexpr = 0 if USE_ADJ else -(PS // 2)
    bhd, t, i, j, qid, live = query_block(tl.program_id(0), n_frames, T, nH, nW, BQ, BH, BW)
    rq, cq, step = output_corner(t, i, j, stride_out, dilation, FIRST, PS, POOLED)
    scale = tl.load(scale_ptr)
    for k in range(K):
        (pair, w, anchor_t, anchor_h, anchor_w, ok, sign_h, sign_w, gq, inside, base, fy,
         fx) = query_neighbour(weights, flows, qid, k, live, bhd, t, i, j, T, K, in_h, in_w, out_h,
                               out_w, stride_in, dilation, FIRST, PS, IS_FLOAT, SUM_K)
        if FAST:
            elements = ok & ~inside
        else:
            elements = ok
        any_elements = tl.max(elements.to(tl.int32), 0) > 0
        total_w = tl.zeros([BQ], dtype=tl.float32)
        total_y = tl.zeros([BQ], dtype=tl.float32)
        total_x = tl.zeros([BQ], dtype=tl.float32)
        for cblock in range(n_cblocks):
            c = cblock * CB + tl.arange(0, CB)
            acc_w = tl.zeros([BQ, CB], dtype=tl.float32)
            acc_y = tl.zeros([BQ, CB], dtype=tl.float32)
            acc_x = tl.zeros([BQ, CB], dtype=tl.float32)
            if FAST and MERGE and SCATTER:
                acc_w, acc_y, acc_x = scatter_corner_grid(g, vid, grad, scale, gq, rq, cq, base, w,
                                                          fy, fx, inside, in_w, out_h, out_w, c,
                                                          C_PAD, PS, True, FLOWS, False, BQ, CB)
            elif FAST and MERGE:
                acc_w, acc_y, acc_x = grid_pair_sums(g, vid, gq, rq, cq, base, fy, fx, inside,
                                                     in_w, out_h, out_w, c, C_PAD, PS, FLOWS, BQ,
                                                     CB)
            elif FAST:
                for a in range(PS):
                    for b in range(PS):
                        rh = rq + step * a
                        rw = cq + step * b
                        use = inside & in_range(rh, out_h) & in_range(rw, out_w)
                        grad_out = load_rows(g, gq + rh * out_w + rw, use, c, C_PAD)
                        row = base + dilation * (a * in_w + b)
                        if FLOWS:
                            v00 = load_rows(vid, row, use, c, C_PAD)
                            v01 = load_rows(vid, row + 1, use, c, C_PAD)
                            v10 = load_rows(vid, row + in_w, use, c, C_PAD)
                            v11 = load_rows(vid, row + in_w + 1, use, c, C_PAD)
                            value, d_fy, d_fx = corner_terms(v00, v01, v10, v11, fy, fx)
                            acc_w += grad_out * value
                            acc_y += grad_out * d_fy
                            acc_x += grad_out * d_fx
                        else:
                            acc_w += grad_out * interpolate(vid, row, in_w, fy, fx, use, c, C_PAD,
                                                            IS_FLOAT)
                        if SCATTER:
                            scatter_corners(grad, row, in_w, fy, fx, w[:, None] * grad_out, use, c,
                                            scale, C_PAD, IS_FLOAT, False)
            if FLOWS:
                acc_y = sign_h[:, None] * acc_y
                acc_x = sign_w[:, None] * acc_x
            if any_elements:
                more_w, more_y, more_x = pair_grad_elements(
                    g, vid, gq, anchor_t, anchor_h, anchor_w, elements, sign_h, sign_w, bhd, t, i,
                    j, c, T, in_h, in_w, out_h, out_w, stride_out, dilation, FIRST, C_PAD, PS, PT,
                    IS_FLOAT, REFLECT, POOLED, FLOWS, BQ, CB)
                acc_w += more_w
                acc_y += more_y
                acc_x += more_x
                if SCATTER:
                    scatter_elements(g, grad, scale, gq, w, anchor_t, anchor_h, anchor_w, elements,
                                     bhd, t, i, j, c, T, in_h, in_w, out_h, out_w, stride_out,
                                     dilation, FIRST, C_PAD, PS, PT, IS_FLOAT, REFLECT, POOLED,
                                     False)
            total_w += tl.sum(acc_w, 1)
            if FLOWS:
                total_y += tl.sum(acc_y, 1)
                total_x += tl.sum(acc_x, 1)
        tl.store(grad_w + pair, total_w, mask=live)
        if FLOWS:
            tl.store(grad_f + pair * 3, total_w * 0.0, mask=live)
            tl.store(grad_f + pair * 3 + 1, w * total_y, mask=live)
            tl.store(grad_f + pair * 3 + 2, w * total_x, mask=live)
