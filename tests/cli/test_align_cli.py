"""The ``stnls align`` command on small settings: outputs, their agreement, bad input."""

from __future__ import annotations

import contextlib
import io
import json
import math
import re
import sys

import numpy as np
import pytest

pytest.importorskip("skimage")
pytest.importorskip("matplotlib")
pytest.importorskip("tqdm")
Image = pytest.importorskip("PIL.Image")

import torch  # noqa: E402

from stnls.cli import main  # noqa: E402
from stnls.demo.align import METHODS, psnr, reference_flows, tvl1_flows, warp  # noqa: E402

SMALL = ["--frames", "3", "--crop", "40", "--ws", "3", "--ps", "3", "-k", "2", "--quiet"]


def _table_rows(stdout: str) -> dict[str, list[float]]:
    """Method name -> numbers of its row in the printed PSNR table."""
    rows = {}
    for line in stdout.splitlines():
        name, sep, rest = line.partition(" | ")
        if sep and name.strip() in METHODS.values():
            rows[name.strip()] = [float(v) for v in rest.split(" | ")]
    return rows


@pytest.fixture(scope="module")
def small_run(tmp_path_factory):
    """One small run on a bundled clip (shared by the output tests)."""
    out = tmp_path_factory.mktemp("align")
    stdout = io.StringIO()
    with contextlib.redirect_stdout(stdout):
        code = main(["align", "--clip", "carphone", "--output", str(out), *SMALL])
    return code, stdout.getvalue(), out


def test_small_run_succeeds_and_writes_png_and_json(small_run):
    code, stdout, out = small_run
    assert code == 0
    png, js = out / "align_carphone.png", out / "align_carphone.json"
    assert png.is_file() and js.is_file()
    with Image.open(png) as image:
        assert image.format == "PNG" and image.width > 100 and image.height > 100
    data = json.loads(js.read_text())
    assert data["frames"] == [1, 2] and data["reference_frame"] == 0
    assert data["size"] == [40, 40]
    assert data["config"]["clip"] == "carphone" and data["config"]["ws"] == 3
    assert f"wrote {png}" in stdout


def test_printed_table_matches_json(small_run):
    _, stdout, out = small_run
    data = json.loads((out / "align_carphone.json").read_text())
    rows = _table_rows(stdout)
    assert set(rows) == set(METHODS.values())
    for key, name in METHODS.items():
        per_frame, mean = data["psnr"][key]["per_frame"], data["psnr"][key]["mean"]
        assert len(per_frame) == 2 and all(math.isfinite(v) and 10 < v < 80 for v in per_frame)
        assert mean == pytest.approx(np.mean(per_frame))
        assert rows[name] == pytest.approx(per_frame + [mean], abs=0.005 + 1e-9)


def test_default_command_is_align(tmp_path, capsys):
    code = main(["--clip", "carphone", "--output", str(tmp_path), "--frames", "2", "--crop", "24",
                 "--ws", "3", "--ps", "3", "-k", "1", "--quiet"])
    assert code == 0
    assert (tmp_path / "align_carphone.json").is_file()
    assert "shifted NLS" in capsys.readouterr().out


def _translating_clip(frames: int) -> np.ndarray:
    """Smooth random texture moving by (+1, +1) pixels per frame: uint8 ``[T, 48, 48, 3]``."""
    rng = np.random.default_rng(0)
    base = (rng.random((30, 30, 3)) * 255).astype(np.uint8)
    base = np.asarray(Image.fromarray(base).resize((120, 120), Image.BICUBIC))
    return np.stack([base[26 + t:74 + t, 26 + t:74 + t] for t in range(frames)])


def test_chained_flow_and_warp_recover_a_translation():
    video = _translating_clip(3).astype(np.float32) / 255
    fflow, bflow = tvl1_flows(video.mean(-1))
    flows = reference_flows(fflow, bflow, reference=0)
    inner = (slice(None), slice(8, -8), slice(8, -8))
    for t in (1, 2):
        assert flows[t][inner].mean((1, 2)).tolist() == pytest.approx([-t, -t], abs=0.02)
        clean = torch.from_numpy(video).permute(0, 3, 1, 2)
        aligned = warp(clean[t], flows[t])
        assert psnr(aligned[inner], clean[0][inner]) > 45  # the border has content that left the frame
    assert flows[0].abs().max() == 0


def test_folder_clip_with_known_motion(tmp_path, capsys):
    """A 2-pixel move is outside a 3x3 window at stride1=1, but not outside the shifted one."""
    clip = tmp_path / "frames"
    clip.mkdir()
    for t, image in enumerate(_translating_clip(3)):
        Image.fromarray(image).save(clip / f"{t}.png")
    code = main(["--clip", str(clip), "--output", str(tmp_path / "out"), "--frames", "3", "--crop", "48",
                 "--ws", "3", "--ps", "3", "-k", "1", "--sigma", "0", "--quiet"])
    assert code == 0
    scores = json.loads((tmp_path / "out" / "align_frames.json").read_text())["psnr"]
    nls, shifted = scores["nls"]["per_frame"], scores["shifted_nls"]["per_frame"]
    assert nls[1] < nls[0] - 5
    assert shifted[1] > nls[1] + 3
    capsys.readouterr()


