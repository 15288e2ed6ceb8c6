"""Module forms of the unfold/fold functions (original class names)."""

from __future__ import annotations

from torch import Tensor

from ..utils.modules import ConfiguredModule
from . import functional as fn


class iUnfold(ConfiguredModule):  # noqa: N801  (original name)
    """Batched unfold on a rectangle: ``m(vid, start=0, num=-1)`` is :func:`stnls.tile.iunfold`."""

    ARGUMENTS = ("ps", "coords", "stride", "dilation", "pt", "use_adj", "only_full", "border")
    function = staticmethod(fn.iunfold)

    def __init__(self, ps, coords=None, stride=1, dilation=1, pt=1, use_adj=False,
                 only_full=False, border="reflect"):
        super().__init__()
        self._store(locals())

    def forward(self, vid: Tensor, start: int = 0, num: int = -1) -> Tensor:
        return super().forward(vid, start=start, num=num)


class iFold(ConfiguredModule):  # noqa: N801
    """Batched fold on a rectangle: ``m(patches, start=0)`` is :func:`stnls.tile.ifold`
    (it returns the batch's contribution; the caller sums the batches)."""

    ARGUMENTS = ("vid_shape", "coords", "stride", "dilation", "use_adj", "only_full", "border",
                  "normalize")
    function = staticmethod(fn.ifold)

    def __init__(self, vid_shape, coords=None, stride=1, dilation=1, use_adj=False,
                 only_full=False, border="reflect", normalize="sum"):
        super().__init__()
        self._store(locals())

    def forward(self, patches: Tensor, start: int = 0) -> Tensor:
        return super().forward(patches, start=start)


class iFoldz(ConfiguredModule):  # noqa: N801
    """Batched fold with counts: ``vid, counts = m(patches, start=0)`` (:func:`stnls.tile.ifoldz`)."""

    ARGUMENTS = ("vid_shape", "coords", "stride", "dilation", "use_adj", "only_full", "border")
    function = staticmethod(fn.ifoldz)

    def __init__(self, vid_shape, coords=None, stride=1, dilation=1, use_adj=False,
                 only_full=False, border="reflect"):
        super().__init__()
        self._store(locals())

    def forward(self, patches: Tensor, start: int = 0) -> tuple[Tensor, Tensor]:
        return super().forward(patches, start=start)


class UnfoldK(ConfiguredModule):
    """Patches at absolute positions: ``m(vid, inds)`` is :func:`stnls.tile.unfold_k`."""

    ARGUMENTS = ("ps", "pt", "dilation", "use_adj", "reflect_bounds")
    function = staticmethod(fn.unfold_k)

    def __init__(self, ps, pt=1, dilation=1, use_adj=False, reflect_bounds=True):
        super().__init__()
        self._store(locals())


class FoldK(ConfiguredModule):
    """Adjoint of :class:`UnfoldK`: ``m(patches, inds, weights=None)`` is :func:`stnls.tile.fold_k`."""

    ARGUMENTS = ("vid_shape", "dilation", "use_adj", "reflect_bounds", "normalize")
    function = staticmethod(fn.fold_k)

    def __init__(self, vid_shape, dilation=1, use_adj=False, reflect_bounds=True, normalize="sum"):
        super().__init__()
        self._store(locals())

    def forward(self, patches: Tensor, inds: Tensor, weights: Tensor | None = None) -> Tensor:
        return super().forward(patches, inds, weights=weights)
