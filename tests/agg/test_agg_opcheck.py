"""torch.library.opcheck of the aggregation ops (schema, fake kernels, autograd registration)."""

from __future__ import annotations

import pytest
import torch

from stnls.params import AggParams
from agg_inputs import make


def _case(itype, sum_k, pooled=False, stride=1):
    vid, weights, flows = make(B=1, HD=2, T=2, C=2, H=5, W=4, K=2, stride=stride, itype=itype)
    p = AggParams.create(3, stride, stride, 5, 4, itype=itype, sum_k=sum_k, pooled=pooled)
    return vid, weights, flows, p.as_args()


@pytest.mark.parametrize("itype,sum_k,pooled", [("float", False, False), ("int", True, False),
                                                ("float", True, True)])
def test_opcheck_gather(itype, sum_k, pooled):
    vid, weights, flows, args = _case(itype, sum_k, pooled)
    vid.requires_grad_()
    weights.requires_grad_()
    torch.library.opcheck(torch.ops.stnls.agg_gather.default, (vid, weights, flows, *args))


@pytest.mark.parametrize("itype,sum_k", [("float", False), ("int", True)])
def test_opcheck_scatter(itype, sum_k):
    vid, weights, flows, args = _case(itype, sum_k, stride=2)
    out = torch.ops.stnls.agg_gather(vid, weights, flows, *args)
    y = torch.randn_like(out, requires_grad=True)
    torch.library.opcheck(torch.ops.stnls.agg_scatter.default, (y, weights, flows, *args))


@pytest.mark.parametrize("want_flows", [True, False])
def test_opcheck_pair_grads(want_flows):
    vid, weights, flows, args = _case("float", False)
    y = torch.randn_like(torch.ops.stnls.agg_gather(vid, weights, flows, *args))
    torch.library.opcheck(torch.ops.stnls.agg_pair_grads.default,
                          (y, vid, weights, flows, want_flows, *args))
    grad_f = torch.ops.stnls.agg_pair_grads(y, vid, weights, flows, want_flows, *args)[1]
    assert grad_f.shape == (flows.shape if want_flows else (0,))


@pytest.mark.parametrize("want_vid,want_flows", [(True, True), (False, True), (True, False)])
def test_opcheck_gather_backward(want_vid, want_flows):
    vid, weights, flows, args = _case("float", True)
    y = torch.randn_like(torch.ops.stnls.agg_gather(vid, weights, flows, *args))
    torch.library.opcheck(torch.ops.stnls.agg_gather_backward.default,
                          (y, vid, weights, flows, want_vid, want_flows, *args))
