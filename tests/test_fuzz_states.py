"""Fuzzing of every sampler's ``load_state_dict`` and constructor (issue 11).

Garbage of every kind -- wrong types, shapes and dtypes, NaN and infinities, huge and
negative numbers, missing and extra keys, fields taken from another sampler's state,
mutated real states -- goes into ``load_state_dict``; random bad arguments go into every
constructor. Each call must end in ``ValueError`` / ``TypeError`` with the sampler left
exactly as it was (same next batches), or be accepted and then behave exactly as a
correct resume of what was loaded: never a crash, a hang, another exception type or a
silently different answer.
"""
from __future__ import annotations

import pickle
import re

import numpy as np
import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

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
    stratification_report,
)

pytestmark = pytest.mark.filterwarnings("ignore::RuntimeWarning",
                                        "ignore::numpy.exceptions.ComplexWarning",
                                        "ignore:'set_vital' is deprecated:UserWarning")

BAD = (ValueError, TypeError)
_RNG = np.random.default_rng(11)
ROWS = [sorted({int(j) for j in _RNG.integers(0, 5, size=_RNG.integers(1, 3))})
        for _ in range(40)]
Y = LabelMatrix.from_lists(ROWS, n_labels=5)
W = _RNG.random(40)
W[[3, 9]] = 0.0


# ------------------------------------------------------------------------------ samplers
def _hard(**kw):
    base = dict(seed=3, hard_fraction=0.6, in_flight_timeout=3, history=10,
                in_flight_factor=0.25, base_weights=W, base_fraction=0.2)
    base.update(kw)
    return HardExampleSampler(40, 4, **base)


EPOCH_SAMPLERS = {
    "weighted": lambda: WeightedSampler(W, num_samples=30, seed=1),
    "weighted_norep": lambda: WeightedSampler(W, num_samples=20, replacement=False, seed=1),
    "repeat": lambda: RepeatFactorSampler(Y, 0.6, seed=1),
    "factors": lambda: RepeatFactorSampler.from_factors(W * 3, seed=1, num_replicas=2,
                                                        rank=1),
    "classaware": lambda: ClassAwareSampler(Y, num_samples=30, seed=1),
    "classaware_batches": lambda: ClassAwareSampler(Y, num_samples=30, return_labels=True,
                                                    batch_size=4, seed=1),
    "stratified": lambda: StratifiedBatchSampler(Y, 6, seed=1),
}
HARD_SAMPLERS = {
    "hard_loss": lambda: _hard(priority="loss"),
    "hard_rank": lambda: _hard(priority="rank"),
    "hard_pct": lambda: _hard(priority="percentile", in_flight_timeout=0),
}


def _plain(items):
    """Plain values of a sampler's items: ints, or index lists with their extras."""
    return [([int(j) for j in i], {k: np.asarray(v).tolist()
                                   for k, v in getattr(i, "extras", {}).items()})
            if isinstance(i, list) else int(i) for i in items]


def _epoch_progress(name):
    s = EPOCH_SAMPLERS[name]()
    s.set_epoch(2)
    it = iter(s)
    for _ in range(3):
        next(it)
    return s


def _hard_progress(name):
    s = HARD_SAMPLERS[name]()
    rng = np.random.default_rng(5)
    pending = []
    for _ in range(12):
        b = s.sample()
        pending.append(b)
        if len(pending) > 2:
            old = pending.pop(0)
            s.update(old.extras["index"], rng.random(len(old)))
    it = iter(s)
    next(it)
    return s


def _tree_progress():
    t = SumTree(9, values=np.r_[W[:8], 0.0], seed=2)
    t.sample(5)
    return t


STATES = {name: _epoch_progress(name).state_dict() for name in EPOCH_SAMPLERS}
STATES.update({name: _hard_progress(name).state_dict() for name in HARD_SAMPLERS})
STATES["sumtree"] = _tree_progress().state_dict()
ALL = sorted(STATES)


def _fresh(name):
    """A sampler of kind ``name`` somewhere else than the saved state (epoch 5 / other
    priorities), so that a load that silently half-applies shows."""
    if name in EPOCH_SAMPLERS:
        s = EPOCH_SAMPLERS[name]()
        s.set_epoch(5)
        return s
    if name in HARD_SAMPLERS:
        s = HARD_SAMPLERS[name]()
        b = s.sample()
        s.update(b.extras["index"], np.arange(len(b), dtype=np.float64))
        return s
    t = SumTree(9, values=np.arange(9.0), seed=4)
    t.sample(2)
    return t


