"""The one primitive behind aggregation and tiling: a weighted patch map.

An op of this family is described by *taps*: for each item (a query) of a
chunk, each of its ``K`` neighbours and each patch element, a row ``dest`` of
a destination table, source sample corners (exact or bilinear) in a source
table, and whether the pair is valid. With weights ``w[n, k]``:

* :func:`gather_rows` reads: ``dest[d] += w * src(n)`` (gather, unfold),
* :func:`scatter_rows` is its exact adjoint: ``src(n) += w * dest[d]``
  (scatter, fold),
* :func:`pair_gradients` differentiates ``<y, A x>`` with respect to the
  weights and the sample positions.

Tables are channels-last rows ``[rows, C]`` (see :mod:`.sampling`). Invalid
taps must point at row 0 and are masked here, so NaN or inf in a table never
leaks through a skipped pair.
"""

from __future__ import annotations

from typing import Callable, Iterable, NamedTuple

import torch
import torch.nn.functional as F
from torch import Tensor

from ...utils.env import chunk_size
from .sampling import Corner, read, read_gradient, write_add


class Tap(NamedTuple):
    """One patch element of a chunk, all ``[N, K]``."""

    dest: Tensor            # row of the destination table (0 where invalid)
    corners: list[Corner]   # source sample corners
    valid: Tensor           # the pair contributes
    sign_y: Tensor | None   # d(sample row)/d(offset row): -1 where a reflection flipped it
    sign_x: Tensor | None


TapFn = Callable[[Tensor], Iterable[Tap]]


def chunks(total: int, bytes_per_item: int, device) -> Iterable[Tensor]:
    """Consecutive index ranges ``[start, stop)`` sized from the memory budget."""
    step = chunk_size(bytes_per_item)
    for start in range(0, total, step):
        yield torch.arange(start, min(start + step, total), device=device)


def gather_rows(src: Tensor, dest: Tensor, taps: Iterable[Tap], weights: Tensor,
                reader: Callable = read) -> None:
    """``dest[tap.dest] += weights * src(tap.corners)`` for every valid tap.

    ``reader(src, corners)`` samples the source (default: a channels-last row table).
    """
    C = dest.shape[1]
    for tap in taps:
        value = torch.where(tap.valid[..., None], reader(src, tap.corners) * weights[..., None], 0)
        if tap.dest.shape[-1] == 1 < value.shape[-2]:  # all neighbours write one row: add first
            value = value.sum(-2, keepdim=True)
        dest.index_add_(0, tap.dest.expand(value.shape[:-1]).reshape(-1), value.reshape(-1, C))


def scatter_rows(dest: Tensor, src_out: Tensor, taps: Iterable[Tap], weights: Tensor,
                 write: Callable = write_add) -> None:
    """Adjoint of :func:`gather_rows`: ``src_out(tap.corners) += weights * dest[tap.dest]``.

    ``write(src_out, corners, values)`` does the adding (default: into a
    channels-last row table).
    """
    for tap in taps:
        value = F.embedding(tap.dest, dest) * weights[..., None]
        write(src_out, tap.corners, torch.where(tap.valid[..., None], value, 0))


def pair_gradients(dest: Tensor, src: Tensor, taps: Iterable[Tap], weights: Tensor,
                   offsets: bool) -> tuple[Tensor, Tensor | None, Tensor | None]:
    """Derivatives of ``<dest, A src>`` by the weights and (``offsets``) the sample rows/columns.

    Returns ``grad_weights [N, K]`` and, with ``offsets``, the gradients of the
    row and column offsets ``[N, K]`` (chained through reflections by the taps'
    signs), else None.
    """
    grad_w = torch.zeros_like(weights)
    grad_y = torch.zeros_like(weights) if offsets else None
    grad_x = torch.zeros_like(weights) if offsets else None
    for tap in taps:
        y = F.embedding(tap.dest, dest)
        grad_w += torch.where(tap.valid, (y * read(src, tap.corners)).sum(-1), 0)
        if offsets:
            d_dy, d_dx = read_gradient(src, tap.corners)
            grad_y += torch.where(tap.valid, (y * d_dy).sum(-1) * weights * tap.sign_y, 0)
            grad_x += torch.where(tap.valid, (y * d_dx).sum(-1) * weights * tap.sign_x, 0)
    return grad_w, grad_y, grad_x
