"""Device functions shared by the search kernels: query decoding, search windows,
candidate positions and the walk over patch pixels.

Videos are read channels-last, ``[B * HD, T, H, W, CP]`` contiguous with the
channels zero-padded to ``CP`` (a multiple of the vector width ``CB``), so that
each pixel's channels load as ``CB``-wide vectors. Positions are pixel indices
into ``[B * HD * T * H * W]``; :func:`channel_block` turns them into addresses.
Functions are elementwise: query tensors and candidate tensors broadcast (e.g.
``[BQ, 1]`` queries against ``[BQ, WW]`` window candidates); channel blocks add
a trailing ``CB`` axis.
"""

from __future__ import annotations

import triton
import triton.language as tl

from .geometry import frame_of_slot, in_range, pixel, reflect, window_offset


@triton.jit
def decode_queries(qid, Q, HD, HDf, nH, nW):
    """Split global query ids (over ``B * HD * Q``) into ``(bhd, flow_head, t, nh, nw)``."""
    bhd = qid // Q
    rest = qid % Q
    cell = rest % (nH * nW)
    flow_head = (bhd // HD) * HDf + (bhd % HD) % HDf
    return bhd, flow_head, rest // (nH * nW), cell // nW, cell % nW


@triton.jit
def flow_address(flow_head, t, flow_slot, nh, nw, T, Wf, nH, nW):
    """Offset of channel 0 (dx) of ``flows[flow_head, t, flow_slot, :, nh, nw]``; dy is ``+ nH * nW``."""
    return ((((flow_head * T + t) * Wf + flow_slot) * 2).to(tl.int64) * (nH * nW)) + nh * nW + nw


@triton.jit
def slot_anchor(flows, flow_head, t, nh, nw, slot, key_h, key_w, live, T, wt, Wf, nH, nW, kH, kW,
                W_T: tl.constexpr, IS_FLOAT: tl.constexpr):
    """Frame and (reflected) search centre of temporal slot ``slot`` of each query.

    Slot ``s`` reads flow slot ``s - (W_T - Wf)``; a slot without flow is
    centred on the query itself. Float path: real centres; int path: integer
    centres (the launcher rounds the flows).
    """
    frame = frame_of_slot(t, slot, wt, T)
    flow_slot = slot - (W_T - Wf)
    has_flow = live & (t * 0 + flow_slot >= 0)  # a tensor mask even for a scalar slot
    address = flow_address(flow_head, t, tl.maximum(flow_slot, 0), nh, nw, T, Wf, nH, nW)
    flow_x = tl.load(flows + address, mask=has_flow, other=0)
    flow_y = tl.load(flows + address + nH * nW, mask=has_flow, other=0)
    if IS_FLOAT:
        anchor_h = reflect(key_h.to(tl.float32) + flow_y, kH)
        anchor_w = reflect(key_w.to(tl.float32) + flow_x, kW)
    else:
        anchor_h = reflect(key_h + flow_y, kH)
        anchor_w = reflect(key_w + flow_x, kW)
    return frame, anchor_h, anchor_w


@triton.jit
def search_window(anchor_h, anchor_w, nh, nw, nH, nW, ws, ws_interior, stride1, kH, kW,
                  FULL_WS: tl.constexpr, INTERIOR: tl.constexpr):
    """Window side and anchor offsets ``(size, off_h, off_w)`` of each query's window.

    With ``INTERIOR`` (``ws_interior < ws``) queries off the last grid row and
    column search a ``ws_interior`` window. Offsets are float64.
    """
    if INTERIOR:
        size = tl.where((nh < nH - 1) & (nw < nW - 1), ws_interior, ws)
    else:
        size = nh * 0 + ws
    off_h = window_offset(anchor_h, stride1, size, kH, FULL_WS)
    off_w = window_offset(anchor_w, stride1, size, kW, FULL_WS)
    return size, off_h, off_w


@triton.jit
def candidate_position(anchor, offset, i, step, IS_FLOAT: tl.constexpr):
    """Position of window candidate ``i``: ``anchor + step * (i - offset)``."""
    if IS_FLOAT:
        return anchor + step * (i - offset.to(tl.float32))
    else:
        return anchor + step * (i - offset.to(tl.int32))


@triton.jit
def corner(y, x, kH, kW, mask):
    """Pixel offset ``y * kW + x`` (clamped, always safe to read) and whether to read it."""
    inside = mask & in_range(y, kH) & in_range(x, kW)
    return tl.minimum(tl.maximum(y, 0), kH - 1) * kW + tl.minimum(tl.maximum(x, 0), kW - 1), inside


@triton.jit
def frame_start(bhd, t, T, plane):
    """Pixel index of the first pixel of frame ``t`` (clamped: always safe to read) of ``bhd``."""
    return (bhd * T + tl.minimum(tl.maximum(t, 0), T - 1)).to(tl.int64) * plane


@triton.jit
def query_walk_step(bhd, t, query_h, query_w, pk, dy, dx, T, qH, qW, REFLECT: tl.constexpr):
    """Pixel index in vid0 of one query patch pixel, and whether it is inside."""
    query_t = reflect(t + pk, T)
    qy, qy_ok, _ = pixel(query_h + dy, qH, REFLECT)
    qx, qx_ok, _ = pixel(query_w + dx, qW, REFLECT)
    offset, _ = corner(qy, qx, qH, qW, qy_ok)
    return frame_start(bhd, query_t, T, qH * qW) + offset, in_range(query_t, T) & qy_ok & qx_ok


@triton.jit
def patch_walk_step(bhd, t, query_h, query_w, frame, rows, cols, pk, dy, dx,
                    T, qH, qW, kH, kW, REFLECT: tl.constexpr):
    """One patch pixel of the query patches and of their candidate patches.

    Query arguments (``bhd, t, query_h, query_w``) and candidate arguments
    (``frame, rows, cols``) may have different (broadcastable) shapes. Returns
    ``(query_pixel, query_ok, key_frame, key_y, key_x, key_ok, sign_y, sign_x)``:
    the pixel index of the query pixel in vid0 and whether it is inside, the
    pixel index of the key frame's first pixel in vid1, the (reflected) key
    pixel position and whether it is inside, and d(key pixel)/d(candidate
    position) per axis (-1 where reflected).
    """
    query_pixel, query_ok = query_walk_step(bhd, t, query_h, query_w, pk, dy, dx, T, qH, qW, REFLECT)
    key_frame, ky, kx, key_ok, sign_y, sign_x = key_walk_step(bhd, frame, rows, cols, pk, dy, dx,
                                                              T, kH, kW, REFLECT)
    return query_pixel, query_ok, key_frame, ky, kx, key_ok, sign_y, sign_x


@triton.jit
def key_walk_step(bhd, frame, rows, cols, pk, dy, dx, T, kH, kW, REFLECT: tl.constexpr):
    """The key half of :func:`patch_walk_step`: ``(key_frame, key_y, key_x, key_ok, sign_y, sign_x)``."""
    key_t = reflect(frame + pk, T)
    ky, ky_ok, sign_y = pixel(rows + dy, kH, REFLECT)
    kx, kx_ok, sign_x = pixel(cols + dx, kW, REFLECT)
    return frame_start(bhd, key_t, T, kH * kW), ky, kx, in_range(key_t, T) & ky_ok & kx_ok, sign_y, sign_x


@triton.jit
def bilinear_weights(y):
    """``(floor(y) as int32, weight of floor, weight of floor + 1)``."""
    floor = tl.floor(y)
    w1 = y - floor
    return floor.to(tl.int32), 1 - w1, w1


@triton.jit
def bilinear_corners(ky, kx, kH, kW, valid):
    """The four interpolation corners of real key positions ``(ky, kx)``.

    Returns offsets and read masks of corners (y0, x0), (y0, x0+1), (y0+1, x0),
    (y0+1, x0+1), then the weights ``wy0, wy1, wx0, wx1`` of the lower and
    upper row and column. Corners outside the frame are not read.
    """
    y0, wy0, wy1 = bilinear_weights(ky)
    x0, wx0, wx1 = bilinear_weights(kx)
    o00, m00 = corner(y0, x0, kH, kW, valid)
    o01, m01 = corner(y0, x0 + 1, kH, kW, valid)
    o10, m10 = corner(y0 + 1, x0, kH, kW, valid)
    o11, m11 = corner(y0 + 1, x0 + 1, kH, kW, valid)
    return o00, o01, o10, o11, m00, m01, m10, m11, wy0, wy1, wx0, wx1


@triton.jit
def key_corners(ky, kx, kH, kW, valid, IS_FLOAT: tl.constexpr):
    """Corners to read for key pixels, as :func:`bilinear_corners` returns them.

    The int path reads the pixel itself as corner (y0, x0); its other outputs are unused.
    """
    if IS_FLOAT:
        return bilinear_corners(ky, kx, kH, kW, valid)
    else:
        offset, inside = corner(ky, kx, kH, kW, valid)
        return offset, offset, offset, offset, inside, inside, inside, inside, 1.0, 0.0, 1.0, 0.0


@triton.jit
def channel_block(pixel, c0, CP: tl.constexpr, CB: tl.constexpr):
    """Element offsets ``[..., CB]`` of channels ``c0 .. c0 + CB - 1`` of pixels ``pixel``."""
    return tl.expand_dims(pixel * CP + c0, -1) + tl.arange(0, CB)


@triton.jit
def load_block(video, pixel, mask, c0, CP: tl.constexpr, CB: tl.constexpr):
    """Channels ``c0 .. c0 + CB - 1`` (float32, ``[..., CB]``) of ``pixel``; 0 where not ``mask``."""
    return tl.load(video + channel_block(pixel, c0, CP, CB), mask=tl.expand_dims(mask, -1),
                   other=0).to(tl.float32)


@triton.jit
def read_corner_blocks(video, key_frame, o00, o01, o10, o11, m00, m01, m10, m11, c0,
                       CP: tl.constexpr, CB: tl.constexpr):
    """Channel blocks ``[..., CB]`` of the four corners :func:`key_corners` returned."""
    v00 = load_block(video, key_frame + o00, m00, c0, CP, CB)
    v01 = load_block(video, key_frame + o01, m01, c0, CP, CB)
    v10 = load_block(video, key_frame + o10, m10, c0, CP, CB)
    v11 = load_block(video, key_frame + o11, m11, c0, CP, CB)
    return v00, v01, v10, v11


@triton.jit
def bilinear_mix(v00, v01, v10, v11, wy0, wy1, wx0, wx1):
    """Bilinear value of corner blocks ``[..., CB]`` with per-pixel weights ``[...]``."""
    wx0 = tl.expand_dims(wx0, -1)
    wx1 = tl.expand_dims(wx1, -1)
    return (tl.expand_dims(wy0, -1) * (wx0 * v00 + wx1 * v01)
            + tl.expand_dims(wy1, -1) * (wx0 * v10 + wx1 * v11))


@triton.jit
def read_key(video, key_frame, o00, o01, o10, o11, m00, m01, m10, m11, wy0, wy1, wx0, wx1, c0,
             CP: tl.constexpr, CB: tl.constexpr, IS_FLOAT: tl.constexpr):
    """Key values ``[..., CB]``: the pixel (int path) or the bilinear mix of its corners."""
    if IS_FLOAT:
        v00, v01, v10, v11 = read_corner_blocks(video, key_frame, o00, o01, o10, o11,
                                                m00, m01, m10, m11, c0, CP, CB)
        return bilinear_mix(v00, v01, v10, v11, wy0, wy1, wx0, wx1)
    else:
        return load_block(video, key_frame + o00, m00, c0, CP, CB)


@triton.jit
def block_terms(query, key, L2: tl.constexpr):
    """Per-channel distance terms of channel blocks ``[..., CB]``: l2 or prod."""
    if L2:
        diff = key - query
        return diff * diff
    else:
        return query * key


@triton.jit
def block_distance(query, key, L2: tl.constexpr):
    """Distance of channel blocks ``[..., CB]`` summed over the block: l2 or prod."""
    return tl.sum(block_terms(query, key, L2), -1)


@triton.jit
def patch_distance(vid0, vid1, bhd, t, query_h, query_w, frame, rows, cols, live,
                   T, qH, qW, kH, kW, dilation, CP: tl.constexpr, CB: tl.constexpr,
                   PS: tl.constexpr, PT: tl.constexpr, USE_ADJ: tl.constexpr,
                   REFLECT: tl.constexpr, IS_FLOAT: tl.constexpr, L2: tl.constexpr):
    """Patch distance (float32, the shape of ``rows``) of each query and candidate.

    l2 sums ``(v1 - v0)^2`` and prod ``v0 * v1`` over ``PT x PS x PS`` pixels and
    the channels; a pixel pair with either pixel outside adds 0. ``query_h``
    and ``query_w`` already include ``off_Hq``/``off_Wq``. Key pixels are read
    exactly (int path) or bilinearly at real positions (float path).
    """
    FIRST: tl.constexpr = 0 if USE_ADJ else -(PS // 2)
    dist = rows.to(tl.float32) * 0.0
    for pk in range(PT):
        for py in range(PS):
            for px in range(PS):
                query_pixel, query_ok, key_frame, ky, kx, key_ok, _, _ = patch_walk_step(
                    bhd, t, query_h, query_w, frame, rows, cols, pk, dilation * (FIRST + py),
                    dilation * (FIRST + px), T, qH, qW, kH, kW, REFLECT)
                valid = live & query_ok & key_ok
                o00, o01, o10, o11, m00, m01, m10, m11, wy0, wy1, wx0, wx1 = key_corners(
                    ky, kx, kH, kW, valid, IS_FLOAT)
                pixel_sum = dist * 0.0
                for block in range(CP // CB):
                    c0 = block * CB
                    query = load_block(vid0, query_pixel, query_ok, c0, CP, CB)
                    key = read_key(vid1, key_frame, o00, o01, o10, o11, m00, m01, m10, m11,
                                   wy0, wy1, wx0, wx1, c0, CP, CB, IS_FLOAT)
                    pixel_sum += block_distance(query, key, L2)
                dist += tl.where(valid, pixel_sum, 0.0)
    return dist


@triton.jit
def span_inside(low, high, size):
    """Whether positions ``low .. high`` lie in ``[0, size - 1]``."""
    return (low >= 0) & (high <= size - 1)


@triton.jit
def query_patch_inside(query_h, query_w, qH, qW, dilation, PS: tl.constexpr, USE_ADJ: tl.constexpr):
    """Whether each query's patch lies inside its frame."""
    FIRST: tl.constexpr = 0 if USE_ADJ else -(PS // 2)
    return (span_inside(query_h + dilation * FIRST, query_h + dilation * (FIRST + PS - 1), qH)
            & span_inside(query_w + dilation * FIRST, query_w + dilation * (FIRST + PS - 1), qW))


@triton.jit
def region_inside(origin_h, origin_w, query_h, query_w, live, qH, qW, kH, kW, dilation,
                  PS: tl.constexpr, R: tl.constexpr, USE_ADJ: tl.constexpr):
    """One flag for a tile of queries ``[BQ]`` (``query_h, query_w`` are ``[BQ, 1]``): every
    position of the staged region and every query patch pixel of the ``live`` queries
    is inside its frame, so that :func:`region_distance` needs no ``CHECK``."""
    region = span_inside(origin_h, origin_h + (R - 1), kH) & span_inside(origin_w, origin_w + (R - 1), kW)
    queries = tl.reshape(query_patch_inside(query_h, query_w, qH, qW, dilation, PS, USE_ADJ), region.shape)
    return tl.min(tl.where(live, region & queries, True).to(tl.int32), 0) > 0


@triton.jit
def stage_region(vid1, scratch, scratch_ok, region_first, bhd, frame, origin_h, origin_w, T, kH, kW,
                 CP: tl.constexpr, CB: tl.constexpr, R: tl.constexpr, RR: tl.constexpr,
                 RC: tl.constexpr, REFLECT: tl.constexpr, IS_FLOAT: tl.constexpr):
    """Key values of the region every candidate patch of a slot reads, staged once.

    The region of query ``q`` is the ``R x R`` grid of positions ``origin + m``
    (``m`` in ``[0, R)`` per axis) in frame ``frame``: with an integer step
    ``stride1``, every patch pixel of every candidate is one of them. Writes the (bilinear)
    values to ``scratch`` at pixel rows ``region_first[q] + m`` (``[.., CP]``
    each) and whether each position is inside the frame to ``scratch_ok``, in
    chunks of ``RC`` positions. Query arguments are ``[BQ]``.
    """
    for start in range(0, RR, RC):
        m = start + tl.arange(0, RC)[None, :]
        rows = origin_h[:, None] + m // R
        cols = origin_w[:, None] + m % R
        key_frame, ky, kx, key_ok, _, _ = key_walk_step(bhd[:, None], frame[:, None], rows, cols,
                                                        0, 0, 0, T, kH, kW, REFLECT)
        key_ok = key_ok & (m < R * R)
        o00, o01, o10, o11, m00, m01, m10, m11, wy0, wy1, wx0, wx1 = key_corners(
            ky, kx, kH, kW, key_ok, IS_FLOAT)
        region_pixel = region_first[:, None] + m
        for block in range(CP // CB):
            c0 = block * CB
            key = read_key(vid1, key_frame, o00, o01, o10, o11, m00, m01, m10, m11,
                           wy0, wy1, wx0, wx1, c0, CP, CB, IS_FLOAT)
            tl.store(scratch + channel_block(region_pixel, c0, CP, CB), key)
        tl.store(scratch_ok + region_pixel, key_ok.to(tl.int8))


@triton.jit
def region_distance(vid0, scratch, scratch_ok, region_first, bhd, t, query_h, query_w, i, j, live,
                    T, qH, qW, dilation, CP: tl.constexpr, CB: tl.constexpr,
                    PS: tl.constexpr, R: tl.constexpr, SU: tl.constexpr, USE_ADJ: tl.constexpr,
                    REFLECT: tl.constexpr, L2: tl.constexpr, CHECK: tl.constexpr):
    """:func:`patch_distance` (``PT == 1``) reading the keys :func:`stage_region` staged.

    Window candidate ``(i, j)``'s patch pixel ``(py, px)`` is region position
    ``(i * SU + py * dilation, j * SU + px * dilation)`` (``SU = stride1``). Query arguments are ``[BQ, 1]``,
    ``i, j`` are ``[1, WW]``. Terms are summed per channel lane and reduced over the
    lanes once at the end (the lanes of a pixel span several threads). Without
    ``CHECK`` every query and region pixel must be inside its frame
    (:func:`region_inside`): nothing is tested per pixel.
    """
    FIRST: tl.constexpr = 0 if USE_ADJ else -(PS // 2)
    terms = tl.expand_dims((i + region_first * 0).to(tl.float32) * 0.0, -1) + tl.zeros([CB], tl.float32)
    for py in range(PS):
        for px in range(PS):
            query_pixel, query_ok = query_walk_step(bhd, t, query_h, query_w, 0,
                                                    dilation * (FIRST + py),
                                                    dilation * (FIRST + px), T, qH, qW, REFLECT)
            region_pixel = region_first + (i * SU + py * dilation) * R + (j * SU + px * dilation)
            if CHECK:
                valid = live & query_ok & (tl.load(scratch_ok + region_pixel, mask=live, other=0) != 0)
            for block in range(CP // CB):
                c0 = block * CB
                query = load_block(vid0, query_pixel, query_ok, c0, CP, CB)
                key = load_block(scratch, region_pixel, live, c0, CP, CB)
                if CHECK and L2:  # prod terms are 0 already: out-of-frame keys are staged as 0
                    terms += tl.where(tl.expand_dims(valid, -1), block_terms(query, key, L2), 0.0)
                else:
                    terms += block_terms(query, key, L2)
    return tl.sum(terms, -1)
