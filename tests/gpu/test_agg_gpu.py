"""Triton aggregation and tiling on a real GPU: every code path against the reference
backend at moderate sizes, the golden NonLocalGather cases of the original library through
the public API, reduced precision, deterministic mode, layouts and devices.

Tolerances (``docs/performance.md``): float32 results and gradients 1e-4 (absolute and
relative; the reference runs in float64); bf16/fp16 inputs give the float64 result of the
same rounded values, rounded to the input dtype (2e-2 bf16, 4e-3 fp16).
"""

import pytest
import torch

import stnls
from agg_cases import (AGG_CASES, TILE_CASES, agg_all, agg_case, agg_expected, as_reference,
                       assert_all_close, gather_shaped, tile_case)
from golden import cases
from stnls import backends
from stnls.backends.reference import agg as reference
from stnls.backends.reference import tile as reference_tile

MODERATE = dict(HD=2, T=4, C=8, H=32, W=32, K=5)


@pytest.fixture
def triton_agg():
    return pytest.importorskip("stnls.backends.triton.agg")


@pytest.fixture
def triton_tile():
    return pytest.importorskip("stnls.backends.triton.tile")


def test_cuda_tensors_pick_the_triton_backend():
    for op in ("agg_gather", "agg_scatter", "agg_pair_grads", "agg_gather_backward", "unfold_k",
               "fold_k", "fold_k_accumulate_"):
        assert backends.describe(torch.device("cuda"), op) == "triton"


def _check_on_cuda(triton_agg, name, **shape):
    """A case on CUDA against the float64 reference on the CPU (float32 tolerance 1e-4)."""
    p, vid, weights, flows = agg_case(name, device="cuda", **shape)
    y = gather_shaped(p, vid, weights.shape[-1])
    actual = agg_all(triton_agg, p, vid, weights, flows, y)
    expected = agg_expected(p, vid.cpu(), weights.cpu(), flows.cpu(), y.cpu())
    assert_all_close({k: v.cpu() for k, v in actual.items()}, expected, 1e-4, 1e-4)


@pytest.mark.parametrize("name", list(AGG_CASES))
def test_agg_matches_reference(triton_agg, name):
    _check_on_cuda(triton_agg, name, **(dict(MODERATE, C=5, HD=1) if name == "float_channels_padded"
                                        else MODERATE))


def test_fast_paths_compile(triton_agg):
    """The fixed-offset kernels compile with this triton (no fallback to the general ones)."""
    for name, shape in (("float_ps3", MODERATE), ("int_stride2", MODERATE),
                        ("float_dilation2", MODERATE), ("float_pooled", MODERATE),
                        ("float_ps1_gaps", dict(MODERATE, HD=1, C=64))):
        p, vid, weights, flows = agg_case(name, device="cuda", **shape)
        agg_all(triton_agg, p, vid, weights, flows, gather_shaped(p, vid, weights.shape[-1]))
    torch.cuda.synchronize()
    assert not triton_agg.FALLBACKS


@pytest.mark.parametrize("name", ["float_ps3", "int_stride2", "float_stacked"])
def test_general_path_matches_reference(triton_agg, monkeypatch, name):
    """Without the fixed-offset fast paths (the path of pt > 1, and the fallback)."""
    monkeypatch.setattr(triton_agg, "USE_FAST", False)
    _check_on_cuda(triton_agg, name, **MODERATE)


def test_many_channels_and_neighbours(triton_agg):
    """Several channel blocks (C > 64) and a long neighbour loop."""
    _check_on_cuda(triton_agg, "float_ps3", HD=1, T=2, C=80, H=16, W=16, K=12)


@pytest.mark.golden
@pytest.mark.parametrize("case", cases("NonLocalGather"))
def test_gather_matches_original(case):
    """The public NonLocalGather on CUDA (Triton) against the original library, float32."""
    params = case["params"]
    float_path = params["itype"] == "float"
    vid = case["inputs"]["vid"].cuda().requires_grad_()
    weights = case["inputs"]["weights"].cuda().requires_grad_()
    inds = case["inputs"]["inds"].cuda()
    inds = inds.float().requires_grad_() if float_path else inds
    gather = stnls.agg.NonLocalGather(ps=params["ps"], stride0=params["stride0"], itype=params["itype"])
    stack = gather(vid, weights, inds)
    torch.testing.assert_close(stack.cpu(), case["outputs"]["stack"], rtol=1e-4, atol=1e-4)
    leaves = [vid, weights] + ([inds] if float_path else [])
    grads = torch.autograd.grad(stack, leaves, case["grad_outputs"][0].cuda())
    for name, grad in zip(("vid", "weights", "inds"), grads):
        torch.testing.assert_close(grad.cpu(), case["grads"][name], rtol=1e-3, atol=1e-3,
                                   msg=lambda m: f"grad {name}: {m}")


