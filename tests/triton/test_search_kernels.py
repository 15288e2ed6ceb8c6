"""Triton search kernels (through the interpreter) against the reference backend, tiny shapes.

One case per code path: itype, dist type, patch options, strides, every
self_action, every topk_mode, the "select" route, and the backward; and the
forward outputs of the original library's recorded NonLocalSearch cases.
"""

import warnings

import pytest
import torch

import stnls
from golden import cases
from stnls.backends.reference import search as reference
from stnls.params import SearchParams
from stnls.utils.layout import split_heads
from stnls.utils.testing import (BACKWARD_CASES, FORWARD_CASES, assert_search_close, search_backward,
                                 search_inputs)

triton_search = pytest.importorskip("stnls.backends.triton.search")

# The interpreter computes every lane; a numpy warning (overflow, invalid cast) there means a
# lane read memory outside the inputs, which on a GPU is an out-of-bounds access.
pytestmark = pytest.mark.filterwarnings("error::RuntimeWarning")


@pytest.mark.parametrize("name", list(FORWARD_CASES))
def test_forward_matches_reference(name):
    params, shape = FORWARD_CASES[name]
    p = SearchParams.create(**params)
    vid0, vid1, flows = search_inputs(p, **shape)
    expected = reference.non_local_search(vid0, vid1, flows, p)
    actual = triton_search.non_local_search(vid0, vid1, flows, p)
    assert_search_close(expected, actual)


@pytest.mark.golden
@pytest.mark.parametrize("case", cases("NonLocalSearch"))
def test_golden_forward(case):
    """The kernels' outputs on the original library's recorded cases."""
    params = dict(case["params"])
    nheads = params.pop("nheads", 1)
    p = stnls.search.NonLocalSearch(nheads=nheads, **params).params
    x = case["inputs"]
    vid0, vid1 = (split_heads(name, x[name], nheads) for name in ("vid0", "vid1"))
    flows = x["flows"].float()
    actual = triton_search.non_local_search(vid0, vid1, flows if flows.dim() == 7 else flows[:, None], p)
    assert_search_close((case["outputs"]["dists"], case["outputs"]["inds"]), actual)


def test_routes_cover_the_cases():
    """The cases above exercise every forward route."""
    routes = {triton_search.route(SearchParams.create(**params),
                                  SearchParams.create(**params).window_frames
                                  - (0 if shape.get("full_flows") else 1))
              for params, shape in FORWARD_CASES.values()}
    assert routes == {"topk", "all", "select"}


def test_reads_cover_the_cases():
    """The cases above read the keys from the video in every unstaged way."""
    reads = {triton_search.forward_reads(SearchParams.create(**params), shape.get("C", 3),
                                         torch.float32)[0]
             for params, shape in FORWARD_CASES.values()}
    assert reads == {"direct", "bilinear", "bilinear_pixels"}


def test_window_chunks_cover_each_window_once():
    """Two powers of two cover a slot's window with at most a quarter of the lanes
    empty where one power of two would leave more; the cases above use both tilings."""
    for candidates in range(1, 1100):
        first, second = triton_search.window_chunks(candidates)
        whole = 1 << (candidates - 1).bit_length()
        assert first & (first - 1) == 0 and second & (second - 1) == 0 and second <= first
        assert candidates <= first + second <= whole
        assert second == 0 or first + second < whole
    assert triton_search.window_chunks(81) == (64, 32) and triton_search.window_chunks(441) == (512, 0)
    chunked = {triton_search.window_chunks(SearchParams.create(**params).ws ** 2)[1] > 0
               for params, _ in FORWARD_CASES.values()}
    assert chunked == {True, False}


def test_forward_non_contiguous_inputs():
    p = SearchParams.create(ws=3, wt=1, k=4, stride1=0.5)
    vid0, vid1, flows = search_inputs(p, C=4)
    vid0, vid1 = vid0.transpose(-1, -2), vid1.transpose(-1, -2)  # H == W: same shapes
    expected = reference.non_local_search(vid0, vid1, flows, p)
    actual = triton_search.non_local_search(vid0, vid1, flows, p)
    assert_search_close(expected, actual)


@pytest.mark.parametrize("params", [dict(itype="int"), dict(stride1=0.5), dict(stride1=1)],
                         ids=["int", "bilinear", "staged"])
@pytest.mark.parametrize("bad", [float("nan"), float("inf"), -float("inf")])
def test_non_finite_flows_touch_only_their_queries(params, bad):
    """A non-finite flow (which the op reports only after the kernels ran, see
    ``stnls._ops.search``) changes the results of its own query and nothing else:
    every address the kernels read stays clamped."""
    p = SearchParams.create(ws=3, wt=1, k=4, ps=3, **params)
    vid0, vid1, flows = search_inputs(p, C=3, H=5, W=5)
    clean_dists, clean_inds = triton_search.non_local_search(vid0, vid1, flows, p)
    flows[0, 0, 1, 0, :, 2, 3] = bad
    with warnings.catch_warnings():  # the kernels cast NaN and inf to integers, by design
        warnings.simplefilter("ignore", RuntimeWarning)
        dists, inds = triton_search.non_local_search(vid0, vid1, flows, p)
    other = torch.ones(dists.shape[:5], dtype=torch.bool)
    other[0, 0, 1, 2, 3] = False
    torch.testing.assert_close(dists[other], clean_dists[other])
    torch.testing.assert_close(inds[other], clean_inds[other])


