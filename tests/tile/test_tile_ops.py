"""Unfold/fold: python loops, torch equality, adjointness, batching, gradients, opcheck."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch.autograd import gradcheck

import stnls
from stnls.params import TileParams


def _mirror(v, lo, hi):
    return 2 * lo - v if v < lo else (2 * (hi - 1) - v if v > hi - 1 else v)


def brute_unfold_k(vid, inds, ps, pt=1, dilation=1, use_adj=False, reflect=True, box=None):
    B, T, C, H, W = vid.shape
    top, left, btm, right = box or (0, 0, H, W)
    Q, K = inds.shape[1:3]
    out = torch.zeros(B, Q, K, pt, C, ps, ps, dtype=vid.dtype)
    first = 0 if use_adj else -(ps // 2)
    for b in range(B):
        for q in range(Q):
            for k in range(K):
                t, h, w = inds[b, q, k].tolist()
                for pk in range(pt):
                    tt = _mirror(t + pk, 0, T)
                    for a in range(ps):
                        for c in range(ps):
                            y = h + dilation * (first + a)
                            x = w + dilation * (first + c)
                            if reflect:
                                y, x = _mirror(y, top, btm), _mirror(x, left, right)
                            if top <= y < btm and left <= x < right and 0 <= tt < T:
                                out[b, q, k, pk, :, a, c] = vid[b, tt, :, y, x]
    return out


def _random_inds(B, Q, K, T, H, W, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.stack([torch.randint(0, n, (B, Q, K), generator=g) for n in (T, H, W)], -1)


@pytest.mark.parametrize("ps,pt,dilation,use_adj,reflect", [
    (3, 1, 1, False, True), (4, 2, 1, False, True), (3, 1, 2, False, False), (2, 1, 1, True, True),
])
def test_unfold_k_matches_loops(ps, pt, dilation, use_adj, reflect):
    vid = torch.randn(2, 3, 2, 7, 6, dtype=torch.float64)
    inds = _random_inds(2, 5, 3, 3, 7, 6).int()
    out = stnls.tile.unfold_k(vid, inds, ps, pt, dilation, use_adj, reflect)
    torch.testing.assert_close(out, brute_unfold_k(vid, inds, ps, pt, dilation, use_adj, reflect),
                               rtol=0, atol=0)


def test_iunfold_reflects_at_the_rectangle():
    vid = torch.randn(1, 2, 2, 9, 8, dtype=torch.float64)
    box = (2, 1, 7, 6)
    patches = stnls.tile.iunfold(vid, 3, box, stride=2)
    n_h, n_w = 3, 3
    centres = [(t, 2 + 2 * i, 1 + 2 * j) for t in range(2) for i in range(n_h) for j in range(n_w)]
    inds = torch.tensor(centres)[None, :, None]
    torch.testing.assert_close(patches, brute_unfold_k(vid, inds, 3, box=box), rtol=0, atol=0)
    zero = stnls.tile.iunfold(vid, 3, box, stride=2, border="zero")
    torch.testing.assert_close(zero, brute_unfold_k(vid, inds, 3, reflect=False), rtol=0, atol=0)


@pytest.mark.parametrize("ps,stride,dilation", [(3, 1, 1), (5, 2, 1), (3, 2, 2), (4, 3, 1)])
def test_full_frame_matches_torch(ps, stride, dilation):
    vid = torch.randn(2, 3, 4, 11, 10, dtype=torch.float64)
    B, T, C, H, W = vid.shape
    frames = vid.reshape(B * T, C, H, W)
    valid = stnls.tile.unfold(vid, ps, stride, dilation, use_adj=True, only_full=True)
    expected = F.unfold(frames, ps, dilation=dilation, stride=stride)
    ours = valid.reshape(B, T, -1, C * ps * ps).reshape(B * T, -1, C * ps * ps).transpose(1, 2)
    torch.testing.assert_close(ours, expected, rtol=0, atol=0)
    folded = stnls.tile.fold(valid, vid.shape, stride, dilation, use_adj=True, only_full=True)
    expected_fold = F.fold(expected, (H, W), ps, dilation=dilation, stride=stride)
    torch.testing.assert_close(folded.reshape(B * T, C, H, W), expected_fold)
    if ps % 2:
        padded = stnls.tile.unfold(vid, ps, stride, dilation)
        expected = F.unfold(frames, ps, dilation=dilation, stride=stride, padding=dilation * (ps // 2))
        ours = padded.reshape(B * T, -1, C * ps * ps).transpose(1, 2)
        torch.testing.assert_close(ours, expected, rtol=0, atol=0)


@pytest.mark.parametrize("border,only_full,use_adj", [("reflect", False, False), ("zero", False, False),
                                                      ("reflect", True, False), ("zero", False, True)])
def test_ifold_is_adjoint_of_iunfold(border, only_full, use_adj):
    vid = torch.randn(1, 2, 2, 9, 8, dtype=torch.float64)
    kwargs = dict(coords=(1, 2, 8, 7), stride=2, dilation=1, use_adj=use_adj, only_full=only_full,
                  border=border)
    patches = stnls.tile.iunfold(vid, 3, start=3, num=8, **kwargs)
    y = torch.randn_like(patches)
    back = stnls.tile.ifold(y, vid.shape, start=3, **kwargs)
    lhs, rhs = (patches * y).sum().item(), (vid * back).sum().item()
    assert abs(lhs - rhs) <= 1e-10 * max(1.0, abs(lhs))


@pytest.mark.parametrize("reflect", [True, False])
def test_fold_k_is_adjoint_of_unfold_k(reflect):
    vid = torch.randn(2, 3, 2, 6, 7, dtype=torch.float64)
    inds = _random_inds(2, 6, 2, 3, 6, 7, seed=1)
    patches = stnls.tile.unfold_k(vid, inds, 4, pt=2, reflect_bounds=reflect)
    y = torch.randn_like(patches)
    back = stnls.tile.fold_k(y, inds, vid.shape, reflect_bounds=reflect)
    lhs, rhs = (patches * y).sum().item(), (vid * back).sum().item()
    assert abs(lhs - rhs) <= 1e-10 * max(1.0, abs(lhs))


@pytest.mark.parametrize("border", ["reflect", "zero"])
def test_sweeping_in_batches_equals_one_call(border):
    vid = torch.randn(2, 3, 3, 13, 11, dtype=torch.float64)
    kwargs = dict(coords=(2, 1, 12, 10), stride=2, border=border)
    total = stnls.tile.num_queries(vid.shape, 5, (2, 1, 12, 10), stride=2)
    whole = stnls.tile.iunfold(vid, 5, **kwargs)
    assert whole.shape[1] == total == 3 * 5 * 5
    parts, folded, counts = [], 0, 0
    for start in range(0, total, 16):
        part = stnls.tile.iunfold(vid, 5, start=start, num=min(16, total - start), **kwargs)
        parts.append(part)
        v, z = stnls.tile.ifoldz(part, vid.shape, start=start, **kwargs)
        folded, counts = folded + v, counts + z
    torch.testing.assert_close(torch.cat(parts, 1), whole, rtol=0, atol=0)
    one_fold, one_counts = stnls.tile.ifoldz(whole, vid.shape, **kwargs)
    torch.testing.assert_close(folded, one_fold)
    torch.testing.assert_close(counts, one_counts)
    # folding the unfolded patches and dividing by the counts gives the video back where read
    average = stnls.tile.ifold(whole, vid.shape, normalize="count", **kwargs)
    read = one_counts.expand_as(vid) > 0
    torch.testing.assert_close(average[read], vid[read])


def test_fold_k_count_normalisation_with_weights():
    vid = torch.randn(1, 2, 2, 6, 6, dtype=torch.float64)
    inds = _random_inds(1, 8, 3, 2, 6, 6, seed=2)
    weights = torch.rand(1, 8, 3, dtype=torch.float64) + 0.1
    patches = stnls.tile.unfold_k(vid, inds, 3)
    average = stnls.tile.fold_k(patches, inds, vid.shape, weights=weights, normalize="count")
    hit = stnls.tile.fold_k(torch.ones_like(patches), inds, vid.shape) > 0
    torch.testing.assert_close(average[hit], vid[hit])


def test_gradcheck_tile_ops():
    vid = torch.randn(1, 2, 2, 5, 4, dtype=torch.float64, requires_grad=True)
    inds = _random_inds(1, 4, 2, 2, 5, 4, seed=3)
    assert gradcheck(lambda v: stnls.tile.unfold_k(v, inds, 3, pt=2), (vid,))
    patches = torch.randn(1, 4, 2, 1, 2, 3, 3, dtype=torch.float64, requires_grad=True)
    assert gradcheck(lambda p: stnls.tile.fold_k(p, inds, vid.shape), (patches,))
    assert gradcheck(lambda v: stnls.tile.iunfold(v, 3, (1, 0, 5, 3), start=2, num=5), (vid,))
    few = torch.randn(1, 5, 1, 1, 2, 3, 3, dtype=torch.float64, requires_grad=True)
    assert gradcheck(lambda p: stnls.tile.ifold(p, vid.shape, (1, 0, 5, 3), start=2), (few,))


def test_opcheck_tile_ops():
    vid = torch.randn(1, 2, 2, 5, 4, requires_grad=True)
    inds = _random_inds(1, 4, 2, 2, 5, 4, seed=4).int()
    args = TileParams.create(2, 5, 4, 3, pt=1, box=(1, 0, 5, 4)).as_args()
    torch.library.opcheck(torch.ops.stnls.unfold_k.default, (vid, inds, *args))
    patches = torch.randn(1, 4, 2, 1, 2, 3, 3, requires_grad=True)
    torch.library.opcheck(torch.ops.stnls.fold_k.default, (patches, inds, *args))


def test_bad_input():
    vid = torch.randn(1, 2, 2, 6, 5)
    for coords in [(0, 0, 7, 5), (3, 0, 3, 5), (-1, 0, 4, 4), (0, 4, 6, 2)]:
        with pytest.raises(ValueError, match="non-empty box"):
            stnls.tile.iunfold(vid, 3, coords)
    with pytest.raises(ValueError, match="top, left, btm, right"):
        stnls.tile.iunfold(vid, 3, (0, 0, 4))
    total = stnls.tile.num_queries(vid.shape, 3)
    for start, num in [(total, 1), (-1, 2), (total - 2, 3), (0, 0)]:
        with pytest.raises(ValueError, match="query batch"):
            stnls.tile.iunfold(vid, 3, start=start, num=num)
    with pytest.raises(ValueError, match="query batch"):
        stnls.tile.ifold(torch.randn(1, 4, 1, 1, 2, 3, 3), vid.shape, start=total - 2)
    inds = torch.zeros(1, 3, 2, 3, dtype=torch.int32)
    with pytest.raises(TypeError, match="int32 or int64"):
        stnls.tile.unfold_k(vid, inds.float(), 3)
    with pytest.raises(TypeError, match="int32 or int64"):
        stnls.tile.unfold_k(vid, inds.to(torch.int16), 3)
    with pytest.raises(ValueError, match=r"\[B, Q, K, 3\]"):
        stnls.tile.unfold_k(vid, inds[..., :2], 3)
    bad = inds.clone()
    bad[0, 1, 1, 1] = 6
    with pytest.raises(ValueError, match=r"inds\[..., 1\] \(h\) must lie in \[0, 5\]"):
        stnls.tile.unfold_k(vid, bad, 3)
    with pytest.raises(ValueError, match="border"):
        stnls.tile.iunfold(vid, 3, border="wrap")
    with pytest.raises(ValueError, match="normalize"):
        stnls.tile.fold_k(torch.randn(1, 3, 2, 1, 2, 3, 3), inds, vid.shape, normalize="mean")
    with pytest.raises(ValueError, match="patches must be"):
        stnls.tile.fold_k(torch.randn(1, 3, 2, 1, 3, 3, 3), inds, vid.shape)


def test_folding_in_place_equals_folding():
    vid = torch.randn(1, 2, 3, 9, 8, dtype=torch.float64)
    kwargs = dict(coords=(1, 1, 8, 7), stride=2, border="zero")
    total = stnls.tile.num_queries(vid.shape, 3, (1, 1, 8, 7), stride=2)
    out = torch.zeros_like(vid)
    counts = torch.zeros(1, 2, 1, 9, 8, dtype=torch.float64)
    for start in range(0, total, 7):
        part = stnls.tile.iunfold(vid, 3, start=start, num=min(7, total - start), **kwargs)
        stnls.tile.ifoldz(part, vid.shape, start=start, out=out, counts=counts, **kwargs)
    whole = stnls.tile.iunfold(vid, 3, **kwargs)
    expected, expected_counts = stnls.tile.ifoldz(whole, vid.shape, **kwargs)
    torch.testing.assert_close(out, expected)
    torch.testing.assert_close(counts, expected_counts)
    with pytest.raises(ValueError, match="contiguous float32 or float64"):
        stnls.tile.ifold(whole, vid.shape, out=out.float().transpose(3, 4).contiguous()
                         .transpose(3, 4), **kwargs)
    with pytest.raises(ValueError, match=r"out must be \[B, T, C, H, W\]"):
        stnls.tile.ifold(whole, vid.shape, out=out[:, :1], **kwargs)


def test_opcheck_fold_accumulate():
    inds = _random_inds(1, 4, 2, 2, 5, 4, seed=5)
    args = TileParams.create(2, 5, 4, 3).as_args()
    patches = torch.randn(1, 4, 2, 1, 2, 3, 3)
    out = torch.zeros(1, 2, 2, 5, 4)
    torch.library.opcheck(torch.ops.stnls.fold_k_accumulate_.default, (out, patches, inds, *args))


def test_modules_call_the_functions():
    vid = torch.randn(1, 2, 2, 7, 6, dtype=torch.float64)
    unfold = stnls.tile.iUnfold(3, coords=(1, 1, 6, 5), stride=2)
    patches = unfold(vid, 2, 5)
    torch.testing.assert_close(patches, stnls.tile.iunfold(vid, 3, (1, 1, 6, 5), 2, start=2, num=5))
    folded = stnls.tile.iFold(vid.shape, coords=(1, 1, 6, 5), stride=2)(patches, 2)
    torch.testing.assert_close(folded, stnls.tile.ifold(patches, vid.shape, (1, 1, 6, 5), 2, start=2))
    counts = stnls.tile.iFoldz(vid.shape, coords=(1, 1, 6, 5), stride=2)(patches, 2)[1]
    assert counts.sum() == patches.shape[1] * 9
    inds = _random_inds(1, 3, 2, 2, 7, 6)
    k_patches = stnls.tile.UnfoldK(3)(vid, inds)
    weights = torch.rand(1, 3, 2, dtype=torch.float64)
    torch.testing.assert_close(stnls.tile.FoldK(vid.shape)(k_patches, inds, weights),
                               stnls.tile.fold_k(k_patches, inds, vid.shape, weights))
    assert "coords=(1, 1, 6, 5)" in repr(unfold)
