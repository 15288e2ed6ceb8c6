"""Validated parameter sets of the ops.

A parameter set is built once in the public API (where bad values raise a
``ValueError`` naming the argument), passed through the ``torch.library`` op
schema as three lists (``as_args``), and rebuilt inside the op for the backends.
Derived sizes (number of temporal slots, candidates, kept neighbours) are
computed here and nowhere else.
"""

from __future__ import annotations

import dataclasses
import functools
from dataclasses import dataclass

import torch

from .utils.checks import check_choice, check_int, check_positive_real

DIST_TYPES = ("l2", "prod")
ITYPES = ("int", "float")
TOPK_MODES = ("all", "each", "none")
SELF_ACTIONS = (None, "anchor", "anchor_self", "anchor_each", "remove", "remove_ref_frame",
                "anchor_and_remove_ref_frame")
# Value stored in inds entries no candidate ever wrote (only with ws_interior).
UNWRITTEN_IND = -100000000
# Schema arguments of a parameter set (see _SchemaFields).
PARAMS_SCHEMA = "int[] ints, float[] reals, str[] names"


def memoised(function):
    """``function`` run once per distinct set of arguments (an op call would otherwise
    spend about as long checking and packing its parameters as launching a small kernel).
    Arguments that are not hashable are handled every time, and so is every call that
    ``torch.compile`` traces (it would trace the function anyway, and warn about the
    cache); ``typed``: ``3`` and ``3.0`` are different arguments. Failed calls (errors)
    are never cached."""
    cached = functools.lru_cache(maxsize=256, typed=True)(function)

    @functools.wraps(function)
    def call(*args, **kwargs):
        if torch.compiler.is_compiling():
            return function(*args, **kwargs)
        try:
            hash((args, tuple(kwargs.items())))
        except TypeError:
            return function(*args, **kwargs)
        return cached(*args, **kwargs)

    return call


@memoised
def _packed(params) -> tuple[tuple[int, ...], tuple[float, ...], tuple[str, ...]]:
    ints, reals, names = [], [], []
    for field in dataclasses.fields(params):
        value = getattr(params, field.name)
        if field.type in ("int", "bool"):
            ints.append(int(value))
        elif field.type == "float":
            reals.append(float(value))
        else:
            names.append("" if value is None else value)
    return tuple(ints), tuple(reals), tuple(names)


@memoised
def _unpacked(cls, ints: tuple, reals: tuple, names: tuple):
    ints, reals, names = iter(ints), iter(reals), iter(names)
    values = []
    for field in dataclasses.fields(cls):
        if field.type == "int":
            values.append(next(ints))
        elif field.type == "bool":
            values.append(bool(next(ints)))
        elif field.type == "float":
            values.append(next(reals))
        elif field.type == "str | None":
            values.append(next(names) or None)
        else:
            values.append(next(names))
    return cls(*values)


class _SchemaFields:
    """A parameter dataclass as op arguments: three lists (``PARAMS_SCHEMA``), the int and
    bool fields, the float fields and the string fields (``None`` sent as ""), each in
    field order. Few schema arguments keep ``torch.library``'s per-call handling of
    the arguments cheap (it is quadratic in their number)."""

    def as_args(self) -> tuple[tuple[int, ...], tuple[float, ...], tuple[str, ...]]:
        """The fields packed for an op call (see the class doc); made once per parameter set."""
        return _packed(self)

    @classmethod
    def from_args(cls, ints, reals, names):
        """The parameter set :meth:`as_args` packed."""
        return _unpacked(cls, tuple(ints), tuple(reals), tuple(names))


