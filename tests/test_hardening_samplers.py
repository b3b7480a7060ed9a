"""Issue 11, sampler part: regression tests for aliasing (#3), untrusted state dicts (#4),
tiny weights (#6), DDP misuse (#8), unbounded work (#9) and unclear errors (#11).

Each test failed (crash, wrong answer, late or unclear error) before the fix."""
import time

import numpy as np
import pytest

from longtail import LabelMatrix
from longtail.samplers import (
    ClassAwareSampler,
    HardExampleSampler,
    MultilabelStratifiedKFold,
    MultilabelStratifiedShuffleSplit,
    RepeatedMultilabelStratifiedKFold,
    RepeatFactorSampler,
    StratifiedBatchSampler,
    SumTree,
    WeightedSampler,
    iterative_stratification,
    multilabel_train_test_split,
    stratification_report,
)
from longtail.samplers.weights.weighting import check_weights

pytestmark = pytest.mark.filterwarnings("ignore:'set_vital' is deprecated:UserWarning")

_RNG = np.random.default_rng(7)
ROWS = [sorted({int(j) for j in _RNG.integers(0, 6, size=_RNG.integers(1, 3))})
        for _ in range(60)]
Y = LabelMatrix.from_lists(ROWS, n_labels=6)
BIG = 2**64 - 5   # a uint64 that a cast to int64 turns into -5


def _order(sampler, epoch=0):
    sampler.set_epoch(epoch)
    return [int(i) if not isinstance(i, list) else [int(j) for j in i] for i in sampler]


def _cannot_write(a):
    with pytest.raises(ValueError):
        a.flags.writeable = True
    with pytest.raises(ValueError):
        a[0] = 1


# --------------------------------------------------------------------------------------
# 3: what a sampler validated cannot be changed behind its back
# --------------------------------------------------------------------------------------
def test_sumtree_values_cannot_be_made_writeable():
    tree = SumTree(4, values=[1.0, 2.0, 0.0, 3.0])
    v = tree.values
    _cannot_write(v)
    _cannot_write(tree[1:3])
    assert tree.total == 6.0
    tree.update([2], [4.0])
    assert v.tolist() == [1.0, 2.0, 4.0, 3.0]       # still a live view of the leaves


def test_weighted_sampler_owns_its_weights():
    w = np.array([1.0, 0.0, 2.0, 0.0])
    s = WeightedSampler(w, num_samples=500, seed=3)
    ref = _order(WeightedSampler(w.copy(), num_samples=500, seed=3))
    w[0] = -5.0       # after construction, before the (lazy) alias table
    w[1] = 1e9
    got = _order(s)
    assert got == ref and 1 not in got and 3 not in got
    _cannot_write(s.weights)
    # without replacement too
    w2 = np.array([1.0, 0.0, 2.0, 3.0])
    s2 = WeightedSampler(w2, num_samples=3, replacement=False, seed=1)
    w2[1] = 100.0
    assert _order(s2).count(1) == 0  # the zero weight seen at construction still holds


def test_check_weights_copies_writable_input():
    w = np.array([1.0, 2.0])
    out = check_weights(w)
    w[0] = np.nan
    assert out.tolist() == [1.0, 2.0]
    _cannot_write(out)


def test_repeat_factor_and_class_aware_own_their_arrays():
    f = np.array([1.0, 2.0, 0.5, 3.0])
    s = RepeatFactorSampler.from_factors(f, seed=0)
    ref = _order(RepeatFactorSampler.from_factors(f.copy(), seed=0))
    f[:] = 1e300
    assert _order(s) == ref
    _cannot_write(s.factors)
    cw = np.ones(6)
    c = ClassAwareSampler(Y, num_samples=50, class_weights=cw, seed=0)
    ref = _order(ClassAwareSampler(Y, num_samples=50, class_weights=np.ones(6), seed=0))
    cw[:] = 0.0
    assert _order(c) == ref
    _cannot_write(c.class_weights)


def test_hard_example_sampler_owns_base_weights_and_baseline():
    base, baseline = np.ones(20), np.zeros(20)
    kw = dict(hard_fraction=0.5, seed=1, in_flight_timeout=0)
    a = HardExampleSampler(20, 4, base_weights=base, baseline=baseline, **kw)
    b = HardExampleSampler(20, 4, base_weights=base.copy(), baseline=baseline.copy(), **kw)
    base[:] = 0.0
    base[3] = 1e300
    baseline[:] = 1e6
    for _ in range(5):
        x, y = a.sample(), b.sample()
        assert list(x) == list(y)
        a.update(x.extras["index"], np.arange(4.0))
        b.update(y.extras["index"], np.arange(4.0))
    assert a.digest() == b.digest()
    _cannot_write(a.baseline)


