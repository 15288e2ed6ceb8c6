import torch

import stnls


def test_search_shapes():
    search = stnls.search.NonLocalSearch(ws=3, wt=1, ps=3, k=4, nheads=2)
    vid = torch.randn(1, 3, 4, 8, 8)
    dists, inds = search(vid, vid)
    assert dists.shape == (1, 2, 3, 8, 8, 4)
    assert inds.shape == (1, 2, 3, 8, 8, 4, 3)
