"""Geometry against the hand-worked examples of the specification."""

import torch

import stnls
from stnls import geometry as geo


def _frames(t, wt, T):
    return geo.frame_of_slot(torch.tensor(t), torch.arange(2 * wt + 1), wt, T).tolist()


def test_temporal_window_is_shifted_near_the_ends():
    assert [_frames(t, 1, 3) for t in range(3)] == [[0, 1, 2], [1, 2, 0], [2, 1, 0]]
    assert [_frames(t, 2, 5) for t in range(5)] == [
        [0, 1, 2, 3, 4], [1, 2, 3, 4, 0], [2, 3, 4, 1, 0], [3, 4, 2, 1, 0], [4, 3, 2, 1, 0]]


def test_slot_of_frame_inverts_frame_of_slot():
    for T, wt in ((5, 2), (7, 3), (3, 1), (9, 2)):
        for t in range(T):
            frames = torch.tensor(_frames(t, wt, T))
            slots = geo.slot_of_frame(torch.tensor(t), frames, wt, T)
            assert slots.tolist() == list(range(2 * wt + 1))


def test_reflect_once_without_repeating_the_edge():
    assert geo.reflect(torch.tensor([-2, -1, 0, 4, 5, 6]), 5).tolist() == [2, 1, 0, 4, 3, 2]
    assert geo.reflect(torch.tensor([5.5, -0.25]), 5).tolist() == [2.5, 0.25]


def test_window_offset_slides_inside_the_frame():
    # spec example: L=5, stride1=1.5, ws=3, anchor 1.4 -> offset 1 (candidates -0.1, 1.4, 2.9)
    positions = geo.window_positions(torch.tensor([1.4], dtype=torch.float64), 1.5, 3, 5, True)
    assert torch.allclose(positions, torch.tensor([[-0.1, 1.4, 2.9]], dtype=torch.float64))
    # Example C: stride1=0.5 at h=0 and w=4 of a 5x5 frame
    rows = geo.window_positions(torch.tensor([0.0]), 0.5, 3, 5, True)
    cols = geo.window_positions(torch.tensor([4.0]), 0.5, 3, 5, True)
    assert rows.tolist() == [[0.0, 0.5, 1.0]] and cols.tolist() == [[3.0, 3.5, 4.0]]
    # not full_ws: centred window
    assert geo.window_positions(torch.tensor([0]), 1, 3, 5, False).tolist() == [[-1, 0, 1]]


def test_patch_offsets():
    assert geo.patch_offsets(3) == [-1, 0, 1]
    assert geo.patch_offsets(4) == [-2, -1, 0, 1]
    assert geo.patch_offsets(3, dilation=2) == [-2, 0, 2]
    assert geo.patch_offsets(3, use_adj=True) == [0, 1, 2]


def _ramp_video():
    """v[t, 0, h, w] = 25t + 5h + w on a 3x5x5 video."""
    t, h, w = torch.meshgrid(torch.arange(3), torch.arange(5), torch.arange(5), indexing="ij")
    return (25 * t + 5 * h + w).double()[None, :, None]


def _search(flows=None, **params):
    vid = _ramp_video()
    args = dict(ws=3, wt=1, ps=1, k=-1, dist_type="l2", full_ws=True)
    args.update(params)
    return stnls.search.nls(vid, vid, flows, **args)


def test_example_a_interior_query():
    dists, inds = _search()
    assert dists[0, 0, 1, 2, 2].tolist() == [36, 25, 16, 1, 0, 1, 16, 25, 36,
                                             361, 400, 441, 576, 625, 676, 841, 900, 961,
                                             961, 900, 841, 676, 625, 576, 441, 400, 361]
    assert inds[0, 0, 1, 2, 2, 9].tolist() == [1, -1, -1]
    dists, inds = _search(k=3, self_action="remove")
    assert dists[0, 0, 1, 2, 2].tolist() == [1, 1, 16]


def test_example_b_corner_query():
    dists, inds = _search(k=4)
    assert dists[0, 0, 0, 0, 0].tolist() == [0, 1, 4, 25]
    assert inds[0, 0, 0, 0, 0].tolist() == [[0, 0, 0], [0, 0, 1], [0, 0, 2], [0, 1, 0]]
    dists, inds = _search(full_ws=False)
    assert torch.isinf(dists[0, 0, 0, 0, 0, :3]).all()
    assert inds[0, 0, 0, 0, 0, 0].tolist() == [0, -1, -1]


def test_example_c_fractional_stride1():
    dists, inds = _search(stride1=0.5)
    first_slot = dists[0, 0, 0, 0, 4, :9].view(3, 3)
    assert first_slot.tolist() == [[1, 0.25, 0], [2.25, 4, 6.25], [16, 20.25, 25]]


def test_example_d_flow_shifted_reflected_centre():
    flows = torch.zeros(1, 3, 2, 2, 5, 5, dtype=torch.float64)
    flows[0, 1, 0, :, 1, 3] = torch.tensor([2.5, -2.0])  # (dx, dy) of slot 1 of query (1, 1, 3)
    dists, inds = _search(flows)
    assert dists[0, 0, 1, 1, 3, 9:18].view(3, 3).tolist() == [
        [342.25, 380.25, 420.25], [552.25, 600.25, 650.25], [812.25, 870.25, 930.25]]
    assert inds[0, 0, 1, 1, 3, 9:12, 2].tolist() == [-1.5, -0.5, 0.5]
    dists, inds = _search(flows, itype="int")
    assert dists[0, 0, 1, 1, 3, 9:18].view(3, 3).tolist() == [
        [361, 400, 441], [576, 625, 676], [841, 900, 961]]
    _, inds = _search(flows, self_action="anchor_each")
    assert inds[0, 0, 1, 1, 3, 9].tolist() == [1, 0, -0.5]
