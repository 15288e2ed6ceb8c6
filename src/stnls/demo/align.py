"""Video alignment: optical flow alone against a (shifted) non-local search.

Every frame of a short clip is aligned to a reference frame in three ways and
compared with the clean reference frame (PSNR):

``flow_warp``
    warp the frame with the TV-L1 optical flow (bilinear).
``nls``
    non-local search without flow: each reference patch takes the best
    matches in a ``ws x ws`` window around its own position in the frame.
``shifted_nls``
    shifted non-local search: the same window, centred on the flow-displaced
    position (the step ``stride1`` may be fractional).

Gaussian noise of standard deviation ``sigma`` (0-255 scale) is added before
the flow is computed and before searching; the aligned frames are built from
the clean frames at the found positions with :class:`stnls.agg.WeightedPatchSum`,
so the PSNR measures the alignment, not denoising.

The flow is computed between consecutive noisy frames (TV-L1, scikit-image)
and chained from the reference frame to every other frame with
:func:`stnls.nn.search_flow`, as the search itself does with ``(fflow, bflow)``.
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass, field

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from .. import agg, backends, geometry, nn, search
from . import DemoInputError
from .clips import centre_crop, load_clip

METHODS = {
    "flow_warp": "flow warp",
    "nls": "NLS, no flow",
    "shifted_nls": "shifted NLS",
}


@dataclass(frozen=True)
class AlignConfig:
    """Settings of one alignment run (the ``stnls align`` options).

    Attributes:
        clip: bundled clip name, folder of images or video file.
        frames: frames read from the clip (at least 2).
        crop: side of the centred square crop, in pixels (the frame if smaller).
        sigma: standard deviation of the added Gaussian noise, 0-255 scale.
        ws: search window side (``ws x ws`` candidates).
        ps: patch side, for searching and for aggregating.
        k: neighbours kept per patch; 1 copies the best match, more are
            averaged with softmax weights of their distances.
        stride0: spacing of the reference patches (``ps`` must cover it).
        stride1: step between candidates, may be fractional.
        temperature: softmax temperature in units of the noise's expected
            share of a patch distance (``2 sigma^2 ps^2 C``).
        reference: index of the reference frame.
        device: ``"auto"`` (CUDA when available), ``"cpu"``, ``"cuda"``, ``"cuda:N"``.
        seed: seed of the noise.
    """

    clip: str = "bikes"
    frames: int = 10
    crop: int = 128
    sigma: float = 15.0
    ws: int = 7
    ps: int = 5
    k: int = 4
    stride0: int = 2
    stride1: float = 1.0
    temperature: float = 0.1
    reference: int = 0
    device: str = "auto"
    seed: int = 0

    def validate(self) -> None:
        """Raise :class:`DemoInputError` (a ``ValueError``) naming the first bad setting."""
        checks = [
            (self.frames >= 2, f"frames must be >= 2, got {self.frames}"),
            (self.crop >= 1, f"crop must be >= 1, got {self.crop}"),
            (np.isfinite(self.sigma) and self.sigma >= 0, f"sigma must be >= 0, got {self.sigma}"),
            (self.ws >= 1, f"ws must be >= 1, got {self.ws}"),
            (self.ps >= 1, f"ps must be >= 1, got {self.ps}"),
            (self.k >= 1, f"k must be >= 1, got {self.k}"),
            (self.k <= self.ws * self.ws, f"k must be <= ws*ws = {self.ws * self.ws}, got {self.k}"),
            (self.stride0 >= 1, f"stride0 must be >= 1, got {self.stride0}"),
            ((self.ps - 1) // 2 + 1 >= self.stride0,
             f"ps={self.ps} patches leave gaps between reference patches at stride0={self.stride0}; "
             f"use ps >= {2 * self.stride0 - 1}"),
            (np.isfinite(self.stride1) and self.stride1 > 0, f"stride1 must be > 0, got {self.stride1}"),
            (np.isfinite(self.temperature) and self.temperature > 0,
             f"temperature must be > 0, got {self.temperature}"),
            (0 <= self.reference < self.frames,
             f"reference must be a frame index in [0, {self.frames - 1}], got {self.reference}"),
        ]
        for ok, message in checks:
            if not ok:
                raise DemoInputError(message)


@dataclass
class AlignResult:
    """Numbers and images of one run.

    ``psnr[method][i]`` is the PSNR (dB) of frame ``frames[i]`` aligned to the
    reference frame; images are ``[T, H, W, 3]`` arrays in ``[0, 1]``.
    """

    config: AlignConfig
    device: str
    backends: dict[str, str]
    height: int
    width: int
    frames: list[int]
    psnr: dict[str, list[float]]
    seconds: dict[str, float]
    clean: np.ndarray = field(repr=False)
    noisy: np.ndarray = field(repr=False)
    aligned: dict[str, np.ndarray] = field(repr=False)

    def mean_psnr(self, method: str) -> float:
        return float(np.mean(self.psnr[method]))

    def to_json(self) -> dict:
        """The numbers (no images), ready for :func:`json.dump`."""
        return {
            "config": asdict(self.config),
            "device": self.device,
            "backends": self.backends,
            "size": [self.height, self.width],
            "reference_frame": self.config.reference,
            "frames": self.frames,
            "methods": METHODS,
            "psnr": {m: {"per_frame": v, "mean": self.mean_psnr(m)} for m, v in self.psnr.items()},
            "seconds": self.seconds,
        }


def resolve_device(name: str) -> torch.device:
    """``"auto"`` -> ``cuda`` when available, else ``cpu``; other names are checked."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(name)
    except RuntimeError:
        raise DemoInputError(f"device {name!r} is not a torch device (try auto, cpu, cuda, cuda:0)") from None
    if device.type == "cuda" and not torch.cuda.is_available():
        raise DemoInputError(f"device {name!r} asked but CUDA is not available")
    return device


