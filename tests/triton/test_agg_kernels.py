"""Triton aggregation and tiling kernels (through the interpreter) against the reference
backend, tiny shapes, one case per code path (tests/agg_cases.py)."""

import pytest
import torch

from agg_cases import (AGG_CASES, TILE_CASES, agg_all, agg_case, agg_expected, as_reference,
                       assert_all_close, gather_shaped, tile_case)
from stnls.backends.reference import agg as reference
from stnls.backends.reference import tile as reference_tile

triton_agg = pytest.importorskip("stnls.backends.triton.agg")
triton_tile = pytest.importorskip("stnls.backends.triton.tile")
launch = pytest.importorskip("stnls.backends.triton.launch")

# The interpreter computes every lane; a numpy warning (overflow, invalid cast) there means a
# lane read memory outside the inputs, which on a GPU is an out-of-bounds access.
pytestmark = pytest.mark.filterwarnings("error::RuntimeWarning")


def _check(p, vid, weights, flows, atol=1e-5, rtol=1e-5):
    y = gather_shaped(p, vid, weights.shape[-1])
    actual = agg_all(triton_agg, p, vid, weights, flows, y)
    assert_all_close(actual, agg_expected(p, vid, weights, flows, y), atol, rtol)
    return actual


@pytest.mark.parametrize("name", list(AGG_CASES))
def test_agg_matches_reference(name):
    _check(*agg_case(name))


@pytest.mark.parametrize("name", ["float_ps3", "int_stride2", "float_dilation2", "float_stacked",
                                  "float_pooled"])
def test_general_path_matches_reference(monkeypatch, name):
    """Without the fixed-offset fast paths (every pair element by element, as for pt > 1)."""
    monkeypatch.setattr(triton_agg, "USE_FAST", False)
    _check(*agg_case(name, K=2))


def test_gather_in_chunks_of_frames(monkeypatch):
    """The gather's pair records made for one frame at a time."""
    monkeypatch.setattr(triton_agg, "_record_frames", lambda n_frames, frame_pairs, out_bytes: 1)
    p, vid, weights, flows = agg_case("float_ps3", K=2)
    expected = reference.agg_gather(as_reference(vid), as_reference(weights), as_reference(flows), p)
    torch.testing.assert_close(triton_agg.agg_gather(vid, weights, flows, p), expected.float(),
                               atol=1e-5, rtol=1e-5)


def test_missing_and_non_finite_offsets_are_skipped():
    """Offsets >= 1e7 mark a missing neighbour; NaN/inf never index memory either."""
    p, vid, weights, flows = agg_case("float_ps3")
    flows[0, 0, 0, :3, :, 1, 1] = 1e8
    flows[0, 1, 1, 2, :, 0, 2] = float("nan")
    flows[0, 0, 2, 4, :, 2, 0] = float("inf")
    y = gather_shaped(p, vid, weights.shape[-1])
    actual = agg_all(triton_agg, p, vid, weights, flows, y)
    marked = torch.where(torch.isfinite(flows), flows, torch.full_like(flows, 1e8))
    assert_all_close(actual, agg_expected(p, vid, weights, marked, y), 1e-5, 1e-5)


@pytest.mark.parametrize("name", ["float_ps3", "float_stacked", "float_ps1_gaps"])
def test_checked_flows_make_the_result_nan(name):
    """With ``check_flows`` the last kernel reads the flows' probe: finite offsets leave the
    gather and the scatter unchanged, one non-finite offset makes them NaN everywhere (what
    ``check_finite`` does on a GPU, without its pass over the output)."""
    p, vid, weights, flows = agg_case(name)
    y = gather_shaped(p, vid, weights.shape[-1])
    bad = flows.clone()
    bad[0, 0, 0, 1, 1, 0, 1] = float("nan")
    for op, first in ((triton_agg.agg_gather, vid), (triton_agg.agg_scatter, y)):
        assert torch.equal(op(first, weights, flows, p, True), op(first, weights, flows, p))
        assert torch.isnan(op(first, weights, bad, p, True)).all()
        assert torch.isfinite(op(first, weights, bad, p)).all()


