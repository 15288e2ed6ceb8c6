"""``stnls.nn.search_flow``: one-step optical flows -> per-slot search flows."""

from __future__ import annotations

import torch
from torch import Tensor

from .. import geometry as geo
from ..utils.checks import check_int, check_same, check_tensor

torch.library.define("stnls::search_flow", "(Tensor fflow, Tensor bflow, int wt, int stride0) -> Tensor")


def _sample(flow: Tensor, y: Tensor, x: Tensor) -> Tensor:
    """Bilinear samples of ``flow [N, 2, H, W]`` at ``(y, x) [N, M]`` -> ``[N, 2, M]``.

    Weights come from the unreflected position and each corner index is
    reflected once (equal to reflect-padded bilinear sampling within one image
    size of the border; further out the index is clamped).
    """
    N, _, H, W = flow.shape
    y0, wy0, wy1 = geo.bilinear_corners(y)
    x0, wx0, wx1 = geo.bilinear_corners(x)
    table = flow.reshape(N, 2, H * W)
    out = 0
    for dy, wy in ((0, wy0), (1, wy1)):
        for dx, wx in ((0, wx0), (1, wx1)):
            row = geo.reflect(y0 + dy, H).clamp(0, H - 1)
            col = geo.reflect(x0 + dx, W).clamp(0, W - 1)
            index = (row * W + col)[:, None].expand(N, 2, -1)
            out = out + (wy * wx)[:, None] * table.gather(2, index)
    return out


@torch.library.impl("stnls::search_flow", "CompositeImplicitAutograd")
def _search_flow(fflow: Tensor, bflow: Tensor, wt: int, stride0: int) -> Tensor:
    B, T, _, H, W = fflow.shape
    nH, nW = geo.grid_size(H, stride0), geo.grid_size(W, stride0)
    slots = min(2 * wt + 1, T)
    frames = torch.arange(T, device=fflow.device)
    t_max = geo.last_frame_of_window(frames, wt, T)
    grid_h = (torch.arange(nH, device=fflow.device, dtype=fflow.dtype) * stride0)[:, None].expand(nH, nW)
    grid_w = (torch.arange(nW, device=fflow.device, dtype=fflow.dtype) * stride0)[None, :].expand(nH, nW)
    start_h = grid_h.reshape(1, -1).expand(B * T, -1)
    start_w = grid_w.reshape(1, -1).expand(B * T, -1)
    pos_h, pos_w = start_h, start_w
    out = []
    for slot in range(1, slots):
        target = geo.frame_of_slot(frames, slot, wt, T)
        restart = (frames + slot - 1 == t_max).repeat(B)[:, None]
        pos_h, pos_w = torch.where(restart, start_h, pos_h), torch.where(restart, start_w, pos_w)
        forward = target > frames
        source = torch.where(forward, target - 1, target + 1)
        step = torch.where(forward[None, :, None, None, None], fflow[:, source], bflow[:, source])
        delta = _sample(step.reshape(B * T, 2, H, W), pos_h, pos_w)
        pos_h, pos_w = pos_h + delta[:, 1], pos_w + delta[:, 0]
        out.append(torch.stack([pos_w - start_w, pos_h - start_h], 1))
    if not out:
        return fflow.new_zeros((B, T, 0, 2, nH, nW))
    return torch.stack(out, 1).reshape(B, T, slots - 1, 2, nH, nW)


def search_flow(fflow: Tensor, bflow: Tensor, wt: int, stride0: int = 1) -> Tensor:
    """Accumulate one-step flows into the search flows of every temporal slot.

    Args:
        fflow (Tensor[B, T, 2, H, W]): flow from frame t to t+1 (channel 0 = dx, 1 = dy).
        bflow (Tensor[B, T, 2, H, W]): flow from frame t to t-1.
        wt (int): temporal half-window; ``W_t = min(2*wt+1, T)`` frames.
        stride0 (int): query grid stride. Default 1.

    Returns:
        Tensor[B, T, W_t-1, 2, nH, nW]: slot ``s`` holds the displacement from each
        query ``(t, nh*stride0, nw*stride0)`` to frame ``frame_of_slot(t, s+1)``,
        chained through the one-step flows (bilinear, reflecting at the borders).
        Differentiable with respect to both flows.
    """
    fflow = check_tensor("fflow", fflow, (5,))
    bflow = check_tensor("bflow", bflow, (5,))
    if fflow.shape != bflow.shape or fflow.shape[2] != 2:
        raise ValueError(f"fflow and bflow must both be [B, T, 2, H, W], got {tuple(fflow.shape)} "
                         f"and {tuple(bflow.shape)}")
    check_same(("fflow", "bflow"), fflow, bflow)
    wt = check_int("wt", wt, minimum=0)
    stride0 = check_int("stride0", stride0, minimum=1)
    return torch.ops.stnls.search_flow(fflow, bflow, wt, stride0)
