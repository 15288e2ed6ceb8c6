"""``stnls.nn.topk``: keep the best k entries of distances and their indices."""

from __future__ import annotations

import torch
from torch import Tensor

from ..utils.checks import check_int


def _first_unique(inds_sorted: Tensor) -> Tensor:
    """Mask of entries whose index differs from every earlier entry: ``[M, S]``."""
    same = (inds_sorted[:, :, None] == inds_sorted[:, None, :]).all(-1)
    earlier = torch.ones(same.shape[-2:], dtype=torch.bool, device=same.device).tril(-1)
    return ~(same & earlier).any(-1)


def topk(dists: Tensor, inds: Tensor, k: int, dim: int = 1, anchor: bool = False,
         descending: bool = True, unique: bool = False, return_order: bool = False):
    """Best ``k`` entries of ``dists`` along ``dim``, with their indices.

    Args:
        dists (Tensor[..., S, ...]): scores; ``S`` is the size of ``dim``.
        inds (Tensor[..., S, ..., D]): one index vector of size ``D`` per score.
        k (int): how many to keep (``min(k, S)``); ``k <= 0`` returns the inputs.
        dim (int): the axis to select along. Default 1.
        anchor (bool): keep entry 0 first and take the best ``k-1`` of the rest. Default False.
        descending (bool): larger is better. Default True.
        unique (bool): skip entries whose index equals a better entry's. Default False.
        return_order (bool): also return the selected positions. Default False.

    Returns:
        ``(dists_k, inds_k)`` (and ``order``) with ``dim`` of size ``min(k, S)``;
        differentiable with respect to ``dists`` and real ``inds``.
    """
    k = check_int("k", k)
    if k <= 0:
        return (dists, inds, None) if return_order else (dists, inds)
    dim = dim % dists.dim()
    if inds.shape[:-1] != dists.shape:
        raise ValueError(f"inds must be dists.shape + (D,), got {tuple(inds.shape)} for dists "
                         f"{tuple(dists.shape)}")
    moved = dists.movedim(dim, -1)
    flat = moved.reshape(-1, moved.shape[-1])
    flat_inds = inds.movedim(dim, -2).reshape(-1, moved.shape[-1], inds.shape[-1])
    first = int(anchor)
    order = torch.sort(flat[:, first:], dim=1, descending=descending, stable=True).indices + first
    if unique:
        sorted_inds = flat_inds.gather(1, order[..., None].expand(-1, -1, flat_inds.shape[-1]))
        if anchor:
            sorted_inds = torch.cat([flat_inds[:, :1], sorted_inds], 1)
        keep = _first_unique(sorted_inds)[:, first:]
        # stable partition: unique entries first, in order
        order = order.gather(1, torch.sort((~keep).int(), dim=1, stable=True).indices)
    order = order[:, : max(k - first, 0)]
    if anchor:
        order = torch.cat([order.new_zeros(order.shape[0], 1), order], 1)
    dists_k = flat.gather(1, order)
    inds_k = flat_inds.gather(1, order[..., None].expand(-1, -1, flat_inds.shape[-1]))
    shape = (*moved.shape[:-1], order.shape[1])
    dists_k = dists_k.reshape(shape).movedim(-1, dim)
    inds_k = inds_k.reshape(*shape, inds.shape[-1]).movedim(-2, dim)
    if return_order:
        return dists_k, inds_k, order.reshape(shape).movedim(-1, dim)
    return dists_k, inds_k
