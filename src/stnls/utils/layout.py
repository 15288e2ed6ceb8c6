"""Tensor layout conversions shared by the public APIs."""

from __future__ import annotations

from torch import Tensor


def split_heads(name: str, vid: Tensor, nheads: int) -> Tensor:
    """``[B, T, HD*C, H, W] -> [B, HD, T, C, H, W]`` (a view); 6-d input is checked and returned.

    The channel axis is split head-major: channel ``c`` belongs to head ``c // C``.
    """
    if isinstance(nheads, bool) or not isinstance(nheads, int) or nheads < 1:
        raise ValueError(f"nheads must be an integer >= 1, got {nheads!r}")
    if vid.dim() == 6:
        if vid.shape[1] != nheads:
            raise ValueError(f"{name} is 6-d [B, HD, T, C, H, W] with HD={vid.shape[1]}, "
                             f"but nheads={nheads}")
        return vid
    B, T, channels, H, W = vid.shape
    if channels % nheads:
        raise ValueError(f"{name} has {channels} channels, which nheads={nheads} does not divide")
    return vid.view(B, T, nheads, channels // nheads, H, W).transpose(1, 2)
