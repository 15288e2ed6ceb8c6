"""NonLocalSearch against the original library's recorded outputs and gradients."""

import pytest
import torch

import stnls
from compare import assert_same_neighbor_tensors
from golden import cases

# Cases where the original is wrong; each is explained in docs/compatibility.md.
KNOWN_DIFFERENCES = {
    "golden_public_11[27]": "the original's int backward gives gradient through kept candidates "
                            "outside the key video (distance -inf); stnls gives them none",
}


def _relative_error(ours, theirs):
    return float((ours - theirs).abs().max() / theirs.abs().max().clamp(min=1e-6))


@pytest.mark.golden
@pytest.mark.parametrize("case", cases("NonLocalSearch"))
def test_non_local_search_matches_original(case, request):
    name = request.node.callspec.id
    params = dict(case["params"])
    nheads = params.pop("nheads")
    inputs = case["inputs"]
    is_float = params["itype"] == "float"
    vid0 = inputs["vid0"].clone().requires_grad_(True)
    vid1 = inputs["vid1"].clone().requires_grad_(True)
    flows = inputs["flows"].clone().requires_grad_(is_float)
    dists, inds = stnls.search.NonLocalSearch(nheads=nheads, **params)(vid0, vid1, flows)

    want_dists, want_inds = case["outputs"]["dists"], case["outputs"]["inds"]
    assert dists.shape == want_dists.shape and inds.shape == want_inds.shape
    assert inds.dtype == want_inds.dtype
    assert_same_neighbor_tensors(dists, inds, want_dists, want_inds, tol=1e-4,
                                 descending=params["dist_type"] == "prod")

    outputs, grad_outputs = [dists], [case["grad_outputs"][0]]
    if is_float:
        outputs.append(inds)
        grad_outputs.append(case["grad_outputs"][1])
    torch.autograd.backward(outputs, grad_outputs)
    if name in KNOWN_DIFFERENCES:
        pytest.skip(KNOWN_DIFFERENCES[name])
    for arg, tensor in (("vid0", vid0), ("vid1", vid1), ("flows", flows)):
        want = case["grads"][arg]
        if want is None or want.numel() == 0:
            continue
        assert _relative_error(tensor.grad, want) < 1e-3, arg


@pytest.mark.golden
@pytest.mark.parametrize("case", cases("search_flow"))
def test_search_flow_matches_original(case):
    fflow, bflow = case["inputs"]["fflow"], case["inputs"]["bflow"]
    flows = stnls.nn.search_flow(fflow, bflow, **case["params"])
    torch.testing.assert_close(flows, case["outputs"]["flows"], atol=1e-4, rtol=1e-4)
