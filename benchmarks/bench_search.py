"""Benchmark of the non-local search on the GPU against the original library's numbers.

For each config of BENCHMARKS.md: forward and forward+backward time (median of
``triton.testing.do_bench`` after a warm-up) and peak memory beyond the inputs,
printed beside the original's numbers with ratios, and written as JSON. Each
config is first checked against the reference backend on a cropped video;
a config that fails the check reports no speedup.

Usage::

    python benchmarks/bench_search.py [--configs readme,mid] [--json results.json]
"""

from __future__ import annotations

import argparse
import datetime
import json
import platform
from dataclasses import asdict, dataclass

import torch
import triton
import triton.testing

import stnls
from stnls.backends.reference import search as reference
from stnls.nn import search_flow
from stnls.utils.layout import split_heads
from stnls.utils.testing import assert_search_close


@dataclass(frozen=True)
class Config:
    """One benchmark config, the original library's numbers on an H200 (float32), and the
    :class:`stnls.search.NonLocalSearch` arguments."""

    name: str
    T: int
    C: int       # all heads together
    H: int
    W: int
    original_fwd_ms: float
    original_fwd_bwd_ms: float
    original_peak_mib: float
    search: dict


def _config(name, T, C, H, W, nheads, ws, wt, ps, k, stride0, stride1, itype, original,
            dist_type="l2", self_action=None) -> Config:
    search = dict(nheads=nheads, ws=ws, wt=wt, ps=ps, k=k, stride0=stride0, stride1=stride1,
                  itype=itype, dist_type=dist_type, self_action=self_action)
    return Config(name, T, C, H, W, *original, search)


CONFIGS = {c.name: c for c in [
    _config("readme", 5, 16, 128, 128, 2, 5, 2, 3, 10, 1, 0.5, "float", (14.25, 20.41, 559),
            self_action="anchor"),
    _config("readme_int", 5, 16, 128, 128, 2, 5, 2, 3, 10, 1, 1, "int", (4.02, 5.47, 562),
            self_action="anchor"),
    _config("mid", 5, 64, 256, 256, 4, 9, 2, 3, 10, 1, 1, "float", (668.7, 762.0, 14338)),
    _config("big_ws", 3, 27, 512, 512, 3, 21, 1, 7, 10, 4, 1, "float", (791.5, 819.7, 5371)),
    _config("gda", 3, 64, 256, 256, 1, 9, 1, 1, 9, 1, 1, "float", (39.63, 45.52, 1276)),
    _config("paper_st", 7, 15, 256, 256, 1, 21, 3, 7, 30, 4, 1, "float", (741.2, 783.0, 2365),
            dist_type="prod"),
    _config("na_ps1", 5, 64, 128, 128, 4, 9, 2, 1, -1, 1, 1, "int", (6.84, 31.73, 2070),
            dist_type="prod"),
]}


def make_search(c: Config) -> stnls.search.NonLocalSearch:
    return stnls.search.NonLocalSearch(**c.search)


def one_step_flows(c: Config, H: int, W: int, device="cuda", seed=0):
    """Random one-step flows ``fflow, bflow [1, T, 2, H, W]`` drawn from N(0, 2^2) px."""
    gen = torch.Generator().manual_seed(seed + 1000)
    return (2 * torch.randn(2, 1, c.T, 2, H, W, generator=gen)).to(device).unbind(0)


def make_inputs(c: Config, H: int, W: int, device="cuda", seed=0):
    """Random videos ``[1, T, C, H, W]`` and the search flows accumulated from
    :func:`one_step_flows` (as for the original's numbers)."""
    gen = torch.Generator().manual_seed(seed)
    vid0 = torch.randn(1, c.T, c.C, H, W, generator=gen).to(device)
    vid1 = torch.randn(1, c.T, c.C, H, W, generator=gen).to(device)
    fflow, bflow = one_step_flows(c, H, W, device, seed)
    return vid0, vid1, search_flow(fflow, bflow, c.search["wt"], c.search["stride0"])


def check(c: Config) -> bool:
    """Compare with the reference backend on a 48x48 crop of the config."""
    search = make_search(c)
    vid0, vid1, flows = make_inputs(c, 48, 48, seed=1)
    actual = search(vid0, vid1, flows)
    p = search.params
    heads = c.search["nheads"]
    v0, v1 = split_heads("vid0", vid0, heads), split_heads("vid1", vid1, heads)
    expected = reference.non_local_search(v0, v1, flows[:, None], p)
    try:
        assert_search_close(expected, actual)
        return True
    except AssertionError as error:
        print(f"[{c.name}] MISMATCH against the reference: {str(error)[:300]}")
        return False