@pytest.mark.parametrize("dtype,rtol", [(torch.bfloat16, 1e-2), (torch.float16, 2e-3)])
def test_reduced_precision(dtype, rtol):
    """bf16/fp16 in, float32 accumulation, the input dtype out."""
    p, vid, weights, flows = agg_case("float_ps3", dtype=dtype)
    y = gather_shaped(p, vid, weights.shape[-1])
    actual = agg_all(triton_agg, p, vid, weights, flows, y)
    assert actual["gather"].dtype == dtype and actual["scatter"].dtype == dtype
    assert actual["grad weights"].dtype == dtype and actual["grad flows"].dtype == dtype
    expected = agg_expected(p, vid, weights, flows, y)  # the same rounded inputs, in float64
    assert_all_close(actual, expected, 2 * rtol, 2 * rtol)


@pytest.mark.parametrize("name", ["float_ps3", "int_stride2", "float_dilation2"])
def test_deterministic_scatter_is_reproducible(name):
    p, vid, weights, flows = agg_case(name)
    y = gather_shaped(p, vid, weights.shape[-1])
    previous = torch.are_deterministic_algorithms_enabled()
    torch.use_deterministic_algorithms(True)
    try:
        first = triton_agg.agg_scatter(y, weights, flows, p)
        second = triton_agg.agg_scatter(y, weights, flows, p)
    finally:
        torch.use_deterministic_algorithms(previous)
    assert torch.equal(first, second)
    expected = reference.agg_scatter(as_reference(y), as_reference(weights), as_reference(flows), p)
    torch.testing.assert_close(first, expected.float(), atol=1e-5, rtol=1e-5)


def test_several_channel_blocks(monkeypatch):
    """More channels than one tile holds: split over programs (gather, scatter) or looped."""
    monkeypatch.setattr(launch, "MAX_CHANNEL_BLOCK", 4)
    _check(*agg_case("float_ps3", C=6, HD=1, T=2, H=6, W=5, K=2))


def test_non_contiguous_inputs():
    p, vid, weights, flows = agg_case("float_ps3", H=6, W=6, K=2)
    strided = (vid.transpose(-1, -2).contiguous().transpose(-1, -2),
               weights.transpose(3, 4).contiguous().transpose(3, 4),
               flows.transpose(3, 4).contiguous().transpose(3, 4))
    assert not any(t.is_contiguous() for t in strided)
    y = gather_shaped(p, vid, weights.shape[-1])
    assert_all_close(agg_all(triton_agg, p, *strided, y), agg_all(triton_agg, p, vid, weights, flows, y),
                     0, 0)


def test_no_neighbours():
    p, vid, weights, flows = agg_case("float_ps3", K=0)
    y = gather_shaped(p, vid, 0)
    actual = agg_all(triton_agg, p, vid, weights, flows, y)
    assert actual["gather"].abs().sum() == 0 and actual["scatter"].abs().sum() == 0
    assert actual["grad weights"].shape == weights.shape


@pytest.mark.parametrize("name", list(TILE_CASES))
def test_unfold_fold_match_reference(name):
    p, vid, inds, patches = tile_case(name)
    torch.testing.assert_close(triton_tile.unfold_k(vid, inds, p),
                               reference_tile.unfold_k(vid.double(), inds, p).float(), rtol=0, atol=0)
    expected = reference_tile.fold_k(patches.double(), inds, p)
    torch.testing.assert_close(triton_tile.fold_k(patches, inds, p), expected.float(),
                               atol=1e-5, rtol=1e-5)
    out = torch.ones(expected.shape)
    triton_tile.fold_k_accumulate_(out, patches, inds, p)
    torch.testing.assert_close(out, expected.float() + 1, atol=1e-5, rtol=1e-5)


def test_deterministic_fold_is_reproducible():
    p, vid, inds, patches = tile_case("ps3_reflect", Q=12)
    previous = torch.are_deterministic_algorithms_enabled()
    torch.use_deterministic_algorithms(True)
    try:
        first = triton_tile.fold_k(patches, inds, p)
        second = triton_tile.fold_k(patches, inds, p)
    finally:
        torch.use_deterministic_algorithms(previous)
    assert torch.equal(first, second)
    torch.testing.assert_close(first, reference_tile.fold_k(patches.double(), inds, p).float(),
                               atol=1e-5, rtol=1e-5)


