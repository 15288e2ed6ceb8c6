"""float64 gradcheck of every aggregation op (values, weights and real offsets)."""

from __future__ import annotations

import pytest
import torch
from torch.autograd import gradcheck

import stnls
from agg_inputs import make


def _inputs(itype, stride=1, seed=0):
    vid, weights, flows = make(B=1, HD=1, T=2, C=2, H=5, W=5, K=2, stride=stride, itype=itype,
                               spread=3.0, seed=seed)
    vid.requires_grad_()
    weights.requires_grad_()
    if itype == "float":
        flows.requires_grad_()
    return vid, weights, flows


OPS = {
    "gather": lambda v, w, f, it: stnls.agg.gather(v, w, f, ps=3, itype=it),
    "gather_add": lambda v, w, f, it: stnls.agg.gather_add(v, w, f, ps=3, itype=it),
    "wpsum": lambda v, w, f, it: stnls.agg.wpsum(v, w, f, ps=2, reflect_bounds=False, itype=it),
    "pool": lambda v, w, f, it: stnls.agg.pool(v, w, f, ps=3, itype=it),
}


@pytest.mark.parametrize("itype", ["float", "int"])
@pytest.mark.parametrize("name", list(OPS))
def test_gather_family_gradcheck(name, itype):
    vid, weights, flows = _inputs(itype)
    op = OPS[name]
    assert gradcheck(lambda v, w, f: op(v, w, f, itype), (vid, weights, flows), eps=1e-6,
                     atol=1e-7, fast_mode=True)


def test_gather_full_jacobian():
    vid, weights, flows = make(B=1, HD=1, T=2, C=1, H=4, W=4, K=2, itype="float", spread=3.0,
                               seed=5)
    for tensor in (vid, weights, flows):
        tensor.requires_grad_()
    assert gradcheck(lambda v, w, f: stnls.agg.gather(v, w, f, ps=3), (vid, weights, flows),
                     eps=1e-6, atol=1e-7)


@pytest.mark.parametrize("itype", ["float", "int"])
def test_scatter_gradcheck(itype):
    vid, weights, flows = _inputs(itype, seed=1)
    stack = torch.randn(1, 1, 2, 2, 2, 5, 5, dtype=torch.float64, requires_grad=True)
    assert gradcheck(lambda s, w, f: stnls.agg.scatter(s, w, f, ps=3, itype=itype),
                     (stack, weights, flows), eps=1e-6, atol=1e-7, fast_mode=True)


def test_scatter_add_gradcheck():
    vid, weights, flows = _inputs("float", stride=2, seed=2)
    y = torch.randn(1, 1, 2, 2, 5, 5, dtype=torch.float64, requires_grad=True)
    assert gradcheck(lambda s, w, f: stnls.agg.scatter_add(s, w, f, ps=3, strideIn=2, strideOut=2),
                     (y, weights, flows), eps=1e-6, atol=1e-7, fast_mode=True)


def test_int_flows_get_no_gradient():
    vid, weights, flows = _inputs("int")
    stnls.agg.gather(vid, weights, flows, ps=3, itype="int").sum().backward()
    assert flows.grad is None and vid.grad is not None and weights.grad is not None
