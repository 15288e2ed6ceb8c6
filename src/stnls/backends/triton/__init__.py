"""Triton backend: GPU kernels of the ops (also runnable through Triton's interpreter).

Importing raises ``ImportError`` when Triton is missing or too old, and the
backend chooser then falls back to the reference backend.
"""

from __future__ import annotations

try:
    import triton  # noqa: F401
    import triton.language as tl  # noqa: F401
except Exception as error:  # a broken triton install must not break stnls
    raise ImportError(f"the stnls Triton backend needs an importable triton ({error})") from error

from .agg import agg_gather, agg_gather_backward, agg_pair_grads, agg_scatter
from .search import non_local_search, non_local_search_backward
from .tile import fold_k, fold_k_accumulate_, unfold_k

__all__ = ["non_local_search", "non_local_search_backward", "agg_gather", "agg_scatter",
           "agg_pair_grads", "agg_gather_backward", "unfold_k", "fold_k", "fold_k_accumulate_"]
