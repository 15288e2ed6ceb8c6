"""Brute-force definitions in plain Python loops, for tiny sizes only.

Written straight from the written semantics (one query, one candidate, one
pixel at a time, in float64) without the library's geometry module, so that the
vectorised implementations are checked against an independent transcription.
"""

from __future__ import annotations

import math

import torch


def reflect(v, size):
    if v < 0:
        return -v
    if v > size - 1:
        return 2 * (size - 1) - v
    return v


def inside(v, size):
    return 0 <= v <= size - 1


def window_frames(t, wt, T):
    shift = min(0, t - wt) + max(0, t + wt - (T - 1))
    t_max = min(T - 1, t + wt - shift)
    return [t + s if t + s <= t_max else t_max - s for s in range(2 * wt + 1)]


def window_offset(a, stride1, ws, size, full_ws):
    off = (ws - 1) // 2
    if full_ws:
        if a - stride1 * off < 0:
            off = math.floor(a / stride1)
        if a + stride1 * ((ws - 1) - off) > size - 1:
            off = math.ceil((a - (size - 1)) / stride1 + (ws - 1))
    return off


def bilinear(frame, y, x):
    """``frame [C, H, W]`` sampled at real ``(y, x)``; out-of-range corners dropped."""
    C, H, W = frame.shape
    out = [0.0] * C
    for dy in (0, 1):
        for dx in (0, 1):
            yy, xx = math.floor(y) + dy, math.floor(x) + dx
            weight = max(0.0, 1 - abs(yy - y)) * max(0.0, 1 - abs(xx - x))
            if inside(yy, H) and inside(xx, W):
                for c in range(C):
                    out[c] += weight * float(frame[c, yy, xx])
    return out


