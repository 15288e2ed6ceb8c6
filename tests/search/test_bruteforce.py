"""The vectorised reference search against plain-loop definitions (tiny sizes)."""

import pytest
import torch

import bruteforce
import stnls
from compare import assert_same_neighbors, neighbor_lists

BASE = dict(ws=3, wt=1, ps=1, k=4, stride0=1, stride1=1.0, dist_type="l2", dilation=1, pt=1,
            self_action=None, reflect_bounds=True, full_ws=True, use_adj=False, off_Hq=0,
            off_Wq=0, strideQ=None, itype="float")

CASES = {
    "default": {},
    "int": dict(itype="int"),
    "prod": dict(dist_type="prod"),
    "prod_int_ps3": dict(dist_type="prod", itype="int", ps=3),
    "ps3": dict(ps=3),
    "ps4_even": dict(ps=4),
    "dilation2": dict(ps=3, dilation=2),
    "stride0_2": dict(stride0=2, ps=3),
    "stride1_half": dict(stride1=0.5, ps=3),
    "stride1_1p5": dict(stride1=1.5, ws=4),
    "no_reflect": dict(reflect_bounds=False, ps=3),
    "no_full_ws": dict(full_ws=False, ps=3),
    "no_full_ws_int": dict(full_ws=False, itype="int", ws=4),
    "use_adj": dict(use_adj=True, ps=3),
    "off_q": dict(off_Hq=1, off_Wq=-1, ps=3),
    "pt2": dict(pt=2, ps=3),
    "anchor": dict(self_action="anchor", k=3),
    "anchor_int": dict(self_action="anchor", itype="int", k=3),
    "anchor_self": dict(self_action="anchor_self", k=3),
    "remove": dict(self_action="remove"),
    "keep_all": dict(k=-1),
    "wt0": dict(wt=0, ws=5, k=7),
}


def _inputs(p, nheads=1, size=(5, 6), flows_scale=1.5, W_t_slots=False):
    T, C = 3, 2
    H, W = size
    vid0 = torch.randn(1, nheads, T, C, H, W, dtype=torch.float64)
    vid1 = torch.randn(1, nheads, T, C, H, W, dtype=torch.float64)
    nH, nW = (H - 1) // p["stride0"] + 1, (W - 1) // p["stride0"] + 1
    slots = 2 * p["wt"] + 1 - (0 if W_t_slots else 1)
    flows = flows_scale * torch.randn(1, 1, T, slots, 2, nH, nW, dtype=torch.float64)
    return vid0, vid1, flows


@pytest.mark.parametrize("name", list(CASES))
def test_search_matches_bruteforce(name):
    p = dict(BASE, **CASES[name])
    vid0, vid1, flows = _inputs(p)
    dists, inds = stnls.search.nls(vid0, vid1, flows, **p)
    expected = bruteforce.search(vid0, vid1, flows, p)
    ours = neighbor_lists(dists, inds)
    for key, want in expected.items():
        if p["self_action"] in ("anchor", "anchor_self"):
            assert ours[key][0][1] == (0.0, 0.0, 0.0)
            assert abs(ours[key][0][0] - want[0][0]) < 1e-9
            ours[key], want = ours[key][1:], want[1:]
        assert_same_neighbors(ours[key], want, descending=p["dist_type"] == "prod")
