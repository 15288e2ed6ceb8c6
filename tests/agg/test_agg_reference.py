"""The reference aggregation ops against the python-loop definitions."""

from __future__ import annotations

import pytest
import torch

import stnls
import agg_bruteforce as brute
from agg_inputs import make

CONFIGS = [
    # ps, stride0, reflect_bounds, use_adj, dilation, itype
    (3, 1, True, False, 1, "float"),
    (3, 2, False, False, 1, "float"),
    (3, 1, True, False, 1, "int"),
    (3, 2, True, False, 1, "int"),
    (1, 1, True, False, 1, "float"),
    (2, 1, True, False, 1, "float"),
    (3, 1, False, True, 1, "int"),
    (3, 1, True, False, 2, "float"),
]


@pytest.mark.parametrize("ps,stride0,reflect,use_adj,dilation,itype", CONFIGS)
def test_gather_matches_loops(ps, stride0, reflect, use_adj, dilation, itype):
    vid, weights, flows = make(stride=stride0, itype=itype, spread=3.0)
    H, W = vid.shape[-2:]
    out = stnls.agg.gather(vid, weights, flows, ps=ps, stride0=stride0, dilation=dilation,
                           reflect_bounds=reflect, use_adj=use_adj, itype=itype)
    expected = brute.gather(vid, weights, flows, ps, stride0, stride0, H, W, dilation=dilation,
                            reflect_bounds=reflect, use_adj=use_adj)
    assert expected.abs().amin(dim=(0, 1, 3, 4)).gt(0).float().mean() > 0.5  # most pixels covered
    torch.testing.assert_close(out, expected, rtol=1e-10, atol=1e-10)


def test_gather_temporal_patch_matches_loops():
    vid, weights, flows = make(T=3, itype="float", spread=2.0, seed=3)
    H, W = vid.shape[-2:]
    out = stnls.agg.gather(vid, weights, flows, ps=3, pt=2)
    expected = brute.gather(vid, weights, flows, 3, 1, 1, H, W, pt=2)
    torch.testing.assert_close(out, expected, rtol=1e-10, atol=1e-10)


@pytest.mark.parametrize("itype", ["float", "int"])
def test_gather_add_equals_summed_gather(itype):
    vid, weights, flows = make(stride=2, itype=itype, seed=1)
    stack = stnls.agg.gather(vid, weights, flows, ps=3, stride0=2, itype=itype)
    total = stnls.agg.gather_add(vid, weights, flows, ps=3, strideIn=2, strideOut=2, itype=itype)
    torch.testing.assert_close(total, stack.sum(2), rtol=1e-10, atol=1e-10)


def test_gather_add_between_grids_matches_loops():
    vid, weights, flows = make(H=7, W=6, stride=2, seed=2)
    n_h, n_w = weights.shape[3:5]
    out = stnls.agg.gather_add(vid, weights, flows, ps=3, strideIn=2, strideOut=1)
    assert out.shape[-2:] == (n_h, n_w)
    expected = brute.gather(vid, weights, flows, 3, 2, 1, n_h, n_w, sum_k=True)
    torch.testing.assert_close(out, expected, rtol=1e-10, atol=1e-10)


def test_pool_matches_loops():
    vid, weights, flows = make(stride=2, itype="float", seed=4)
    out = stnls.agg.pool(vid, weights, flows, ps=3, stride0=2)
    n_h, n_w = weights.shape[3:5]
    expected = brute.gather(vid, weights, flows, 3, 2, 2, 3 * n_h, 3 * n_w, sum_k=True, pooled=True)
    torch.testing.assert_close(out, expected, rtol=1e-10, atol=1e-10)


def test_wpsum_keeps_the_input_layout():
    vid, weights, flows = make(HD=2, C=3, seed=5)
    B, HD, T, C, H, W = vid.shape
    merged = vid.transpose(1, 2).reshape(B, T, HD * C, H, W)
    out5 = stnls.agg.WeightedPatchSum(ps=3, stride0=1)(merged, weights, flows)
    out6 = stnls.agg.wpsum(vid, weights, flows, ps=3)
    assert out5.shape == (B, T, HD * C, H, W) and out6.shape == vid.shape
    torch.testing.assert_close(out5, out6.transpose(1, 2).reshape(B, T, HD * C, H, W))


