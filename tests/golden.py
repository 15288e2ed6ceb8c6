"""Access to the recorded outputs of the original library (see docs/compatibility.md)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch

_DEFAULT = Path(__file__).resolve().parents[1].parent / "shared" / "golden"


def golden_dir() -> Path | None:
    path = Path(os.environ.get("STNLS_GOLDEN_DIR", _DEFAULT))
    return path if path.is_dir() else None


def cases(op: str) -> list:
    """``pytest.param``s of every recorded case of ``op``, named ``<file>[<index>]``."""
    folder = golden_dir()
    if folder is None:
        return [pytest.param(None, marks=pytest.mark.skip(
            reason="recorded outputs not found (set STNLS_GOLDEN_DIR)"), id=f"{op}-missing")]
    params = []
    for path in sorted(folder.glob("golden_*.pt")):
        for index, case in enumerate(torch.load(path, weights_only=False)):
            if case["op"] == op:
                params.append(pytest.param(case, id=f"{path.stem}[{index}]"))
    return params
