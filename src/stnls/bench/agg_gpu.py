"""Benchmark of the aggregation on the GPU against the original library's gather numbers.

For each config of BENCHMARKS.md the matches come from the search itself: the
search runs once on random videos (with flows from ``search_flow``, as for the
original's numbers), ``weights = softmax`` of its distances (negated for l2),
``flows`` = its offsets. Then, on a random values video split into the search's
heads ``[B, HD, T, C, H, W]``:

* ``WeightedPatchSum`` (the weighted patch sum written directly, output
  ``[B, HD, T, C, H, W]``): forward, forward+backward (gradients of the values,
  the weights and, on the float path, the offsets), and forward+backward under
  ``torch.use_deterministic_algorithms(True)``;
* ``NonLocalGather`` followed by a sum over ``K`` (what the original's "gather"
  columns time): forward and forward+backward;
* time of each op of the backend alone (gather, scatter, pair gradients, and the
  gather's backward: scatter and pair gradients in one pass) and of a plain copy of
  the output, the memory-bandwidth yardstick.

Time = median of ``triton.testing.do_bench``; memory = peak CUDA allocation during
the call beyond what was allocated before it (inputs excluded, outputs included).
Each config is first checked against the reference backend (float64, CPU) on a
48x48 crop; a config that fails reports no speedup. Also: a search + softmax +
WeightedPatchSum attention step on ``mid`` (forward+backward) and a batched
``iunfold``/``ifoldz`` sweep of a large video.

Usage::

    python benchmarks/bench_agg.py [--configs readme,mid] [--json results.json]
"""

from __future__ import annotations

import argparse
import datetime
import json
import platform
from pathlib import Path

import torch
import triton
import triton.testing

import stnls
from stnls.backends.triton import agg as agg_triton
from stnls.bench.search_gpu import CONFIGS, Config, make_inputs, make_search, peak_mib
from stnls.utils.layout import split_heads

# The original library's NonLocalGather + sum over K on an H200, float32 (BENCHMARKS.md):
# forward ms, forward+backward ms, peak MiB.
ORIGINAL_GATHER = {
    "readme": (0.92, 6.31, 99),
    "readme_int": (0.63, 2.55, 99),
    "mid": (16.54, 101.6, 1281),
    "big_ws": (10.09, 47.51, 1119),
    "gda": (2.25, 8.76, 615),
    "paper_st": (10.80, 57.88, 1025),
}


def _bench(fn) -> float:
    fn()
    torch.cuda.synchronize()
    return triton.testing.do_bench(fn, warmup=25, rep=100, return_mode="median")


MATCHES_DIR = ""  # --matches-dir


def make_matches(c: Config, H: int, W: int, seed=0, device="cuda"):
    """``values [B, HD, T, C, H, W]``, ``weights``, ``flows`` (from the search) of a config."""
    cached = Path(MATCHES_DIR) / f"{c.name}_{H}x{W}_{seed}.pt" if MATCHES_DIR else None
    if cached is not None and cached.exists():
        weights, inds = torch.load(cached, map_location=device)
    else:
        vid0, vid1, flows = make_inputs(c, H, W, device=device, seed=seed)
        with torch.no_grad():
            dists, inds = make_search(c)(vid0, vid1, flows)
        weights = torch.softmax(-dists if c.search["dist_type"] == "l2" else dists, -1)
        if cached is not None:
            cached.parent.mkdir(parents=True, exist_ok=True)
            torch.save((weights, inds), cached.with_suffix(".tmp"))
            cached.with_suffix(".tmp").rename(cached)
    gen = torch.Generator().manual_seed(seed + 7)
    values = torch.randn(1, c.T, c.C, H, W, generator=gen).to(device)
    return split_heads("values", values, c.search["nheads"]), weights.contiguous(), inds


def _agg_kwargs(c: Config) -> dict:
    return dict(ps=c.search["ps"], stride0=c.search["stride0"], itype=c.search["itype"])