def patch_distance(vid0, vid1, t, hq, wq, t2, ph, pw, p):
    """Distance between the query patch at ``(t, hq, wq)`` and the key patch at
    ``(t2, ph, pw)`` of one (batch, head): ``vid [T, C, H, W]``."""
    T, C, qH, qW = vid0.shape
    kH, kW = vid1.shape[-2:]
    first = 0 if p["use_adj"] else -(p["ps"] // 2)
    total = 0.0
    for pk in range(p["pt"]):
        tq, tk = reflect(t + pk, T), reflect(t2 + pk, T)
        if not (inside(tq, T) and inside(tk, T)):
            continue
        for pi in range(p["ps"]):
            for pj in range(p["ps"]):
                dy, dx = p["dilation"] * (pi + first), p["dilation"] * (pj + first)
                qy, qx = hq + p["off_Hq"] + dy, wq + p["off_Wq"] + dx
                ky, kx = ph + dy, pw + dx
                if p["reflect_bounds"]:
                    qy, qx, ky, kx = reflect(qy, qH), reflect(qx, qW), reflect(ky, kH), reflect(kx, kW)
                if not (inside(qy, qH) and inside(qx, qW) and inside(ky, kH) and inside(kx, kW)):
                    continue
                query = [float(v) for v in vid0[tq, :, qy, qx]]
                key = bilinear(vid1[tk], ky, kx)
                for a, b in zip(query, key):
                    total += (a - b) ** 2 if p["dist_type"] == "l2" else a * b
    return total


def candidates(vid0, vid1, flows, p):
    """Every candidate of every query, in window order, before self_action.

    Returns a dict ``(b, hd, t, nh, nw) -> list over slots of lists of
    (dist, (dt, dh, dw))`` with ``ws * ws`` entries per slot.
    """
    B, HD, T, C, qH, qW = vid0.shape
    kH, kW = vid1.shape[-2:]
    HDf, Wf, nH, nW = flows.shape[1], flows.shape[3], flows.shape[5], flows.shape[6]
    ws, wt, s0 = p["ws"], p["wt"], p["stride0"]
    is_int = p["itype"] == "int"
    s1 = max(1, int(p["stride1"])) if is_int else p["stride1"]
    sq = p["strideQ"] or s0
    first_flow_slot = (2 * wt + 1) - Wf
    invalid = math.inf if p["dist_type"] == "l2" else -math.inf
    out = {}
    for b in range(B):
        for hd in range(HD):
            for t in range(T):
                for nh in range(nH):
                    for nw in range(nW):
                        hk, wk = nh * s0, nw * s0
                        hq, wq = (nh * sq) % qH, (nw * sq) % qW
                        slots = []
                        for s, t2 in enumerate(window_frames(t, wt, T)):
                            ah, aw = hk, wk
                            if s >= first_flow_slot:
                                f = flows[b, hd % HDf, t, s - first_flow_slot, :, nh, nw]
                                fx, fy = float(f[0]), float(f[1])
                                if is_int:
                                    fx, fy = int(torch.round(f[0])), int(torch.round(f[1]))
                                ah, aw = reflect(hk + fy, kH), reflect(wk + fx, kW)
                            oh = window_offset(ah, s1, ws, kH, p["full_ws"])
                            ow = window_offset(aw, s1, ws, kW, p["full_ws"])
                            entries = []
                            for i in range(ws):
                                for j in range(ws):
                                    ph, pw = ah + s1 * (i - oh), aw + s1 * (j - ow)
                                    ind = (t2 - t, ph - hk, pw - wk)
                                    if inside(ph, kH) and inside(pw, kW):
                                        d = patch_distance(vid0[b, hd], vid1[b, hd], t, hq, wq, t2, ph, pw, p)
                                    else:
                                        d = invalid
                                    entries.append((d, ind, (t2 - t, ah - hk, aw - wk)))
                            slots.append(entries)
                        out[b, hd, t, nh, nw] = slots
    return out


def search(vid0, vid1, flows, p):
    """Brute-force NonLocalSearch for ``topk_mode="all"`` and self_action in
    (None, "anchor", "remove"): per query, a list of (dist, ind) best first
    (ties in any order)."""
    descending = p["dist_type"] == "prod"
    out = {}
    for key, slots in candidates(vid0, vid1, flows, p).items():
        flat = [(d, ind) for entries in slots for d, ind, _ in entries]
        anchored = None
        if p["self_action"] in ("anchor", "anchor_self", "remove"):
            position = min(range(len(flat)), key=lambda n: sum(abs(v) for v in flat[n][1]))
            anchored = (flat[position][0], (0, 0, 0))
            flat = flat[:position] + flat[position + 1:]
        flat.sort(key=lambda e: -e[0] if descending else e[0])
        if anchored is not None and p["self_action"] != "remove":
            flat = [anchored] + flat
        out[key] = flat if p["k"] <= 0 else flat[: p["k"]]
    return out


def search_flow(fflow, bflow, wt, stride0):
    """Accumulated search flows ``[B, T, W_t-1, 2, nH, nW]`` by following the
    one-step flows point by point (bilinear, corner indices reflected)."""
    B, T, _, H, W = fflow.shape
    nH, nW = (H - 1) // stride0 + 1, (W - 1) // stride0 + 1
    slots = min(2 * wt + 1, T)
    out = torch.zeros(B, T, slots - 1, 2, nH, nW, dtype=fflow.dtype)

    def sample(flow, y, x):
        value = [0.0, 0.0]
        for dy in (0, 1):
            for dx in (0, 1):
                yy, xx = math.floor(y) + dy, math.floor(x) + dx
                weight = max(0.0, 1 - abs(yy - y)) * max(0.0, 1 - abs(xx - x))
                row = min(max(reflect(yy, H), 0), H - 1)  # clamped beyond one reflection
                col = min(max(reflect(xx, W), 0), W - 1)
                for c in range(2):
                    value[c] += weight * float(flow[c, row, col])
        return value

    for b in range(B):
        for t in range(T):
            frames = window_frames(t, wt, T)[:slots]
            for nh in range(nH):
                for nw in range(nW):
                    for s in range(1, slots):
                        if s == 1 or frames[s] == t - 1:  # start, and restart when turning back
                            y, x = float(nh * stride0), float(nw * stride0)
                        forward = frames[s] > t
                        step = fflow[b, frames[s] - 1] if forward else bflow[b, frames[s] + 1]
                        dx, dy = sample(step, y, x)
                        y, x = y + dy, x + dx
                        out[b, t, s - 1, 0, nh, nw] = x - nw * stride0
                        out[b, t, s - 1, 1, nh, nw] = y - nh * stride0
    return out
