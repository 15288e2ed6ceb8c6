"""The examples run as written."""

from __future__ import annotations

import runpy
from pathlib import Path

import pytest

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"


@pytest.mark.slow
def test_quickstart(capsys):
    runpy.run_path(str(EXAMPLES / "quickstart.py"), run_name="__main__")
    printed = capsys.readouterr().out
    assert "srch_flows.shape:  torch.Size([1, 2, 5, 128, 128, 10, 3])" in printed
    assert "V_out.shape:  torch.Size([1, 5, 16, 128, 128])" in printed
