"""Pure-PyTorch backend: the readable definition of every op, and the CPU implementation."""

from .agg import agg_gather, agg_gather_backward, agg_pair_grads, agg_scatter
from .search import non_local_search, non_local_search_backward
from .tile import fold_k, fold_k_accumulate_, unfold_k

__all__ = ["non_local_search", "non_local_search_backward", "agg_gather", "agg_scatter",
           "agg_pair_grads", "agg_gather_backward", "unfold_k", "fold_k", "fold_k_accumulate_"]
