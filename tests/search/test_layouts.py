"""Layouts, chunking and flow forms give the same results."""

import pytest
import torch

import stnls


def _videos(T=3, C=4, H=7, W=6, dtype=torch.float64):
    return torch.randn(1, T, C, H, W, dtype=dtype), torch.randn(1, T, C, H, W, dtype=dtype)


def test_five_and_six_dim_videos_agree_and_gradients_keep_the_layout():
    vid0, vid1 = _videos()
    vid0.requires_grad_(True)
    search = stnls.search.NonLocalSearch(ws=3, wt=1, ps=3, k=4, nheads=2, stride1=0.5)
    d5, i5 = search(vid0, vid1)
    six = vid0.detach().view(1, 3, 2, 2, 7, 6).transpose(1, 2)
    d6, i6 = search(six, vid1.view(1, 3, 2, 2, 7, 6).transpose(1, 2))
    torch.testing.assert_close(d5, d6)
    torch.testing.assert_close(i5, i6)
    d5.sum().backward()
    assert vid0.grad.shape == vid0.shape


def test_chunked_reference_equals_one_chunk(monkeypatch):
    vid0, vid1 = _videos()
    flows = torch.randn(1, 3, 2, 2, 7, 6, dtype=torch.float64, requires_grad=True)
    args = dict(ws=3, wt=1, ps=3, k=5, stride1=0.5)
    dists, inds = stnls.search.nls(vid0, vid1, flows, **args)
    (dists.sum() + inds.sum()).backward()
    whole = flows.grad.clone()
    flows.grad = None
    monkeypatch.setenv("STNLS_CHUNK_BYTES", "20000")
    chunked, chunked_inds = stnls.search.nls(vid0, vid1, flows, **args)
    (chunked.sum() + chunked_inds.sum()).backward()
    torch.testing.assert_close(chunked, dists)
    torch.testing.assert_close(chunked_inds, inds)
    torch.testing.assert_close(flows.grad, whole)


def test_flows_with_a_slot_for_the_query_frame():
    vid0, vid1 = _videos()
    flows = torch.randn(1, 3, 2, 2, 7, 6, dtype=torch.float64)
    with_own_frame = torch.cat([torch.zeros(1, 3, 1, 2, 7, 6, dtype=torch.float64), flows], 2)
    a = stnls.search.nls(vid0, vid1, flows, ws=3, wt=1, ps=3, k=-1)
    b = stnls.search.nls(vid0, vid1, with_own_frame, ws=3, wt=1, ps=3, k=-1)
    torch.testing.assert_close(a, b)


def test_per_head_flows_and_broadcast_flows():
    vid0, vid1 = _videos()
    flows = torch.randn(1, 1, 3, 2, 2, 7, 6, dtype=torch.float64)
    a = stnls.search.nls(vid0, vid1, flows, ws=3, wt=1, k=3, nheads=2)
    b = stnls.search.nls(vid0, vid1, flows.expand(1, 2, 3, 2, 2, 7, 6), ws=3, wt=1, k=3, nheads=2)
    torch.testing.assert_close(a, b)


def test_one_step_flows_equal_accumulated_flows():
    vid0, vid1 = _videos(T=5)
    fflow, bflow = torch.randn(2, 1, 5, 2, 7, 6, dtype=torch.float64)
    search = stnls.search.NonLocalSearch(ws=3, wt=2, ps=1, k=4, stride0=2)
    torch.testing.assert_close(search(vid0, vid1, fflow, bflow),
                               search(vid0, vid1, stnls.nn.search_flow(fflow, bflow, 2, 2)))


def test_no_flows_works_with_any_stride0():
    vid0, vid1 = _videos()
    dists, inds = stnls.search.NonLocalSearch(ws=3, wt=1, k=2, stride0=3)(vid0, vid1)
    assert dists.shape == (1, 1, 3, 3, 2, 2)


def test_query_video_of_another_resolution_with_strideQ():
    """Queries read vid0 at nh*strideQ while the search is anchored at nh*stride0 of vid1."""
    vid1 = torch.randn(1, 3, 2, 8, 8, dtype=torch.float64)
    vid0 = vid1[..., ::2, ::2].contiguous()
    search = dict(ws=3, wt=1, k=3, itype="int")
    small, _ = stnls.search.nls(vid0, vid1, None, stride0=2, strideQ=1, **search)
    assert small.shape == (1, 1, 3, 4, 4, 3)
    assert small[..., 0].abs().max() < 1e-12  # each query finds itself


def test_ws_interior_limits_interior_queries():
    vid0, vid1 = _videos()
    dists, inds = stnls.search.nls(vid0, vid1, None, ws=5, wt=1, k=-1, ws_interior=3, itype="int")
    interior = dists[0, 0, 0, 2, 2].view(3, 5, 5)
    assert torch.isinf(interior[:, 3:, :]).all() and torch.isinf(interior[:, :, 3:]).all()
    assert torch.isfinite(interior[:, :3, :3]).all()
    assert (inds[0, 0, 0, 2, 2].view(3, 5, 5, 3)[:, 4, 4] == -100000000).all()
    assert torch.isfinite(dists[0, 0, 0, -1, 2]).all()  # last row searches the full window


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
def test_half_precision_videos(dtype):
    vid0, vid1 = _videos(dtype=torch.float32)
    flows = torch.rand(1, 3, 2, 2, 7, 6) * 0.8 + 0.1
    dists, inds = stnls.search.nls(vid0, vid1, flows, ws=3, wt=1, ps=3, k=-1)
    half, half_inds = stnls.search.nls(vid0.to(dtype), vid1.to(dtype), flows, ws=3, wt=1, ps=3, k=-1)
    assert half.dtype == dtype and half_inds.dtype == torch.float32
    want = stnls.search.nls(vid0.to(dtype).float(), vid1.to(dtype).float(), flows, ws=3, wt=1, ps=3, k=-1)[0]
    torch.testing.assert_close(half.float(), want, rtol=1e-2, atol=1e-2)
