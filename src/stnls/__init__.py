"""stnls: space-time non-local search for video, in PyTorch.

Subpackages: :mod:`stnls.search` (patch search), :mod:`stnls.agg` (aggregation
of the matches), :mod:`stnls.tile` (patch unfold/fold), :mod:`stnls.nn` (flow and
top-k helpers).
"""

from . import _ops  # noqa: F401  (registers torch.ops.stnls.*)
from . import agg, nn, search, tile

__version__ = "0.1.0"

__all__ = ["search", "agg", "tile", "nn", "__version__"]
