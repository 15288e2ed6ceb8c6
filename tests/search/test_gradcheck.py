"""float64 gradcheck of the search with respect to both videos and the flows."""

import pytest
import torch
from torch.autograd import gradcheck

import stnls

BASE = dict(ws=3, wt=1, ps=1, k=3, stride0=1, stride1=1.0)

CASES = {
    "l2_float": dict(),
    "prod_float": dict(dist_type="prod"),
    "l2_int": dict(itype="int"),
    "prod_int_ps3": dict(itype="int", dist_type="prod", ps=3),
    "ps3_dilation2": dict(ps=3, dilation=2),
    "stride0_2": dict(stride0=2, ps=3),
    "stride1_half": dict(stride1=0.5, ps=3),
    "no_reflect": dict(reflect_bounds=False, ps=3),
    "no_full_ws": dict(full_ws=False),
    "anchor": dict(self_action="anchor"),
    "anchor_self": dict(self_action="anchor_self", itype="int"),
    "anchor_each_each": dict(self_action="anchor_each", topk_mode="each", k=2),
    "remove": dict(self_action="remove"),
    "remove_ref_frame": dict(self_action="remove_ref_frame"),
    "anchor_and_remove_ref_frame": dict(self_action="anchor_and_remove_ref_frame", topk_mode="each", k=2),
    "topk_none": dict(k=-1, topk_mode="none"),
}


@pytest.mark.parametrize("name", list(CASES))
def test_gradcheck(name):
    p = dict(BASE, **CASES[name])
    T, C, H, W = 3, 2, 5, 6
    vid0 = torch.randn(1, T, C, H, W, dtype=torch.float64, requires_grad=True)
    vid1 = torch.randn(1, T, C, H, W, dtype=torch.float64, requires_grad=True)
    nH, nW = (H - 1) // p["stride0"] + 1, (W - 1) // p["stride0"] + 1
    # real flows, kept away from integers so that no bilinear corner changes under eps
    flows = (torch.randint(-2, 3, (1, T, 2, 2, nH, nW)) + torch.rand(1, T, 2, 2, nH, nW) * 0.8 + 0.1)
    is_float = p.get("itype", "float") == "float"
    flows = flows.double().requires_grad_(is_float)

    def fn(v0, v1, f):
        dists, inds = stnls.search.nls(v0, v1, f, **p)
        return (dists, inds) if is_float else dists

    inputs = (vid0, vid1, flows)
    assert gradcheck(fn, inputs, eps=1e-6, atol=1e-5, rtol=1e-4, fast_mode=True)


def test_search_flow_gradients_reach_one_step_flows():
    T, H, W = 5, 6, 7
    vid0 = torch.randn(1, T, 2, H, W, dtype=torch.float64)
    vid1 = torch.randn(1, T, 2, H, W, dtype=torch.float64)
    fflow = (torch.rand(1, T, 2, H, W, dtype=torch.float64) * 0.8 + 0.1).requires_grad_(True)
    bflow = (-torch.rand(1, T, 2, H, W, dtype=torch.float64) * 0.8 - 0.1).requires_grad_(True)
    search = stnls.search.NonLocalSearch(ws=3, wt=1, ps=3, k=3, stride1=0.5)

    def fn(ff, bf):
        dists, inds = search(vid0, vid1, ff, bf)
        return dists, inds

    assert gradcheck(fn, (fflow, bflow), eps=1e-6, atol=1e-5, rtol=1e-4, fast_mode=True)


def _video_grads(grad_scale, **params):
    torch.manual_seed(1)
    vid0 = torch.randn(1, 3, 2, 6, 7, dtype=torch.float64, requires_grad=True)
    vid1 = torch.randn(1, 3, 2, 6, 7, dtype=torch.float64, requires_grad=True)
    dists, _ = stnls.search.nls(vid0, vid1, None, ws=3, wt=1, ps=3, k=4, **params)
    (dists * grad_scale).sum().backward()
    return vid0.grad, vid1.grad


def test_k_agg_propagates_only_the_first_neighbours():
    keep_two = torch.tensor([1.0, 1.0, 0.0, 0.0], dtype=torch.float64)
    for got, want in zip(_video_grads(1.0, k_agg=2), _video_grads(keep_two)):
        torch.testing.assert_close(got, want)


def _coverage(size, stride, ps):
    """Grid patches of side ps (stride ``stride``) covering each pixel, by counting."""
    centres = range(0, (size - 1) // stride * stride + 1, stride)
    return torch.tensor([sum(abs(x - c) <= (ps - 1) // 2 for c in centres) for x in range(size)],
                        dtype=torch.float64)


def test_normalize_bwd_divides_by_patch_coverage():
    stride0, ps, H, W = 2, 3, 6, 7
    grads = _video_grads(1.0, stride0=stride0)
    normalised = _video_grads(1.0, stride0=stride0, normalize_bwd=True)
    query_count = _coverage(H, stride0, ps)[:, None] * _coverage(W, stride0, ps)[None, :]
    key_count = _coverage(H, 1, ps)[:, None] * _coverage(W, 1, ps)[None, :]
    torch.testing.assert_close(normalised[0], grads[0] / query_count)
    torch.testing.assert_close(normalised[1], grads[1] / key_count)


@pytest.mark.parametrize("used", ["dists", "inds"])
def test_backward_through_one_output(used):
    """Backpropagating one output only: the other output's gradient counts as zero."""
    p = dict(BASE, ps=3, stride1=0.5)
    vid0 = torch.randn(1, 3, 2, 5, 6, dtype=torch.float64, requires_grad=True)
    vid1 = torch.randn(1, 3, 2, 5, 6, dtype=torch.float64, requires_grad=True)
    flows = (torch.rand(1, 3, 2, 2, 5, 6, dtype=torch.float64) * 2 - 1).requires_grad_()
    dists, inds = stnls.search.nls(vid0, vid1, flows, **p)
    weight = torch.randn(dists.shape if used == "dists" else inds.shape, dtype=torch.float64)
    chosen, other = (dists, inds) if used == "dists" else (inds, dists)
    (chosen * weight).sum().backward()
    actual = [t.grad for t in (vid0, vid1, flows)]
    for t in (vid0, vid1, flows):
        t.grad = None
    dists, inds = stnls.search.nls(vid0, vid1, flows, **p)
    chosen, other = (dists, inds) if used == "dists" else (inds, dists)
    torch.autograd.backward([chosen, other], [weight, torch.zeros_like(other)])
    for a, e in zip(actual, (vid0.grad, vid1.grad, flows.grad)):
        torch.testing.assert_close(a, e)
    assert actual[2].abs().sum() > 0
