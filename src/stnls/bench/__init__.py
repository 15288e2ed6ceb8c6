"""Benchmarks shipped with the package (``stnls bench``).

* :mod:`stnls.bench.search_gpu`: the configs of the original library's published numbers on a
  CUDA GPU, beside those numbers (needs Triton).
* :mod:`stnls.bench.search_cpu`: the README quick-start search on the CPU.
"""

from __future__ import annotations

import importlib

import torch


def run(argv: list[str] | None = None, device: str | None = None) -> None:
    """Run the benchmark of ``device`` (default: CUDA if available, else the CPU)."""
    device = device or ("cuda" if torch.cuda.is_available() else "cpu")
    name = "search_gpu" if device.startswith("cuda") else "search_cpu"
    importlib.import_module(f"{__name__}.{name}").main(argv)
