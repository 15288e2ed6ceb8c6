"""NonLocalGather against recorded outputs and gradients of the original library."""

from __future__ import annotations

import pytest
import torch
from golden import cases

import stnls

# Cases skipped on purpose, by id, with the reason (also listed in docs/compatibility.md).
SKIPPED: dict[str, str] = {}


def _close(name, ours, theirs, rtol, atol):
    diff = (ours - theirs).abs().max().item()
    scale = theirs.abs().max().item()
    assert torch.allclose(ours, theirs, rtol=rtol, atol=atol), \
        f"{name}: max |diff| = {diff:.3e} (max |reference| = {scale:.3e})"


@pytest.mark.golden
@pytest.mark.parametrize("case", cases("NonLocalGather"))
def test_gather_matches_original(case, request):
    if request.node.callspec.id in SKIPPED:
        pytest.skip(SKIPPED[request.node.callspec.id])
    params = case["params"]
    vid = case["inputs"]["vid"].double().requires_grad_()
    weights = case["inputs"]["weights"].double().requires_grad_()
    inds = case["inputs"]["inds"]
    float_path = params["itype"] == "float"
    inds = inds.double().requires_grad_() if float_path else inds
    gather = stnls.agg.NonLocalGather(ps=params["ps"], stride0=params["stride0"], itype=params["itype"])
    stack = gather(vid, weights, inds)
    _close("stack", stack, case["outputs"]["stack"].double(), 1e-4, 1e-4)
    grads = torch.autograd.grad(stack, [vid, weights] + ([inds] if float_path else []),
                                case["grad_outputs"][0].double())
    _close("grad vid", grads[0], case["grads"]["vid"].double(), 1e-3, 1e-3)
    _close("grad weights", grads[1], case["grads"]["weights"].double(), 1e-3, 1e-3)
    if float_path:
        _close("grad inds", grads[2], case["grads"]["inds"].double(), 1e-3, 1e-3)
