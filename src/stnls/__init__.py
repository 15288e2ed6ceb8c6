"""stnls: space-time non-local search for video, in PyTorch.

Subpackages: :mod:`stnls.search` (patch search), :mod:`stnls.nn` (flow and
top-k helpers).
"""

from . import _ops  # noqa: F401  (registers torch.ops.stnls.*)
from . import nn, search

__version__ = "0.1.0"

__all__ = ["search", "nn", "__version__"]