def test_tile_reduced_precision():
    p, vid, inds, patches = tile_case("ps3_reflect", dtype=torch.bfloat16)
    unfolded = triton_tile.unfold_k(vid, inds, p)
    assert unfolded.dtype == torch.bfloat16
    torch.testing.assert_close(unfolded, reference_tile.unfold_k(vid.float(), inds, p).bfloat16(),
                               rtol=0, atol=0)
    folded = triton_tile.fold_k(patches, inds, p)
    assert folded.dtype == torch.bfloat16
    torch.testing.assert_close(folded.float(), reference_tile.fold_k(patches.float(), inds, p),
                               rtol=1e-2, atol=1e-2)


def test_channels_last_tables():
    """The padded channels-last copy, with and without the division by the coverage."""
    x = torch.randn(6, 5, 3, 4)
    cov = torch.rand(3, 12) + 1
    table = launch.channels_last(x, torch.float32)
    assert table.shape == (72, 8) and torch.equal(table[:, 5:], torch.zeros(72, 3))
    rows = x.reshape(6, 5, 12).transpose(1, 2).reshape(72, 5)
    torch.testing.assert_close(table[:, :5], rows, rtol=0, atol=0)
    normalised = launch.channels_last(x, torch.float32, cov)
    expected = (x.reshape(2, 3, 5, 12) / cov[None, :, None]).transpose(2, 3).reshape(72, 5)
    torch.testing.assert_close(normalised[:, :5], expected)


def test_channels_last_mirrored_beyond_the_borders():
    """With ``pad``, each frame mirrored once beyond its borders (edge not repeated), as
    torch's "reflect" padding; from a split-heads view."""
    x = torch.randn(2, 5, 3, 4, 6).transpose(0, 1)
    table = launch.channels_last(x, torch.float32, pad=2)
    padded = torch.nn.functional.pad(x.reshape(10, 3, 4, 6), (2, 2, 2, 2), mode="reflect")
    expected = launch.channels_last(padded, torch.float32)
    assert table.shape == (10 * 8 * 10, 4)
    torch.testing.assert_close(table, expected, rtol=0, atol=0)


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16, torch.float64])
def test_from_channels_last_inverts_the_table(dtype):
    """A padded channels-last table back to a channels-first video (padding channels
    dropped), with and without the division by a per-frame coverage; any table dtype
    (float64: the fixed-point sums)."""
    x = torch.randn(2, 3, 5, 4, 6).to(dtype)  # 6 frames of 5 channels
    table = launch.channels_last(x, dtype)
    assert table.shape == (6 * 24, 8)
    torch.testing.assert_close(launch.from_channels_last(table, x.shape, torch.float32),
                               x.float(), rtol=0, atol=0)
    cov = torch.rand(3, 4, 6) + 1.0
    expected = x.float() / cov[:, None]
    torch.testing.assert_close(launch.from_channels_last(table, x.shape, torch.float32, cov),
                               expected)


@pytest.mark.parametrize("view", ["heads", "stack", "pixels", "channels", "many axes"])
def test_channels_last_reads_strided_videos(view):
    """Views read in place (split heads, a stack's planes, a sliced channel range) or, where
    the pixels are not contiguous, copied first: the table is that of the contiguous video."""
    base = torch.randn(2, 3, 4, 6, 5, 7)
    x = {"heads": base.transpose(1, 2),  # [B, HD, T, C, H, W] of a [B, T, HD, C, H, W] video
         "stack": base.permute(0, 2, 1, 3, 4, 5)[:, :, 1:],
         "pixels": base.transpose(-1, -2),
         "channels": base[:, :, :, 1:4],
         "many axes": base.view(2, 3, 2, 2, 6, 5, 7).transpose(1, 3)}[view]
    table = launch.channels_last(x, torch.float32)
    expected = launch.channels_last(x.contiguous(), torch.float32)
    torch.testing.assert_close(table, expected, rtol=0, atol=0)


def test_gpu_tiling(monkeypatch):
    """The GPU's tiles (small square blocks of pixels or queries within a frame, several per
    frame, partial blocks at the borders) instead of the interpreter's whole frames."""
    monkeypatch.setattr(launch, "interpreting", lambda: False)
    monkeypatch.setattr(launch, "TILE_ELEMENTS", 32)  # 16 rows of the 2 channels
    monkeypatch.setattr(triton_agg, "QUERY_TILE_ELEMENTS", 16)  # 8 queries of 2 channels
    _check(*agg_case("float_ps3", HD=1, T=1, H=6, W=5, K=2))