# --------------------------------------------------------------------------------------
# 4: state dicts are untrusted input
# --------------------------------------------------------------------------------------
def _played(**kw):
    s = HardExampleSampler(30, 4, seed=2, hard_fraction=0.75, in_flight_timeout=3,
                           priority=kw.pop("priority", "rank"), history=12, **kw)
    rng = np.random.default_rng(0)
    for _ in range(9):
        b = s.sample()
        s.update(b.extras["index"], rng.random(4))
    s.sample()
    s.sample()
    return s


def _next_batches(s, k=4):
    out = []
    for _ in range(k):
        b = s.sample()
        out.append((list(b), b.extras["weight"].tolist()))
        s.update(b.extras["index"], np.linspace(0, 1, len(b)))
    return out


def _rejected(s, state, exc=(ValueError, TypeError), match=None):
    """The load fails and the sampler is exactly as before (same digest, same batches)."""
    digest = s.digest()
    ref = pickle_copy(s)
    with pytest.raises(exc, match=match):
        s.load_state_dict(state)
    assert s.digest() == digest
    assert _next_batches(s) == _next_batches(ref)


def pickle_copy(obj):
    import pickle

    return pickle.loads(pickle.dumps(obj))


def test_hard_state_nan_raw_is_rejected():
    s = _played()
    state = s.state_dict()
    state["raw"] = state["raw"].copy()
    state["raw"][3] = np.nan
    _rejected(_played(), state, match="raw")


def test_hard_state_missing_key_names_it():
    state = _played().state_dict()
    for key in ("hist_pos", "ring", "reports", "ref", "step", "yielded", "raw", "version",
                "ring_live", "max_reported"):
        bad = dict(state)
        del bad[key]
        _rejected(_played(), bad, ValueError, match=repr(key))
    # the layout is versioned: a field it does not know is refused, named
    _rejected(_played(), dict(state, stats=[1.0, 0.5, 3.0, 1.0]), ValueError, match="'stats'")


@pytest.mark.parametrize("key, value", [
    ("hist_pos", 10**9),                       # write position far outside the history
    ("hist_len", 50),                          # snapshot longer than the history
    ("hist_pos", -1),
    ("hist_new", 3),                           # the snapshot is refreshed every 3 losses
    ("hist_count", 5),                         # the history fills from position 0
    ("ring", np.full((4, 3), 10**6)),          # example ids outside [0, n)
    ("ring", np.zeros((4, 3), dtype=np.float64)),
    ("ring_step", np.array([5, -1, -1, -1])),
    ("max_reported", np.inf),
    ("reports", -3),
    ("reports", 3.0),                          # a count is an integer
    ("updates", 0),                            # examples reported without an update
    ("max_reported", 1e-9),                    # below a reported priority
    ("ref", np.full(12, np.nan)),
    ("ref", np.arange(12.0)[::-1].copy()),     # the sorted snapshot is not sorted
    ("prio", np.full(30, -1.0)),
    ("last", np.full(30, 10**9)),              # reported in the future
    ("flight", np.full(30, 5)),                # in flight without a live ring slot
    ("sweep_pos", 30),
    ("step", 2**60),
    ("yielded", 1.7),
    ("yielded", True),
    ("yielded", -1),
    ("yielded", 10**6),
    ("epoch", "1"),
    ("seed", 3),
    ("global_batch", 0),
    ("version", 1),                            # another state layout
    ("history", 11),
])
def test_hard_state_garbage_is_rejected_atomically(key, value):
    state = _played().state_dict()
    state[key] = value
    _rejected(_played(), state)


def test_hard_state_round_trip_still_exact():
    a = _played(priority="percentile")
    state = pickle_copy(a.state_dict())
    b = HardExampleSampler(30, 4, seed=2, hard_fraction=0.75, in_flight_timeout=3,
                           priority="percentile", history=12)
    b.load_state_dict(state)
    assert b.digest() == a.digest()
    assert _next_batches(a) == _next_batches(b)


def test_hard_in_flight_marks_expire_after_duplicate_draws():
    # an example hard-drawn twice in one batch counted twice in its slot and took two
    # marks off its previous slot, so another mark there never expired
    timeout = 3
    s = HardExampleSampler(6, 6, hard_fraction=1.0, in_flight_factor=0.5,
                           in_flight_timeout=timeout, seed=0)
    for _ in range(300):
        s.sample()
        flight = s.state_dict()["flight"]
        live = flight[flight >= 0]
        assert live.size == 0 or s.step - 1 - int(live.min()) < timeout


