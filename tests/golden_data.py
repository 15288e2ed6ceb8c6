"""Locating and loading the recorded outputs of the original library."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch


def golden_dir() -> Path:
    """``$STNLS_GOLDEN_DIR``, else the ``shared/golden`` folder beside the repository."""
    env = os.environ.get("STNLS_GOLDEN_DIR")
    if env:
        return Path(env)
    return Path(__file__).resolve().parents[1].parent / "shared" / "golden"


def golden_files() -> list[Path]:
    folder = golden_dir()
    return sorted(folder.glob("golden_public_*.pt")) if folder.is_dir() else []


def load_cases(op: str) -> list[tuple[str, dict]]:
    """``(case id, case)`` for every recorded case of ``op`` (empty if no golden data)."""
    cases = []
    for path in golden_files():
        for number, case in enumerate(torch.load(path, weights_only=False)):
            if case["op"] == op:
                cases.append((f"{path.stem}-{number}", case))
    return cases


def require_golden() -> None:
    if not golden_files():
        pytest.skip(f"golden data not found in {golden_dir()} (set STNLS_GOLDEN_DIR)")
