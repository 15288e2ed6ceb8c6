"""Module forms of the unfold/fold functions (original class names)."""

from __future__ import annotations

import torch
from torch import Tensor

from . import functional as fn


class _Configured(torch.nn.Module):
    _ARGUMENTS: tuple[str, ...] = ()

    def _store(self, arguments: dict) -> None:
        for name in self._ARGUMENTS:
            setattr(self, name, arguments[name])

    def _kwargs(self) -> dict:
        return {name: getattr(self, name) for name in self._ARGUMENTS}

    def extra_repr(self) -> str:
        return ", ".join(f"{name}={getattr(self, name)!r}" for name in self._ARGUMENTS)


class iUnfold(_Configured):  # noqa: N801  (original name)
    """Batched unfold on a rectangle: ``m(vid, start=0, num=-1)`` is :func:`stnls.tile.iunfold`."""

    _ARGUMENTS = ("ps", "coords", "stride", "dilation", "pt", "use_adj", "only_full", "border")

    def __init__(self, ps, coords=None, stride=1, dilation=1, pt=1, use_adj=False,
                 only_full=False, border="reflect"):
        super().__init__()
        self._store(locals())

    def forward(self, vid: Tensor, start: int = 0, num: int = -1) -> Tensor:
        return fn.iunfold(vid, start=start, num=num, **self._kwargs())


class iFold(_Configured):  # noqa: N801
    """Batched fold on a rectangle: ``m(patches, start=0)`` is :func:`stnls.tile.ifold`
    (it returns the batch's contribution; the caller sums the batches)."""

    _ARGUMENTS = ("vid_shape", "coords", "stride", "dilation", "use_adj", "only_full", "border",
                  "normalize")

    def __init__(self, vid_shape, coords=None, stride=1, dilation=1, use_adj=False,
                 only_full=False, border="reflect", normalize="sum"):
        super().__init__()
        self._store(locals())

    def forward(self, patches: Tensor, start: int = 0) -> Tensor:
        return fn.ifold(patches, start=start, **self._kwargs())


class iFoldz(_Configured):  # noqa: N801
    """Batched fold with counts: ``vid, counts = m(patches, start=0)`` (:func:`stnls.tile.ifoldz`)."""

    _ARGUMENTS = ("vid_shape", "coords", "stride", "dilation", "use_adj", "only_full", "border")

    def __init__(self, vid_shape, coords=None, stride=1, dilation=1, use_adj=False,
                 only_full=False, border="reflect"):
        super().__init__()
        self._store(locals())

    def forward(self, patches: Tensor, start: int = 0) -> tuple[Tensor, Tensor]:
        return fn.ifoldz(patches, start=start, **self._kwargs())


class UnfoldK(_Configured):
    """Patches at absolute positions: ``m(vid, inds)`` is :func:`stnls.tile.unfold_k`."""

    _ARGUMENTS = ("ps", "pt", "dilation", "use_adj", "reflect_bounds")

    def __init__(self, ps, pt=1, dilation=1, use_adj=False, reflect_bounds=True):
        super().__init__()
        self._store(locals())

    def forward(self, vid: Tensor, inds: Tensor) -> Tensor:
        return fn.unfold_k(vid, inds, **self._kwargs())


class FoldK(_Configured):
    """Adjoint of :class:`UnfoldK`: ``m(patches, inds, weights=None)`` is :func:`stnls.tile.fold_k`."""

    _ARGUMENTS = ("vid_shape", "dilation", "use_adj", "reflect_bounds", "normalize")

    def __init__(self, vid_shape, dilation=1, use_adj=False, reflect_bounds=True, normalize="sum"):
        super().__init__()
        self._store(locals())

    def forward(self, patches: Tensor, inds: Tensor, weights: Tensor | None = None) -> Tensor:
        return fn.fold_k(patches, inds, weights=weights, **self._kwargs())
