"""Bad input to the aggregation API raises a clear ValueError/TypeError."""

from __future__ import annotations

import pytest
import torch

import stnls
from agg_inputs import make


@pytest.fixture
def inputs():
    return make(B=1, HD=2, T=2, C=2, H=6, W=5, K=3, stride=1, seed=0)


def test_heads_of_a_6d_video_must_match_the_weights(inputs):
    vid, weights, flows = inputs
    with pytest.raises(ValueError, match="heads"):
        stnls.agg.gather(vid[:, :1], weights, flows, ps=3)


def test_heads_of_weights_and_flows_must_match(inputs):
    vid, weights, flows = inputs
    with pytest.raises(ValueError, match="same number of heads"):
        stnls.agg.gather(vid, weights, flows[:, :1], ps=3)


def test_channels_must_divide_into_heads(inputs):
    vid, weights, flows = inputs
    with pytest.raises(ValueError, match="nheads=2 does not divide"):
        stnls.agg.wpsum(torch.randn(1, 2, 3, 6, 5, dtype=vid.dtype), weights, flows, ps=3)


def test_query_grid_must_match_video_and_stride(inputs):
    vid, weights, flows = inputs
    with pytest.raises(ValueError, match=r"stride0=2 they must be \[B, HD, T, nH, nW, K\] = \[1, 2, 2, 3, 3, K\]"):
        stnls.agg.gather(vid, weights, flows, ps=3, stride0=2)
    with pytest.raises(ValueError, match="do not match the video"):
        stnls.agg.wpsum(vid[..., :4], weights, flows, ps=3)


def test_flows_need_a_last_axis_of_three(inputs):
    vid, weights, flows = inputs
    with pytest.raises(ValueError, match="axis of 3 offsets"):
        stnls.agg.gather(vid, weights, flows[..., :2], ps=3)


def test_flows_must_match_weights(inputs):
    vid, weights, flows = inputs
    with pytest.raises(ValueError, match=r"3 offsets per weight"):
        stnls.agg.gather(vid, weights[..., :2], flows, ps=3)


def test_weights_and_flows_may_be_flattened_views(inputs):
    vid, weights, flows = inputs
    B, HD, K = weights.shape[0], weights.shape[1], weights.shape[-1]
    flat = stnls.agg.gather(vid, weights.reshape(B, HD, -1, K), flows.reshape(B, HD, -1, K, 3), ps=3)
    torch.testing.assert_close(flat, stnls.agg.gather(vid, weights, flows, ps=3))


def test_integer_flows_must_be_int32(inputs):
    vid, weights, flows = inputs
    with pytest.raises(TypeError, match="int32"):
        stnls.agg.gather(vid, weights, flows.round().long(), ps=3, itype="int")
    with pytest.raises(TypeError, match="int32"):
        stnls.agg.gather(vid, weights, flows.round().to(torch.int16), ps=3)


def test_int_op_refuses_real_flows_at_the_op_layer(inputs):
    vid, weights, flows = inputs
    from stnls.params import AggParams
    p = AggParams.create(3, 1, 1, 6, 5, itype="int", sum_k=True)
    with pytest.raises(TypeError, match="int32 flows"):
        torch.ops.stnls.agg_gather(vid, weights, flows, *p.as_args())


def test_non_finite_flows_are_refused(inputs):
    vid, weights, flows = inputs
    flows[0, 0, 0, 0, 0, 0, 1] = float("nan")
    with pytest.raises(ValueError, match="finite"):
        stnls.agg.gather(vid, weights, flows, ps=3)


def test_bad_parameters(inputs):
    vid, weights, flows = inputs
    with pytest.raises(ValueError, match="itype"):
        stnls.agg.gather(vid, weights, flows, itype="double")
    with pytest.raises(ValueError, match="ps must be >= 1"):
        stnls.agg.gather(vid, weights, flows, ps=0)
    with pytest.raises(ValueError, match="pt=1 only"):
        stnls.agg.pool(vid, weights, flows, ps=3, pt=2)
    with pytest.raises(ValueError, match="outH=4 with strideOut=1"):
        stnls.agg.gather_add(vid, weights, flows, ps=3, outH=4)


def test_video_must_be_a_real_tensor(inputs):
    vid, weights, flows = inputs
    with pytest.raises(TypeError, match="floating-point"):
        stnls.agg.gather(vid.long(), weights, flows)
    with pytest.raises(ValueError, match="5 or 6 dimensions"):
        stnls.agg.gather(vid[0, 0, 0], weights, flows)


def test_scatter_stack_must_match(inputs):
    vid, weights, flows = inputs
    stack = stnls.agg.gather(vid, weights, flows, ps=3)
    with pytest.raises(ValueError, match="stacks 2 videos but weights have K=3"):
        stnls.agg.scatter(stack[:, :, :2], weights, flows, ps=3)
    with pytest.raises(ValueError, match="needs inH and inW"):
        stnls.agg.scatter_add(vid, weights, flows, ps=3, strideIn=2, strideOut=1)


def test_op_layer_checks_flows_unless_told_not_to(inputs):
    """The backward passes call the ops with check_flows=False: their flows were checked."""
    vid, weights, flows = inputs
    from stnls.params import AggParams
    p = AggParams.create(3, 1, 1, 6, 5, sum_k=True)
    flows[0, 0, 0, 0, 0, 0, 1] = float("nan")
    with pytest.raises(ValueError, match="finite"):
        torch.ops.stnls.agg_gather(vid, weights, flows, *p.as_args())
    out = torch.ops.stnls.agg_gather(vid, weights, flows, *p.as_args(), False)
    assert torch.isfinite(out).all()


@pytest.mark.parametrize("bad", [float("nan"), float("inf"), -float("inf")])
def test_one_non_finite_offset_among_finite_ones_is_refused(inputs, bad):
    vid, weights, flows = inputs
    flows[0, 1, 1, 3, 2, 1, 2] = bad
    with pytest.raises(ValueError, match="flows must hold finite values"):
        stnls.agg.wpsum(vid, weights, flows, ps=3)
