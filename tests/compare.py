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


def _close_tensors(a, b, tol):
    finite = torch.isfinite(a) & torch.isfinite(b)
    return torch.where(finite, (a - b).abs() <= tol * (1 + b.abs()), a == b)


def assert_same_neighbor_tensors(dists, inds, want_dists, want_inds, tol=1e-5, descending=False):
    """Batched :func:`assert_same_neighbors` for ``[..., K]`` / ``[..., K, 3]`` outputs."""
    K = dists.shape[-1]
    d, w = dists.detach().reshape(-1, K).double(), want_dists.reshape(-1, K).double()
    i, wi = inds.detach().reshape(-1, K, 3).double(), want_inds.reshape(-1, K, 3).double()
    assert _close_tensors(d.sort(-1).values, w.sort(-1).values, tol).all(), "distances differ"
    worst = w.min(-1, keepdim=True).values if descending else w.max(-1, keepdim=True).values
    tied_with_worst = _close_tensors(d, worst.expand_as(d), tol)
    same_index = (i[:, :, None] - wi[:, None]).abs().amax(-1) < 1e-4
    same_dist = _close_tensors(d[:, :, None].expand(-1, -1, K), w[:, None].expand(-1, K, -1), tol)
    matched = (same_index & same_dist).any(-1) | tied_with_worst
    rows = (~matched).any(-1).nonzero()[:5, 0].tolist()
    assert matched.all(), f"neighbours differ in rows {rows}: {d[rows]} {i[rows]} vs {w[rows]} {wi[rows]}"
