"""Aggregation of matched patches: weighted sums, stacks and their adjoints.

Modules (original class names) and functions:

* :class:`WeightedPatchSum` / :func:`wpsum`: attention output in the input's layout.
* :class:`NonLocalGather` / :func:`gather`: the ``K`` neighbours as ``K`` videos.
* :class:`NonLocalGatherAdd` / :func:`gather_add`: weighted sum on an output grid.
* :class:`NonLocalScatter` / :func:`scatter`, :class:`NonLocalScatterAdd` /
  :func:`scatter_add`: exact adjoints of the two gathers.
* :class:`PooledPatchSum` / :func:`pool`: weighted sum kept in tiles.
"""

from .functional import gather, gather_add, pool, scatter, scatter_add, wpsum
from .modules import (NonLocalGather, NonLocalGatherAdd, NonLocalScatter, NonLocalScatterAdd,
                      PooledPatchSum, WeightedPatchSum)

__all__ = ["WeightedPatchSum", "NonLocalGather", "NonLocalGatherAdd", "NonLocalScatter",
           "NonLocalScatterAdd", "PooledPatchSum", "wpsum", "gather", "gather_add", "scatter",
           "scatter_add", "pool"]
