"""Search benchmark on a CUDA GPU against the original library (see stnls.bench.search_gpu)."""

from stnls.bench.search_gpu import main

if __name__ == "__main__":
    main()
