"""Triton search kernels (through the interpreter) against the reference backend, tiny shapes.

One case per code path: itype, dist type, patch options, strides, every
self_action, every topk_mode, the "select" route, and the backward.
"""

import pytest
import torch

from stnls.backends.reference import search as reference
from stnls.params import SearchParams
from stnls.utils.testing import assert_search_close, search_inputs

triton_search = pytest.importorskip("stnls.backends.triton.search")

FORWARD_CASES = {
    "int_l2": (dict(ws=3, wt=1, k=4, itype="int"), {}),
    "int_prod": (dict(ws=3, wt=1, k=4, itype="int", dist_type="prod"), {}),
    "float_l2_fractional_stride1": (dict(ws=3, wt=1, k=5, stride1=0.5), {}),
    "float_prod": (dict(ws=3, wt=1, k=4, dist_type="prod", stride1=0.75), {}),
    "float_ps3": (dict(ws=3, wt=1, k=4, ps=3, stride1=0.5), dict(T=3, H=5, W=5)),
    "int_ps2_dilation_adj_offsets": (dict(ws=3, wt=1, k=4, ps=2, dilation=2, use_adj=True,
                                          off_Hq=1, off_Wq=-1, itype="int"), dict(H=5, W=5)),
    "float_stride0": (dict(ws=3, wt=1, k=3, stride0=2, stride1=1.5), dict(H=8, W=8)),
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


@pytest.mark.parametrize("name", list(FORWARD_CASES))
def test_forward_matches_reference(name):
    params, shape = FORWARD_CASES[name]
    p = SearchParams.create(**params)
    vid0, vid1, flows = search_inputs(p, **shape)
    expected = reference.non_local_search(vid0, vid1, flows, p)
    actual = triton_search.non_local_search(vid0, vid1, flows, p)
    assert_search_close(expected, actual)


def test_routes_cover_the_cases():
    """The cases above exercise every forward route."""
    routes = {triton_search.route(SearchParams.create(**params),
                                  SearchParams.create(**params).window_frames
                                  - (0 if shape.get("full_flows") else 1))
              for params, shape in FORWARD_CASES.values()}
    assert routes == {"topk", "all", "select"}


def test_forward_non_contiguous_inputs():
    p = SearchParams.create(ws=3, wt=1, k=4, stride1=0.5)
    vid0, vid1, flows = search_inputs(p, C=4)
    vid0, vid1 = vid0.transpose(-1, -2), vid1.transpose(-1, -2)  # H == W: same shapes
    expected = reference.non_local_search(vid0, vid1, flows, p)
    actual = triton_search.non_local_search(vid0, vid1, flows, p)
    assert_search_close(expected, actual)


BACKWARD_CASES = {
    "int_l2": dict(ws=3, wt=1, k=4, itype="int"),
    "float_l2_flows": dict(ws=3, wt=1, k=4, stride1=0.5),
    "float_prod_flows_ps2": dict(ws=3, wt=1, k=3, ps=2, dist_type="prod", stride1=0.75),
    "float_k_agg_normalize": dict(ws=3, wt=1, k=4, k_agg=2, normalize_bwd=True, ps=3),
    "float_invalid_kept": dict(ws=3, wt=1, k=-1, full_ws=False, stride1=1.5),
}


def _backward(module, p, vid0, vid1, flows, seed=1):
    dists, inds = reference.non_local_search(vid0, vid1, flows, p)
    gen = torch.Generator().manual_seed(seed)
    grad_dists = torch.randn(dists.shape, generator=gen)
    grad_inds = torch.randn(inds.shape, generator=gen) if inds.is_floating_point() else torch.zeros(inds.shape)
    return module.non_local_search_backward(grad_dists, grad_inds, vid0, vid1, flows, inds, True, p)


@pytest.mark.parametrize("name", list(BACKWARD_CASES))
def test_backward_matches_reference(name):
    p = SearchParams.create(**BACKWARD_CASES[name])
    vid0, vid1, flows = search_inputs(p, H=5, W=5, full_flows=name == "float_l2_flows")
    expected = _backward(reference, p, vid0, vid1, flows)
    actual = _backward(triton_search, p, vid0, vid1, flows)
    for name_, e, a in zip(("vid0", "vid1", "flows"), expected, actual):
        assert a.shape == e.shape and a.dtype == e.dtype, name_
        torch.testing.assert_close(a, e, atol=1e-4, rtol=1e-4, msg=lambda m: f"grad {name_}: {m}")
    if p.itype == "float":
        assert expected[2].abs().sum() > 0  # the flow gradient path was exercised


def test_backward_deterministic_fixed_point():
    """Deterministic mode: int64 fixed-point sums, identical across runs, close to float."""
    p = SearchParams.create(ws=3, wt=1, k=4, stride1=0.5)
    vid0, vid1, flows = search_inputs(p, H=5, W=5)
    atomic = _backward(triton_search, p, vid0, vid1, flows)
    previous = torch.are_deterministic_algorithms_enabled()
    torch.use_deterministic_algorithms(True)
    try:
        first = _backward(triton_search, p, vid0, vid1, flows)
        second = _backward(triton_search, p, vid0, vid1, flows)
    finally:
        torch.use_deterministic_algorithms(previous)
    for a, b, c in zip(first, second, atomic):
        assert torch.equal(a, b)
        torch.testing.assert_close(a, c, atol=1e-5, rtol=1e-5)
