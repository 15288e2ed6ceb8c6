"""Bad arguments raise clear errors naming the argument."""

import pytest
import torch

import stnls

VID = torch.randn(1, 3, 4, 6, 6)


def _search(vid0=VID, vid1=VID, flows=None, **changes):
    params = dict(ws=3, wt=1, ps=1, k=3, nheads=2)
    params.update(changes)
    return stnls.search.nls(vid0, vid1, flows, **params)


@pytest.mark.parametrize("changes, error, words", [
    (dict(vid0=torch.randn(3, 4, 6, 6)), ValueError, "vid0 must have 5 or 6 dimensions"),
    (dict(vid1=torch.randn(1, 1, 3, 4, 6, 6)), ValueError, "must both be 5-d or both 6-d"),
    (dict(nheads=3), ValueError, "nheads=3"),
    (dict(vid1=torch.randn(1, 3, 4, 6, 7)[..., :6, :6].contiguous().expand(1, 3, 4, 6, 6).double()),
     TypeError, "same dtype"),
    (dict(vid1=torch.randn(1, 4, 4, 6, 6)), ValueError, "vid0 and vid1 must share"),
    (dict(vid0=VID.int(), vid1=VID.int()), TypeError, "floating-point"),
    (dict(wt=2), ValueError, "T >= 2*wt+1"),
    (dict(ws=0), ValueError, "ws must be >= 1"),
    (dict(wt=-1), ValueError, "wt must be >= 0"),
    (dict(ps=0), ValueError, "ps must be >= 1"),
    (dict(stride0=0), ValueError, "stride0 must be >= 1"),
    (dict(stride1=0.0), ValueError, "stride1 must be a finite number > 0"),
    (dict(stride1=-1.0), ValueError, "stride1"),
    (dict(dilation=0), ValueError, "dilation must be >= 1"),
    (dict(ws=2.5), TypeError, "ws must be an integer"),
    (dict(dist_type="l1"), ValueError, "dist_type must be one of"),
    (dict(itype="long"), ValueError, "itype must be one of"),
    (dict(self_action="self"), ValueError, "self_action must be one of"),
    (dict(topk_mode="some"), ValueError, "topk_mode must be one of"),
    (dict(topk_mode="none", k=3), ValueError, "topk_mode='none'"),
    (dict(self_action="remove", topk_mode="each"), ValueError, "remove"),
    (dict(self_action="remove_ref_frame", wt=0), ValueError, "wt >= 1"),
    (dict(ws_interior=5), ValueError, "ws_interior must be <= ws"),
    (dict(normalize_bwd=True, stride1=0.5), ValueError, "normalize_bwd needs an integer stride1"),
    (dict(flows=torch.zeros(1, 3, 4, 2, 6, 6)), ValueError, "flows must be [B, T, W_t-1 or W_t"),
    (dict(flows=torch.zeros(1, 3, 1, 2, 5, 6)), ValueError, "flows must be"),
    (dict(flows=torch.zeros(1, 3, 3, 2, 2, 6, 6)), ValueError, "head axis of 1 or 2"),
    (dict(flows=torch.zeros(3, 2, 2, 6, 6)), ValueError, "flows must have 6 or 7 dimensions"),
    (dict(flows=torch.full((1, 3, 2, 2, 6, 6), float("nan"))), ValueError, "finite"),
    (dict(flows=torch.full((1, 3, 2, 2, 6, 6), float("inf"))), ValueError, "finite"),
    (dict(flows=[[0.0]]), TypeError, "flows must be a torch.Tensor"),
])
def test_bad_arguments(changes, error, words):
    with pytest.raises(error) as info:
        _search(**changes)
    assert words in str(info.value)


def test_bad_arguments_fail_at_construction():
    with pytest.raises(ValueError, match="ws must be >= 1"):
        stnls.search.NonLocalSearch(ws=0, wt=1)


def test_wrong_number_of_flow_tensors():
    search = stnls.search.NonLocalSearch(ws=3, wt=1, nheads=2)
    with pytest.raises(TypeError, match="takes"):
        search(VID, VID, VID, VID, VID)


def test_one_step_flows_must_match():
    with pytest.raises(ValueError, match="fflow and bflow"):
        stnls.nn.search_flow(torch.zeros(1, 3, 2, 6, 6), torch.zeros(1, 3, 2, 6, 5), wt=1)
    with pytest.raises(ValueError, match="wt must be >= 0"):
        stnls.nn.search_flow(torch.zeros(1, 3, 2, 6, 6), torch.zeros(1, 3, 2, 6, 6), wt=-1)
