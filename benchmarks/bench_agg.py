"""Aggregation benchmark on a CUDA GPU against the original library (see stnls.bench.agg_gpu)."""

from stnls.bench.agg_gpu import main

if __name__ == "__main__":
    main()