def peak_mib(fn) -> float:
    """Peak CUDA allocation during ``fn()`` beyond what was allocated before it (MiB)."""
    torch.cuda.synchronize()
    torch.cuda.reset_peak_memory_stats()
    base = torch.cuda.memory_allocated()
    fn()
    torch.cuda.synchronize()
    return (torch.cuda.max_memory_allocated() - base) / 2**20


def measure(c: Config) -> dict:
    search = make_search(c)
    vid0, vid1, flows = make_inputs(c, c.H, c.W)
    is_float = c.search["itype"] == "float"
    leaves = [vid0.requires_grad_(), vid1.requires_grad_()] + ([flows.requires_grad_()] if is_float else [])

    def forward():
        with torch.no_grad():
            return search(vid0, vid1, flows)

    def forward_backward():
        dists, _ = search(vid0, vid1, flows)
        torch.autograd.grad(dists, leaves, torch.ones_like(dists))

    result = {"config": asdict(c)}
    fflow, bflow = one_step_flows(c, c.H, c.W)
    result["search_flow_ms"] = triton.testing.do_bench(
        lambda: search_flow(fflow, bflow, c.search["wt"], c.search["stride0"]), warmup=20, rep=100,
        return_mode="median")
    for name, fn in (("fwd", forward), ("fwd_bwd", forward_backward)):
        fn()  # warm-up: compiles the kernels
        result[f"{name}_ms"] = triton.testing.do_bench(fn, warmup=50, rep=300, return_mode="median")
        result[f"{name}_peak_mib"] = peak_mib(fn)
    if c.search["k"] <= 0:  # output-bound: the time to write the outputs once
        dists, inds = forward()
        out_d, out_i = torch.empty_like(dists), torch.empty_like(inds)
        result["write_outputs_ms"] = triton.testing.do_bench(
            lambda: (out_d.fill_(0), out_i.fill_(0)), warmup=50, rep=300, return_mode="median")
        result["output_mib"] = (dists.numel() * dists.element_size() + inds.numel() * inds.element_size()) / 2**20
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--configs", default=",".join(CONFIGS))
    parser.add_argument("--json", default="bench_search.json")
    args = parser.parse_args()
    env = {"gpu": torch.cuda.get_device_name(), "torch": torch.__version__,
           "triton": triton.__version__, "python": platform.python_version(),
           "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")}
    print(" ".join(f"{k}={v}" for k, v in env.items()), flush=True)
    rows = []
    for name in args.configs.split(","):
        c = CONFIGS[name]
        ok = check(c)
        r = measure(c)
        r["correct"] = ok
        rows.append(r)
        with open(args.json, "w") as f:
            json.dump({"env": env, "results": rows}, f, indent=1)
        print(f"[{name}] fwd {r['fwd_ms']:.3f} ms  fwd+bwd {r['fwd_bwd_ms']:.3f} ms  "
              f"peak {r['fwd_bwd_peak_mib']:.0f} MiB  search_flow {r['search_flow_ms']:.3f} ms  "
              f"correct={ok}", flush=True)
    print()
    print("| config | fwd ms | original | speedup | fwd+bwd ms | original | speedup | peak MiB "
          "(fwd / fwd+bwd) | original | ratio | check |")
    print("|---|---|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        c = r["config"]
        peak = max(r["fwd_peak_mib"], r["fwd_bwd_peak_mib"])
        speed = (lambda ours, theirs: f"{theirs / ours:.1f}x" if r["correct"] else "n/a")
        print(f"| {c['name']} | {r['fwd_ms']:.3f} | {c['original_fwd_ms']} | "
              f"{speed(r['fwd_ms'], c['original_fwd_ms'])} | {r['fwd_bwd_ms']:.3f} | "
              f"{c['original_fwd_bwd_ms']} | {speed(r['fwd_bwd_ms'], c['original_fwd_bwd_ms'])} | "
              f"{r['fwd_peak_mib']:.0f} / {r['fwd_bwd_peak_mib']:.0f} | {c['original_peak_mib']} | "
              f"{c['original_peak_mib'] / max(peak, 1e-9):.1f}x | {'ok' if r['correct'] else 'FAIL'} |")
    for r in rows:
        if "write_outputs_ms" in r:
            print(f"{r['config']['name']}: outputs {r['output_mib']:.0f} MiB written once in "
                  f"{r['write_outputs_ms']:.3f} ms; search fwd = {r['fwd_ms'] / r['write_outputs_ms']:.2f}x that")


if __name__ == "__main__":
    main()
