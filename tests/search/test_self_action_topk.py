"""self_action and topk_mode against the plain-loop candidate lists."""

import pytest
import torch

import bruteforce
import stnls
from compare import assert_same_neighbors, neighbor_lists

BASE = dict(ws=3, wt=1, ps=3, k=-1, stride0=2, stride1=0.5, dist_type="l2", dilation=1, pt=1,
            self_action=None, reflect_bounds=True, full_ws=True, use_adj=False, off_Hq=0,
            off_Wq=0, strideQ=None, itype="float", topk_mode="all")


def _run(itype="float", **changes):
    p = dict(BASE, itype=itype, **changes)
    T, H, W = 3, 6, 7
    vid0 = torch.randn(1, 1, T, 2, H, W, dtype=torch.float64)
    vid1 = torch.randn(1, 1, T, 2, H, W, dtype=torch.float64)
    flows = 2 * torch.randn(1, 1, T, 2, 2, (H - 1) // 2 + 1, (W - 1) // 2 + 1, dtype=torch.float64)
    dists, inds = stnls.search.nls(vid0, vid1, flows, **p)
    return neighbor_lists(dists, inds), bruteforce.candidates(vid0, vid1, flows, p)


def _swap_to_front(entries, target):
    """The anchoring rule: the entry nearest ``target`` moves to position 0
    (taking ``target`` as its index) and the old first entry takes its place."""
    position = min(range(len(entries)),
                   key=lambda n: sum(abs(a - b) for a, b in zip(entries[n][1], target)))
    entries = list(entries)
    entries[0], entries[position] = (entries[position][0], target), entries[0]
    return entries


def _as_floats(entries):
    return [(float(d), tuple(float(v) for v in ind)) for d, ind in entries]


def _flat(entries):
    return [value for d, ind in entries for value in (d, *ind)]


def assert_same_order(got, want):
    assert _flat(got) == pytest.approx(_flat(want))


@pytest.mark.parametrize("itype", ["float", "int"])
def test_keep_all_is_window_order(itype):
    ours, expected = _run(itype, topk_mode="none")
    for key, slots in expected.items():
        want = _as_floats((d, ind) for entries in slots for d, ind, _ in entries)
        assert_same_order(ours[key], want)


@pytest.mark.parametrize("itype", ["float", "int"])
def test_anchor_each_puts_each_frames_centre_first(itype):
    ours, expected = _run(itype, self_action="anchor_each")
    for key, slots in expected.items():
        want = []
        for entries in slots:
            want += _swap_to_front([(d, ind) for d, ind, _ in entries], entries[0][2])
        assert_same_order(ours[key], _as_floats(want))


def test_remove_ref_frame_drops_the_query_frame():
    ours, expected = _run(self_action="remove_ref_frame")
    for key, slots in expected.items():
        want = _as_floats((d, ind) for entries in slots[1:] for d, ind, _ in entries)
        assert_same_order(ours[key], want)


def test_anchor_and_remove_ref_frame_anchors_the_other_frames():
    ours, expected = _run(self_action="anchor_and_remove_ref_frame")
    for key, slots in expected.items():
        want = []
        for entries in slots[1:]:
            want += _swap_to_front([(d, ind) for d, ind, _ in entries], entries[0][2])
        assert_same_order(ours[key], _as_floats(want))


@pytest.mark.parametrize("self_action", [None, "anchor_each"])
def test_topk_each_keeps_the_best_of_every_frame(self_action):
    k = 4
    ours, expected = _run(self_action=self_action, topk_mode="each", k=k)
    for key, slots in expected.items():
        for s, entries in enumerate(slots):
            candidates = [(d, ind) for d, ind, _ in entries]
            got = ours[key][s * k:(s + 1) * k]
            if self_action == "anchor_each":
                candidates = _swap_to_front(candidates, entries[0][2])
                assert_same_order(got[:1], _as_floats(candidates[:1]))
                got, candidates = got[1:], candidates[1:]
            want = sorted(_as_floats(candidates))[: len(got)]
            assert_same_neighbors(got, want)


def test_anchor_with_topk_each_anchors_only_the_query_frame():
    k = 3
    ours, expected = _run(self_action="anchor", topk_mode="each", k=k)
    for key, slots in expected.items():
        assert ours[key][0][1] == (0.0, 0.0, 0.0)
        for s, entries in enumerate(slots[1:], start=1):
            want = sorted(_as_floats((d, ind) for d, ind, _ in entries))[:k]
            assert_same_neighbors(ours[key][s * k:(s + 1) * k], want)
