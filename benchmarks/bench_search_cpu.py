"""Quick-start search benchmark on the CPU (see stnls.bench.search_cpu)."""

from stnls.bench.search_cpu import main

if __name__ == "__main__":
    main()
