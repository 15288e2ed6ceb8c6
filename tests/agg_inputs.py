"""Random inputs for the aggregation tests."""

from __future__ import annotations

import torch


def grid(size: int, stride: int) -> int:
    return (size - 1) // stride + 1


def make(B=1, HD=2, T=3, C=2, H=7, W=6, K=3, stride=1, itype="float", spread=2.0, seed=0,
         dtype=torch.float64, time_offsets=True):
    """``vid [B, HD, T, C, H, W]``, ``weights [B, HD, T, nH, nW, K]``, ``flows [..., K, 3]``.

    Spatial offsets are uniform in ``[-spread, spread]`` (some leave the frame,
    exercising the reflections); real offsets stay at least 0.05 from integers
    so that bilinear sampling is differentiable there.
    """
    g = torch.Generator().manual_seed(seed)
    n_h, n_w = grid(H, stride), grid(W, stride)
    vid = torch.randn(B, HD, T, C, H, W, generator=g, dtype=dtype)
    weights = torch.rand(B, HD, T, n_h, n_w, K, generator=g, dtype=dtype)
    space = (torch.rand(B, HD, T, n_h, n_w, K, 2, generator=g, dtype=dtype) * 2 - 1) * spread
    if itype == "int":
        space = torch.round(space)
    else:
        frac = space - torch.floor(space)
        space = torch.floor(space) + frac.clamp(0.05, 0.95)
    t = torch.arange(T, dtype=dtype).view(1, 1, T, 1, 1, 1)
    target = torch.randint(0, T, (B, HD, T, n_h, n_w, K), generator=g).to(dtype)
    dt = (target - t) if time_offsets else torch.zeros_like(target)
    flows = torch.cat([dt[..., None], space], -1)
    if itype == "int":
        flows = flows.int()
    return vid, weights, flows
