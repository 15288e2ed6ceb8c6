"""Time and peak memory of the README quick-start search on the CPU (reference backend).

Config: B=1, T=5, C=16, 128x128, nheads=2, ws=5, wt=2, ps=3, K=10, stride1=0.5,
itype float, self_action "anchor", random one-step flows (N(0, 2^2) px).
Each measurement runs in a fresh process so that its peak resident memory is its own.

    stnls bench [--json out.json] [--repeat 3]          (on a machine without CUDA)
    python benchmarks/bench_search_cpu.py [--json out.json] [--repeat 3]
"""

from __future__ import annotations

import argparse
import json
import platform
import resource
import subprocess
import sys
import time

CONFIG = dict(B=1, T=5, C=16, H=128, W=128, nheads=2, ws=5, wt=2, ps=3, k=10, stride1=0.5)


def _rss_mib() -> float:
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[1]) * resource.getpagesize() / 2**20


def measure(mode: str, size: int) -> dict:
    """Run one measurement in this process (``mode`` is "forward" or "forward+backward")
    on a ``size x size`` video."""
    import torch

    import stnls

    torch.manual_seed(0)
    c = dict(CONFIG, H=size, W=size)
    shape = (c["B"], c["T"], c["C"], c["H"], c["W"])
    backward = mode == "forward+backward"
    vid0 = torch.randn(shape, requires_grad=backward)
    vid1 = torch.randn(shape, requires_grad=backward)
    fflow, bflow = (2 * torch.randn(c["B"], c["T"], 2, c["H"], c["W"]) for _ in range(2))
    search = stnls.search.NonLocalSearch(c["ws"], c["wt"], c["ps"], c["k"], nheads=c["nheads"],
                                         stride1=c["stride1"], self_action="anchor", itype="float")
    baseline = _rss_mib()
    start = time.perf_counter()
    dists, inds = search(vid0, vid1, fflow, bflow)
    if backward:
        dists.sum().backward()
    seconds = time.perf_counter() - start
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return dict(mode=mode, size=size, seconds=seconds, peak_rss_mib=peak, baseline_rss_mib=baseline,
                threads=torch.get_num_threads(), torch=torch.__version__)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--json", help="write the results here")
    parser.add_argument("--repeat", type=int, default=1)
    parser.add_argument("--size", type=int, default=CONFIG["H"], help="frame height and width")
    parser.add_argument("--measure", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.measure:
        print(json.dumps(measure(args.measure, args.size)))
        return
    rows = []
    for mode in ("forward", "forward+backward"):
        for _ in range(args.repeat):
            out = subprocess.run([sys.executable, "-m", __name__, "--measure", mode,
                                  "--size", str(args.size)], check=True, capture_output=True,
                                 text=True).stdout
            rows.append(json.loads(out.strip().splitlines()[-1]))
    print(f"CPU: {platform.processor() or platform.machine()}, threads {rows[0]['threads']}, "
          f"torch {rows[0]['torch']}")
    print(f"search of a 1x5x16x{args.size}x{args.size} video, ws=5, wt=2, ps=3, K=10, stride1=0.5")
    print(f"{'mode':<18}{'seconds':>10}{'peak RSS MiB':>14}{'RSS before call MiB':>22}")
    for row in rows:
        print(f"{row['mode']:<18}{row['seconds']:>10.2f}{row['peak_rss_mib']:>14.0f}"
              f"{row['baseline_rss_mib']:>22.0f}")
    if args.json:
        with open(args.json, "w") as out:
            json.dump(dict(config=dict(CONFIG, H=args.size, W=args.size), results=rows), out,
                      indent=2)


if __name__ == "__main__":
    main()
