"""Backend choice: which implementation an op runs for given inputs.

Order: the ``STNLS_BACKEND`` environment variable if set to ``reference`` or
``triton``; otherwise (``auto``) Triton for CUDA tensors when Triton imports and
has the op, else the pure-PyTorch reference.
"""

from __future__ import annotations

import functools
import importlib
import logging

import torch

from ..utils.env import backend_name

logger = logging.getLogger("stnls")


@functools.lru_cache(maxsize=None)
def _triton_backend():
    """The Triton backend module, or None (with the reason logged) if unusable."""
    try:
        return importlib.import_module(".triton", __name__)
    except ImportError as error:  # triton missing, or too old
        logger.info("stnls: Triton backend unavailable (%s); using the reference backend", error)
        return None


def _reference_backend():
    return importlib.import_module(".reference", __name__)


def choose(device: torch.device, op: str):
    """The backend module that runs ``op`` on tensors of ``device``."""
    return _choose(backend_name(), device.type, op)


@functools.lru_cache(maxsize=None)
def _choose(name: str, device_type: str, op: str):
    if name == "reference":
        return _reference_backend()
    triton = _triton_backend() if device_type == "cuda" else None
    has_op = triton is not None and hasattr(triton, op)
    if name == "triton":
        if not has_op:
            raise RuntimeError(f"STNLS_BACKEND=triton but the Triton backend cannot run {op!r} "
                               f"on {device_type} (it needs a CUDA device and an importable triton)")
        return triton
    return triton if has_op else _reference_backend()


def describe(device: torch.device, op: str) -> str:
    """Name of the backend :func:`choose` picks (for ``stnls info``)."""
    module = choose(device, op)
    return module.__name__.rsplit(".", 1)[-1]