def wpsum(c: Config):
    module = stnls.agg.WeightedPatchSum(**_agg_kwargs(c))
    return lambda v, w, f: module(v, w, f)


def gather_sum(c: Config):
    module = stnls.agg.NonLocalGather(**_agg_kwargs(c))
    return lambda v, w, f: module(v, w, f).sum(2)


def _leaves(c: Config, values, weights, flows):
    leaves = [values.detach().requires_grad_(), weights.detach().requires_grad_()]
    f = flows.detach()
    if c.search["itype"] == "float":
        f = f.requires_grad_()
        leaves.append(f)
    return leaves[0], leaves[1], f, leaves


def check(c: Config, device: str = "cuda") -> str | None:
    """Forward and every gradient of both ops on a 48x48 crop against the CPU reference
    (float64); None if they agree, else the first mismatch."""
    values, weights, flows = make_matches(c, 48, 48, seed=1, device=device)
    for name, make in (("WeightedPatchSum", wpsum), ("NonLocalGather+sum", gather_sum)):
        op = make(c)
        results = []
        for device, dtype in ((device, torch.float32), ("cpu", torch.float64)):
            cast = [t.to(device, dtype) if t.is_floating_point() else t.to(device)
                    for t in (values, weights, flows)]
            v, w, f, leaves = _leaves(c, *cast)
            out = op(v, w, f)
            grad_out = torch.ones_like(out)
            results.append([out] + list(torch.autograd.grad(out, leaves, grad_out)))
        for what, a, e in zip(("output", "grad values", "grad weights", "grad flows"), *results):
            if not torch.allclose(a.double().cpu(), e, rtol=1e-3, atol=1e-3):
                diff = (a.double().cpu() - e).abs().max().item()
                return f"{name} {what}: max |diff| {diff:.2e}"
    return None


def _timings(c: Config, make, values, weights, flows, prefix: str, deterministic: bool) -> dict:
    op = make(c)
    v, w, f, leaves = _leaves(c, values, weights, flows)
    with torch.no_grad():
        grad_out = torch.randn_like(op(v, w, f))

    def forward():
        with torch.no_grad():
            return op(v, w, f)

    def forward_backward():
        return torch.autograd.grad(op(v, w, f), leaves, grad_out)

    result = {}
    for name, fn in (("fwd", forward), ("fwd_bwd", forward_backward)):
        result[f"{prefix}_{name}_ms"] = _bench(fn)
        result[f"{prefix}_{name}_peak_mib"] = peak_mib(fn)
    if deterministic:
        previous = torch.are_deterministic_algorithms_enabled()
        torch.use_deterministic_algorithms(True)
        try:
            result[f"{prefix}_fwd_bwd_deterministic_ms"] = _bench(forward_backward)
        finally:
            torch.use_deterministic_algorithms(previous)
    return result


def breakdown(c: Config, values, weights, flows) -> dict:
    """Time of each backend op alone, and of copying an output-sized tensor."""
    from stnls.backends import triton as backend
    from stnls.params import AggParams

    B, HD, T, C, H, W = values.shape
    p = AggParams.create(c.search["ps"], c.search["stride0"], c.search["stride0"], H, W,
                         itype=c.search["itype"])
    f = flows if c.search["itype"] == "float" else flows.int()
    y = torch.randn_like(values)
    out = {
        "op_gather_ms": _bench(lambda: backend.agg_gather(values, weights, f, p)),
        "op_scatter_ms": _bench(lambda: backend.agg_scatter(y, weights, f, p)),
        "op_pair_grads_ms": _bench(lambda: backend.agg_pair_grads(y, values, weights, f, True, p)),
        "op_gather_backward_ms": _bench(
            lambda: backend.agg_gather_backward(y, values, weights, f, True, True, p)),
        "copy_output_ms": _bench(lambda: values.clone()),
        "output_mib": values.numel() * values.element_size() / 2**20,
        "pairs": weights.numel(),
    }
    return out


