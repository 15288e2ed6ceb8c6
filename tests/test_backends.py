"""Backend choice: the STNLS_BACKEND switch, and Triton that cannot be imported."""

import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

import stnls.backends as backends

SCRIPT = """
import sys
sys.modules["triton"] = None  # as if triton were not installed
import torch
import stnls.backends as backends
try:
    import stnls.backends.triton
except ImportError as error:
    print("ImportError", error)
print(backends._triton_backend())
print(backends.describe(torch.device("cuda"), "non_local_search"))
"""


def test_missing_triton_falls_back_to_reference():
    src = Path(__file__).resolve().parents[1] / "src"
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(src), os.environ.get("PYTHONPATH", "")])}
    env.pop("STNLS_BACKEND", None)
    out = subprocess.run([sys.executable, "-c", SCRIPT], capture_output=True, text=True, env=env,
                         check=True).stdout.splitlines()
    assert out[0].startswith("ImportError") and "triton" in out[0]
    assert out[1:] == ["None", "reference"]


def test_backend_choice_reads_the_switch_at_every_call(monkeypatch):
    cpu = torch.device("cpu")
    for _ in range(2):  # the second round is answered from the cache of choices
        monkeypatch.setenv("STNLS_BACKEND", "reference")
        assert backends.describe(cpu, "agg_gather") == "reference"
        monkeypatch.setenv("STNLS_BACKEND", "triton")
        with pytest.raises(RuntimeError, match="STNLS_BACKEND=triton"):
            backends.choose(cpu, "agg_gather")
        monkeypatch.setenv("STNLS_BACKEND", "auto")
        assert backends.describe(cpu, "agg_gather") == "reference"
