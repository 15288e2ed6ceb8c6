"""Pure-PyTorch backend: the readable definition of every op, and the CPU implementation."""

from .search import non_local_search, non_local_search_backward

__all__ = ["non_local_search", "non_local_search_backward"]
