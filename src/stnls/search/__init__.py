"""Space-time non-local search.

``NonLocalSearch`` (module) and ``nls`` (function) find, for every query patch
of ``vid0``, the ``k`` most similar patches of ``vid1`` in a space-time window
around a (flow-displaced) location.
"""

from .non_local_search import NonLocalSearch, nls

__all__ = ["NonLocalSearch", "nls"]
