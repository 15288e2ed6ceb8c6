"""``stnls bench`` on the CPU: prints the table and writes the JSON."""

from __future__ import annotations

import json

import pytest

from stnls.cli import main


def test_cpu_bench_prints_and_writes_results(tmp_path, capsys):
    out_json = tmp_path / "bench.json"
    assert main(["bench", "--device", "cpu", "--size", "24", "--json", str(out_json)]) == 0
    printed = capsys.readouterr().out
    results = json.loads(out_json.read_text())["results"]
    assert [row["mode"] for row in results] == ["forward", "forward+backward"]
    for row in results:
        assert row["size"] == 24 and row["seconds"] > 0 and row["peak_rss_mib"] > 0
        assert f"{row['seconds']:.2f}" in printed


@pytest.mark.parametrize("argv, words", [
    (["bench", "--device", "cpu", "--configs", "readme"], "--configs does not apply to the cpu"),
    (["bench", "--device", "gpu"], "invalid choice"),
])
def test_bench_bad_arguments(argv, words, capsys):
    try:
        code = main(argv)
    except SystemExit as exit_info:
        code = exit_info.code
    assert code == 2
    err = capsys.readouterr().err
    assert words in err and len(err.strip().splitlines()) == 1


def test_bench_on_cuda_without_cuda(capsys):
    import torch

    if torch.cuda.is_available():
        pytest.skip("this machine has CUDA")
    assert main(["bench", "--device", "cuda"]) == 2
    assert "no CUDA device" in capsys.readouterr().err
