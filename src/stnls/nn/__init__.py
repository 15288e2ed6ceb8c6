"""Helpers around the search: flow accumulation and top-k selection."""

from .search_flow import search_flow
from .topk import topk

__all__ = ["search_flow", "topk"]