def _observe(s, name):
    """What the sampler does next (consumes a copy, never ``s`` itself)."""
    c = pickle.loads(pickle.dumps(s))
    if name in EPOCH_SAMPLERS:
        return (c.epoch, _plain(iter(c)))
    if name in HARD_SAMPLERS:
        out = []
        for _ in range(3):
            b = c.sample()
            idx, w, q = b.extras["index"], b.extras["weight"], b.extras["prob"]
            assert ((idx >= 0) & (idx < c.n)).all()
            assert np.isfinite(w).all() and np.isfinite(q).all() and (q > 0).all()
            out.append((idx.tolist(), w.tolist(), q.tolist()))
            c.update(idx, np.linspace(0.0, 2.0, len(idx)))
        return (c.digest(), out)
    return (c.values.tolist(), c.sample(4).tolist() if c.total > 0 else None)


def _loaded_twin(name, state):
    """A second sampler loaded with the same (accepted) state: the reference resume."""
    twin = _fresh(name)
    twin.load_state_dict(pickle.loads(pickle.dumps(state)))
    return twin


def _check_load(name, state):
    """Load ``state`` into a fresh sampler: either a clean refusal (sampler unchanged) or
    a load that is a correct resume of what was given."""
    s = _fresh(name)
    before = _observe(s, name)
    try:
        s.load_state_dict(state)
    except BAD:
        assert _observe(s, name) == before, "a refused state changed the sampler"
        return False
    after = _observe(s, name)
    # a correct resume: what the state says, whoever loads it
    assert after == _observe(_loaded_twin(name, state), name)
    if name in EPOCH_SAMPLERS:
        ref = EPOCH_SAMPLERS[name]()
        ref.set_epoch(int(state["epoch"]))
        assert after == (int(state["epoch"]), _plain(ref)[int(state["yielded"]):])
    elif name in HARD_SAMPLERS:
        saved = s.state_dict()
        for key in ("prio", "raw", "last", "hist", "ref", "hist_pos", "hist_count",
                    "hist_new", "hist_len", "max_reported", "mean_reported", "reports",
                    "updates", "step", "sweep_pos", "epoch", "version"):
            np.testing.assert_array_equal(np.asarray(saved[key], dtype=np.float64),
                                          np.asarray(state[key], dtype=np.float64))
        # what was accepted passes the checks again
        _loaded_twin(name, saved)
    else:
        assert s.values.tolist() == np.asarray(state["values"], dtype=float).tolist()
    return True


# ------------------------------------------------------------------------------ garbage
_SPECIAL_INTS = [0, 1, -1, 2, 7, 2**31, 2**53, 2**62, 2**63 - 1, 2**63, 2**64 - 5, -2**63,
                 10**30]
_SPECIAL_FLOATS = [0.0, -0.0, 0.5, 1.7, -1.0, 1e300, -1e300, 5e-324, np.nan, np.inf, -np.inf]

scalars = st.one_of(
    st.none(), st.booleans(), st.sampled_from(_SPECIAL_INTS), st.integers(-5, 60),
    st.sampled_from(_SPECIAL_FLOATS), st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=5), st.binary(max_size=3),
    st.sampled_from([np.int64(3), np.uint64(2**64 - 5), np.float32(0.5), np.bool_(True),
                     np.float64(np.nan), np.int8(-1)]),
)


@st.composite
def arrays(draw):
    n = draw(st.sampled_from([0, 1, 4, 5, 9, 10, 40, 41]))
    kind = draw(st.sampled_from(["f", "i", "u", "b", "c", "O", "U", "2d", "list", "torch",
                                 "f32"]))
    if kind in ("f", "2d", "list", "torch", "f32", "c"):
        vals = draw(st.lists(st.one_of(st.sampled_from(_SPECIAL_FLOATS),
                                       st.floats(-1e3, 1e3)), min_size=n, max_size=n))
        a = np.array(vals, dtype=np.float64)
        if kind == "2d":
            return a.reshape(1, -1) if draw(st.booleans()) else np.tile(a, (2, 1))
        if kind == "list":
            return vals
        if kind == "torch":
            return torch.from_numpy(a)
        if kind == "c":
            return a.astype(np.complex128)
        return a.astype(np.float32)
    if kind in ("i", "u"):
        lo, hi = (-2**63, 2**63 - 1) if kind == "i" else (0, 2**64 - 1)
        vals = draw(st.lists(st.one_of(st.integers(max(lo, -3), 45), st.integers(lo, hi)),
                             min_size=n, max_size=n))
        return np.array(vals, dtype=np.int64 if kind == "i" else np.uint64)
    if kind == "b":
        return np.array(draw(st.lists(st.booleans(), min_size=n, max_size=n)), dtype=bool)
    if kind == "O":
        a = np.empty(n, dtype=object)
        a[:] = draw(st.lists(scalars, min_size=n, max_size=n))
        return a
    return np.array(draw(st.lists(st.text(max_size=2), min_size=n, max_size=n)), dtype="U2")