@pytest.mark.parametrize("kind", ["weighted", "repeat", "classaware", "classaware_batches",
                                  "stratified"])
def test_epoch_state_non_integer_yielded_is_refused(kind):
    def make():
        if kind == "weighted":
            return WeightedSampler(np.arange(1.0, 61.0), seed=1)
        if kind == "repeat":
            return RepeatFactorSampler(Y, 0.5, seed=1)
        if kind == "classaware":
            return ClassAwareSampler(Y, seed=1)
        if kind == "classaware_batches":
            return ClassAwareSampler(Y, return_labels=True, batch_size=8, seed=1)
        return StratifiedBatchSampler(Y, 8, seed=1)

    s = make()
    s.set_epoch(2)
    it = iter(s)
    next(it)
    next(it)
    state = s.state_dict()
    for bad in (1.7, 2.0, True, -1, "2", None, np.array(2)):
        t = make()
        t.set_epoch(5)
        before = list(t)
        t.set_epoch(5)
        with pytest.raises((ValueError, TypeError)):
            t.load_state_dict(dict(state, yielded=bad))
        assert t.epoch == 5 and list(t) == before          # unchanged
    t = make()
    with pytest.raises((ValueError, TypeError)):
        t.load_state_dict(dict(state, epoch=1.0))
    with pytest.raises(ValueError, match="'seed'"):
        t.load_state_dict({k: v for k, v in state.items() if k != "seed"})
    with pytest.raises(TypeError):
        t.load_state_dict([("sampler", "x")])
    t.load_state_dict(state)
    assert list(t) == _order_from(make(), state)


def _order_from(s, state):
    s.set_epoch(state["epoch"])
    return list(s)[state["yielded"]:]


def test_sumtree_state_is_checked_before_applying():
    t = SumTree(5, values=[1.0, 2.0, 3.0, 0.0, 1.0], seed=1)
    state = t.state_dict()
    for key, value in (("draws", 1.5), ("draws", -1), ("seed", -2), ("values", [1.0] * 4),
                       ("values", [np.nan] * 5), ("values", ["a"] * 5), ("capacity", 5.0)):
        u = SumTree(5, values=[5.0, 0.0, 0.0, 0.0, 0.0], seed=9)
        with pytest.raises((ValueError, TypeError)):
            u.load_state_dict(dict(state, **{key: value}))
        assert u.values.tolist() == [5.0, 0.0, 0.0, 0.0, 0.0] and u.seed == 9
    with pytest.raises(ValueError, match="'draws'"):
        SumTree(5).load_state_dict({k: v for k, v in state.items() if k != "draws"})


# --------------------------------------------------------------------------------------
# 6: tiny weights never draw zero-weight examples
# --------------------------------------------------------------------------------------
@pytest.mark.parametrize("weights", [[5e-324, 0.0, 0.0], [0.0, 1e-310, 0.0, 2e-320],
                                     [1e-300, 0.0, 1e300]])
def test_tiny_weights_never_draw_zero_weight_examples(weights):
    w = np.array(weights)
    got = np.array(_order(WeightedSampler(w, num_samples=10_000, seed=0)))
    assert np.all(w[got] > 0)
    # label-level alias table of ClassAwareSampler
    y = LabelMatrix.from_lists([[j] for j in range(len(w))] * 3, n_labels=len(w))
    c = ClassAwareSampler(y, num_samples=3_000, class_weights=w, return_labels=True,
                          batch_size=256, seed=0)
    labels = np.concatenate([b.extras["sampled_label"] for b in c])
    assert labels.size == 3_000
    assert np.all(w[labels] > 0)


def test_exposure_report_of_tiny_weights_is_finite():
    from longtail.samplers import exposure_report

    y = LabelMatrix.from_lists([[0], [1], [0, 1]])
    with np.errstate(all="raise"):
        rep = exposure_report(y, [5e-324, 0.0, 0.0])
    assert rep.expected_draws.tolist() == [3.0, 0.0]
    assert rep.max_weight_ratio == 3.0 and rep.ess == 1.0


