"""torch.library.opcheck for every registered op (schema, fake kernel, autograd, AOT)."""

import pytest
import torch

import stnls  # noqa: F401  (registers the ops)
from stnls.params import SearchParams


def _search_args(itype, requires_grad=True):
    p = SearchParams.create(ws=3, wt=1, ps=3, k=4, stride1=0.5 if itype == "float" else 1,
                            self_action="anchor", itype=itype)
    vid0 = torch.randn(1, 2, 3, 2, 6, 5, requires_grad=requires_grad)
    vid1 = torch.randn(1, 2, 3, 2, 6, 5, requires_grad=requires_grad)
    flows = torch.randn(1, 1, 3, 2, 2, 6, 5, requires_grad=requires_grad and itype == "float")
    return (vid0, vid1, flows, *p.as_args()), p


@pytest.mark.parametrize("itype", ["float", "int"])
def test_non_local_search(itype):
    args, _ = _search_args(itype)
    torch.library.opcheck(torch.ops.stnls.non_local_search.default, args)


@pytest.mark.parametrize("itype", ["float", "int"])
def test_non_local_search_backward(itype):
    args, p = _search_args(itype, requires_grad=False)
    vid0, vid1, flows = args[:3]
    dists, inds = torch.ops.stnls.non_local_search(*args)
    grad_inds = torch.randn(inds.shape)
    backward_args = (torch.randn_like(dists), grad_inds, vid0, vid1, flows, inds, itype == "float",
                     *p.as_args())
    torch.library.opcheck(torch.ops.stnls.non_local_search_backward.default, backward_args)


def test_search_flow():
    fflow = torch.randn(1, 5, 2, 6, 7, requires_grad=True)
    bflow = torch.randn(1, 5, 2, 6, 7, requires_grad=True)
    torch.library.opcheck(torch.ops.stnls.search_flow.default, (fflow, bflow, 2, 2))