garbage = st.one_of(scalars, arrays(), st.dictionaries(st.text(max_size=3), scalars,
                                                       max_size=2),
                    st.lists(scalars, max_size=5),
                    st.builds(lambda k, n: STATES[n].get(k),
                              st.sampled_from(sorted({k for s in STATES.values() for k in s})),
                              st.sampled_from(ALL)))


# ------------------------------------------------------------------------------ states
@given(name=st.sampled_from(ALL), data=st.data(), value=garbage)
def test_garbage_in_one_field(name, data, value):
    state = dict(STATES[name])
    key = data.draw(st.sampled_from(sorted(state)), label="key")
    state[key] = value
    _check_load(name, state)


@given(name=st.sampled_from(ALL), data=st.data())
def test_missing_and_extra_keys(name, data):
    state = dict(STATES[name])
    key = data.draw(st.sampled_from(sorted(state)), label="key")
    del state[key]
    s = _fresh(name)
    before = _observe(s, name)
    with pytest.raises(ValueError, match=repr(key)):
        s.load_state_dict(state)
    assert _observe(s, name) == before
    key = data.draw(st.text(min_size=1, max_size=4), label="extra")
    extra = dict(STATES[name], **{key: data.draw(scalars)})
    extra.update({k: STATES[name][k] for k in STATES[name]})   # never overwrite a field
    if name in HARD_SAMPLERS and key not in STATES[name]:
        # a versioned layout: a field it does not know is refused, named
        with pytest.raises(ValueError, match=re.escape(repr(key))):
            s.load_state_dict(extra)
        assert _observe(s, name) == before
    else:
        assert _check_load(name, extra)


@given(name=st.sampled_from(ALL), other=st.sampled_from(ALL))
def test_state_of_another_sampler(name, other):
    loaded = _check_load(name, dict(STATES[other]))
    assert loaded == (name == other)


@given(state=st.one_of(scalars, st.lists(scalars, max_size=3), arrays()),
       name=st.sampled_from(ALL))
def test_not_a_dict(state, name):
    assert not _check_load(name, state)


def _mutations(value, draw):
    """Plausible corruptions of one real field (a flipped entry, a cast, a reshape...)."""
    if isinstance(value, (list, np.ndarray)):
        a = np.array(value)
        how = draw(st.sampled_from(["entry", "entry", "entry", "cast", "reshape", "cut",
                                    "grow", "tensor", "list"]))
        if how == "entry" and a.size:
            a = a.astype(np.float64) if draw(st.booleans()) else a.copy()
            pos = draw(st.integers(0, a.size - 1))
            new = draw(st.one_of(st.sampled_from(_SPECIAL_FLOATS + _SPECIAL_INTS[:9]),
                                 st.integers(-3, 45)))
            try:
                a.reshape(-1)[pos] = new
            except (OverflowError, ValueError):
                a = a.astype(np.float64)
                a.reshape(-1)[pos] = float(new)
            return a
        if how == "cast":
            dt = draw(st.sampled_from([np.float32, np.int32, np.uint64, np.int8, bool,
                                       np.complex64, object, "U8"]))
            with np.errstate(all="ignore"):
                return a.astype(dt)
        if how == "reshape" and a.ndim == 1 and a.size % 2 == 0:
            return a.reshape(2, -1)
        if how == "cut":
            return a[:-1]
        if how == "grow":
            return np.concatenate([a.reshape(-1), a.reshape(-1)[:1]])
        if how == "tensor" and a.dtype.kind in "fiu":
            return torch.from_numpy(np.ascontiguousarray(a))
        return a.tolist()
    if isinstance(value, bool):
        return not value
    if isinstance(value, int):
        return draw(st.one_of(st.integers(-2, value + 3), st.sampled_from(_SPECIAL_INTS),
                              st.sampled_from([float(value), str(value), np.int64(value),
                                               np.uint64(max(value, 0)), [value]])))
    if isinstance(value, float):
        return draw(st.sampled_from(_SPECIAL_FLOATS + [str(value), int(value)]))
    if isinstance(value, str):
        return draw(st.sampled_from([value.upper(), value + " ", "", None, 0]))
    return draw(scalars)


@given(name=st.sampled_from(ALL), data=st.data())
def test_mutated_real_state(name, data):
    state = pickle.loads(pickle.dumps(STATES[name]))
    for key in data.draw(st.lists(st.sampled_from(sorted(state)), min_size=1, max_size=3,
                                  unique=True), label="keys"):
        state[key] = _mutations(state[key], data.draw)
    _check_load(name, state)


