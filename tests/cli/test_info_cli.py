"""``stnls info``, ``--help`` and ``python -m stnls``."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import torch

import stnls
from stnls.cli import COMMANDS, main
from stnls.utils import environment


def test_info_lists_versions_devices_and_backends(capsys, monkeypatch):
    monkeypatch.setenv("STNLS_BACKEND", "reference")
    assert main(["info"]) == 0
    out = capsys.readouterr().out
    assert f"stnls    {stnls.__version__}" in out
    assert f"torch    {torch.__version__}" in out
    assert "device cpu:" in out
    for op in environment.op_names():
        assert f"  {op:<28} reference" in out


def test_info_backend_names_follow_describe():
    backends = environment.op_backends(torch.device("cpu"))
    assert set(backends) == set(environment.op_names())
    assert "non_local_search" in backends and "agg_gather" in backends
    assert set(backends.values()) == {"reference"}  # CPU tensors never take the Triton backend


@pytest.mark.parametrize("argv", [["--help"], ["align", "--help"], ["info", "--help"]])
def test_help_has_examples(argv, capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(argv)
    assert exit_info.value.code == 0
    out = capsys.readouterr().out
    assert "example" in out and "stnls" in out


def test_every_command_has_help_and_runner():
    for name, command in COMMANDS.items():
        assert command.summary and "stnls" in command.epilog and callable(command.run), name


def test_python_dash_m_runs_the_command():
    src = Path(stnls.__file__).resolve().parents[1]
    done = subprocess.run([sys.executable, "-m", "stnls", "--version"], capture_output=True, text=True,
                          env={"PYTHONPATH": str(src), "PATH": ""}, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == f"stnls {stnls.__version__}"


def test_unknown_subcommand_option_is_one_line(capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["info", "--bogus"])
    assert exit_info.value.code == 2
    assert capsys.readouterr().err.strip() == "stnls: error: unrecognized arguments: --bogus"
