"""search_flow against a point-by-point loop, and its gradients."""

import pytest
import torch
from torch.autograd import gradcheck

import bruteforce
import stnls


@pytest.mark.parametrize("T, wt, stride0", [(5, 2, 1), (4, 1, 2), (3, 2, 1), (6, 1, 3), (4, 0, 1)])
def test_search_flow_matches_loop(T, wt, stride0):
    fflow = 1.5 * torch.randn(1, T, 2, 7, 6, dtype=torch.float64)
    bflow = 1.5 * torch.randn(1, T, 2, 7, 6, dtype=torch.float64)
    flows = stnls.nn.search_flow(fflow, bflow, wt, stride0)
    torch.testing.assert_close(flows, bruteforce.search_flow(fflow, bflow, wt, stride0))


def test_search_flow_gradcheck():
    fflow = (torch.rand(1, 5, 2, 6, 7, dtype=torch.float64) * 0.8 + 0.1).requires_grad_(True)
    bflow = (-torch.rand(1, 5, 2, 6, 7, dtype=torch.float64) * 0.8 - 0.1).requires_grad_(True)
    assert gradcheck(lambda f, b: stnls.nn.search_flow(f, b, 2, 2), (fflow, bflow), eps=1e-6, atol=1e-6)
