"""Public API of the non-local search: argument checks, layouts, the module."""

from __future__ import annotations

import torch
from torch import Tensor

from .._ops import search as ops
from ..geometry import grid_size
from ..params import SearchParams
from ..utils.checks import check_same, check_tensor
from ..utils.layout import split_heads
from ..utils.modules import ConfiguredModule


def _normalise_flows(flows: Tensor | None, vid0: Tensor, vid1: Tensor, p: SearchParams) -> Tensor:
    """Flows as ``[B, HDf, T, Wf, 2, nH, nW]``; zeros when there are none."""
    B, _, T = vid0.shape[:3]
    nH, nW = grid_size(vid1.shape[-2], p.stride0), grid_size(vid1.shape[-1], p.stride0)
    if flows is None:
        return vid0.new_zeros((B, 1, T, p.window_frames - 1, 2, nH, nW))
    flows = check_tensor("flows", flows, (6, 7), floating=False)
    check_same(("vid0", "flows"), vid0, flows, "device")
    if not flows.is_floating_point():
        flows = flows.float()
    return flows if flows.dim() == 7 else flows[:, None]


def nls(vid0: Tensor, vid1: Tensor, flows: Tensor | None, ws: int, wt: int, ps: int = 1,
        k: int = -1, nheads: int = 1, stride0: int = 1, stride1: float = 1, dist_type: str = "l2",
        dilation: int = 1, pt: int = 1, self_action: str | None = None, topk_mode: str = "all",
        ws_interior: int = 0, reflect_bounds: bool = True, full_ws: bool = True,
        use_adj: bool = False, normalize_bwd: bool = False, k_agg: int = -1, off_Hq: int = 0,
        off_Wq: int = 0, strideQ: int | None = None, itype: str = "float") -> tuple[Tensor, Tensor]:
    """Space-time non-local search (functional form of :class:`NonLocalSearch`).

    Args:
        vid0 (Tensor[B, T, HD*C, qH, qW] or Tensor[B, HD, T, C, qH, qW]): queries.
        vid1 (Tensor[B, T, HD*C, kH, kW] or Tensor[B, HD, T, C, kH, kW]): keys;
            same layout, B, T, C, dtype and device as ``vid0``.
        flows (Tensor[B, T, W_t-1 or W_t, 2, nH, nW], Tensor[B, 1 or HD, T, W_t-1 or W_t, 2, nH, nW]
            or None): accumulated displacement (channel 0 = dx, 1 = dy) from each query
            to the centre of its search window in each other frame of the temporal
            window (see :func:`stnls.nn.search_flow`). With ``W_t - 1`` slots the query's
            own frame is searched around the query itself. None means zero flows.
        Other arguments: see :class:`NonLocalSearch`.

    Returns:
        dists (Tensor[B, HD, T, nH, nW, K]): patch distances, best first, ``nH = (kH-1)//stride0+1``.
        inds (Tensor[B, HD, T, nH, nW, K, 3]): relative offsets ``(dt, dh, dw)`` of each
        neighbour from its query's grid position; int32 for ``itype="int"``, else real.
    """
    p = SearchParams.create(ws, wt, ps, k, stride0, stride1, strideQ, dist_type, dilation, pt,
                            self_action, topk_mode, ws_interior, reflect_bounds, full_ws, use_adj,
                            normalize_bwd, k_agg, off_Hq, off_Wq, itype)
    vid0 = check_tensor("vid0", vid0, (5, 6))
    vid1 = check_tensor("vid1", vid1, (5, 6))
    if vid0.dim() != vid1.dim():
        raise ValueError(f"vid0 and vid1 must both be 5-d or both 6-d, got shapes "
                         f"{tuple(vid0.shape)} and {tuple(vid1.shape)}")
    check_same(("vid0", "vid1"), vid0, vid1)
    vid0, vid1 = split_heads("vid0", vid0, nheads), split_heads("vid1", vid1, nheads)
    flows = _normalise_flows(flows, vid0, vid1, p)
    return ops.search(vid0, vid1, flows, *p.as_args())


_ARGUMENTS = ("ws", "wt", "ps", "k", "nheads", "stride0", "stride1", "dist_type", "dilation", "pt",
              "self_action", "topk_mode", "ws_interior", "reflect_bounds", "full_ws", "use_adj",
              "normalize_bwd", "k_agg", "off_Hq", "off_Wq", "strideQ", "itype")


