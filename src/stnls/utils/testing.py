"""Helpers for tests that compare search backends (tie-aware comparison, random inputs)."""

from __future__ import annotations

import torch
from torch import Tensor

from ..geometry import grid_size
from ..params import SearchParams


def search_inputs(p: SearchParams, B=1, HD=1, T=3, C=3, H=7, W=7, HDf=1, full_flows=False,
                  flow_scale=1.5, dtype=torch.float32, device="cpu", seed=0, query_scale=1):
    """Random normalised inputs of the search op: ``vid0 [B, HD, T, C, qH, qW]``,
    ``vid1 [B, HD, T, C, H, W]`` and ``flows [B, HDf, T, Wf, 2, nH, nW]``.

    ``full_flows`` gives the query's own frame a flow too (``Wf = W_t``);
    ``query_scale`` makes vid0 that many times larger (for ``strideQ``).
    """
    gen = torch.Generator().manual_seed(seed)
    vid0 = torch.randn(B, HD, T, C, H * query_scale, W * query_scale, generator=gen)
    vid1 = torch.randn(B, HD, T, C, H, W, generator=gen)
    Wf = p.window_frames - (0 if full_flows else 1)
    flows = flow_scale * torch.randn(B, HDf, T, Wf, 2, grid_size(H, p.stride0),
                                     grid_size(W, p.stride0), generator=gen)
    return vid0.to(device, dtype), vid1.to(device, dtype), flows.to(device)


def _tie_groups(dists: Tensor, tol: float) -> list[list[int]]:
    """Runs of consecutive positions whose distances are equal within ``tol``."""
    groups, values = [], dists.tolist()
    for position, value in enumerate(values):
        if groups and (value == values[groups[-1][-1]]
                       or abs(value - values[groups[-1][-1]]) <= tol):
            groups[-1].append(position)
        else:
            groups.append([position])
    return groups


def assert_search_close(expected: tuple[Tensor, Tensor], actual: tuple[Tensor, Tensor],
                        atol: float = 1e-4, rtol: float = 1e-4, inds_atol: float = 1e-5) -> None:
    """Check search outputs ``(dists, inds)`` against expected ones, tie-aware.

    Distances must match position by position. Indices must match exactly (int)
    or within ``inds_atol`` (float), except that entries whose expected distances
    tie (within tolerance) may come in any order, and a tie group that reaches
    the last kept entry may hold other tied candidates.
    """
    d_exp, i_exp = expected
    d_act, i_act = actual
    assert d_act.shape == d_exp.shape and i_act.shape == i_exp.shape, (d_act.shape, d_exp.shape)
    assert i_act.dtype == i_exp.dtype, (i_act.dtype, i_exp.dtype)
    torch.testing.assert_close(d_act, d_exp, atol=atol, rtol=rtol, equal_nan=True)
    K = d_exp.shape[-1]
    d_exp, d_act = d_exp.reshape(-1, K).double(), d_act.reshape(-1, K).double()
    i_exp, i_act = i_exp.reshape(-1, K, 3).double(), i_act.reshape(-1, K, 3).double()
    rows = ((i_exp - i_act).abs() > inds_atol).any(-1).any(-1).nonzero().flatten().tolist()
    for row in rows:
        tol = atol + rtol * d_exp[row].abs().nan_to_num(posinf=0, neginf=0).max().item()
        for group in _tie_groups(d_exp[row], tol):
            if group[-1] == K - 1:
                continue  # other tied candidates may fill the end
            exp = sorted(tuple(round(v, 4) for v in i_exp[row, q].tolist()) for q in group)
            act = sorted(tuple(round(v, 4) for v in i_act[row, q].tolist()) for q in group)
            assert exp == act, (f"row {row}, positions {group}: expected inds {exp}, got {act}; "
                                f"dists {d_exp[row, group].tolist()}")
