"""The public API's eager shortcut past the dispatcher (stnls._ops.eager) and the registered
ops give the same outputs and gradients, and the shortcut is only taken in plain eager mode."""

import pytest
import torch

import stnls
from stnls._ops import eager


def _search(vid0, vid1, flows):
    dists, inds = stnls.search.nls(vid0, vid1, flows, ws=3, wt=1, ps=3, k=4, nheads=2, stride1=0.5)
    return dists, inds


def _wpsum(vid, weights, flows):
    return (stnls.agg.wpsum(vid, weights, flows, ps=3),)


def _scatter(stack, weights, flows):
    return (stnls.agg.scatter(stack, weights, flows, ps=3),)


def _unfold_k(vid, inds):
    return (stnls.tile.unfold_k(vid, inds, ps=3),)


def _inputs(name):
    gen = torch.Generator().manual_seed(0)
    if name == "unfold_k":
        inds = torch.randint(0, 8, (1, 6, 4, 3), generator=gen)
        inds[..., 0] %= 3
        return torch.randn(1, 3, 2, 8, 8, generator=gen, dtype=torch.float64), inds
    vid = torch.randn(1, 3, 4, 8, 8, generator=gen, dtype=torch.float64)
    flows = torch.randn(1, 3, 2, 2, 8, 8, generator=gen, dtype=torch.float64)
    if name == "search":
        return vid, vid + 0.1, flows
    dists, inds = _search(vid, vid, flows)
    weights = dists.detach().softmax(-1)
    inds = inds.detach() + 0.3  # real offsets
    if name == "wpsum":  # 6-d: the output is the op's own, no merge of the heads after it
        return torch.randn(1, 2, 3, 2, 8, 8, generator=gen, dtype=torch.float64), weights, inds
    stack = torch.randn(1, 2, 4, 3, 2, 8, 8, generator=gen, dtype=torch.float64)
    return stack, weights, inds


CASES = {"search": _search, "wpsum": _wpsum, "scatter": _scatter, "unfold_k": _unfold_k}


def _run(name, shortcut, monkeypatch):
    monkeypatch.setattr(eager, "SHORTCUT", shortcut)
    leaves = [t.clone().requires_grad_(t.is_floating_point()) for t in _inputs(name)]
    outputs = CASES[name](*leaves)
    floats = [o for o in outputs if o.is_floating_point()]
    total = sum((o * torch.linspace(-1, 1, o.numel(), dtype=o.dtype).view(o.shape)).sum()
                for o in floats)
    leaves = [t for t in leaves if t.requires_grad]
    return outputs, torch.autograd.grad(total, leaves), type(outputs[0].grad_fn).__name__


@pytest.mark.parametrize("name", list(CASES))
def test_shortcut_and_registered_op_agree(name, monkeypatch):
    outputs, grads, node = _run(name, True, monkeypatch)
    op_outputs, op_grads, op_node = _run(name, False, monkeypatch)
    assert "Generated" not in node and "Generated" in op_node, (node, op_node)
    for a, e in zip(outputs + grads, op_outputs + op_grads):
        torch.testing.assert_close(a, e, rtol=0, atol=0)


def test_modes_take_the_registered_op():
    vid = torch.randn(1, 3, 4, 8, 8, requires_grad=True)
    dists, _ = stnls.search.nls(vid, vid, None, ws=3, wt=1, ps=3, k=4)
    assert "Generated" not in type(dists.grad_fn).__name__
    with torch.device("cpu"):  # a torch function mode
        dists, _ = stnls.search.nls(vid, vid, None, ws=3, wt=1, ps=3, k=4)
    assert "Generated" in type(dists.grad_fn).__name__
