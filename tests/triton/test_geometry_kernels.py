"""The Triton device functions of index arithmetic against stnls.geometry (interpreter)."""

import pytest
import torch

from stnls import geometry as geo

triton = pytest.importorskip("triton")
tl = pytest.importorskip("triton.language")
tg = pytest.importorskip("stnls.backends.triton.geometry")

pytestmark = pytest.mark.filterwarnings("error::RuntimeWarning")


@triton.jit
def _integer_kernel(values, times, slots, out, n, size, wt, T, BLOCK: tl.constexpr):
    lane = tl.arange(0, BLOCK)
    mask = lane < n
    v = tl.load(values + lane, mask=mask, other=0)
    t = tl.load(times + lane, mask=mask, other=0)
    s = tl.load(slots + lane, mask=mask, other=0)
    frame = tg.frame_of_slot(t, s, wt, T)
    tl.store(out + lane, tg.reflect(v, size), mask=mask)
    tl.store(out + BLOCK + lane, tg.in_range(v, size).to(tl.int32), mask=mask)
    tl.store(out + 2 * BLOCK + lane, tg.last_frame_of_window(t, wt, T), mask=mask)
    tl.store(out + 3 * BLOCK + lane, frame, mask=mask)
    tl.store(out + 4 * BLOCK + lane, tg.slot_of_frame(t, frame, wt, T), mask=mask)


@triton.jit
def _window_kernel(anchors, stride1_ptr, out, n, ws, size, FULL_WS: tl.constexpr, BLOCK: tl.constexpr):
    lane = tl.arange(0, BLOCK)
    mask = lane < n
    anchor = tl.load(anchors + lane, mask=mask, other=0)
    tl.store(out + lane, tg.window_offset(anchor, tl.load(stride1_ptr), ws, size, FULL_WS), mask=mask)


def test_integer_formulas():
    size, wt, T, block = 7, 2, 6, 512
    values = torch.arange(-size + 1, 2 * size - 1, dtype=torch.int32)
    times, slots = torch.cartesian_prod(torch.arange(T), torch.arange(2 * wt + 1)).int().unbind(1)
    n = max(len(values), len(times))
    values = values.repeat(n // len(values) + 1)[:n]
    times, slots = times.repeat(n // len(times) + 1)[:n], slots.repeat(n // len(slots) + 1)[:n]
    out = torch.zeros(5, block, dtype=torch.int32)
    _integer_kernel[(1,)](values, times, slots, out, n, size, wt, T, BLOCK=block)
    v, t, s = values.long(), times.long(), slots.long()
    frame = geo.frame_of_slot(t, s, wt, T)
    expected = [geo.reflect(v, size), geo.in_range(v, size).int(), geo.last_frame_of_window(t, wt, T),
                frame, geo.slot_of_frame(t, frame, wt, T)]
    for row, want in zip(out, expected):
        assert torch.equal(row[:n].long(), want.long())


@pytest.mark.parametrize("full_ws", [True, False])
@pytest.mark.parametrize("stride1,ws", [(1.0, 5), (0.5, 4), (1.5, 3), (2.0, 7)])
def test_window_offset(full_ws, stride1, ws):
    size, block = 9, 256
    anchors = torch.linspace(0, size - 1, 137)
    out = torch.zeros(block, dtype=torch.float64)
    _window_kernel[(1,)](anchors, torch.tensor([stride1], dtype=torch.float64), out, len(anchors), ws,
                         size, FULL_WS=full_ws, BLOCK=block)
    assert torch.equal(out[:len(anchors)], geo.window_offset(anchors, stride1, ws, size, full_ws))
