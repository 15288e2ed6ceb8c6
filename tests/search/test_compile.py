"""The search traces without graph breaks under torch.compile (forward and backward)."""

import torch

import stnls


def test_compiled_search_matches_eager():
    search = stnls.search.NonLocalSearch(ws=3, wt=1, ps=3, k=4, nheads=2, stride1=0.5)
    vid0 = torch.randn(1, 3, 4, 8, 7, requires_grad=True)
    vid1 = torch.randn(1, 3, 4, 8, 7, requires_grad=True)
    fflow, bflow = torch.randn(2, 1, 3, 2, 8, 7).unbind(0)

    def step(v0, v1, ff, bf):
        dists, inds = search(v0, v1, ff, bf)
        return dists.square().sum() + inds.sum()

    torch._dynamo.reset()
    with torch._dynamo.config.patch(recompile_limit=1):
        compiled = torch.compile(step, fullgraph=True, backend="aot_eager")
        loss = compiled(vid0, vid1, fflow, bflow)
    grads = torch.autograd.grad(loss, (vid0, vid1))
    eager = step(vid0, vid1, fflow, bflow)
    eager_grads = torch.autograd.grad(eager, (vid0, vid1))
    torch.testing.assert_close(loss, eager)
    for got, want in zip(grads, eager_grads):
        torch.testing.assert_close(got, want)
