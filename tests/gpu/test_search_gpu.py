"""Triton search on a real GPU: every code path against the reference backend at
moderate sizes, the golden cases of the original library, reduced precision,
deterministic mode, devices and layouts.

Documented tolerances (``docs/performance.md``): float32 distances 1e-4
relative, gradients 1e-3; bf16/fp16 videos give the float32 result of the same
(rounded) values, rounded to the video dtype (rtol 1e-2 for bf16, 2e-3 for fp16).
"""

import pytest
import torch

import stnls
from golden import cases
from stnls.backends.reference import search as reference
from stnls.params import SearchParams
from stnls.utils.layout import split_heads
from stnls.utils.testing import (BACKWARD_CASES, FORWARD_CASES, assert_search_close, search_backward,
                                 search_inputs)


@pytest.fixture
def triton_search():
    """The Triton search launchers (imported only on a CUDA machine, see conftest.py)."""
    return pytest.importorskip("stnls.backends.triton.search")


MODERATE = dict(T=5, C=8, H=32, W=32)


def _moderate(name, shape):
    return shape if name == "more_than_max_kept_select" else {**shape, **MODERATE}


@pytest.mark.parametrize("name", list(FORWARD_CASES))
def test_forward_matches_reference(triton_search, name):
    params, shape = FORWARD_CASES[name]
    p = SearchParams.create(**params)
    vid0, vid1, flows = search_inputs(p, device="cuda", **_moderate(name, shape))
    expected = reference.non_local_search(vid0, vid1, flows, p)
    actual = triton_search.non_local_search(vid0, vid1, flows, p)
    assert_search_close(expected, actual)


@pytest.mark.parametrize("name", list(BACKWARD_CASES))
def test_backward_matches_reference(triton_search, name):
    p = SearchParams.create(**BACKWARD_CASES[name])
    vid0, vid1, flows = search_inputs(p, device="cuda", **MODERATE)
    expected = search_backward(reference, reference, p, vid0, vid1, flows)
    actual = search_backward(triton_search, reference, p, vid0, vid1, flows)
    for what, e, a in zip(("vid0", "vid1", "flows"), expected, actual):
        torch.testing.assert_close(a, e, atol=1e-3, rtol=1e-3, msg=lambda m: f"grad {what}: {m}")


@pytest.mark.parametrize("dtype,rtol", [(torch.bfloat16, 1e-2), (torch.float16, 2e-3)])
@pytest.mark.parametrize("itype", ["int", "float"])
def test_reduced_precision(triton_search, dtype, rtol, itype):
    p = SearchParams.create(ws=5, wt=1, ps=3, k=8, stride1=1 if itype == "int" else 0.5, itype=itype)
    vid0, vid1, flows = search_inputs(p, device="cuda", dtype=dtype, **MODERATE)
    dists, inds = triton_search.non_local_search(vid0, vid1, flows, p)
    assert dists.dtype == dtype
    exact = reference.non_local_search(vid0.float(), vid1.float(), flows, p)
    assert_search_close(exact, (dists.float(), inds), atol=rtol, rtol=rtol)
    grads = search_backward(triton_search, reference, p, vid0, vid1, flows, grad_dtype=dtype)
    grads_exact = search_backward(reference, reference, p, vid0.float(), vid1.float(), flows,
                                  grad_dtype=dtype)
    for g, e in zip(grads[:2], grads_exact[:2]):
        assert g.dtype == dtype
        torch.testing.assert_close(g.float(), e, atol=4 * rtol, rtol=4 * rtol)


def test_deterministic_backward_is_bitwise_reproducible(triton_search):
    p = SearchParams.create(ws=5, wt=2, ps=3, k=10, stride1=0.5, self_action="anchor")
    vid0, vid1, flows = search_inputs(p, device="cuda", T=5, C=16, H=64, W=64, HD=2, HDf=1)
    previous = torch.are_deterministic_algorithms_enabled()
    torch.use_deterministic_algorithms(True)
    try:
        first = search_backward(triton_search, triton_search, p, vid0, vid1, flows)
        second = search_backward(triton_search, triton_search, p, vid0, vid1, flows)
    finally:
        torch.use_deterministic_algorithms(previous)
    atomic = search_backward(triton_search, triton_search, p, vid0, vid1, flows)
    for a, b, c in zip(first, second, atomic):
        assert torch.equal(a, b)
        torch.testing.assert_close(a, c, atol=1e-4, rtol=1e-4)


def test_public_api_picks_triton_and_backpropagates():
    assert stnls.backends.describe(torch.device("cuda"), "non_local_search") == "triton"
    search = stnls.search.NonLocalSearch(ws=5, wt=1, ps=3, k=6, nheads=2, stride1=0.5)
    vid0 = torch.randn(1, 3, 8, 16, 16, device="cuda", requires_grad=True)
    vid1 = torch.randn(1, 3, 8, 16, 16, device="cuda", requires_grad=True)
    fflow = torch.randn(1, 3, 2, 16, 16, device="cuda", requires_grad=True)
    bflow = torch.randn(1, 3, 2, 16, 16, device="cuda", requires_grad=True)
    dists, inds = search(vid0, vid1, fflow, bflow)
    (dists.sum() + inds.sum()).backward()
    assert all(t.grad is not None and torch.isfinite(t.grad).all() for t in (vid0, vid1, fflow, bflow))