@pytest.mark.parametrize("name", ALL)
def test_real_states_round_trip(name):
    assert _check_load(name, pickle.loads(pickle.dumps(STATES[name])))


# ------------------------------------------------------------------------------ constructors
CONSTRUCTORS = {
    "WeightedSampler": (WeightedSampler, dict(weights=W, num_samples=20, replacement=True,
                                              seed=0, num_replicas=2, rank=1,
                                              drop_last=False)),
    "RepeatFactorSampler": (RepeatFactorSampler, dict(labels=Y, threshold=0.5, sqrt=True,
                                                      seed=0, num_replicas=1, rank=0,
                                                      drop_last=False)),
    "from_factors": (RepeatFactorSampler.from_factors, dict(factors=W * 2, seed=0,
                                                            num_replicas=1, rank=0,
                                                            drop_last=True)),
    "ClassAwareSampler": (ClassAwareSampler, dict(labels=Y, num_samples=20,
                                                  class_weights=np.ones(5),
                                                  return_labels=True, batch_size=6,
                                                  samples_per_label=2,
                                                  seed=0, num_replicas=1, rank=0,
                                                  drop_last=False)),
    "StratifiedBatchSampler": (StratifiedBatchSampler, dict(labels=Y, batch_size=8,
                                                            drop_last=False, seed=0,
                                                            num_replicas=1, rank=0)),
    "HardExampleSampler": (HardExampleSampler, dict(
        n=40, batch_size=4, hard_fraction=0.5, base_weights=W, base_fraction=0.25,
        priority="rank", alpha=0.6, beta=0.4, eps=1e-6, selection_pressure=10.0,
        history=16, baseline=np.zeros(40), normalize="mean", staleness_half_life=5.0,
        in_flight_factor=0.0, in_flight_timeout=4, loss_reduction="mean", seed=0,
        num_replicas=1, rank=0)),
    "SumTree": (SumTree, dict(capacity=40, values=W, seed=0)),
    "MultilabelStratifiedKFold": (MultilabelStratifiedKFold, dict(
        n_splits=3, shuffle=True, random_state=0, order=1, method="balanced", compat=None)),
    "RepeatedMultilabelStratifiedKFold": (RepeatedMultilabelStratifiedKFold, dict(
        n_splits=2, n_repeats=2, random_state=0, order=1, method="sechidis", compat=None)),
    "MultilabelStratifiedShuffleSplit": (MultilabelStratifiedShuffleSplit, dict(
        n_splits=2, test_size=0.25, train_size=None, random_state=0, order=1,
        method="balanced", compat=None)),
    "iterative_stratification": (iterative_stratification, dict(
        labels=Y, fractions=[0.5, 0.3, 0.2], order=1, seed=0, method="balanced",
        groups=None, shuffle=True, refine=1)),
    "stratification_report": (stratification_report, dict(
        labels=Y, parts=np.arange(40) % 3, fractions=None, n_parts=3, max_pairs=50,
        max_pair_occurrences=100, seed=0)),
}


def _exercise(obj):
    """Use whatever was built a little (bounded work): it must work or refuse cleanly."""
    if isinstance(obj, HardExampleSampler):
        for _ in range(3):
            b = obj.sample()
            idx = b.extras["index"]
            assert ((idx >= 0) & (idx < obj.n)).all() and np.isfinite(b.extras["weight"]).all()
            obj.update(idx, np.linspace(0, 1, len(idx)), gather=False)
        obj.load_state_dict(obj.state_dict())
    elif isinstance(obj, SumTree):
        if obj.total > 0:
            assert (obj.values[obj.sample(5)] > 0).all()
        obj.load_state_dict(obj.state_dict())
    elif hasattr(obj, "split"):
        for _, test in obj.split(None, Y):
            assert ((test >= 0) & (test < len(Y))).all()
            break
    elif hasattr(obj, "state_dict"):
        items = list(iter(obj))
        assert len(items) == len(obj)
        obj.load_state_dict(obj.state_dict())


@given(name=st.sampled_from(sorted(CONSTRUCTORS)), data=st.data())
def test_bad_constructor_arguments(name, data):
    fn, kwargs = CONSTRUCTORS[name]
    kwargs = dict(kwargs)
    for key in data.draw(st.lists(st.sampled_from(sorted(kwargs)), min_size=1, max_size=2,
                                  unique=True), label="args"):
        kwargs[key] = data.draw(garbage, label=key)
    try:
        obj = fn(**kwargs)
    except BAD:
        return
    try:
        _exercise(obj)
    except BAD:
        pass   # a clean refusal at first use (e.g. a loss whose priority overflows)
