"""Batched unfold/fold sweep of a large video: time and peak memory.

For each video size, a child process allocates the video ``[1, T, C, H, W]``
(float32) and the fold accumulators, then sweeps every raster query of the
frame in batches: ``iunfold`` a batch of patches, fold it in place
(``ifoldz(..., out=, counts=)``). Peak memory is the child's peak resident set
(``getrusage(RUSAGE_SELF).ru_maxrss``); the working memory is that peak minus
the resident set measured after the video and accumulators were allocated and
written, i.e. what the sweep itself needed on top of its inputs and outputs.

Usage: ``python benchmarks/bench_tile.py [--sizes 512 1024] [--json out.json]``.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import resource
import subprocess
import sys
import time


def _rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux: KiB


def sweep(T: int, H: int, W: int, C: int, ps: int, stride: int, batch: int, threads: int) -> dict:
    """Run one sweep in this process and return its measurements."""
    import torch

    import stnls

    if threads > 0:
        torch.set_num_threads(threads)
    torch.set_grad_enabled(False)
    torch.manual_seed(0)
    kwargs = dict(stride=stride, border="zero")
    # warm up: the first op call loads code (counted in neither time nor working memory)
    tiny = torch.randn(1, 1, C, 2 * ps, 2 * ps)
    stnls.tile.ifoldz(stnls.tile.iunfold(tiny, ps, **kwargs), tiny.shape, out=torch.zeros_like(tiny),
                      counts=torch.zeros_like(tiny[:, :, :1]), **kwargs)
    vid = torch.randn(1, T, C, H, W)
    out = torch.zeros_like(vid).fill_(0)
    counts = torch.zeros(1, T, 1, H, W).fill_(0)
    base = _rss_mib()
    total = stnls.tile.num_queries(vid.shape, ps, stride=stride)
    unfold_s = fold_s = 0.0
    for start in range(0, total, batch):
        num = min(batch, total - start)
        tic = time.perf_counter()
        patches = stnls.tile.iunfold(vid, ps, start=start, num=num, **kwargs)
        toc = time.perf_counter()
        stnls.tile.ifoldz(patches, vid.shape, start=start, out=out, counts=counts, **kwargs)
        unfold_s += toc - tic
        fold_s += time.perf_counter() - toc
    peak = _rss_mib()
    # sanity: folding the unfolded patches and dividing by the counts gives the video back
    read = counts.expand_as(vid) > 0
    error = (out[read] / counts.expand_as(vid)[read] - vid[read]).abs().max().item()
    return dict(T=T, H=H, W=W, C=C, ps=ps, stride=stride, batch=batch, threads=torch.get_num_threads(),
                queries=total,
                batches=-(-total // batch), unfold_s=round(unfold_s, 2), fold_s=round(fold_s, 2),
                video_mib=round(vid.numel() * 4 / 2**20, 1), base_rss_mib=round(base, 1),
                peak_rss_mib=round(peak, 1), working_mib=round(peak - base, 1),
                patch_batch_mib=round(batch * ps * ps * C * 4 / 2**20, 1),
                max_roundtrip_error=error)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[512, 1024])
    parser.add_argument("--T", type=int, default=16)
    parser.add_argument("--C", type=int, default=16)
    parser.add_argument("--ps", type=int, default=7)
    parser.add_argument("--stride", type=int, default=4)
    parser.add_argument("--batch", type=int, default=16384, help="queries per batch")
    parser.add_argument("--budget-mib", type=float, default=512,
                        help="working-memory budget the sweep must stay under")
    parser.add_argument("--threads", type=int, default=0,
                        help="torch threads (0: torch's default); 1 avoids oversubscription on a busy machine")
    parser.add_argument("--json", default="bench_tile.json")
    parser.add_argument("--child", type=int, default=0, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        result = sweep(args.T, args.child, args.child, args.C, args.ps, args.stride, args.batch,
                       args.threads)
        print(json.dumps(result))
        return
    rows = []
    for size in args.sizes:
        command = [sys.executable, __file__, "--child", str(size), "--T", str(args.T),
                   "--C", str(args.C), "--ps", str(args.ps), "--stride", str(args.stride),
                   "--batch", str(args.batch), "--threads", str(args.threads)]
        done = subprocess.run(command, check=True, capture_output=True, text=True)
        rows.append(json.loads(done.stdout.strip().splitlines()[-1]))
    header = ("video", "threads", "queries", "batches", "unfold s", "fold s", "video MiB",
              "peak RSS MiB", "working MiB")
    print(" | ".join(header))
    for r in rows:
        print(" | ".join(str(v) for v in (f"{r['T']}x{r['C']}x{r['H']}x{r['W']}", r["threads"],
                                          r["queries"],
                                          r["batches"], r["unfold_s"], r["fold_s"], r["video_mib"],
                                          r["peak_rss_mib"], r["working_mib"])))
    within = all(r["working_mib"] <= args.budget_mib for r in rows)
    print(f"working memory under the {args.budget_mib} MiB budget for every size: {within}")
    report = dict(benchmark="batched iunfold/ifold sweep", budget_mib=args.budget_mib,
                  within_budget=within, chunk_bytes=os.environ.get("STNLS_CHUNK_BYTES", "default"),
                  machine=platform.platform(), processor=platform.processor(),
                  cpus=os.cpu_count(), date=datetime.datetime.now(datetime.timezone.utc).isoformat(),
                  results=rows)
    with open(args.json, "w") as handle:
        json.dump(report, handle, indent=2)


if __name__ == "__main__":
    main()
