"""The tie-tolerant comparison helper fails when it should."""

import pytest
import torch

from compare import assert_same_neighbor_tensors


def test_accepts_permuted_ties_and_rejects_wrong_indices():
    dists = torch.tensor([[0.0, 1.0, 1.0, 2.0]])
    inds = torch.tensor([[[0, 0, 0], [0, 0, 1], [0, 1, 0], [1, 0, 0]]])
    assert_same_neighbor_tensors(dists, inds, dists[:, [0, 2, 1, 3]], inds[:, [0, 2, 1, 3]])
    wrong = inds.clone()
    wrong[0, 1] = torch.tensor([0, 2, 2])
    with pytest.raises(AssertionError):
        assert_same_neighbor_tensors(dists, wrong, dists, inds)
    with pytest.raises(AssertionError):
        assert_same_neighbor_tensors(dists + 0.1, inds, dists, inds)
