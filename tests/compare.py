"""Tie-tolerant comparison of neighbour lists."""

from __future__ import annotations

import math

import torch


def neighbor_lists(dists: torch.Tensor, inds: torch.Tensor) -> dict:
    """``[B, HD, T, nH, nW, K]`` outputs -> ``{(b, hd, t, nh, nw): [(dist, ind), ...]}``."""
    out = {}
    for key in torch.cartesian_prod(*[torch.arange(n) for n in dists.shape[:5]]).tolist():
        key = tuple(key)
        out[key] = [(float(d), tuple(float(v) for v in i))
                    for d, i in zip(dists[key], inds[key])]
    return out


def _close(a, b, tol):
    if math.isinf(a) or math.isinf(b):
        return a == b
    return abs(a - b) <= tol * (1 + abs(b))


def assert_same_neighbors(ours: list, expected: list, tol: float = 1e-5, descending=False):
    """Same distances (in order) and the same indices, allowing any order among
    equal distances and any choice among candidates tied with the last kept one."""
    assert len(ours) == len(expected), (len(ours), len(expected))
    for (d, _), (e, _) in zip(sorted(ours, key=lambda x: x[0]), sorted(expected, key=lambda x: x[0])):
        assert _close(d, e, tol), (ours, expected)
    worst = min(e for e, _ in expected) if descending else max(e for e, _ in expected)
    kept = sorted(tuple(round(v, 4) for v in i) for d, i in ours if not _close(d, worst, tol))
    want = sorted(tuple(round(v, 4) for v in i) for e, i in expected if not _close(e, worst, tol))
    assert kept == want, (ours, expected)