def measure(c: Config, deterministic: bool = False) -> dict:
    values, weights, flows = make_matches(c, c.H, c.W)
    result = {"config": c.name}
    result.update(_timings(c, wpsum, values, weights, flows, "wpsum", deterministic))
    result.update(_timings(c, gather_sum, values, weights, flows, "gather", False))
    result.update(breakdown(c, values, weights, flows))
    return result


def attention_step(c: Config, compile_only: bool = False) -> dict:
    """Search + softmax + WeightedPatchSum, forward+backward into the queries, keys, values
    and flows, beside the original's search fwd+bwd + gather fwd+bwd."""
    search = make_search(c)
    agg = stnls.agg.WeightedPatchSum(**_agg_kwargs(c))
    q, k, flows = make_inputs(c, c.H, c.W)
    v = torch.randn_like(q)
    leaves = [t.requires_grad_() for t in (q, k, v, flows)]

    def step():
        dists, inds = search(q, k, flows)
        weights = torch.softmax(-dists, -1)
        out = agg(v, weights, inds)
        return torch.autograd.grad(out, leaves, torch.ones_like(out))

    step()
    if compile_only:
        return {"config": c.name}
    ms = triton.testing.do_bench(step, warmup=1, rep=1, return_mode="median")
    original = c.original_fwd_bwd_ms + ORIGINAL_GATHER[c.name][1]
    return {"config": c.name, "attention_fwd_bwd_ms": ms, "peak_mib": peak_mib(step),
            "original_search_plus_gather_ms": original}


