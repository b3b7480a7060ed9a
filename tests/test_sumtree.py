"""SumTree against a plain NumPy reference."""
import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from scipy import stats

from longtail.samplers.replay import _kernels as K
from longtail.samplers.replay.sumtree import SumTree


def _inner_ok(tree: SumTree) -> bool:
    """Every inner node equals left + right, bitwise (rebuilt from the leaves)."""
    rebuilt = tree._tree.copy()
    K.tree_build(rebuilt, tree.size)
    return np.array_equal(rebuilt, tree._tree)


@st.composite
def tree_and_updates(draw):
    cap = draw(st.integers(1, 300))
    init = draw(st.lists(st.integers(0, 6), min_size=cap, max_size=cap))
    batches = draw(st.lists(
        st.lists(st.tuples(st.integers(0, cap - 1), st.integers(0, 9)), min_size=0, max_size=40),
        min_size=1, max_size=4))
    return cap, np.array(init, dtype=np.float64), batches


@given(tree_and_updates())
def test_batched_updates_match_reference(case):
    cap, init, batches = case
    tree = SumTree(cap, values=init)
    ref = init.copy()
    for batch in batches:
        idx = np.array([i for i, _ in batch], dtype=np.int64)
        val = np.array([v for _, v in batch], dtype=np.float64)
        tree.update(idx, val)
        for i, v in zip(idx, val):  # reference: in order, so the last write wins
            ref[i] = v
        np.testing.assert_array_equal(tree.values, ref)
        assert tree.total == ref.sum()
        assert _inner_ok(tree)
        assert (tree._tree[tree.size + cap:] == 0).all()  # padding stays zero


@given(tree_and_updates(), st.data())
def test_find_is_prefix_sum_search(case, data):
    cap, init, batches = case
    tree = SumTree(cap, values=init)
    for batch in batches:
        tree.update([i for i, _ in batch], [v for _, v in batch])
    vals = np.array(tree.values)
    total = vals.sum()
    if total == 0:
        with pytest.raises(ValueError):
            tree.find([0.0])
        return
    # integer values: every prefix sum is exact, ties included (mass == cum[i])
    masses = np.array(data.draw(st.lists(st.integers(0, int(total) - 1), min_size=1,
                                         max_size=30)), dtype=np.float64)
    masses = np.concatenate([masses, masses + 0.5])
    masses = masses[masses < total]
    expected = np.searchsorted(np.cumsum(vals), masses, side="right")
    np.testing.assert_array_equal(tree.find(masses), expected)
    # at or past the total (rounding): the last positive leaf, never a zero/padding leaf
    last_pos = np.flatnonzero(vals > 0)[-1]
    beyond = tree.find([total, total * 2, np.nextafter(total, np.inf)])
    assert (beyond == last_pos).all()


def test_duplicates_last_write_wins():
    tree = SumTree(4)
    tree.update([2, 0, 2, 2], [5.0, 1.0, 7.0, 3.0])
    assert tree.values.tolist() == [1.0, 0.0, 3.0, 0.0]
    assert tree.total == 4.0


def test_any_capacity_and_capacity_one():
    for cap in (1, 2, 3, 5, 7, 8, 9, 1000, 1023, 1025):
        vals = np.arange(cap, dtype=np.float64) + 1
        tree = SumTree(cap, values=vals)
        assert tree.total == vals.sum()
        draws = tree.sample(2000)
        assert draws.min() >= 0 and draws.max() < cap
    one = SumTree(1, values=[2.5])
    assert one.sample(10).tolist() == [0] * 10


