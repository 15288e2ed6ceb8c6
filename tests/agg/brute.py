"""Python-loop definitions of the aggregation ops (tiny sizes, float64), written
from the documented semantics independently of the library's geometry code."""

from __future__ import annotations

import math

import torch


def mirror(v, size):
    if v < 0:
        return -v
    if v > size - 1:
        return 2 * (size - 1) - v
    return v


def inside(v, size):
    return 0 <= v <= size - 1


def sample(frame, y, x):
    """``frame [C, H, W]`` at integer or real ``(y, x)`` (bilinear, outside corners = 0)."""
    C, H, W = frame.shape
    if isinstance(y, int) and isinstance(x, int):
        return frame[:, y, x]
    y0, x0 = math.floor(y), math.floor(x)
    value = torch.zeros(C, dtype=frame.dtype)
    for yy in (y0, y0 + 1):
        for xx in (x0, x0 + 1):
            weight = max(0.0, 1 - abs(y - yy)) * max(0.0, 1 - abs(x - xx))
            if weight > 0 and inside(yy, H) and inside(xx, W):
                value = value + weight * frame[:, yy, xx]
    return value


def gather(vid, weights, flows, ps, stride_in, stride_out, out_h, out_w, pt=1, dilation=1,
           reflect_bounds=True, use_adj=False, sum_k=False, pooled=False):
    """``vid [B, HD, T, C, H, W]``; returns ``[B, HD, K, T, C, out_h, out_w]`` (summed over K with ``sum_k``)."""
    B, HD, T, C, H, W = vid.shape
    _, _, _, n_h, n_w, K = weights.shape
    integer = not flows.is_floating_point()
    out = torch.zeros(B, HD, K, T, C, out_h, out_w, dtype=vid.dtype)
    counts = torch.zeros(T, out_h, out_w, dtype=vid.dtype)
    first = 0 if use_adj else -(ps // 2)
    span = [dilation * (first + a) for a in range(ps)]
    for t in range(T):
        for i in range(n_h):
            for j in range(n_w):
                for pk in range(pt):
                    for a in range(ps):
                        for b in range(ps):
                            ry, rx = (i * ps + a, j * ps + b) if pooled else \
                                (i * stride_out + span[a], j * stride_out + span[b])
                            if t + pk < T and inside(ry, out_h) and inside(rx, out_w):
                                counts[t + pk, ry, rx] += 1
    if pooled:
        counts = torch.ones_like(counts)
    for bb in range(B):
        for hd in range(HD):
            for t in range(T):
                for i in range(n_h):
                    for j in range(n_w):
                        for k in range(K):
                            f = flows[bb, hd, t, i, j, k].tolist()
                            if integer:
                                ft, fh, fw = (int(v) for v in f)
                            else:
                                ft, fh, fw = int(round(f[0])), f[1], f[2]
                            at = mirror(t + ft, T)
                            ah = mirror(i * stride_in + fh, H)
                            aw = mirror(j * stride_in + fw, W)
                            if not (inside(at, T) and inside(ah, H) and inside(aw, W)):
                                continue
                            w = weights[bb, hd, t, i, j, k]
                            for pk in range(pt):
                                rt, nt = t + pk, at + pk
                                if reflect_bounds:
                                    nt = mirror(nt, T)
                                if rt >= T or not inside(nt, T):
                                    continue
                                for a in range(ps):
                                    for b in range(ps):
                                        ry, rx = (i * ps + a, j * ps + b) if pooled else \
                                            (i * stride_out + span[a], j * stride_out + span[b])
                                        ny, nx = ah + span[a], aw + span[b]
                                        if reflect_bounds:
                                            ny, nx = mirror(ny, H), mirror(nx, W)
                                        if not (inside(ry, out_h) and inside(rx, out_w)
                                                and inside(ny, H) and inside(nx, W)):
                                            continue
                                        value = sample(vid[bb, hd, nt], ny, nx)
                                        out[bb, hd, k, rt, :, ry, rx] += w * value
    out = out / counts.clamp(min=1)[:, None]
    return out.sum(2) if sum_k else out
