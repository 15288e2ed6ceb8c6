"""Reading and writing pixels of channels-last videos, exactly or bilinearly.

The reference backend views a video ``[B, HD, T, C, H, W]`` as a table of rows
``[B * HD * T * H * W, C]`` (see :func:`channels_last_rows`), so that reading a
pixel is one row lookup and writing a gradient is one ``index_add_``.
"""

from __future__ import annotations

from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch import Tensor

from ...geometry import bilinear_corners, in_range, reflect


def channels_last_rows(vid: Tensor, dtype: torch.dtype) -> Tensor:
    """``[B, HD, T, C, H, W] -> [B * HD * T * H * W, C]`` in ``dtype``."""
    C = vid.shape[3]
    return vid.to(dtype).permute(0, 1, 2, 4, 5, 3).reshape(-1, C)


def rows_to_video(rows: Tensor, shape: torch.Size) -> Tensor:
    """Inverse of :func:`channels_last_rows` (returns a contiguous video)."""
    B, HD, T, C, H, W = shape
    return rows.reshape(B, HD, T, H, W, C).permute(0, 1, 2, 5, 3, 4).contiguous()


class Corner(NamedTuple):
    """One interpolation corner of a batch of sample positions.

    ``row`` indexes the channels-last table (clamped into range, so it is always
    safe to read); ``weight`` is the interpolation weight, zero for corners
    outside the frame; ``dweight_dy``/``dweight_dx`` are the derivatives of the
    weight with respect to the sample position.
    """

    row: Tensor
    weight: Tensor | None
    dweight_dy: Tensor | None
    dweight_dx: Tensor | None


def corners(frame_row: Tensor, y: Tensor, x: Tensor, H: int, W: int,
            mirror: bool = False) -> list[Corner]:
    """Corners to read for samples at ``(y, x)`` of the frames starting at ``frame_row``.

    Integer positions give one corner of weight 1 (``weight`` is None). Real
    positions give the four bilinear corners. A corner outside the frame only
    occurs with a zero weight, at a sample exactly on the last row or column;
    it reads 0 (weight and derivatives 0), or with ``mirror`` the mirrored
    pixel, so that the derivative there is the right-sided difference of the
    reflect-padded frame. Values are the same either way. All arguments broadcast.
    """
    if not y.is_floating_point():
        return [Corner(frame_row + y.clamp(0, H - 1) * W + x.clamp(0, W - 1), None, None, None)]
    y0, wy0, wy1 = bilinear_corners(y)
    x0, wx0, wx1 = bilinear_corners(x)
    rows = [axis_index(y0 + d, H, mirror) for d in (0, 1)]
    cols = [axis_index(x0 + d, W, mirror) for d in (0, 1)]
    out = []
    for (yy, y_in), wy, sy in ((rows[0], wy0, -1.0), (rows[1], wy1, 1.0)):
        for (xx, x_in), wx, sx in ((cols[0], wx0, -1.0), (cols[1], wx1, 1.0)):
            inside = (y_in & x_in).to(y.dtype)
            out.append(Corner(frame_row + yy * W + xx, wy * wx * inside, sy * wx * inside,
                              sx * wy * inside))
    return out


def axis_index(v: Tensor, size: int, mirror: bool) -> tuple[Tensor, Tensor]:
    """Integer coordinate ``v`` (mirrored once at the borders with ``mirror``) clamped
    into range, so it is safe to read, and whether it is inside."""
    if mirror:
        v = reflect(v, size)
    return v.clamp(0, size - 1), in_range(v, size)


def read(rows: Tensor, corner_list: list[Corner]) -> Tensor:
    """Interpolated values ``[..., C]`` at the corners' sample positions."""
    value = None
    for corner in corner_list:
        v = F.embedding(corner.row, rows)
        if corner.weight is not None:
            v = v * corner.weight[..., None]
        value = v if value is None else value + v
    return value


def read_gradient(rows: Tensor, corner_list: list[Corner]) -> tuple[Tensor, Tensor]:
    """Derivatives ``(dvalue/dy, dvalue/dx)``, each ``[..., C]``, of bilinear samples."""
    d_dy = d_dx = 0
    for corner in corner_list:
        v = F.embedding(corner.row, rows)
        d_dy = d_dy + v * corner.dweight_dy[..., None]
        d_dx = d_dx + v * corner.dweight_dx[..., None]
    return d_dy, d_dx


def write_add(grad_rows: Tensor, corner_list: list[Corner], grad: Tensor) -> None:
    """Adjoint of :func:`read`: scatter-add ``grad [..., C]`` to the corners."""
    C = grad_rows.shape[1]
    for corner in corner_list:
        g = grad if corner.weight is None else grad * corner.weight[..., None]
        row = corner.row.expand(g.shape[:-1])
        grad_rows.index_add_(0, row.reshape(-1), g.reshape(-1, C))