def test_video_file_clip(tmp_path, capsys):
    av = pytest.importorskip("av")
    path = tmp_path / "clip.mp4"
    rng = np.random.default_rng(1)
    with av.open(str(path), "w") as container:
        stream = container.add_stream("mpeg4", rate=10)
        stream.width, stream.height, stream.pix_fmt = 48, 48, "yuv420p"
        for _ in range(3):
            frame = av.VideoFrame.from_ndarray((rng.random((48, 48, 3)) * 255).astype(np.uint8),
                                               format="rgb24")
            container.mux(stream.encode(frame))
        container.mux(stream.encode(None))
    code = main(["--clip", str(path), "--output", str(tmp_path / "out"), "--frames", "2", "--crop", "24",
                 "--ws", "3", "--ps", "3", "-k", "1", "--quiet"])
    assert code == 0
    assert (tmp_path / "out" / "align_clip.png").is_file()
    capsys.readouterr()


def _bad(tmp_path, capsys, *argv) -> str:
    code = main(["align", "--output", str(tmp_path / "out"), *argv])
    captured = capsys.readouterr()
    assert code == 2
    lines = captured.err.strip().splitlines()
    assert len(lines) == 1, captured.err
    assert "Traceback" not in captured.err
    assert not (tmp_path / "out").exists()
    return lines[0]


def test_missing_clip(tmp_path, capsys):
    line = _bad(tmp_path, capsys, "--clip", str(tmp_path / "nowhere"))
    assert re.match(r"stnls align: error: clip '.*nowhere' is neither a bundled clip", line)


def test_unreadable_video(tmp_path, capsys):
    path = tmp_path / "broken.mp4"
    path.write_bytes(b"this is not a video" * 10)
    line = _bad(tmp_path, capsys, "--clip", str(path))
    assert line.startswith(f"stnls align: error: cannot read video {path}")


def test_folder_without_images(tmp_path, capsys):
    (tmp_path / "empty").mkdir()
    line = _bad(tmp_path, capsys, "--clip", str(tmp_path / "empty"))
    assert "holds no images" in line


def test_single_image_is_refused(tmp_path, capsys):
    path = tmp_path / "one.png"
    Image.fromarray(np.zeros((8, 8, 3), np.uint8)).save(path)
    assert "is a single image" in _bad(tmp_path, capsys, "--clip", str(path))


def test_clip_shorter_than_frames(tmp_path, capsys):
    line = _bad(tmp_path, capsys, "--clip", "carphone", "--frames", "11")
    assert line == "stnls align: error: clip 'carphone' has 10 frames, 11 asked"


@pytest.mark.parametrize("argv, message", [
    (["--frames", "1"], "frames must be >= 2, got 1"),
    (["--ps", "0"], "ps must be >= 1, got 0"),
    (["--ws", "0"], "ws must be >= 1, got 0"),
    (["-k", "10", "--ws", "3"], "k must be <= ws*ws = 9, got 10"),
    (["--crop", "0"], "crop must be >= 1, got 0"),
    (["--stride1", "0"], "stride1 must be > 0, got 0.0"),
    (["--sigma", "-1"], "sigma must be >= 0, got -1.0"),
    (["--stride0", "3", "--ps", "3"], "use ps >= 5"),
    (["--reference", "10"], "reference must be a frame index in [0, 9], got 10"),
    (["--crop", "4", "--ps", "5", "--frames", "2"], "frames of 4x4 are smaller than a patch (ps=5)"),
    (["--device", "tpu:x"], "is not a torch device"),
])
def test_invalid_settings(tmp_path, capsys, argv, message):
    assert message in _bad(tmp_path, capsys, "--clip", "carphone", *argv)


def test_bad_option_value_is_one_line(capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["align", "--frames", "two"])
    assert exit_info.value.code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == ["stnls align: error: argument --frames: invalid int value: 'two'"]


def test_output_path_is_a_file(tmp_path, capsys):
    target = tmp_path / "taken"
    target.write_text("x")
    code = main(["align", "--clip", "carphone", "--output", str(target), *SMALL])
    assert code == 2
    assert capsys.readouterr().err.strip() == f"stnls align: error: output {target} exists and is not a folder"


def test_frames_of_different_sizes(tmp_path, capsys):
    clip = tmp_path / "mixed"
    clip.mkdir()
    Image.fromarray(np.zeros((8, 8, 3), np.uint8)).save(clip / "0.png")
    Image.fromarray(np.zeros((8, 9, 3), np.uint8)).save(clip / "1.png")
    assert "differ in size" in _bad(tmp_path, capsys, "--clip", str(clip), "--frames", "2")


@pytest.mark.skipif(torch.cuda.is_available(), reason="needs a machine without CUDA")
def test_cuda_asked_without_cuda(tmp_path, capsys):
    line = _bad(tmp_path, capsys, "--clip", "carphone", "--device", "cuda")
    assert line == "stnls align: error: device 'cuda' asked but CUDA is not available"


def test_missing_demo_extra_is_named(tmp_path, capsys, monkeypatch):
    import importlib.util

    real_find_spec = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec",
                        lambda name, *a: None if name == "skimage" else real_find_spec(name, *a))
    line = _bad(tmp_path, capsys, "--clip", "carphone")
    assert line == "stnls align: error: missing scikit-image; install the demo extra: pip install 'stnls[demo]'"


def test_video_without_pyav_is_named(tmp_path, capsys, monkeypatch):
    path = tmp_path / "clip.mp4"
    path.write_bytes(b"x")
    monkeypatch.setitem(sys.modules, "av", None)  # makes `import av` raise ImportError
    assert "needs PyAV: pip install 'stnls[demo]'" in _bad(tmp_path, capsys, "--clip", str(path))