class NonLocalSearch(ConfiguredModule):
    """Space-time non-local search.

    For every query patch of ``vid0`` (on a grid of stride ``stride0``), scores
    the ``ws x ws`` candidate patches of ``vid1`` around the query's
    flow-displaced location in each of the ``W_t = 2*wt+1`` frames of its
    temporal window, and keeps the best ``k``. Differentiable with respect to
    both videos and, for ``itype="float"``, the flows.

    Args:
        ws (int): spatial window side (``ws x ws`` candidates per frame).
        wt (int): temporal half-window; ``W_t = 2*wt+1`` frames (shifted, not
            truncated, near the ends of the video). The video needs ``T >= W_t``.
        ps (int): patch side. Default 1.
        k (int): neighbours kept per query; ``k <= 0`` keeps all. Default -1.
        nheads (int): heads a 5-d video's channels are split into (head-major). Default 1.
        stride0 (int): query grid stride. Default 1.
        stride1 (float): step between candidates; may be fractional with
            ``itype="float"`` (bilinear sampling); ``itype="int"`` uses ``max(1, int(stride1))``. Default 1.
        dist_type (str): ``"l2"`` (sum of squared differences, smaller is better) or
            ``"prod"`` (sum of products, larger is better). Default ``"l2"``.
        dilation (int): spacing of patch pixels. Default 1.
        pt (int): temporal patch length (frames reflected at the ends). Default 1.
        self_action (str or None): None, ``"anchor"``/``"anchor_self"`` (the query's own
            location first), ``"anchor_each"`` (each frame's window centre first in its
            frame), ``"remove"`` (drop the query's own location),
            ``"remove_ref_frame"`` (skip the query's frame),
            ``"anchor_and_remove_ref_frame"``. Default None.
        topk_mode (str): ``"all"`` (best ``k`` over the whole window), ``"each"`` (best
            ``k`` per frame) or ``"none"`` (keep all; needs ``k <= 0``). Default ``"all"``.
        ws_interior (int): if ``0 < ws_interior < ws``, queries off the last grid row and
            column search only ``ws_interior x ws_interior``; the rest of their window
            holds the invalid distance and index -100000000. Default 0.
        reflect_bounds (bool): reflect patch pixels at the borders; otherwise pixels
            outside are skipped. Default True.
        full_ws (bool): slide the window to stay inside the frame. Default True.
        use_adj (bool): patch positions are top-left corners instead of centres. Default False.
        normalize_bwd (bool): divide video gradients by the patch coverage count. Default False.
        k_agg (int): if > 0, only the first ``k_agg`` neighbours get gradients. Default -1.
        off_Hq, off_Wq (int): offsets added to the query patch position only. Default 0.
        strideQ (int or None): stride of query pixels in ``vid0`` (default ``stride0``),
            for a ``vid0`` of another resolution than ``vid1``.
        itype (str): ``"float"`` (real offsets, bilinear keys, gradients to flows) or
            ``"int"`` (integer offsets, flows rounded). Default ``"float"``.

    Call forms: ``search(vid0, vid1)`` (no flows), ``search(vid0, vid1, flows)`` and
    ``search(vid0, vid1, fflow, bflow)`` with one-step optical flows ``[B, T, 2, kH, kW]``
    (accumulated by :func:`stnls.nn.search_flow`). Shapes are those of :func:`nls`.

    Examples::

        >>> search = stnls.search.NonLocalSearch(ws=5, wt=2, ps=3, k=10, nheads=2, stride1=0.5)
        >>> q, key = torch.randn(2, 1, 5, 16, 32, 32).unbind(0)
        >>> dists, inds = search(q, key)
        >>> dists.shape, inds.shape
        (torch.Size([1, 2, 5, 32, 32, 10]), torch.Size([1, 2, 5, 32, 32, 10, 3]))
    """

    ARGUMENTS = _ARGUMENTS
    function = staticmethod(nls)

    def __init__(self, ws, wt, ps=1, k=-1, nheads=1, stride0=1, stride1=1, dist_type="l2",
                 dilation=1, pt=1, self_action=None, topk_mode="all", ws_interior=0,
                 reflect_bounds=True, full_ws=True, use_adj=False, normalize_bwd=False, k_agg=-1,
                 off_Hq=0, off_Wq=0, strideQ=None, itype="float"):
        super().__init__()
        self._store(locals())
        self.params  # validate now rather than at the first call

    @property
    def params(self) -> SearchParams:
        """The checked, normalised parameters."""
        return SearchParams.create(**{name: getattr(self, name) for name in _ARGUMENTS
                                      if name != "nheads"})

    def forward(self, vid0: Tensor, vid1: Tensor, *flows: Tensor) -> tuple[Tensor, Tensor]:
        if len(flows) == 2:
            from ..nn import search_flow
            flows = (search_flow(flows[0], flows[1], self.wt, self.stride0),)
        if len(flows) > 1:
            raise TypeError("NonLocalSearch takes (vid0, vid1), (vid0, vid1, flows) or "
                            f"(vid0, vid1, fflow, bflow); got {2 + len(flows)} tensors")
        return super().forward(vid0, vid1, flows[0] if flows else None)

    def flops(self, T: int, F: int, H: int, W: int) -> int:
        """Multiply-adds of the distance computation for a ``[T, F, H, W]`` video."""
        p = self.params
        queries = T * grid_size(H, p.stride0) * grid_size(W, p.stride0)
        return 2 * queries * p.window_frames * p.ws * p.ws * p.ps * p.ps * p.pt * F

    def radius(self, H: int | None = None, W: int | None = None) -> int:
        """The spatial window size ``ws`` (as in the original library)."""
        return self.params.ws
