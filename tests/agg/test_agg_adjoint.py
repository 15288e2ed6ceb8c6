"""Scatter ops are the exact adjoints of the gathers: <A x, y> == <x, A^T y>."""

from __future__ import annotations

import pytest
import torch

import stnls
from agg_inputs import make


def _inner(a, b):
    return (a * b).sum().item()


@pytest.mark.parametrize("itype,reflect,stride0,ps", [
    ("float", True, 1, 3), ("float", False, 2, 3), ("int", True, 2, 3), ("int", False, 1, 2),
    ("float", True, 1, 1),
])
def test_scatter_is_adjoint_of_gather(itype, reflect, stride0, ps):
    vid, weights, flows = make(stride=stride0, itype=itype, spread=4.0, seed=10)
    kwargs = dict(ps=ps, stride0=stride0, reflect_bounds=reflect, itype=itype)
    stack = stnls.agg.gather(vid, weights, flows, **kwargs)
    y = torch.randn_like(stack)
    back = stnls.agg.scatter(y, weights, flows, **kwargs)
    assert back.shape == vid.shape
    lhs, rhs = _inner(stack, y), _inner(vid, back)
    assert abs(lhs - rhs) <= 1e-10 * max(1.0, abs(lhs)), (lhs, rhs)


@pytest.mark.parametrize("stride_in,stride_out,itype", [(1, 1, "float"), (2, 2, "int"),
                                                         (2, 1, "float")])
def test_scatter_add_is_adjoint_of_gather_add(stride_in, stride_out, itype):
    vid, weights, flows = make(stride=stride_in, itype=itype, spread=4.0, seed=11)
    H, W = vid.shape[-2:]
    kwargs = dict(ps=3, strideIn=stride_in, strideOut=stride_out, itype=itype)
    out = stnls.agg.gather_add(vid, weights, flows, **kwargs)
    y = torch.randn_like(out)
    back = stnls.agg.scatter_add(y, weights, flows, inH=H, inW=W, **kwargs)
    assert back.shape == vid.shape
    lhs, rhs = _inner(out, y), _inner(vid, back)
    assert abs(lhs - rhs) <= 1e-10 * max(1.0, abs(lhs)), (lhs, rhs)


def test_scatter_add_keeps_a_5d_layout():
    vid, weights, flows = make(HD=2, C=2, seed=12)
    B, HD, T, C, H, W = vid.shape
    y = torch.randn(B, T, HD * C, H, W, dtype=vid.dtype)
    back = stnls.agg.NonLocalScatterAdd(ps=3, strideIn=1, strideOut=1)(y, weights, flows)
    expected = stnls.agg.scatter_add(y.view(B, T, HD, C, H, W).transpose(1, 2), weights, flows)
    assert back.shape == y.shape
    torch.testing.assert_close(back, expected.transpose(1, 2).reshape(B, T, HD * C, H, W))
