"""Presenting an alignment run: the PSNR table, the JSON file and the figure."""

from __future__ import annotations

import io
import json
from pathlib import Path

import numpy as np

from .align import METHODS, AlignResult
from .clips import clip_credit

ERROR_MAP_MAX = 0.1  # |aligned - reference| shown white at this value (images in [0, 1])


def psnr_table(result: AlignResult) -> str:
    """The per-frame and mean PSNR of each method as an aligned text table."""
    frames = [f"f{t}" for t in result.frames] + ["mean"]
    width = max(len(name) for name in METHODS.values())
    lines = [f"{'method':<{width}} | " + " | ".join(f"{f:>6}" for f in frames)]
    lines.append("-" * len(lines[0]))
    for method, name in METHODS.items():
        values = result.psnr[method] + [result.mean_psnr(method)]
        lines.append(f"{name:<{width}} | " + " | ".join(f"{v:6.2f}" for v in values))
    return "\n".join(lines)


def table_caption(result: AlignResult) -> str:
    c = result.config
    return (f"PSNR (dB, higher is better) of the clean frames aligned to frame {c.reference} of "
            f"{clip_credit(c.clip)}, {result.height}x{result.width}, noise sigma {c.sigma:g}, "
            f"ws={c.ws} ps={c.ps} k={c.k} stride0={c.stride0} stride1={c.stride1:g}")


def write_json(result: AlignResult, path: Path) -> None:
    with open(path, "w") as handle:
        json.dump(result.to_json(), handle, indent=2)
        handle.write("\n")


def write_figure(result: AlignResult, path: Path) -> None:
    """PNG grid: columns are frames (reference first), rows the clean and noisy
    frames, then each method's aligned frames and their error maps."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    ref = result.config.reference
    columns = [ref] + result.frames
    rows = [("clean", result.clean, None), ("noisy input", result.noisy, None)]
    reference = result.clean[ref]
    for method, name in METHODS.items():
        rows.append((name, result.aligned[method], result.psnr[method]))
        error = np.abs(result.aligned[method] - reference[None]).mean(-1)
        rows.append((f"{name}\n|error|", error, None))
    height, width = result.height, result.width
    cell = 1.2
    figure, axes = plt.subplots(len(rows), len(columns), squeeze=False,
                                figsize=(cell * len(columns), cell * len(rows) * height / width + 0.6))
    for r, (label, images, scores) in enumerate(rows):
        for c, t in enumerate(columns):
            axis = axes[r, c]
            axis.set_xticks([])
            axis.set_yticks([])
            if images.ndim == 3:
                axis.imshow(images[t], cmap="gray", vmin=0, vmax=ERROR_MAP_MAX)
            else:
                axis.imshow(images[t])
            if scores is not None and t != ref:
                axis.text(0.03, 0.04, f"{scores[c - 1]:.1f} dB", transform=axis.transAxes, fontsize=6,
                          color="white", backgroundcolor="black")
            if r == 0:
                axis.set_title("reference" if t == ref else f"frame {t}", fontsize=7, pad=2)
            if c == 0:
                axis.set_ylabel(label, fontsize=7)
    figure.suptitle(f"Alignment to frame {ref}; error maps: white = {ERROR_MAP_MAX:g} mean abs error. "
                    f"Clip: {clip_credit(result.config.clip)}", fontsize=7, y=0.995)
    figure.tight_layout(pad=0.3, h_pad=0.2, w_pad=0.1)
    buffer = io.BytesIO()
    figure.savefig(buffer, dpi=72)
    plt.close(figure)
    _save_small_png(buffer, path)


def _save_small_png(buffer: io.BytesIO, path: Path) -> None:
    """Re-save a rendered PNG with a 256-colour palette (about a third of the size)."""
    from PIL import Image

    buffer.seek(0)
    with Image.open(buffer) as image:
        image.convert("RGB").quantize(256).save(path, optimize=True)