@pytest.mark.parametrize("itype", ["float", "int"])
def test_weighted_patch_sum_autograd_matches_reference(itype):
    """Public API end to end (5-d layout, softmax weights from a search): forward and every
    gradient on CUDA against the CPU reference."""
    torch.manual_seed(0)
    vid = torch.randn(1, 4, 16, 24, 24)
    search = stnls.search.NonLocalSearch(ws=5, wt=1, ps=3, k=6, nheads=2, itype=itype,
                                         stride1=1 if itype == "int" else 0.5)
    dists, flows = search(vid, vid)
    weights = torch.softmax(-dists, -1)
    agg = stnls.agg.WeightedPatchSum(ps=3, stride0=1, itype=itype)
    results = []
    for device in ("cpu", "cuda"):
        leaves = [t.detach().to(device).requires_grad_(t.is_floating_point()) for t in (vid, weights, flows)]
        out = agg(*leaves)
        grad_out = torch.ones_like(out)
        wanted = [t for t in leaves if t.requires_grad]
        results.append([out] + list(torch.autograd.grad(out, wanted, grad_out)))
    for e, a in zip(*results):
        torch.testing.assert_close(a.cpu(), e, rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("dtype,tol", [(torch.bfloat16, 2e-2), (torch.float16, 4e-3)])
@pytest.mark.parametrize("name", ["float_ps3", "int_stride2"])
def test_reduced_precision(triton_agg, name, dtype, tol):
    p, vid, weights, flows = agg_case(name, device="cuda", dtype=dtype, **MODERATE)
    y = gather_shaped(p, vid, weights.shape[-1])
    actual = agg_all(triton_agg, p, vid, weights, flows, y)
    assert all(v.dtype == dtype for v in actual.values() if v.is_floating_point())
    expected = agg_expected(p, vid.cpu(), weights.cpu(), flows.cpu(), y.cpu())
    assert_all_close({k: v.cpu() for k, v in actual.items()}, expected, tol, tol)


@pytest.mark.parametrize("name,channels", [("float_ps3", 8), ("int_stride2", 8),
                                           ("float_dilation2", 8), ("float_ps1_gaps", 64)])
def test_deterministic_backward_is_bitwise_reproducible(name, channels):
    """Gradients and (the per-pixel gather) the output."""
    p, vid, weights, flows = agg_case(name, device="cuda", **dict(MODERATE, C=channels))
    y = gather_shaped(p, vid, weights.shape[-1])
    leaves = [vid.requires_grad_(), weights.requires_grad_()]
    if flows.is_floating_point():
        leaves.append(flows.requires_grad_())

    def backward():
        out = torch.ops.stnls.agg_gather(vid, weights, flows, *p.as_args())
        return torch.autograd.grad(out, leaves, y) + (out.detach(),)

    previous = torch.are_deterministic_algorithms_enabled()
    torch.use_deterministic_algorithms(True)
    try:
        first, second = backward(), backward()
    finally:
        torch.use_deterministic_algorithms(previous)
    for a, b in zip(first, second):
        assert torch.equal(a, b)
    expected = reference.agg_scatter(as_reference(y.cpu()), as_reference(weights.detach().cpu()),
                                     as_reference(flows.detach().cpu()), p)
    torch.testing.assert_close(first[0].cpu(), expected.float(), rtol=1e-4, atol=1e-4)


def test_non_contiguous_inputs(triton_agg):
    p, vid, weights, flows = agg_case("float_ps3", device="cuda", **MODERATE)
    strided = (vid.transpose(-1, -2).contiguous().transpose(-1, -2),
               weights.transpose(3, 4).contiguous().transpose(3, 4),
               flows.transpose(3, 4).contiguous().transpose(3, 4))
    y = gather_shaped(p, vid, weights.shape[-1])
    # equal up to the order of the scatter's float atomic adds
    assert_all_close(agg_all(triton_agg, p, *strided, y), agg_all(triton_agg, p, vid, weights, flows, y),
                     1e-6, 1e-6)


@pytest.mark.parametrize("bad", [float("nan"), float("inf")])
def test_non_finite_flows_give_nan_without_a_sync(bad, monkeypatch):
    """On a GPU, non-finite offsets make the whole result NaN instead of raising (raising
    would wait for the device at every call); finite offsets leave it unchanged (up to the
    order of the float atomic adds)."""
    p, vid, weights, flows = agg_case("float_ps3", device="cuda", **MODERATE)
    args = p.as_args()
    clean = torch.ops.stnls.agg_gather(vid, weights, flows, *args)
    unchecked = torch.ops.stnls.agg_gather(vid, weights, flows, *args, False)
    torch.testing.assert_close(clean, unchecked, rtol=1e-6, atol=1e-6)
    flows[0, 1, 1, 3, 2, 1, 2] = bad
    monkeypatch.setattr(torch.Tensor, "tolist", lambda self: pytest.fail("host sync"))
    out = stnls.agg.wpsum(vid, weights, flows, ps=3)
    monkeypatch.undo()
    assert torch.isnan(out).all()


def test_float64_runs_the_reference(triton_agg):
    p, vid, weights, flows = agg_case("float_ps3", device="cuda", dtype=torch.float64)
    out = triton_agg.agg_gather(vid, weights, flows, p)
    assert out.dtype == torch.float64
    torch.testing.assert_close(out, reference.agg_gather(vid, weights, flows, p))


@pytest.mark.skipif(torch.cuda.device_count() < 2, reason="needs two CUDA devices")
def test_second_device():
    p, vid, weights, flows = agg_case("float_ps3", device="cuda:1", **MODERATE)
    out = torch.ops.stnls.agg_gather(vid, weights, flows, *p.as_args())
    assert out.device == torch.device("cuda:1")
    expected = reference.agg_gather(as_reference(vid.cpu()), as_reference(weights.cpu()),
                                    as_reference(flows.cpu()), p)
    torch.testing.assert_close(out.cpu(), expected.float(), rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("name", list(TILE_CASES))
def test_unfold_fold_match_reference(triton_tile, name):
    p, vid, inds, patches = tile_case(name, device="cuda", B=2, T=4, C=6, H=40, W=36, Q=300, K=4)
    torch.testing.assert_close(triton_tile.unfold_k(vid, inds, p).cpu(),
                               reference_tile.unfold_k(vid.cpu().double(), inds.cpu(), p).float(),
                               rtol=0, atol=0)
    expected = reference_tile.fold_k(patches.cpu().double(), inds.cpu(), p).float()
    torch.testing.assert_close(triton_tile.fold_k(patches, inds, p).cpu(), expected, rtol=1e-4, atol=1e-4)
    previous = torch.are_deterministic_algorithms_enabled()
    torch.use_deterministic_algorithms(True)
    try:
        first, second = (triton_tile.fold_k(patches, inds, p) for _ in range(2))
    finally:
        torch.use_deterministic_algorithms(previous)
    assert torch.equal(first, second)
    torch.testing.assert_close(first.cpu(), expected, rtol=1e-4, atol=1e-4)


def test_batched_ifold_sweep_matches_reference():
    """iunfold/ifoldz over a rectangle in batches, on CUDA, against one CPU reference call."""
    vid = torch.randn(1, 3, 4, 48, 40)
    kwargs = dict(coords=(3, 2, 45, 37), stride=2)
    total = stnls.tile.num_queries(vid.shape, 5, **kwargs)
    out = torch.zeros(vid.shape, device="cuda")
    counts = torch.zeros(1, 3, 1, 48, 40, device="cuda")
    for start in range(0, total, 500):
        patches = stnls.tile.iunfold(vid.cuda(), 5, start=start, num=min(500, total - start), **kwargs)
        stnls.tile.ifoldz(patches, vid.shape, start=start, out=out, counts=counts, **kwargs)
    expected, expected_counts = stnls.tile.ifoldz(stnls.tile.iunfold(vid, 5, **kwargs), vid.shape,
                                                  **kwargs)
    torch.testing.assert_close(out.cpu(), expected, rtol=1e-4, atol=1e-4)
    torch.testing.assert_close(counts.cpu(), expected_counts, rtol=0, atol=0)
