"""Utilities for tests and benchmarks that compare search backends: random inputs, one case
per code path, and a tie-aware comparison of neighbour lists."""

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


# Search cases, one per code path: name -> (SearchParams.create arguments, search_inputs
# arguments). Shapes are tiny so that they also run through Triton's interpreter.
FORWARD_CASES = {
    "int_l2": (dict(ws=3, wt=1, k=4, itype="int"), {}),
    "int_prod": (dict(ws=3, wt=1, k=4, itype="int", dist_type="prod"), {}),
    "float_l2_fractional_stride1": (dict(ws=3, wt=1, k=5, stride1=0.5), {}),
    "float_prod": (dict(ws=3, wt=1, k=4, dist_type="prod", stride1=0.75), {}),
    "float_ps3": (dict(ws=3, wt=1, k=4, ps=3, stride1=0.5), dict(T=3, H=5, W=5)),
    "int_ps2_dilation_adj_offsets": (dict(ws=3, wt=1, k=4, ps=2, dilation=2, use_adj=True,
                                          off_Hq=1, off_Wq=-1, itype="int"), dict(H=5, W=5)),
    "float_stride0": (dict(ws=3, wt=1, k=3, stride0=2, stride1=1.5), dict(H=8, W=8)),
    "float_wide_pixels": (dict(ws=3, wt=1, k=4), dict(C=64, H=5, W=5)),
    "float_no_reflect_no_full_ws": (dict(ws=3, wt=1, k=4, ps=2, reflect_bounds=False, full_ws=False,
                                         stride1=0.5), dict(H=5, W=5)),
    "int_pt2": (dict(ws=3, wt=1, k=4, pt=2, itype="int"), {}),
    "int_ws_interior": (dict(ws=4, wt=1, k=20, ws_interior=2, itype="int"), dict(H=5, W=5)),
    "int_strideQ": (dict(ws=3, wt=1, k=4, strideQ=2, itype="int"), dict(query_scale=2)),
    "heads_shared_flows": (dict(ws=3, wt=1, k=4, stride1=0.5), dict(HD=2, HDf=1, H=5, W=5)),
    "anchor_int": (dict(ws=3, wt=1, k=4, self_action="anchor", itype="int"), {}),
    "anchor_float": (dict(ws=3, wt=1, k=4, self_action="anchor_self", stride1=0.5), {}),
    "anchor_float_own_frame_flow": (dict(ws=3, wt=1, k=4, self_action="anchor"), dict(full_flows=True)),
    "anchor_each": (dict(ws=3, wt=1, k=6, self_action="anchor_each", stride1=0.5), {}),
    "remove": (dict(ws=3, wt=1, k=4, self_action="remove"), {}),
    "remove_ref_frame": (dict(ws=3, wt=1, k=4, self_action="remove_ref_frame", itype="int"), {}),
    "anchor_and_remove_ref_frame": (dict(ws=3, wt=1, k=4, self_action="anchor_and_remove_ref_frame",
                                         stride1=0.5), {}),
    "each": (dict(ws=3, wt=1, k=3, topk_mode="each"), {}),
    "each_anchor_int": (dict(ws=3, wt=1, k=3, topk_mode="each", self_action="anchor", itype="int"), {}),
    "each_anchor_each": (dict(ws=3, wt=1, k=3, topk_mode="each", self_action="anchor_each"), {}),
    "each_anchor_select": (dict(ws=3, wt=1, k=3, topk_mode="each", self_action="anchor"),
                           dict(full_flows=True)),
    "none_all_candidates": (dict(ws=3, wt=1, topk_mode="none", itype="int"), {}),
    "all_candidates_float_dropped_frame": (dict(ws=3, wt=1, k=-1, self_action="remove_ref_frame"), {}),
    "all_candidates_anchor_select": (dict(ws=3, wt=1, k=-1, self_action="anchor", itype="int"), {}),
    "more_than_max_kept_select": (dict(ws=9, wt=1, k=150, itype="int"), dict(H=9, W=9, T=3)),
}

# Backward cases: name -> SearchParams.create arguments.
BACKWARD_CASES = {
    "int_l2": dict(ws=3, wt=1, k=4, itype="int"),
    "float_l2_flows": dict(ws=3, wt=1, k=4, stride1=0.5),
    "float_prod_flows_ps2": dict(ws=3, wt=1, k=3, ps=2, dist_type="prod", stride1=0.75),
    "float_k_agg_normalize": dict(ws=3, wt=1, k=4, k_agg=2, normalize_bwd=True, ps=3),
    "float_invalid_kept": dict(ws=3, wt=1, k=-1, full_ws=False, stride1=1.5),
}


def search_backward(backend, forward_backend, p: SearchParams, vid0: Tensor, vid1: Tensor,
                    flows: Tensor, seed: int = 1, grad_dtype=None) -> tuple[Tensor, Tensor, Tensor]:
    """Gradients ``(vid0, vid1, flows)`` from ``backend`` for random upstream gradients,
    at the neighbours found by ``forward_backend`` (so that two backends see the same inds).

    ``grad_dtype`` rounds the distance gradients to that dtype first.
    """
    dists, inds = forward_backend.non_local_search(vid0, vid1, flows, p)
    gen = torch.Generator().manual_seed(seed)
    grad_dists = torch.randn(dists.shape, generator=gen).to(grad_dtype or dists.dtype)
    grad_dists = grad_dists.to(dists.device, dists.dtype)
    grad_inds = torch.zeros(inds.shape, device=inds.device)
    if inds.is_floating_point():
        grad_inds = torch.randn(inds.shape, generator=gen).to(inds.device)
    return backend.non_local_search_backward(grad_dists, grad_inds, vid0, vid1, flows, inds, True, p)


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