def test_wpsum_with_unit_patches_is_weighted_warping():
    vid, weights, flows = make(HD=1, T=2, itype="int", spread=1.0, seed=6, time_offsets=False)
    out = stnls.agg.wpsum(vid, weights, flows, ps=1)
    B, HD, T, C, H, W = vid.shape
    expected = torch.zeros_like(vid)
    for k in range(weights.shape[-1]):
        for t in range(T):
            for h in range(H):
                for w in range(W):
                    dh, dw = flows[0, 0, t, h, w, k, 1:].tolist()
                    y, x = brute.mirror(h + dh, H), brute.mirror(w + dw, W)
                    expected[0, 0, t, :, h, w] += weights[0, 0, t, h, w, k] * vid[0, 0, t, :, y, x]
    torch.testing.assert_close(out, expected)


def test_missing_neighbours_are_skipped():
    vid, weights, flows = make(itype="float", seed=7)
    flows[..., 1, 1] = 1e8
    out = stnls.agg.gather(vid, weights, flows, ps=3)
    assert torch.equal(out[:, :, 1], torch.zeros_like(out[:, :, 1]))
    assert out[:, :, 0].abs().sum() > 0


def test_half_precision_accumulates_in_float32():
    vid, weights, flows = make(dtype=torch.float32, seed=8)
    reference = stnls.agg.wpsum(vid, weights, flows, ps=3)
    half = stnls.agg.wpsum(vid.bfloat16(), weights.bfloat16(), flows, ps=3)
    assert half.dtype == torch.bfloat16
    torch.testing.assert_close(half.float(), reference, rtol=3e-2, atol=3e-2)


def test_search_then_aggregate():
    vid = torch.randn(1, 3, 4, 10, 9)
    search = stnls.search.NonLocalSearch(ws=3, wt=1, ps=3, k=4, nheads=2, stride1=0.5,
                                         self_action="anchor")
    dists, flows = search(vid, vid)
    out = stnls.agg.WeightedPatchSum(ps=3, stride0=1)(vid, torch.softmax(-dists, -1), flows)
    assert out.shape == vid.shape
    # the self match is first: with all the weight on it the video comes back
    one_hot = torch.zeros_like(dists)
    one_hot[..., 0] = 1
    identity = stnls.agg.WeightedPatchSum(ps=3, stride0=1)(vid, one_hot, flows)
    torch.testing.assert_close(identity, vid, rtol=1e-5, atol=1e-5)


def test_modules_call_the_functions():
    vid, weights, flows = make(stride=2, seed=9)
    modules = [
        (stnls.agg.NonLocalGather(3, 2), stnls.agg.gather),
        (stnls.agg.PooledPatchSum(3, 2), stnls.agg.pool),
        (stnls.agg.NonLocalGatherAdd(3, 2, 2), stnls.agg.gather_add),
    ]
    for module, function in modules:
        kwargs = {"strideIn": 2, "strideOut": 2} if function is stnls.agg.gather_add else {"stride0": 2}
        torch.testing.assert_close(module(vid, weights, flows), function(vid, weights, flows, ps=3,
                                                                         **kwargs))
    stack = stnls.agg.gather(vid, weights, flows, ps=3, stride0=2)
    torch.testing.assert_close(stnls.agg.NonLocalScatter(3, 2)(stack, weights, flows),
                               stnls.agg.scatter(stack, weights, flows, ps=3, stride0=2))
    assert "ps=3, stride0=2" in repr(stnls.agg.NonLocalScatter(3, 2))


def test_non_contiguous_inputs():
    vid, weights, flows = make(seed=10)
    strided_vid = vid.transpose(-1, -2).contiguous().transpose(-1, -2)
    strided_weights = weights.transpose(3, 4).contiguous().transpose(3, 4)
    assert not strided_vid.is_contiguous() and not strided_weights.is_contiguous()
    torch.testing.assert_close(stnls.agg.wpsum(strided_vid, strided_weights, flows, ps=3),
                               stnls.agg.wpsum(vid, weights, flows, ps=3))


def test_compiles_without_graph_breaks():
    vid, weights, flows = make(dtype=torch.float32, seed=11)
    compiled = torch.compile(lambda v, w, f: stnls.agg.wpsum(v, w, f, ps=3), backend="aot_eager",
                             fullgraph=True)
    torch.testing.assert_close(compiled(vid, weights, flows), stnls.agg.wpsum(vid, weights, flows, ps=3))


def test_uncovered_pixels_stay_zero():
    """ps=1 at stride0=3 leaves gaps: nothing lands there and they stay 0 (not 0/0)."""
    vid, weights, flows = make(H=7, W=7, stride=3, seed=12)
    out = stnls.agg.gather_add(vid, weights, flows, ps=1, strideIn=3, strideOut=3)
    assert torch.isfinite(out).all()
    assert torch.equal(out[..., 1, :], torch.zeros_like(out[..., 1, :]))
    assert out[..., 0, 0].abs().sum() > 0