def psnr(image: Tensor, target: Tensor) -> float:
    """Peak signal-to-noise ratio in dB of images in ``[0, 1]``."""
    mse = torch.mean((image.double() - target.double()) ** 2).item()
    return float("inf") if mse == 0 else 10 * np.log10(1.0 / mse)


def tvl1_flows(gray: np.ndarray, progress=None) -> tuple[Tensor, Tensor]:
    """One-step TV-L1 flows of ``gray [T, H, W]``: ``fflow, bflow [T, 2, H, W]`` (dx, dy).

    ``fflow[t]`` maps frame ``t`` to ``t + 1`` and ``bflow[t]`` to ``t - 1``;
    the entries without a neighbour are zero.
    """
    from skimage.registration import optical_flow_tvl1

    T, H, W = gray.shape
    fflow = np.zeros((T, 2, H, W), np.float32)
    bflow = np.zeros((T, 2, H, W), np.float32)
    for t in range(T - 1):
        for source, target, out in ((t, t + 1, fflow), (t + 1, t, bflow)):
            rows, cols = optical_flow_tvl1(gray[source], gray[target])
            out[source] = np.stack([cols, rows])
            if progress is not None:
                progress.update(1)
    return torch.from_numpy(fflow), torch.from_numpy(bflow)


def reference_flows(fflow: Tensor, bflow: Tensor, reference: int) -> Tensor:
    """Displacement ``[T, 2, H, W]`` from each pixel of frame ``reference`` to every frame.

    The one-step flows are chained with :func:`stnls.nn.search_flow` over a
    temporal window that spans the whole clip; the reference's own entry is zero.
    """
    T = fflow.shape[0]
    chained = nn.search_flow(fflow[None], bflow[None], wt=T - 1)[0, reference]
    frames = geometry.frame_of_slot(torch.tensor(reference), torch.arange(1, T), T - 1, T)
    out = torch.zeros_like(fflow)
    out[frames] = chained
    return out


def warp(image: Tensor, flow: Tensor) -> Tensor:
    """Sample ``image [C, H, W]`` at each pixel plus ``flow [2, H, W]`` (dx, dy), bilinear.

    Positions outside the frame are mirrored, as in the search.
    """
    _, H, W = image.shape
    rows, cols = torch.meshgrid(torch.arange(H, device=image.device, dtype=image.dtype),
                                torch.arange(W, device=image.device, dtype=image.dtype), indexing="ij")
    x = (cols + flow[0]) * (2 / max(W - 1, 1)) - 1
    y = (rows + flow[1]) * (2 / max(H - 1, 1)) - 1
    grid = torch.stack([x, y], -1)[None]
    return F.grid_sample(image[None], grid, mode="bilinear", padding_mode="reflection",
                         align_corners=True)[0]