def tile_sweep(size: int, T=16, C=16, ps=7, stride=4, batch=16384) -> dict:
    """Batched iunfold + in-place ifoldz over every raster query of a ``T x C x size^2`` video."""
    kwargs = dict(stride=stride, border="zero")
    vid = torch.randn(1, T, C, size, size, device="cuda")
    out = torch.zeros_like(vid)
    counts = torch.zeros(1, T, 1, size, size, device="cuda")
    total = stnls.tile.num_queries(vid.shape, ps, stride=stride)

    def sweep():
        for start in range(0, total, batch):
            patches = stnls.tile.iunfold(vid, ps, start=start, num=min(batch, total - start), **kwargs)
            stnls.tile.ifoldz(patches, vid.shape, start=start, out=out, counts=counts, **kwargs)

    sweep()
    torch.cuda.synchronize()
    peak = peak_mib(sweep)
    out.zero_()
    counts.zero_()
    ms = triton.testing.do_bench(sweep, warmup=1, rep=1, return_mode="median")
    read = counts.expand_as(vid) > 0
    out.zero_()
    counts.zero_()
    sweep()
    error = (out[read] / counts.expand_as(vid)[read] - vid[read]).abs().max().item()
    return dict(T=T, C=C, H=size, W=size, ps=ps, stride=stride, batch=batch, queries=total,
                batches=-(-total // batch), sweep_ms=ms, working_peak_mib=peak,
                video_mib=vid.numel() * 4 / 2**20, patch_batch_mib=batch * ps * ps * C * 4 / 2**20,
                max_roundtrip_error=error)


def _speedup(ours: float, theirs: float, ok: bool) -> str:
    return f"{theirs / ours:.1f}x" if ok else "n/a"


def print_table(rows: list[dict]) -> None:
    print("| config | WPS fwd ms | WPS fwd+bwd ms | WPS peak MiB (fwd / fwd+bwd) | original gather+sum "
          "fwd / fwd+bwd ms, peak MiB | speedup fwd | speedup fwd+bwd | NonLocalGather+sum fwd / "
          "fwd+bwd ms, peak MiB | check |")
    print("|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        fwd, fwd_bwd, peak = ORIGINAL_GATHER[r["config"]]
        ok = r["check"] is None
        print(f"| {r['config']} | {r['wpsum_fwd_ms']:.3f} | {r['wpsum_fwd_bwd_ms']:.3f} | "
              f"{r['wpsum_fwd_peak_mib']:.0f} / {r['wpsum_fwd_bwd_peak_mib']:.0f} | "
              f"{fwd} / {fwd_bwd}, {peak} | {_speedup(r['wpsum_fwd_ms'], fwd, ok)} | "
              f"{_speedup(r['wpsum_fwd_bwd_ms'], fwd_bwd, ok)} | {r['gather_fwd_ms']:.3f} / "
              f"{r['gather_fwd_bwd_ms']:.3f}, {r['gather_fwd_bwd_peak_mib']:.0f} | "
              f"{'ok' if ok else 'FAIL: ' + r['check']} |")
    print()
    print("| config | op gather ms | op scatter ms | op pair grads ms | op gather backward ms | "
          "copy of the output ms | WPS fwd+bwd deterministic ms |")
    print("|---|---|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['config']} | {r['op_gather_ms']:.3f} | {r['op_scatter_ms']:.3f} | "
              f"{r['op_pair_grads_ms']:.3f} | {r['op_gather_backward_ms']:.3f} | "
              f"{r['copy_output_ms']:.3f} | "
              f"{r.get('wpsum_fwd_bwd_deterministic_ms', float('nan')):.3f} |")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--configs", default=",".join(ORIGINAL_GATHER))
    parser.add_argument("--json", default="bench_agg.json")
    parser.add_argument("--attention", default="mid", help="config of the attention step ('' skips)")
    parser.add_argument("--sweep-sizes", default="512,1024", help="video sizes of the tile sweep")
    parser.add_argument("--deterministic", default="mid",
                        help="configs also timed under torch.use_deterministic_algorithms(True)")
    parser.add_argument("--matches-dir", default="",
                        help="keep the search's matches of each config here (made once, then read)")
    parser.add_argument("--compile-only", action="store_true",
                        help="run every path once at the benchmark sizes (fills the kernel cache)")
    args = parser.parse_args(argv)
    env = {"gpu": torch.cuda.get_device_name(), "torch": torch.__version__,
           "triton": triton.__version__, "python": platform.python_version(), "stnls": stnls.__version__,
           "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")}
    print(" ".join(f"{k}={v}" for k, v in env.items()), flush=True)
    names = [n for n in args.configs.split(",") if n]
    global _bench, MATCHES_DIR
    MATCHES_DIR = args.matches_dir
    if args.compile_only:
        _bench = _run_once
    report = {"env": env, "results": [], "attention": None, "tile_sweep": [], "errors": []}

    def save():
        with open(args.json, "w") as f:
            json.dump(report, f, indent=1)

    def attempt(what, fn):
        try:
            return fn()
        except Exception as error:  # keep measuring the other configs
            report["errors"].append(f"{what}: {type(error).__name__}: {str(error)[:500]}")
            print(f"[{what}] FAILED: {report['errors'][-1]}", flush=True)
            return None
        finally:
            report["env"]["fallbacks"] = sorted(agg_triton.FALLBACKS)
            save()

    for name in names:
        c = CONFIGS[name]

        def config_row(c=c):
            problem = check(c)
            r = measure(c, deterministic=c.name in args.deterministic.split(","))
            r["check"] = problem
            return r

        r = attempt(name, config_row)
        if r is not None:
            report["results"].append(r)
            save()
            print(f"[{name}] {json.dumps(r)}", flush=True)
    if args.attention:
        report["attention"] = attempt("attention", lambda: attention_step(
            CONFIGS[args.attention], args.compile_only))
        save()
        print(f"[attention] {json.dumps(report['attention'])}", flush=True)
    for size in (int(s) for s in args.sweep_sizes.split(",") if s):
        row = attempt(f"tile sweep {size}", lambda: tile_sweep(64 if args.compile_only else size))
        if row is not None:
            report["tile_sweep"].append(row)
            save()
            print(f"[tile sweep] {json.dumps(row)}", flush=True)
    print()
    print_table(report["results"])
    print(f"fast-path fallbacks: {sorted(agg_triton.FALLBACKS) or 'none'}")


def _run_once(fn) -> float:
    fn()
    return float("nan")


if __name__ == "__main__":
    main()
