"""Module forms of the aggregation functions (they store the configuration)."""

from __future__ import annotations

from ..utils.modules import ConfiguredModule
from . import functional as fn

_COMMON = ("pt", "dilation", "reflect_bounds", "use_adj", "itype")


class WeightedPatchSum(ConfiguredModule):
    """Weighted patch sum of the search's neighbours, in the input's layout (:func:`stnls.agg.wpsum`).

    Args:
        ps (int): patch side.
        stride0 (int): query grid stride of the search.
        pt (int): temporal patch length. Default 1.
        dilation (int): spacing of patch pixels. Default 1.
        reflect_bounds (bool): mirror patch pixels at the borders. Default True.
        use_adj (bool): patch positions are top-left corners. Default False.
        itype (str): ``"float"`` (bilinear) or ``"int"``. Default ``"float"``.

    Call ``agg(vid, weights, flows)`` with ``vid [B, T, HD*C, H, W]`` (returns the
    same shape) or ``[B, HD, T, C, H, W]`` (returns 6-d).

    Examples::

        >>> agg = stnls.agg.WeightedPatchSum(ps=3, stride0=1)
        >>> V_out = agg(v_vid, weights, srch_flows)       # [B, T, F, H, W]
    """

    ARGUMENTS = ("ps", "stride0") + _COMMON
    function = staticmethod(fn.wpsum)

    def __init__(self, ps, stride0, pt=1, dilation=1, reflect_bounds=True, use_adj=False,
                 itype="float"):
        super().__init__()
        self._store(locals())


class NonLocalGather(ConfiguredModule):
    """Stack the weighted neighbour patches into ``K`` videos ``[B, HD, K, T, C, H, W]``
    (:func:`stnls.agg.gather`). Arguments as :class:`WeightedPatchSum`; defaults
    ``ps=1, stride0=1``."""

    ARGUMENTS = ("ps", "stride0") + _COMMON
    function = staticmethod(fn.gather)

    def __init__(self, ps=1, stride0=1, pt=1, dilation=1, reflect_bounds=True, use_adj=False,
                 itype="float"):
        super().__init__()
        self._store(locals())


class NonLocalScatter(NonLocalGather):
    """Exact adjoint of :class:`NonLocalGather` (same arguments):
    ``scatter(stack, weights, flows)`` returns ``[B, HD, T, C, H, W]`` (:func:`stnls.agg.scatter`)."""

    function = staticmethod(fn.scatter)


class NonLocalGatherAdd(ConfiguredModule):
    """Weighted patch sum on an output grid, ``[B, HD, T, C, outH, outW]``
    (:func:`stnls.agg.gather_add`)."""

    ARGUMENTS = ("ps", "strideIn", "strideOut", "outH", "outW") + _COMMON
    function = staticmethod(fn.gather_add)

    def __init__(self, ps, strideIn, strideOut, outH=0, outW=0, pt=1, dilation=1,
                 reflect_bounds=True, use_adj=False, itype="float"):
        super().__init__()
        self._store(locals())


class NonLocalScatterAdd(ConfiguredModule):
    """Exact adjoint of :class:`NonLocalGatherAdd` with the same arguments
    (:func:`stnls.agg.scatter_add`); ``inH, inW`` size the result."""

    ARGUMENTS = ("ps", "strideIn", "strideOut", "outH", "outW", "inH", "inW") + _COMMON
    function = staticmethod(fn.scatter_add)

    def __init__(self, ps, strideIn, strideOut, outH=0, outW=0, inH=0, inW=0, pt=1, dilation=1,
                 reflect_bounds=True, use_adj=False, itype="float"):
        super().__init__()
        self._store(locals())


class PooledPatchSum(WeightedPatchSum):
    """Weighted patch sum kept in non-overlapping ``ps x ps`` tiles,
    ``[B, HD, T, C, ps*nH, ps*nW]`` (:func:`stnls.agg.pool`). Arguments as
    :class:`WeightedPatchSum`."""

    function = staticmethod(fn.pool)