class SearchAligner:
    """Aligns one frame to the reference with a non-local search and a weighted patch sum.

    The search runs on the noisy frames; the matches (relative offsets and
    softmax weights of their distances) rebuild the reference frame from the
    clean frame with :class:`stnls.agg.WeightedPatchSum`.
    """

    def __init__(self, config: AlignConfig, channels: int):
        c = config
        self.search = search.NonLocalSearch(c.ws, 0, c.ps, c.k, stride0=c.stride0, stride1=c.stride1,
                                            itype="float")
        self.aggregate = agg.WeightedPatchSum(ps=c.ps, stride0=c.stride0, itype="float")
        noise_share = 2 * (c.sigma / 255) ** 2 * c.ps * c.ps * channels
        self.temperature = max(c.temperature * noise_share, 1e-8)
        self.stride0 = c.stride0

    def __call__(self, noisy_reference: Tensor, noisy_frame: Tensor, clean_frame: Tensor,
                 flow: Tensor | None) -> Tensor:
        """Aligned ``clean_frame [C, H, W]``; ``flow [2, H, W]`` or None to search around each patch."""
        query, key = _as_video(noisy_reference), _as_video(noisy_frame)
        if flow is None:
            dists, inds = self.search(query, key)
        else:
            grid_flow = flow[:, ::self.stride0, ::self.stride0]
            dists, inds = self.search(query, key, grid_flow[None, None, None].contiguous())
        weights = torch.softmax(-dists / self.temperature, dim=-1)
        return self.aggregate(_as_video(clean_frame), weights, inds)[0, 0]


def _as_video(image: Tensor) -> Tensor:
    """``[C, H, W] -> [B=1, T=1, C, H, W]``."""
    return image[None, None]


def _frames_to_tensor(video: np.ndarray, device: torch.device) -> Tensor:
    """``[T, H, W, C]`` array -> ``[T, C, H, W]`` tensor on ``device``."""
    return torch.from_numpy(video).permute(0, 3, 1, 2).contiguous().to(device)


def _progress(total: int, description: str, enabled: bool):
    from tqdm.auto import tqdm

    return tqdm(total=total, desc=description, disable=not enabled, leave=False, unit="frame")


def run_alignment(config: AlignConfig, progress: bool = True) -> AlignResult:
    """Run the experiment described in the module docstring."""
    config.validate()
    device = resolve_device(config.device)
    clean_np = centre_crop(load_clip(config.clip, config.frames), config.crop, config.crop)
    T, H, W, C = clean_np.shape
    if min(H, W) < config.ps:
        raise DemoInputError(f"frames of {H}x{W} are smaller than a patch (ps={config.ps})")
    rng = np.random.default_rng(config.seed)
    noisy_np = (clean_np + rng.normal(0, config.sigma / 255, clean_np.shape)).astype(np.float32)
    seconds = {}

    start = time.perf_counter()
    with _progress(2 * (T - 1), "TV-L1 flow", progress) as bar:
        fflow, bflow = tvl1_flows(noisy_np.mean(-1), bar)
    flows = reference_flows(fflow, bflow, config.reference).to(device)
    seconds["flow"] = time.perf_counter() - start

    clean, noisy = _frames_to_tensor(clean_np, device), _frames_to_tensor(noisy_np, device)
    ref = config.reference
    others = [t for t in range(T) if t != ref]
    aligner = SearchAligner(config, C)
    align = {
        "flow_warp": lambda t: warp(clean[t], flows[t]),
        "nls": lambda t: aligner(noisy[ref], noisy[t], clean[t], None),
        "shifted_nls": lambda t: aligner(noisy[ref], noisy[t], clean[t], flows[t]),
    }
    aligned, scores = {}, {}
    for method, align_frame in align.items():
        start = time.perf_counter()
        out = clean.clone()
        with torch.no_grad(), _progress(len(others), METHODS[method], progress) as bar:
            for t in others:
                out[t] = align_frame(t)
                bar.update(1)
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        seconds[method] = time.perf_counter() - start
        scores[method] = [psnr(out[t], clean[ref]) for t in others]
        aligned[method] = out.permute(0, 2, 3, 1).clamp(0, 1).cpu().numpy()

    ops = ("non_local_search", "agg_gather")
    return AlignResult(config, str(device), {op: backends.describe(device, op) for op in ops},
                       H, W, others, scores, seconds, clean_np, np.clip(noisy_np, 0, 1), aligned)