def test_hard_example_sampler_tiny_base_weights():
    base = np.zeros(10)
    base[4] = 5e-324
    s = HardExampleSampler(10, 8, hard_fraction=0.0, base_weights=base, seed=0)
    for _ in range(20):
        b = s.sample()
        assert set(b) == {4}
        assert np.isfinite(b.extras["weight"]).all() and np.isfinite(b.extras["prob"]).all()
    p = s.probabilities()
    assert np.isfinite(p).all() and p[4] == pytest.approx(1.0)


# --------------------------------------------------------------------------------------
# 8: DDP misuse is an error, not a silent divergence
# --------------------------------------------------------------------------------------
def test_update_without_process_group_needs_gather_false():
    s = HardExampleSampler(20, 4, num_replicas=2, rank=1, seed=0)
    digest = s.digest()
    with pytest.raises(ValueError, match="not initialised"):
        s.update([0, 1], [1.0, 2.0])
    with pytest.raises(ValueError, match="not initialised"):
        s.update([0, 1], [1.0, 2.0], gather=True)
    assert s.digest() == digest
    s.update([0, 1], [1.0, 2.0], gather=False)     # every rank's losses, gathered by hand
    assert s.digest() != digest


def test_layout_checked_against_the_process_group(tmp_path):
    import torch.distributed as dist

    late = HardExampleSampler(20, 4, num_replicas=2, rank=0, seed=0)   # group comes later
    dist.init_process_group("gloo", init_method=f"file://{tmp_path / 'init'}", rank=0,
                            world_size=1)
    try:
        with pytest.raises(ValueError, match="num_replicas=2 but the torch.distributed "
                                             "group has 1"):
            HardExampleSampler(20, 4, num_replicas=2, rank=0)
        digest = late.digest()
        with pytest.raises(ValueError, match="group has 1"):
            late.update([0], [1.0])
        assert late.digest() == digest
        local = HardExampleSampler(20, 4, seed=0)            # defaults follow the group
        assert (local.num_replicas, local.rank) == (1, 0)
        local.update([0], [1.0])
        explicit = HardExampleSampler(20, 4, num_replicas=1, rank=0)   # local by choice
        explicit.update([0], [1.0])
    finally:
        dist.destroy_process_group()


# --------------------------------------------------------------------------------------
# 9: one bad number cannot ask for unbounded work
# --------------------------------------------------------------------------------------
def test_report_refuses_a_stray_part_id_before_allocating():
    parts = np.arange(len(Y)) % 2
    parts[7] = 2**31
    t0 = time.perf_counter()
    with pytest.raises(ValueError, match=r"part id 2147483648 at example 7"):
        stratification_report(Y, parts)
    assert time.perf_counter() - t0 < 5
    with pytest.raises(ValueError, match="n_parts must be a positive integer, got 0"):
        stratification_report(Y, np.zeros(len(Y), dtype=int), n_parts=0)
    with pytest.raises(ValueError, match="n_parts"):
        stratification_report(Y, np.zeros(len(Y), dtype=int), n_parts=10**12)
    with pytest.raises(TypeError, match="n_parts"):
        stratification_report(Y, np.zeros(len(Y), dtype=int), n_parts=2.5)
    huge = np.zeros(len(Y), dtype=np.uint64)
    huge[3] = BIG
    with pytest.raises(ValueError, match=f"part id {BIG}"):
        stratification_report(Y, huge)


def test_repeat_factors_that_cannot_be_built_are_refused_up_front():
    with pytest.raises(ValueError, match=r"factors\[1\] = 1e\+300"):
        RepeatFactorSampler.from_factors([1.0, 1e300])
    with pytest.raises(ValueError, match=r"factors\[2\]"):
        RepeatFactorSampler.from_factors([1.0, 1.0, 1e15])


@pytest.mark.parametrize("make", [
    lambda: WeightedSampler([1.0, 2.0], num_samples=10**15),
    lambda: ClassAwareSampler(Y, num_samples=10**15),
    lambda: HardExampleSampler(10**14, 4),
    lambda: HardExampleSampler(10, 4, in_flight_timeout=10**14),
    lambda: SumTree(10**14),
])
def test_huge_sizes_are_refused_at_construction(make):
    with pytest.raises(ValueError, match="GiB"):
        make()


def test_repeated_kfold_does_not_build_all_repetitions_first():
    cv = RepeatedMultilabelStratifiedKFold(n_splits=2, n_repeats=10**12, random_state=0)
    t0 = time.perf_counter()
    train, test = next(iter(cv.split(None, Y)))
    assert len(train) + len(test) == len(Y) and time.perf_counter() - t0 < 5