@pytest.mark.skipif(torch.cuda.device_count() < 2, reason="needs two CUDA devices")
def test_second_device(triton_search):
    p = SearchParams.create(ws=3, wt=1, k=4, stride1=0.5)
    vid0, vid1, flows = search_inputs(p, device="cuda:1", **MODERATE)
    expected = reference.non_local_search(vid0, vid1, flows, p)
    actual = triton_search.non_local_search(vid0, vid1, flows, p)
    assert actual[0].device == vid0.device
    assert_search_close(expected, actual)


@pytest.mark.parametrize("bad", [float("nan"), float("inf")])
@pytest.mark.parametrize("params", [dict(ps=3, stride1=0.5), dict(ps=3), dict(ps=3, itype="int"),
                                    dict(ps=3, k=-1, self_action="anchor")],
                         ids=["bilinear", "staged", "int", "select"])
def test_non_finite_flows_give_nan_without_a_sync(bad, params, monkeypatch):
    """On a GPU, non-finite flows make every distance NaN instead of raising (raising
    would wait for the device at every call)."""
    p = SearchParams.create(**{"ws": 5, "wt": 1, "k": 4, **params})
    vid0, vid1, flows = search_inputs(p, device="cuda", **MODERATE)
    search = torch.ops.stnls.non_local_search
    assert torch.isfinite(search(vid0, vid1, flows, *p.as_args())[0]).any()
    flows[0, 0, 1, 0, 1, 3, 4] = bad
    monkeypatch.setattr(torch.Tensor, "tolist", lambda self: pytest.fail("host sync"))
    dists, _ = search(vid0, vid1, flows, *p.as_args())
    monkeypatch.undo()
    assert torch.isnan(dists).all()


def test_search_flow_matches_cpu():
    fflow, bflow = torch.randn(2, 2, 5, 2, 32, 32).unbind(0)
    expected = stnls.nn.search_flow(fflow, bflow, 2, 2)
    actual = stnls.nn.search_flow(fflow.cuda(), bflow.cuda(), 2, 2)
    torch.testing.assert_close(actual.cpu(), expected, atol=1e-5, rtol=1e-5)


@pytest.mark.golden
@pytest.mark.parametrize("case", cases("NonLocalSearch"))
def test_golden_non_local_search(case):
    """Outputs equal the original's; gradients equal the reference backend's (which
    matches the original except where it gave gradient through out-of-image candidates,
    see docs/compatibility.md)."""
    params = case["params"]
    search = stnls.search.NonLocalSearch(**params)
    is_float = params.get("itype", "float") == "float"

    def run(device):
        inputs = {k: v.detach().to(device).requires_grad_(k != "flows" or is_float)
                  for k, v in case["inputs"].items()}
        dists, inds = search(inputs["vid0"], inputs["vid1"], inputs["flows"])
        outputs = [dists, inds] if is_float else [dists]
        grads = [g.to(device) for g in case["grad_outputs"][:len(outputs)]]
        torch.autograd.backward(outputs, grads)
        return (dists, inds), {k: v.grad for k, v in inputs.items()}

    (dists, inds), grads = run("cuda")
    assert_search_close((case["outputs"]["dists"], case["outputs"]["inds"]), (dists.cpu(), inds.cpu()))
    # at the neighbours found here: equal distances may be ordered differently on the
    # two backends, and each position of the order has its own upstream gradient
    expected = _reference_gradients(case, search.params, params.get("nheads", 1), inds.cpu(), is_float)
    for name, g in grads.items():
        if expected[name] is None:
            assert g is None, name
        else:
            torch.testing.assert_close(g.cpu(), expected[name], atol=1e-3, rtol=1e-3)


def _reference_gradients(case, p: SearchParams, nheads: int, inds, is_float: bool) -> dict:
    """Gradients of a golden case by the reference backend at the neighbours ``inds``."""
    x = case["inputs"]
    vid0, vid1 = (split_heads(name, x[name], nheads) for name in ("vid0", "vid1"))
    flows = x["flows"].float()
    grad_inds = case["grad_outputs"][1] if is_float else torch.zeros(inds.shape)
    grad0, grad1, grad_flows = reference.non_local_search_backward(
        case["grad_outputs"][0], grad_inds, vid0, vid1, flows if flows.dim() == 7 else flows[:, None],
        inds, is_float, p)
    merged = [g.transpose(1, 2).reshape(x[name].shape)
              for name, g in (("vid0", grad0), ("vid1", grad1))]
    return {"vid0": merged[0], "vid1": merged[1],
            "flows": grad_flows.view(x["flows"].shape) if is_float else None}
