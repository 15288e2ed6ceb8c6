"""Aggregation and tiling cases, one per code path of the Triton kernels, shared by the
interpreter tests (tests/triton) and the GPU tests (tests/gpu), and the comparisons."""

from __future__ import annotations

import torch

from agg_inputs import make
from stnls.backends.reference import agg as reference
from stnls.params import AggParams, TileParams

# name -> (AggParams.create keywords besides the sizes, agg_inputs.make keywords)
AGG_CASES = {
    "float_ps3": (dict(ps=3), dict(H=9, W=8, spread=2.0)),
    "int_stride2": (dict(ps=3, stride_in=2, stride_out=2, itype="int"), {}),
    "float_no_reflect_stride2": (dict(ps=3, stride_in=2, stride_out=2, reflect_bounds=False), {}),
    "float_even_ps_adj": (dict(ps=2, use_adj=True), {}),
    "float_dilation2": (dict(ps=3, dilation=2), {}),
    "int_dilation2_no_reflect": (dict(ps=3, dilation=2, reflect_bounds=False, itype="int"), {}),
    "float_pt2": (dict(ps=3, pt=2), {}),
    "float_stacked": (dict(ps=3, sum_k=False), {}),
    "int_stacked_stride2": (dict(ps=3, stride_in=2, stride_out=2, sum_k=False, itype="int"), {}),
    "float_pooled": (dict(ps=3, stride_in=2, stride_out=2, pooled=True), {}),
    "float_between_grids": (dict(ps=3, stride_in=2, stride_out=1), {}),
    "float_ps5_stride3": (dict(ps=5, stride_in=3, stride_out=3), dict(H=8, W=7)),
    "float_ps7_stride4": (dict(ps=7, stride_in=4, stride_out=4), dict(H=13, W=11)),
    "float_ps1_gaps": (dict(ps=1, stride_in=2, stride_out=2), {}),
    "float_channels_padded": (dict(ps=3), dict(C=5, HD=1)),
}


def agg_case(name: str, dtype=torch.float32, device="cpu", seed=0, **overrides):
    """``(p, vid, weights, flows)`` of a case, normalised as the ops receive them."""
    params, shape = AGG_CASES[name]
    shape = {**dict(spread=3.0, K=3), **shape, **overrides}
    itype = params.get("itype", "float")
    stride = params.get("stride_in", 1)
    vid, weights, flows = make(stride=stride, itype=itype, seed=seed, dtype=torch.float64, **shape)
    H, W = vid.shape[-2:]
    rest = {k: v for k, v in params.items() if k not in ("ps", "stride_in", "stride_out")}
    p = AggParams.create(params["ps"], stride, params.get("stride_out", stride), H, W, **rest)
    flows = flows.to(device) if itype == "int" else flows.to(device, dtype)
    return p, vid.to(device, dtype), weights.to(device, dtype), flows


def as_reference(x: torch.Tensor) -> torch.Tensor:
    """float64 copy (integer tensors unchanged) for the reference backend."""
    return x.double() if x.is_floating_point() else x


def agg_all(module, p: AggParams, vid, weights, flows, y):
    """Gather, scatter (of ``y``, the gather's shape), pair gradients and the gather's
    backward (all three gradients in one op) of one backend."""
    out = module.agg_gather(vid, weights, flows, p)
    back = module.agg_scatter(y, weights, flows, p)
    grad_w, grad_f = module.agg_pair_grads(y, vid, weights, flows, True, p)
    both = module.agg_gather_backward(y, vid, weights, flows, True, True, p)
    return {"gather": out, "scatter": back, "grad weights": grad_w, "grad flows": grad_f,
            "backward vid": both[0], "backward weights": both[1], "backward flows": both[2]}


def agg_expected(p: AggParams, vid, weights, flows, y):
    """The reference backend's results in float64."""
    return agg_all(reference, p, as_reference(vid), as_reference(weights), as_reference(flows),
                   as_reference(y))


def assert_all_close(actual: dict, expected: dict, atol: float, rtol: float) -> None:
    """Every result within tolerance; the message gives the worst difference of each."""
    report, failed = [], False
    for name, e in expected.items():
        a = actual[name]
        assert a.shape == e.shape, f"{name}: shape {tuple(a.shape)} != {tuple(e.shape)}"
        diff = (a.double() - e.double()).abs()
        bad = diff > atol + rtol * e.double().abs()
        failed |= bool(bad.any())
        report.append(f"{name}: max |diff| {diff.max().item():.2e} (max |expected| "
                      f"{e.abs().max().item():.2e}, {int(bad.sum())} beyond tolerance)")
    assert not failed, "; ".join(report)


def gather_shaped(p: AggParams, vid, K: int, seed=1) -> torch.Tensor:
    """A random tensor of the gather's output shape (an upstream gradient)."""
    B, HD, T, C = vid.shape[:4]
    shape = (B, HD, T, C, p.out_h, p.out_w) if p.sum_k else (B, HD, K, T, C, p.out_h, p.out_w)
    gen = torch.Generator().manual_seed(seed)
    return torch.randn(shape, generator=gen, dtype=torch.float64).to(vid.device, vid.dtype)


# name -> TileParams.create keywords besides the sizes
TILE_CASES = {
    "ps3_reflect": dict(ps=3),
    "ps4_pt2": dict(ps=4, pt=2),
    "dilation2_zero": dict(ps=3, dilation=2, reflect=False),
    "adj_box": dict(ps=2, use_adj=True, box=(1, 1, 6, 5)),
    "reflect_box": dict(ps=3, box=(2, 1, 7, 6)),
}


def tile_case(name: str, dtype=torch.float32, device="cpu", B=2, T=3, C=3, H=7, W=6, Q=5, K=3,
              seed=0):
    """``(p, vid, inds, patches)`` of a tiling case (``patches`` random, of unfold_k's shape)."""
    gen = torch.Generator().manual_seed(seed)
    p = TileParams.create(T, H, W, **TILE_CASES[name])
    vid = torch.randn(B, T, C, H, W, generator=gen)
    inds = torch.stack([torch.randint(0, n, (B, Q, K), generator=gen) for n in (T, H, W)], -1)
    patches = torch.randn(B, Q, K, p.pt, C, p.ps, p.ps, generator=gen)
    return p, vid.to(device, dtype), inds.int().to(device), patches.to(device, dtype)
