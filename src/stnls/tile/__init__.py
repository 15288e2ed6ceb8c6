"""Unfold and fold of patches: at absolute positions, or batched over a rectangle's raster.

* :func:`unfold_k` / :func:`fold_k` (:class:`UnfoldK` / :class:`FoldK`): patches at
  absolute ``(t, h, w)`` positions ``[B, Q, K, 3]``, exact adjoints.
* :func:`iunfold` / :func:`ifold` / :func:`ifoldz` (:class:`iUnfold`, :class:`iFold`,
  :class:`iFoldz`): batches of raster queries of a rectangle (``start``, ``num``),
  so a huge video is swept with bounded memory; :func:`num_queries` sizes the sweep.
* :func:`unfold` / :func:`fold`: the full frame, equal to ``torch.nn.functional.unfold/fold``.
"""

from .functional import fold, fold_k, ifold, ifoldz, iunfold, num_queries, unfold, unfold_k
from .modules import FoldK, UnfoldK, iFold, iFoldz, iUnfold

__all__ = ["unfold_k", "fold_k", "iunfold", "ifold", "ifoldz", "unfold", "fold", "num_queries",
           "UnfoldK", "FoldK", "iUnfold", "iFold", "iFoldz"]
