"""Python-loop definitions of the aggregation ops (tiny sizes, float64), written
from the documented semantics independently of the library's geometry code."""

from __future__ import annotations

from itertools import product

import torch
from bruteforce import bilinear, inside
from bruteforce import reflect as mirror

__all__ = ["gather", "mirror", "inside", "sample"]


def sample(frame, y, x):
    """``frame [C, H, W]`` at integer or real ``(y, x)`` (bilinear, outside corners = 0)."""
    if isinstance(y, int) and isinstance(x, int):
        return frame[:, y, x]
    return torch.tensor(bilinear(frame, y, x), dtype=frame.dtype)


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

    def destination(i, j, a, b):
        if pooled:
            return i * ps + a, j * ps + b
        return i * stride_out + span[a], j * stride_out + span[b]

    for t, i, j, pk, a, b in product(range(T), range(n_h), range(n_w), range(pt), range(ps), range(ps)):
        ry, rx = destination(i, j, a, b)
        if t + pk < T and inside(ry, out_h) and inside(rx, out_w):
            counts[t + pk, ry, rx] += 1
    if pooled:
        counts = torch.ones_like(counts)
    for bb, hd, t, i, j, k in product(range(B), range(HD), range(T), range(n_h), range(n_w), range(K)):
        f = flows[bb, hd, t, i, j, k].tolist()
        if integer:
            ft, fh, fw = (int(v) for v in f)
        else:
            ft, fh, fw = int(round(f[0])), f[1], f[2]
        at, ah, aw = mirror(t + ft, T), mirror(i * stride_in + fh, H), mirror(j * stride_in + fw, W)
        if not (inside(at, T) and inside(ah, H) and inside(aw, W)):
            continue
        for pk, a, b in product(range(pt), range(ps), range(ps)):
            rt, nt = t + pk, at + pk
            (ry, rx), ny, nx = destination(i, j, a, b), ah + span[a], aw + span[b]
            if reflect_bounds:
                nt, ny, nx = mirror(nt, T), mirror(ny, H), mirror(nx, W)
            if rt >= T or not (inside(nt, T) and inside(ry, out_h) and inside(rx, out_w)
                               and inside(ny, H) and inside(nx, W)):
                continue
            value = sample(vid[bb, hd, nt], ny, nx)
            out[bb, hd, k, rt, :, ry, rx] += weights[bb, hd, t, i, j, k] * value
    out = out / counts.clamp(min=1)[:, None]
    return out.sum(2) if sum_k else out