def test_never_returns_zero_priority_leaves():
    rng = np.random.default_rng(0)
    cap = 1000
    vals = np.zeros(cap)
    pos = rng.choice(cap, 37, replace=False)
    # wildly different magnitudes make the prefix sums round
    vals[pos] = 10.0 ** rng.uniform(-300, 290, pos.size)
    tree = SumTree(cap, values=vals)
    draws = tree.sample(200_000)
    assert (vals[draws] > 0).all()
    # adversarial masses: exact boundaries and beyond the total
    cum = np.cumsum(vals)
    masses = np.concatenate([cum, np.nextafter(cum, 0), np.nextafter(cum, np.inf),
                             [0.0, tree.total, 1e308]])
    found = tree.find(masses)
    assert (vals[found] > 0).all()
    # a single positive leaf at the end, then at the start
    for where in (cap - 1, 0):
        v = np.zeros(cap)
        v[where] = 1e-300
        t = SumTree(cap, values=v)
        assert (t.sample(1000) == where).all()
        assert (t.find([0.0, 1e-300, 1.0]) == where).all()


def test_float64_keeps_small_leaves():
    # a float32 tree cannot represent 2**30 + 0.5: the small leaf would be unreachable
    tree = SumTree(3, values=[2.0 ** 30, 1.0, 0.0])
    assert tree.find([2.0 ** 30 + 0.5]).tolist() == [1]
    assert tree.total == 2.0 ** 30 + 1


def test_sampling_frequencies_chi_square():
    rng = np.random.default_rng(1)
    cap = 37
    vals = rng.integers(0, 5, cap).astype(np.float64)
    vals[[3, 4, 20]] = 0.0
    tree = SumTree(cap, values=vals, seed=3)
    draws = np.concatenate([tree.sample(4096) for _ in range(40)])
    counts = np.bincount(draws, minlength=cap)
    assert counts[vals == 0].sum() == 0
    pos = vals > 0
    expected = vals[pos] / vals.sum() * draws.size
    assert stats.chisquare(counts[pos], expected).pvalue > 1e-4
    # and a wrong distribution is rejected by the same test (the test can fail)
    wrong = np.where(pos, 1.0, 0.0)[pos]
    assert stats.chisquare(counts[pos], wrong / wrong.sum() * draws.size).pvalue < 1e-6


def test_seeded_and_resumable():
    vals = np.arange(50, dtype=np.float64)
    a, b = SumTree(50, values=vals, seed=7), SumTree(50, values=vals, seed=7)
    assert np.array_equal(a.sample(100), b.sample(100))
    state = a.state_dict()
    nxt = a.sample(100)
    c = SumTree(50, seed=0)
    c.load_state_dict(state)
    assert np.array_equal(c.sample(100), nxt)
    assert np.array_equal(c._tree, a._tree)
    assert np.array_equal(a.sample(10, seed=1), SumTree(50, values=vals).sample(10, seed=1))
    with pytest.raises(ValueError):
        SumTree(51).load_state_dict(state)


@pytest.mark.parametrize("idx, val", [
    ([0, 5], [1.0, 1.0]),            # index out of range
    ([-1], [1.0]),                   # negative index
    ([0, 1], [1.0, np.nan]),         # NaN
    ([0], [np.inf]),                 # inf
    ([0], [-1.0]),                   # negative value
    ([0, 1], [1.0]),                 # length mismatch
    ([[0]], [[1.0]]),                # 2-D
    ([0], [1e308]),                  # sum could overflow
])
def test_bad_input_leaves_tree_unchanged(idx, val):
    tree = SumTree(5, values=[1.0, 2.0, 3.0, 4.0, 5.0])
    before = tree._tree.copy()
    with pytest.raises(ValueError):
        tree.update(idx, val)
    assert np.array_equal(tree._tree, before)


def test_bad_construction_and_types():
    with pytest.raises(ValueError):
        SumTree(0)
    with pytest.raises(ValueError):
        SumTree(3, values=[1.0, 2.0])
    with pytest.raises(TypeError):
        SumTree(3).update([0.5], [1.0])
    with pytest.raises(ValueError):
        SumTree(3).sample(4)  # empty tree
    with pytest.raises(ValueError):
        SumTree(3, values=[1, 2, 3]).sample(0)
