"""Sweep the Triton search's tile shapes on the BENCHMARKS.md configs (CUDA only).

For each config and each candidate ``(BQ, num_warps)`` of the forward (and of
the backward), the median time of ``triton.testing.do_bench`` (the forward
under the launcher's register cap, and its default tile once without it); prints one
table per pass and writes JSON. The launcher's :func:`forward_tile` and
:func:`backward_tile` are what the sweep overrides; their defaults should be
the winners.

Usage::

    python benchmarks/tune_search.py [--configs readme,mid] [--json tune_search.json]
"""

from __future__ import annotations

import argparse
import json

import torch
import triton
import triton.testing

from stnls.backends.triton import search as launcher
from stnls.bench.search_gpu import CONFIGS, make_inputs, make_search
from stnls.utils.layout import split_heads

TILES = [(bq, warps) for bq in (1, 2, 4, 8, 16) for warps in (1, 2, 4, 8, 16)]


def _time(fn) -> float:
    fn()
    return triton.testing.do_bench(fn, warmup=25, rep=150, return_mode="median")


def sweep(name: str, max_values: int, forward: bool = True) -> dict:
    c = CONFIGS[name]
    search = make_search(c)
    vid0, vid1, flows = make_inputs(c, c.H, c.W)
    window = triton.next_power_of_2(c.search["ws"] ** 2)
    staged = launcher.region_plan(search.params) is not None
    reads, cb = launcher.forward_reads(search.params, c.C // c.search["nheads"], vid0.dtype)
    default_fwd = launcher.forward_tile
    result = {"forward": {}, "backward": {}, "staged": staged,
              "default_forward": launcher.forward_shape(search.params, reads, cb)[2:]}
    try:
        for bq, warps in TILES if forward else ():
            if not 4 <= bq * window * cb // (32 * warps) <= max_values:
                continue
            launcher.forward_tile = lambda *_: (bq, warps)
            with torch.no_grad():
                result["forward"][f"{bq}x{warps}"] = _time(lambda: search(vid0, vid1, flows))
    finally:
        launcher.forward_tile = default_fwd
    if forward:
        _forward_variants(search, vid0, vid1, flows, staged, result)
    return _backward_sweep(c, search, vid0, vid1, flows, max_values, result)


def _forward_variants(search, vid0, vid1, flows, staged: bool, result: dict) -> None:
    """The default forward tile without the register cap, and (``staged``) without staging."""
    cap = launcher.FORWARD_MAX_REGISTERS
    launcher.FORWARD_MAX_REGISTERS = None  # the default tile at the compiler's register choice
    try:
        with torch.no_grad():
            result["forward_uncapped"] = _time(lambda: search(vid0, vid1, flows))
    finally:
        launcher.FORWARD_MAX_REGISTERS = cap
    if staged:  # the same default tile without staging
        launcher.USE_REGION = False
        try:
            with torch.no_grad():
                result["forward_unstaged"] = _time(lambda: search(vid0, vid1, flows))
        finally:
            launcher.USE_REGION = True


def _backward_sweep(c, search, vid0, vid1, flows, max_values: int, result: dict) -> dict:
    """Time the backward at each tile of TILES within ``max_values`` per thread, into ``result``."""
    dists, inds = search(vid0, vid1, flows)
    grad = torch.ones_like(dists)
    p = search.params
    v0, v1 = (split_heads(n, v, c.search["nheads"]) for n, v in (("vid0", vid0), ("vid1", vid1)))
    args = (grad, torch.zeros(*inds.shape, dtype=torch.float32, device=inds.device), v0, v1,
            flows[:, None], inds, c.search["itype"] == "float", p)
    neighbours = triton.next_power_of_2(inds.shape[-2])
    cb = launcher.channel_block(c.C // c.search["nheads"], vid0.dtype, whole_pixel=True)
    default_bwd = launcher.backward_tile
    result["default_backward"] = default_bwd(neighbours, cb)
    try:
        for bq, warps in TILES:
            if not 4 <= bq * neighbours * cb // (32 * warps) <= max_values:
                continue
            launcher.backward_tile = lambda *_: (bq, warps)
            result["backward"][f"{bq}x{warps}"] = _time(lambda: launcher.non_local_search_backward(*args))
    finally:
        launcher.backward_tile = default_bwd
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--configs", default=",".join(CONFIGS))
    parser.add_argument("--max-values", type=int, default=32,
                        help="largest number of values per thread and read tried")
    parser.add_argument("--json", default="tune_search.json")
    parser.add_argument("--backward-only", action="store_true", help="sweep the backward only")
    args = parser.parse_args()
    results = {}
    for name in args.configs.split(","):
        results[name] = sweep(name, args.max_values, forward=not args.backward_only)
        with open(args.json, "w") as f:
            json.dump({"gpu": torch.cuda.get_device_name(), "triton": triton.__version__,
                       "results": results}, f, indent=1)
        r = results[name]
        for kind in ("forward", "backward"):
            if not r[kind]:
                continue
            best = min(r[kind], key=r[kind].get)
            cells = "  ".join(f"{tile}:{ms:.3f}" for tile, ms in r[kind].items())
            print(f"[{name}] {kind} best {best} ({r[kind][best]:.3f} ms)  {cells}", flush=True)
        if "forward_uncapped" in r:
            print(f"[{name}] forward, default tile without the register cap: "
                  f"{r['forward_uncapped']:.3f} ms")
        if "forward_unstaged" in r:
            print(f"[{name}] forward without staging, default tile: {r['forward_unstaged']:.3f} ms")


if __name__ == "__main__":
    main()
