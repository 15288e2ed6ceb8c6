"""stnls.nn.topk against sorting by hand."""

import pytest
import torch

import stnls


def test_topk_keeps_the_best_along_dim():
    dists = torch.randn(2, 7, 3)
    inds = torch.randn(2, 7, 3, 3)
    best, best_inds = stnls.nn.topk(dists, inds, 4, dim=1, descending=False)
    order = dists.argsort(1)[:, :4]
    torch.testing.assert_close(best, dists.gather(1, order))
    torch.testing.assert_close(best_inds, inds.gather(1, order[..., None].expand(-1, -1, -1, 3)))


def test_topk_anchor_keeps_entry_zero_first():
    dists = torch.tensor([[5.0, 1.0, 3.0, 0.5]])
    inds = torch.arange(12.0).view(1, 4, 3)
    best, best_inds, order = stnls.nn.topk(dists, inds, 3, dim=1, anchor=True, descending=False,
                                           return_order=True)
    assert best.tolist() == [[5.0, 0.5, 1.0]]
    assert order.tolist() == [[0, 3, 1]]
    assert best_inds[0, 1].tolist() == [9.0, 10.0, 11.0]


def test_topk_unique_skips_repeated_indices():
    dists = torch.tensor([[0.1, 0.2, 0.3, 0.4]])
    inds = torch.tensor([[[0, 0, 1], [0, 0, 1], [0, 1, 0], [1, 0, 0]]])
    best, best_inds = stnls.nn.topk(dists, inds, 3, dim=1, descending=False, unique=True)
    torch.testing.assert_close(best, torch.tensor([[0.1, 0.3, 0.4]]))
    assert best_inds.tolist() == [[[0, 0, 1], [0, 1, 0], [1, 0, 0]]]


def test_topk_nonpositive_k_returns_inputs():
    dists, inds = torch.randn(1, 4), torch.randn(1, 4, 3)
    assert stnls.nn.topk(dists, inds, 0)[0] is dists


def test_topk_is_differentiable():
    dists = torch.randn(3, 6, dtype=torch.float64, requires_grad=True)
    inds = torch.randn(3, 6, 3, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda d, i: stnls.nn.topk(d, i, 2, dim=1), (dists, inds))


def test_topk_rejects_mismatched_inds():
    with pytest.raises(ValueError, match="inds must be dists.shape"):
        stnls.nn.topk(torch.randn(2, 5), torch.randn(2, 4, 3), 2)