# --------------------------------------------------------------------------------------
# 11: clear errors, at construction, naming argument, value and position
# --------------------------------------------------------------------------------------
def test_loss_reduction_is_checked_at_construction():
    with pytest.raises(ValueError, match="loss_reduction must be one of .* got 'median'"):
        HardExampleSampler(10, 2, loss_reduction="median")
    with pytest.raises(ValueError, match="loss_reduction"):
        HardExampleSampler(10, 2, loss_reduction=None)


def test_percentile_priorities_that_overflow_are_refused():
    with pytest.raises(ValueError, match="eps"):
        HardExampleSampler(10, 2, priority="percentile", eps=1e300, alpha=1e6)


@pytest.mark.parametrize("groups, match", [
    (["a", None, "b", "c"] * 15, "example 1 has no group"),
    (["a", "b", float("nan"), "c"] * 15, "example 2 has group NaN"),
    (["a", "b", "c", 3] * 15, "example 3 has 3"),
    ([1, 2, b"x", 4] * 15, "example 2"),
    ([1, 2, object(), 4] * 15, "example 2"),
])
def test_bad_groups_name_the_first_bad_example(groups, match):
    g = np.empty(len(groups), dtype=object)
    g[:] = groups
    with pytest.raises((ValueError, TypeError), match=match):
        iterative_stratification(Y, [0.5, 0.5], groups=g)
    with pytest.raises((ValueError, TypeError), match=match):
        next(MultilabelStratifiedKFold(2, random_state=0).split(None, Y, groups=g))


def test_uint64_ids_are_not_reported_as_negative():
    with pytest.raises(ValueError, match=f"indices\\[1\\] = {BIG} is outside"):
        SumTree(4, values=[1.0] * 4).update(np.array([0, BIG], dtype=np.uint64), [1.0, 2.0])
    s = HardExampleSampler(10, 2, seed=0)
    with pytest.raises(ValueError, match=f"indices\\[0\\] = {BIG} is outside"):
        s.update(np.array([BIG], dtype=np.uint64), [1.0])
    # 1-D class ids are names: a huge one is a class like any other (no wrap to int32)
    y = np.array([0, 1, 2**32 + 1, 1, 0, 2**32 + 1] * 5, dtype=np.uint64)
    folds = [test for _, test in MultilabelStratifiedKFold(2, random_state=0).split(None, y)]
    for test in folds:
        assert sorted(np.unique(y[test], return_counts=True)[1].tolist()) == [5, 5, 5]


def test_constructor_arguments_are_checked_at_construction():
    with pytest.raises(TypeError, match="drop_last must be True or False, got 'yes'"):
        WeightedSampler([1.0, 2.0], drop_last="yes")
    with pytest.raises(TypeError, match="drop_last"):
        StratifiedBatchSampler(Y, 4, drop_last=1)
    with pytest.raises(ValueError, match="num_replicas"):
        WeightedSampler([1.0, 2.0], num_replicas=2.0, rank=0)
    with pytest.raises(ValueError, match="rank"):
        WeightedSampler([1.0, 2.0], num_replicas=2, rank=1.0)
    with pytest.raises(ValueError, match="seed"):
        WeightedSampler([1.0, 2.0], seed=2**64)
    with pytest.raises(TypeError, match="shuffle must be True or False"):
        MultilabelStratifiedKFold(3, shuffle="no")
    with pytest.raises(TypeError, match="random_state"):
        MultilabelStratifiedKFold(3, random_state="seed")
    with pytest.raises(ValueError, match="test_size"):
        MultilabelStratifiedShuffleSplit(2, test_size=2.5)
    with pytest.raises(TypeError, match="train_size"):
        MultilabelStratifiedShuffleSplit(2, train_size="half")
    with pytest.raises(TypeError, match="shuffle"):
        multilabel_train_test_split(labels=Y, shuffle="no")
    with pytest.raises(TypeError, match="shuffle"):
        iterative_stratification(Y, [0.5, 0.5], shuffle=None)
    with pytest.raises(TypeError, match="seed"):
        iterative_stratification(Y, [0.5, 0.5], seed="x")
    with pytest.raises(ValueError, match="max_pairs"):
        stratification_report(Y, np.arange(len(Y)) % 2, max_pairs=0)
    with pytest.raises(ValueError, match="seed"):
        stratification_report(Y, np.arange(len(Y)) % 2, seed=-1)
    with pytest.raises(TypeError, match="mass"):
        SumTree(3, values=[1.0] * 3).find(["a"])
    with pytest.raises(ValueError, match="epoch"):
        WeightedSampler([1.0, 2.0]).set_epoch(2**64)
