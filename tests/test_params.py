"""Parameter sets cross the op schemas packed as three lists and come back unchanged."""

import pytest
import torch

import stnls  # noqa: F401  (registers torch.ops.stnls.*)
from stnls.params import AggParams, SearchParams, TileParams

PARAMETER_SETS = [
    SearchParams.create(5, 2, ps=3, k=10, stride1=0.5, self_action="anchor", full_ws=False,
                        use_adj=True, off_Hq=2),
    SearchParams.create(9, 1, k=-1, stride1=2, itype="int", dist_type="prod", topk_mode="each"),
    AggParams.create(3, 2, 1, 16, 20, reflect_bounds=False, itype="int", sum_k=False),
    AggParams.create(7, 1, 1, 8, 8, pooled=True, use_adj=True),
    TileParams.create(4, 9, 7, 3, pt=2, dilation=2, reflect=False, box=(1, 2, 8, 6)),
]


@pytest.mark.parametrize("params", PARAMETER_SETS, ids=lambda p: type(p).__name__)
def test_packed_fields_round_trip(params):
    ints, reals, names = params.as_args()
    assert all(type(value) is int for value in ints)
    assert all(type(value) is float for value in reals)
    assert all(type(value) is str for value in names)
    restored = type(params).from_args(ints, reals, names)
    assert restored == params
    assert [type(getattr(restored, name)) for name in vars(params)] == \
        [type(getattr(params, name)) for name in vars(params)]


def test_missing_self_action_travels_as_an_empty_name():
    params = SearchParams.create(3, 0)
    assert params.self_action is None
    assert "" in params.as_args()[2]
    assert SearchParams.from_args(*params.as_args()).self_action is None


@pytest.mark.parametrize("name", ["non_local_search", "non_local_search_backward", "agg_gather",
                                  "agg_scatter", "agg_pair_grads", "agg_gather_backward",
                                  "unfold_k", "fold_k"])
def test_op_schemas_take_few_arguments(name):
    """torch.library's autograd wrapper handles every argument of every call in a loop that
    is quadratic in their number: the parameter sets must stay packed."""
    schema = getattr(torch.ops.stnls, name).default._schema
    assert len(schema.arguments) <= 10, str(schema)


def test_parameter_sets_are_checked_once_per_distinct_arguments():
    first = SearchParams.create(5, 2, ps=3, k=10, stride1=0.5)
    assert SearchParams.create(5, 2, ps=3, k=10, stride1=0.5) is first
    # equal but differently typed arguments are checked on their own
    assert SearchParams.create(5, 2, ps=3, k=10, stride1=1) == SearchParams.create(
        5, 2, ps=3, k=10, stride1=1.0)
    assert AggParams.create(3, 1, 1, 8, 8) is AggParams.create(3, 1, 1, 8, 8)
    assert first.as_args() is first.as_args()


@pytest.mark.parametrize("ps", [0, 2.5, [3]], ids=["zero", "real", "list"])
def test_bad_arguments_raise_every_time(ps):
    """A failed check is never cached, and arguments that cannot be cached (a list) are
    checked without the cache: each call raises the error that names the argument."""
    for _ in range(2):
        with pytest.raises((TypeError, ValueError), match="ps"):
            SearchParams.create(5, 2, ps=ps)
