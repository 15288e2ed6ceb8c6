"""Environment switches (every ``STNLS_*`` variable is read here).

``STNLS_BACKEND``
    ``auto`` (default), ``reference`` or ``triton``: which implementation the
    ops run. ``auto`` takes Triton for CUDA tensors when it is importable.
``STNLS_CHUNK_BYTES``
    Memory budget, in bytes, of one chunk of queries in the reference backend
    (default 64 MiB). Peak memory of a reference call is about this much plus
    its inputs and outputs. The Triton backend uses it too, for its rare
    "select" route (more than 128 neighbours kept per group, or ``k <= 0`` with a
    reordering self_action), which scores a chunk of queries' candidates before
    the top-k.
"""

from __future__ import annotations

import os

BACKENDS = ("auto", "reference", "triton")


def backend_name() -> str:
    """The requested backend (``STNLS_BACKEND``)."""
    name = os.environ.get("STNLS_BACKEND", "auto").strip().lower() or "auto"
    if name not in BACKENDS:
        raise ValueError(f"STNLS_BACKEND must be one of {list(BACKENDS)}, got {name!r}")
    return name


def chunk_size(bytes_per_item: int) -> int:
    """How many items of ``bytes_per_item`` fit in the chunk budget (at least 1)."""
    budget = int(os.environ.get("STNLS_CHUNK_BYTES", 64 << 20))
    return max(1, budget // max(1, int(bytes_per_item)))