@pytest.mark.parametrize("params", [dict(k=4), dict(k=-1)], ids=["topk", "all"])
def test_checked_flows_make_every_distance_nan(params):
    """With ``check_flows`` the kernel reads the flows' probe as it writes: finite flows
    leave the results unchanged, one non-finite flow makes every distance NaN (what
    ``check_finite`` does on a GPU, without its pass over the distances); the indices stay
    those of the search. (The "select" path runs ``check_finite`` itself: on these CPU
    tensors it raises; tests/gpu covers it.)"""
    p = SearchParams.create(ws=3, wt=1, ps=3, **params)
    vid0, vid1, flows = search_inputs(p, C=3, H=5, W=5)
    clean = triton_search.non_local_search(vid0, vid1, flows, p)
    for a, b in zip(triton_search.non_local_search(vid0, vid1, flows, p, True), clean):
        assert torch.equal(a, b)
    flows[0, 0, 1, 0, :, 2, 3] = float("nan")
    with warnings.catch_warnings():  # the kernels cast NaN to integers, by design
        warnings.simplefilter("ignore", RuntimeWarning)
        unchecked = triton_search.non_local_search(vid0, vid1, flows, p)
        dists, inds = triton_search.non_local_search(vid0, vid1, flows, p, True)
    assert torch.isnan(dists).all()
    torch.testing.assert_close(inds, unchecked[1], rtol=0, atol=0, equal_nan=True)


def _backward(module, p, vid0, vid1, flows):
    return search_backward(module, reference, p, vid0, vid1, flows)


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


INTERIOR_CASES = {
    "l2": dict(ws=3, wt=1, k=4, ps=3, stride1=1),
    "prod": dict(ws=3, wt=1, k=4, ps=3, stride1=1, dist_type="prod"),
}


@pytest.mark.parametrize("name", list(INTERIOR_CASES))
def test_staged_interior_tiles_match_reference(name):
    """Every query patch and staged region inside its frame, so that the distances are
    read without per-pixel checks: queries offset by 2 into a twice larger vid0, flows
    that centre every window at (2.25, 2.25) of a 6x6 vid1."""
    p = SearchParams.create(**INTERIOR_CASES[name], off_Hq=2, off_Wq=2, strideQ=1)
    vid0, vid1, flows = search_inputs(p, T=3, C=3, H=6, W=6, query_scale=2, full_flows=True)
    position = torch.arange(6, dtype=torch.float32)
    flows[..., 0, :, :] = 2.25 - position[None, :]  # dx
    flows[..., 1, :, :] = 2.25 - position[:, None]  # dy
    assert_search_close(reference.non_local_search(vid0, vid1, flows, p),
                        triton_search.non_local_search(vid0, vid1, flows, p))


@pytest.mark.parametrize("value", [0.0, 0.5])
def test_backward_broadcast_index_gradient(value):
    """A broadcast ``grad_inds`` (what autograd passes when the indices get no gradient)
    is read as its one value, with the same result as the dense tensor."""
    p = SearchParams.create(ws=3, wt=1, k=4, stride1=0.5)
    vid0, vid1, flows = search_inputs(p, H=5, W=5)
    dists, inds = reference.non_local_search(vid0, vid1, flows, p)
    grad_dists = torch.randn(dists.shape, generator=torch.Generator().manual_seed(0))
    broadcast = torch.full((), value).expand(inds.shape)
    expected = reference.non_local_search_backward(grad_dists, broadcast.contiguous(), vid0, vid1,
                                                   flows, inds, True, p)
    actual = triton_search.non_local_search_backward(grad_dists, broadcast, vid0, vid1, flows,
                                                     inds, True, p)
    for e, a in zip(expected, actual):
        torch.testing.assert_close(a, e, atol=1e-4, rtol=1e-4)


@pytest.mark.parametrize("ps", [1, 3])
def test_backward_deterministic_fixed_point(ps):
    """Deterministic mode: int64 fixed-point sums, identical across runs, close to float."""
    p = SearchParams.create(ws=3, wt=1, k=4, stride1=0.5, ps=ps)
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


REGION_CASES = {
    "stride1_2": dict(ws=3, wt=1, k=4, ps=3, stride1=2),
    "dilation_2_no_reflect": dict(ws=3, wt=1, k=4, ps=3, dilation=2, reflect_bounds=False),
    "stride0_2_prod_all": dict(ws=3, wt=1, k=-1, ps=3, stride0=2, dist_type="prod"),
    "prod_no_reflect": dict(ws=3, wt=1, k=4, ps=3, dist_type="prod", reflect_bounds=False),
}


@pytest.mark.parametrize("name", list(REGION_CASES))
def test_staged_region_matches_direct_reads(name, monkeypatch):
    """The staged-region forward, with programs looping over several small tiles,
    equals the direct reads and the reference."""
    p = SearchParams.create(**REGION_CASES[name])
    assert triton_search.region_plan(p) is not None
    vid0, vid1, flows = search_inputs(p, C=3, H=5, W=5)
    monkeypatch.setattr(triton_search, "_block", lambda items, block: 16)  # several tiles
    staged = triton_search.non_local_search(vid0, vid1, flows, p)
    monkeypatch.setattr(triton_search, "USE_REGION", False)
    assert triton_search.region_plan(p) is None
    direct = triton_search.non_local_search(vid0, vid1, flows, p)
    assert_search_close(reference.non_local_search(vid0, vid1, flows, p), staged)
    assert_search_close(direct, staged)