@dataclass(frozen=True)
class SearchParams(_SchemaFields):
    """Parameters of :class:`stnls.search.NonLocalSearch`, normalised.

    See the class docstring for their meaning. ``stride1`` is already the
    integer step for ``itype="int"`` and ``strideQ`` is resolved to an int.
    """

    ws: int
    wt: int
    ps: int
    k: int
    stride0: int
    stride1: float
    strideQ: int
    dist_type: str
    dilation: int
    pt: int
    self_action: str | None
    topk_mode: str
    ws_interior: int
    reflect_bounds: bool
    full_ws: bool
    use_adj: bool
    normalize_bwd: bool
    k_agg: int
    off_Hq: int
    off_Wq: int
    itype: str

    @classmethod
    @memoised
    def create(cls, ws, wt, ps=1, k=-1, stride0=1, stride1=1, strideQ=None, dist_type="l2",
               dilation=1, pt=1, self_action=None, topk_mode="all", ws_interior=0,
               reflect_bounds=True, full_ws=True, use_adj=False, normalize_bwd=False,
               k_agg=-1, off_Hq=0, off_Wq=0, itype="float") -> "SearchParams":
        """Check every argument and return the normalised parameter set."""
        check_choice("itype", itype, ITYPES)
        check_choice("dist_type", dist_type, DIST_TYPES)
        check_choice("topk_mode", topk_mode, TOPK_MODES)
        check_choice("self_action", self_action, SELF_ACTIONS)
        ws = check_int("ws", ws, minimum=1)
        wt = check_int("wt", wt, minimum=0)
        ps = check_int("ps", ps, minimum=1)
        k = check_int("k", k)
        stride0 = check_int("stride0", stride0, minimum=1)
        stride1 = check_positive_real("stride1", stride1)
        strideQ = stride0 if strideQ is None else check_int("strideQ", strideQ, minimum=1)
        dilation = check_int("dilation", dilation, minimum=1)
        pt = check_int("pt", pt, minimum=1)
        ws_interior = check_int("ws_interior", ws_interior)
        if ws_interior > ws:
            raise ValueError(f"ws_interior must be <= ws={ws} (or <= 0 to use ws), got {ws_interior}")
        k_agg = check_int("k_agg", k_agg)
        off_Hq = check_int("off_Hq", off_Hq)
        off_Wq = check_int("off_Wq", off_Wq)
        if topk_mode == "none" and k > 0:
            raise ValueError(f"topk_mode='none' keeps every candidate and needs k <= 0, got k={k}")
        if self_action == "remove" and topk_mode == "each":
            raise ValueError("self_action='remove' needs topk_mode='all' (it removes one candidate "
                             "of the query's own frame only)")
        if self_action in ("remove_ref_frame", "anchor_and_remove_ref_frame") and wt == 0:
            raise ValueError(f"self_action={self_action!r} removes the query's own frame and needs "
                             "wt >= 1")
        if itype == "int":
            stride1 = float(max(1, int(stride1)))
        if normalize_bwd and stride1 != int(stride1):
            raise ValueError(f"normalize_bwd needs an integer stride1, got {stride1}")
        return cls(ws, wt, ps, k, stride0, float(stride1), strideQ, dist_type, dilation, pt,
                   self_action, topk_mode, ws_interior if 0 < ws_interior < ws else ws,
                   bool(reflect_bounds), bool(full_ws), bool(use_adj), bool(normalize_bwd),
                   k_agg, off_Hq, off_Wq, itype)

    # -- derived sizes --

    @property
    def window_frames(self) -> int:
        """``W_t = 2 * wt + 1``: frames searched per query."""
        return 2 * self.wt + 1

    @property
    def drops_ref_frame(self) -> bool:
        return self.self_action in ("remove_ref_frame", "anchor_and_remove_ref_frame")

    @property
    def num_slots(self) -> int:
        """Temporal slots left after self_action (slot 0 may be removed)."""
        return self.window_frames - int(self.drops_ref_frame)

    @property
    def num_candidates(self) -> int:
        """Candidates per query before top-k."""
        return self.num_slots * self.ws * self.ws - int(self.self_action == "remove")

    @property
    def anchored(self) -> bool:
        """Whether top-k keeps position 0 (of the query, or of each slot) in place."""
        return self.self_action in ("anchor", "anchor_self", "anchor_each",
                                    "anchor_and_remove_ref_frame")

    @property
    def num_neighbors(self) -> int:
        """``K``, the size of the last axis of ``dists``."""
        if self.k <= 0 or self.topk_mode == "none":
            return self.num_candidates
        if self.topk_mode == "each":
            return self.num_slots * min(self.k, self.ws * self.ws)
        return min(self.k, self.num_candidates)

    @property
    def descending(self) -> bool:
        """Larger is better for "prod", smaller for "l2"."""
        return self.dist_type == "prod"

    @property
    def invalid(self) -> float:
        """Distance of a candidate outside the key video: the worst possible value."""
        return float("-inf") if self.descending else float("inf")


BORDERS = ("reflect", "zero")