class _FastFails:
    """A kernel whose FAST variant fails to compile (as some do with some triton versions)."""

    def __init__(self, kernel):
        self.kernel, self.fn = kernel, kernel.fn

    def __getitem__(self, grid):
        def run(*args, **constants):
            if constants.get("FAST"):
                raise RuntimeError("PassManager::run failed")
            return self.kernel[grid](*args, **constants)
        return run


class _Fails:
    """A kernel that fails to compile."""

    def __init__(self, kernel):
        self.fn = kernel.fn

    def __getitem__(self, grid):
        def run(*args, **constants):
            raise RuntimeError("PassManager::run failed")
        return run


@pytest.mark.parametrize("kernel", ["agg_gather_kernel", "agg_patch_sum_kernel"])
def test_fast_path_compile_failure_falls_back(monkeypatch, kernel):
    """A compilation error of a fast path (the pixel-by-pixel gather's, or the
    query-by-query sum) warns once, then that specialisation runs the general kernel
    (same results); other ops keep their fast paths."""
    if kernel == "agg_gather_kernel":
        monkeypatch.setattr(triton_agg, kernel, _FastFails(triton_agg.agg_gather_kernel))
        monkeypatch.setattr(triton_agg, "QUERY_PATCH_SIZES", ())
    else:
        monkeypatch.setattr(triton_agg, kernel, _Fails(triton_agg.agg_patch_sum_kernel))
    monkeypatch.setattr(triton_agg, "FALLBACKS", set())
    monkeypatch.setattr(launch, "interpreting", lambda: False)  # the fallback is for compiled kernels
    p, vid, weights, flows = agg_case("float_ps3", HD=1, T=1, H=6, W=5, K=2)
    expected = reference.agg_gather(as_reference(vid), as_reference(weights), as_reference(flows), p)
    with pytest.warns(RuntimeWarning, match=f"fast path of {kernel}"):
        first = triton_agg.agg_gather(vid, weights, flows, p)
    assert len(triton_agg.FALLBACKS) == 1
    second = triton_agg.agg_gather(vid, weights, flows, p)  # no second warning (filterwarnings)
    for out in (first, second):
        torch.testing.assert_close(out, expected.float(), atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("name, rows", [("float_ps3", None), ("int_stride2", None),
                                        ("float_pooled", None), ("float_between_grids", None),
                                        ("float_ps7_stride4", None), ("float_ps3", 2),
                                        ("int_stride2", 2)])
def test_summed_gather_by_queries(monkeypatch, name, rows):
    """The summed gather of these cases runs query by query (the pixel-by-pixel kernel is
    never launched), patches leaving the frame included (read from the mirrored table);
    with ``rows``, the patch rows are summed in passes of that many (2 + 1 of 3 rows)."""
    monkeypatch.setattr(triton_agg, "agg_gather_kernel", _Fails(triton_agg.agg_gather_kernel))
    if rows is not None:
        monkeypatch.setattr(triton_agg, "_patch_rows", lambda ps: rows)
    p, vid, weights, flows = agg_case(name)
    expected = reference.agg_gather(as_reference(vid), as_reference(weights), as_reference(flows), p)
    torch.testing.assert_close(triton_agg.agg_gather(vid, weights, flows, p), expected.float(),
                               atol=1e-5, rtol=1e-5)


def test_deterministic_gather_by_pixels(monkeypatch):
    """Under torch.use_deterministic_algorithms(True) the summed gather adds no atomics: it
    runs pixel by pixel."""
    monkeypatch.setattr(triton_agg, "agg_patch_sum_kernel",
                        _Fails(triton_agg.agg_patch_sum_kernel))
    p, vid, weights, flows = agg_case("float_ps3", K=2)
    expected = reference.agg_gather(as_reference(vid), as_reference(weights), as_reference(flows), p)
    previous = torch.are_deterministic_algorithms_enabled()
    torch.use_deterministic_algorithms(True)
    try:
        actual = triton_agg.agg_gather(vid, weights, flows, p)
    finally:
        torch.use_deterministic_algorithms(previous)
    torch.testing.assert_close(actual, expected.float(), atol=1e-5, rtol=1e-5)
