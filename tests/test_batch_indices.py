"""``batch_indices`` (every dataset's ``__getitems__``): the one-call conversion of a
plain list of ints gives exactly what the item-by-item path gives, and everything else
(floats, bools as numpy bools, huge ints, tensors, numpy scalars) is still judged item by
item, with the same errors."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from longtail.datasets import _batch
from longtail.datasets._batch import batch_indices


def _reference(items, n):
    out = []
    for i in items:
        import operator
        v = operator.index(i)
        if v < 0:
            v += n
        if not 0 <= v < n:
            raise IndexError(f"index {i} is out of range for {n} examples")
        out.append(v)
    return np.array(out, dtype=np.int64)


@settings(max_examples=200, deadline=None)
@given(st.integers(1, 50), st.lists(st.integers(-60, 60), max_size=40))
def test_plain_int_lists_match_the_item_by_item_path(n, items):
    try:
        want = _reference(items, n)
    except IndexError as err:
        with pytest.raises(IndexError, match=str(err).split(" is")[0].replace("-", r"\-")):
            batch_indices(items, n)
        return
    got = batch_indices(items, n)
    assert got.dtype == np.int64 and got.tolist() == want.tolist()


def test_the_fast_path_is_taken_for_plain_ints_and_gives_a_fresh_array():
    items = [3, 1, 4]
    arr = _batch._fast_int64(items)
    assert arr is not None and arr.dtype == np.int64 and arr.tolist() == items
    src = np.array([2, 0], dtype=np.int32)
    out = batch_indices(src, 3)
    out[0] = 99
    assert src.tolist() == [2, 0]          # the caller's array is never written


@pytest.mark.parametrize("items", [
    [1, 2.5], [1.0, 2], [1, "a"], [1, None], [np.float64(1.0)], [1, [2]],
    np.array([1.0, 2.0]), np.array([True, False]),
])
def test_non_integers_are_refused_as_before(items):
    assert _batch._fast_int64(items) is None
    with pytest.raises(TypeError):
        batch_indices(items, 10)


@pytest.mark.parametrize("items,want", [
    ([np.int64(3), np.int32(-1)], [3, 9]),
    ([torch.tensor(2), 1], [2, 1]),
    (torch.tensor([4, 5]), [4, 5]),
    ([True, 2], [1, 2]),                 # a Python bool is an int, as operator.index says
    (np.array([1, 2], dtype=np.uint64), [1, 2]),
])
def test_other_integer_inputs_give_the_same_indices(items, want):
    assert batch_indices(items, 10).tolist() == want


def test_integers_beyond_int64_name_the_index():
    with pytest.raises(IndexError, match=f"index {2**65} is out of range for 10"):
        batch_indices([0, 2**65], 10)
    with pytest.raises(IndexError, match=f"index {2**64 - 1} is out of range for 10"):
        batch_indices(np.array([0, 2**64 - 1], dtype=np.uint64), 10)