@dataclass(frozen=True)
class AggParams(_SchemaFields):
    """Parameters of the aggregation ops (:mod:`stnls.agg`), normalised.

    Query ``(t, i, j)`` reads its neighbours around ``(t, i * stride_in, j * stride_in)``
    of an ``in_h x in_w`` video and writes at ``(t, i * stride_out, j * stride_out)``
    of an ``out_h x out_w`` one. ``sum_k`` adds the ``K`` neighbours into one
    video instead of stacking them; ``pooled`` writes each query's patch into its
    own ``ps x ps`` tile (:class:`stnls.agg.PooledPatchSum`).
    """

    ps: int
    stride_in: int
    stride_out: int
    in_h: int
    in_w: int
    out_h: int
    out_w: int
    pt: int
    dilation: int
    reflect_bounds: bool
    use_adj: bool
    itype: str
    sum_k: bool
    pooled: bool

    @classmethod
    @memoised
    def create(cls, ps, stride_in, stride_out, in_h, in_w, out_h=0, out_w=0, pt=1, dilation=1,
               reflect_bounds=True, use_adj=False, itype="float", sum_k=True,
               pooled=False) -> "AggParams":
        """Check every argument; ``out_h/out_w = 0`` pick the default output size.

        The default is the input size, except with ``stride_out = 1`` and a
        coarser input grid, where it is the query grid size.
        """
        check_choice("itype", itype, ITYPES)
        ps = check_int("ps", ps, minimum=1)
        stride_in = check_int("stride_in", stride_in, minimum=1)
        stride_out = check_int("stride_out", stride_out, minimum=1)
        in_h, in_w = check_int("H", in_h, minimum=1), check_int("W", in_w, minimum=1)
        out_h, out_w = check_int("outH", out_h, minimum=0), check_int("outW", out_w, minimum=0)
        pt = check_int("pt", pt, minimum=1)
        dilation = check_int("dilation", dilation, minimum=1)
        n_h, n_w = (in_h - 1) // stride_in + 1, (in_w - 1) // stride_in + 1
        if pooled:
            if pt != 1:
                raise ValueError(f"PooledPatchSum supports pt=1 only, got pt={pt}")
            out_h, out_w = ps * n_h, ps * n_w
        else:
            out_h = out_h or (n_h if stride_out == 1 and stride_in > 1 else in_h)
            out_w = out_w or (n_w if stride_out == 1 and stride_in > 1 else in_w)
            for name, size, n in (("outH", out_h, n_h), ("outW", out_w, n_w)):
                if (size - 1) // stride_out + 1 != n:
                    raise ValueError(f"{name}={size} with strideOut={stride_out} gives a query grid of "
                                     f"{(size - 1) // stride_out + 1}, but the input grid has {n} "
                                     f"(strideIn={stride_in})")
        return cls(ps, stride_in, stride_out, in_h, in_w, out_h, out_w, pt, dilation,
                   bool(reflect_bounds), bool(use_adj), itype, bool(sum_k), bool(pooled))

    @property
    def grid(self) -> tuple[int, int]:
        """Query grid ``(nH, nW)``."""
        return (self.in_h - 1) // self.stride_in + 1, (self.in_w - 1) // self.stride_in + 1


@dataclass(frozen=True)
class TileParams(_SchemaFields):
    """Parameters of the patch unfold/fold ops (:mod:`stnls.tile`), normalised.

    Patches are read from a ``T x H x W`` video around absolute positions;
    patch pixels outside the half-open box ``[top, btm) x [left, right)`` are
    mirrored back into it once (``reflect``) or count as zero.
    """

    T: int
    H: int
    W: int
    ps: int
    pt: int
    dilation: int
    use_adj: bool
    reflect: bool
    top: int
    left: int
    btm: int
    right: int

    @classmethod
    @memoised
    def create(cls, T, H, W, ps, pt=1, dilation=1, use_adj=False, reflect=True,
               box=None) -> "TileParams":
        """Check every argument; ``box`` is ``(top, left, btm, right)``, default the frame."""
        T, H, W = (check_int(name, v, minimum=1) for name, v in (("T", T), ("H", H), ("W", W)))
        ps = check_int("ps", ps, minimum=1)
        pt = check_int("pt", pt, minimum=1)
        dilation = check_int("dilation", dilation, minimum=1)
        top, left, btm, right = check_rectangle("coords", box, H, W)
        return cls(T, H, W, ps, pt, dilation, bool(use_adj), bool(reflect), top, left, btm, right)


def check_rectangle(name: str, coords, H: int, W: int) -> tuple[int, int, int, int]:
    """``coords = (top, left, btm, right)``, a non-empty half-open box inside an ``H x W`` frame.

    None means the whole frame.
    """
    if coords is None:
        return 0, 0, H, W
    if len(coords) != 4:
        raise ValueError(f"{name} must be (top, left, btm, right), got {coords!r}")
    top, left, btm, right = (check_int(name, v) for v in coords)
    if not (0 <= top < btm <= H and 0 <= left < right <= W):
        raise ValueError(f"{name}=(top, left, btm, right)={tuple(coords)} must be a non-empty box "
                         f"inside the {H}x{W} frame: 0 <= top < btm <= {H}, 0 <= left < right <= {W}")
    return top, left, btm, right
