"""One contract, every sampler (issue 12): what each longtail sampler promises to a
training loop, checked the same way for all of them through their public API only.

The samplers: ``WeightedSampler`` (with and without replacement), ``RepeatFactorSampler``,
``ClassAwareSampler`` (plain ints; batch mode, with and without
``extras["sampled_label"]``),
``StratifiedBatchSampler`` and ``HardExampleSampler``. Each has a factory
``make(seed, num_replicas, rank, **kw)`` over one small hand-made long-tailed
``LabelMatrix``; every test is parametrized over all of them. The contract
(``longtail/_core/sampler.py`` module docstring and the samplers' docstrings):

* determinism: an epoch is a pure function of ``(seed, epoch)`` and ``set_epoch`` is what
  selects it (``HardExampleSampler``: of ``(seed, step)``, given the same loss feedback;
  steps keep counting across epochs, so consecutive epochs differ);
* the sequence a ``DataLoader`` hands the training loop is the sampler's own, whatever
  ``num_workers``;
* ``num_replicas`` / ``rank``: every rank yields the same number of items, and the ranks
  together are the single-replica epoch in the ``DistributedSampler`` layout (rank ``r``
  takes positions ``r, r + R, ...`` of the epoch padded by wrapping around, or trimmed
  with ``drop_last``); ``HardExampleSampler``: every rank takes its slice
  ``[r * B, (r + 1) * B)`` of one global batch of ``B * R`` draws;
* resume: mid-epoch through torchdata's ``StatefulDataLoader`` (0 and 2 workers) and
  through the sampler's own ``state_dict`` / ``load_state_dict``, the rest of the epoch is
  the uninterrupted run's rest;
* a state saved by another sampler class, or by the same class on other labels or with
  other parameters that it fingerprints, is refused (``ValueError`` / ``TypeError``)
  and leaves the sampler unchanged;
* ``len(sampler)`` is the number of items (batches, for a batch sampler) one epoch yields
  on each rank.

Garbage states and bad constructor arguments are fuzzed in ``test_fuzz_states.py``;
distributions, stratification quality and loss feedback semantics are tested per sampler
in their own files.
"""
from __future__ import annotations

import dataclasses
import pickle
from typing import Any, Callable

import numpy as np
import pytest
from torch.utils.data import DataLoader, Dataset

from longtail import LabelMatrix
from longtail.samplers import (
    ClassAwareSampler,
    HardExampleSampler,
    RepeatFactorSampler,
    StratifiedBatchSampler,
    WeightedSampler,
)

pytestmark = pytest.mark.filterwarnings("ignore:'set_vital' is deprecated:UserWarning")

# ------------------------------------------------------------------------------ data
_RNG = np.random.default_rng(2024)
N = 97            # no multiple of 2 or 3: sharding pads / trims
L = 12            # labels 10 and 11 have no examples
ROWS = [sorted({int(j) for j in np.minimum(_RNG.zipf(1.7, size=_RNG.integers(1, 4)) - 1, 9)})
        for _ in range(N)]
Y = LabelMatrix.from_lists(ROWS, n_labels=L)
# the same shape, row lengths and number of label entries, other label ids
Y_OTHER = LabelMatrix.from_lists([sorted({(j + 3) % 10 for j in r}) for r in ROWS], n_labels=L)
# the same label counts, other examples (a relabelling would keep the repeat factors)
Y_REVERSED = LabelMatrix.from_lists(ROWS[::-1], n_labels=L)
W = _RNG.random(N) ** 2
W[[4, 50]] = 0.0
W_OTHER = W[::-1].copy()


def _hard_feedback(sampler: HardExampleSampler, batch: Any) -> None:
    """A fixed loss per example, reported right after its batch is consumed."""
    idx = np.array([item[0] for item in batch[1]], dtype=np.int64)
    sampler.update(idx, ((idx * 37) % 11) / 10.0)


# ------------------------------------------------------------------------------ factories
def _weighted(seed=0, num_replicas=1, rank=0, **kw):
    kw = {"num_samples": 91, **kw}
    return WeightedSampler(kw.pop("weights", W), seed=seed, num_replicas=num_replicas,
                           rank=rank, **kw)


def _weighted_norep(seed=0, num_replicas=1, rank=0, **kw):
    kw = {"num_samples": 79, "replacement": False, **kw}
    return WeightedSampler(kw.pop("weights", W), seed=seed, num_replicas=num_replicas,
                           rank=rank, **kw)


def _repeat(seed=0, num_replicas=1, rank=0, **kw):
    kw = {"threshold": 0.3, **kw}
    return RepeatFactorSampler(kw.pop("labels", Y), seed=seed, num_replicas=num_replicas,
                               rank=rank, **kw)


def _class_aware(seed=0, num_replicas=1, rank=0, **kw):
    return ClassAwareSampler(kw.pop("labels", Y), seed=seed, num_replicas=num_replicas,
                             rank=rank, **kw)


def _class_aware_batch(seed=0, num_replicas=1, rank=0, **kw):
    kw = {"batch_size": 8, "return_labels": True, "num_samples": 110, "samples_per_label": 2,
          **kw}
    return ClassAwareSampler(kw.pop("labels", Y), seed=seed, num_replicas=num_replicas,
                             rank=rank, **kw)


def _class_aware_batch_ints(seed=0, num_replicas=1, rank=0, **kw):
    return _class_aware_batch(seed, num_replicas, rank,
                              **{"return_labels": False, "num_samples": None,
                                 "samples_per_label": 1, "batch_size": 10, **kw})


def _stratified(seed=0, num_replicas=1, rank=0, **kw):
    kw = {"batch_size": 8, **kw}
    return StratifiedBatchSampler(kw.pop("labels", Y), seed=seed, num_replicas=num_replicas,
                                  rank=rank, **kw)


def _hard(seed=0, num_replicas=1, rank=0, **kw):
    kw = {"batch_size": 4, "hard_fraction": 0.5, "base_weights": W, "base_fraction": 0.25,
          "in_flight_timeout": 3, "history": 16, **kw}
    return HardExampleSampler(kw.pop("n", N), seed=seed, num_replicas=num_replicas,
                              rank=rank, **kw)


@dataclasses.dataclass(frozen=True)
class Spec:
    name: str
    make: Callable[..., Any]
    #: "positions": DistributedSampler layout of the epoch's items (batches, for a batch
    #: sampler: ranks get whole batches);
    #: "global_batch": each rank's slice of one global batch per step
    layout: str = "positions"
    batch: bool = False             # a batch sampler (DataLoader batch_sampler=)
    drop_last: bool = True          # accepts drop_last=
    #: each index at most once per epoch (then drop_last shards are disjoint index sets)
    unique: bool = False
    #: the epoch is a pure function of (seed, epoch); else of (seed, step)
    epoch_keyed: bool = True
    #: called after each consumed batch (same in every run being compared)
    feedback: Callable | None = None
    #: other labels / parameters whose state this sampler must refuse: name -> kwargs
    foreign: dict = dataclasses.field(default_factory=dict)
    #: the state field that names the mismatch in the error, per foreign entry
    foreign_key: dict = dataclasses.field(default_factory=dict)
    #: a batch sampler's items per single-replica epoch (before drop_last), if fixed
    epoch_items: int | None = None


_EPOCH_FOREIGN = {"seed": dict(seed=1), "num_replicas": dict(num_replicas=2, rank=0)}

SPECS = [
    Spec("weighted", _weighted,
         foreign={"weights": dict(weights=W_OTHER), "n": dict(weights=W[:-1]),
                  "num_samples": dict(num_samples=N),
                  "replacement": dict(replacement=False), **_EPOCH_FOREIGN},
         foreign_key={"weights": "weights_crc"}),
    Spec("weighted_norep", _weighted_norep, unique=True,
         foreign={"weights": dict(weights=W_OTHER), "n": dict(weights=W[:-1]),
                  "num_samples": dict(num_samples=78),
                  "replacement": dict(replacement=True), **_EPOCH_FOREIGN},
         foreign_key={"weights": "weights_crc"}),
    Spec("repeat", _repeat,
         foreign={"labels": dict(labels=Y_REVERSED), "threshold": dict(threshold=0.4),
                  "sqrt": dict(sqrt=False), **_EPOCH_FOREIGN},
         foreign_key={"labels": "factors_crc"}),
    Spec("class_aware", _class_aware,
         foreign={"labels": dict(labels=Y_OTHER), "num_samples": dict(num_samples=N - 1),
                  "samples_per_label": dict(samples_per_label=2),
                  "class_weights": dict(class_weights=np.arange(1.0, L + 1)),
                  "batch_size": dict(batch_size=10), **_EPOCH_FOREIGN},
         foreign_key={"labels": "labels_crc", "class_weights": "class_weights_crc"}),
    Spec("class_aware_batch", _class_aware_batch, batch=True, epoch_items=110,
         foreign={"labels": dict(labels=Y_OTHER), "num_samples": dict(num_samples=109),
                  "samples_per_label": dict(samples_per_label=1),
                  "return_labels": dict(return_labels=False),
                  "batch_size": dict(batch_size=7), **_EPOCH_FOREIGN},
         foreign_key={"labels": "labels_crc"}),
    Spec("class_aware_batch_ints", _class_aware_batch_ints, batch=True, epoch_items=N,
         foreign={"batch_size": dict(batch_size=9), **_EPOCH_FOREIGN}),
    Spec("stratified", _stratified, batch=True, unique=True, epoch_items=N,
         foreign={"labels": dict(labels=Y_OTHER), "batch_size": dict(batch_size=7),
                  "drop_last": dict(drop_last=True), **_EPOCH_FOREIGN},
         foreign_key={"labels": "labels_crc"}),
    Spec("hard", _hard, batch=True, layout="global_batch", drop_last=False, epoch_keyed=False,
         feedback=_hard_feedback,
         # what HardExampleSampler fingerprints (its load_state_dict docstring); another
         # global batch size is accepted on purpose (priorities kept, marks lifted)
         foreign={"n": dict(n=N - 1, base_weights=W[:-1]), "priority": dict(priority="rank"),
                  "seed": dict(seed=1), "history": dict(history=15)}),
]
BY_NAME = {s.name: s for s in SPECS}
NAMES = [s.name for s in SPECS]


# ------------------------------------------------------------------------------ helpers
def _item(i: Any) -> tuple:
    assert isinstance(i, int) and not isinstance(i, bool), type(i)   # a Python int
    return (int(i), getattr(i, "label", None))


def _plain(x: Any) -> Any:
    """A comparable copy of what a sampler yields: an item ``(index, label or None)``, or
    a batch ``("batch", items, extras)`` (extras as sorted ``(key, list)`` pairs, each an
    array aligned with the batch)."""
    if isinstance(x, (list, tuple)):
        extras = getattr(x, "extras", None) or {}
        for k, v in extras.items():
            assert isinstance(v, np.ndarray) and v.shape == (len(x),), (k, v)
        return ("batch", tuple(_item(i) for i in x),
                tuple(sorted((k, v.tolist()) for k, v in extras.items())))
    return _item(x)


def _epoch(s: Any, spec: Spec, epoch: int | None = None, feedback: bool = True) -> list:
    """One epoch of ``s`` (after ``set_epoch(epoch)`` if given), plain."""
    if epoch is not None:
        s.set_epoch(epoch)
    out = []
    for x in s:
        out.append(_plain(x))
        if feedback and spec.feedback is not None:
            spec.feedback(s, out[-1])
    return out


class _Echo(Dataset):
    """A trivial index dataset: a batch comes back as the plain form of its indices."""

    def __len__(self) -> int:
        return N

    def __getitem__(self, i: Any) -> tuple:
        return _item(i)

    def __getitems__(self, indices: Any) -> Any:
        return _plain(indices)


def _as_is(batch: Any) -> Any:
    return batch


def _loader(cls, s: Any, spec: Spec, workers: int) -> Any:
    kw = dict(num_workers=workers, collate_fn=_as_is)
    if workers:
        kw["prefetch_factor"] = 2
    if spec.batch:
        return cls(_Echo(), batch_sampler=s, **kw)
    return cls(_Echo(), sampler=s, batch_size=10, **kw)


def _flat(batches: list) -> list:
    """The items a loader over an item sampler handed out, in order."""
    return [i for b in batches for i in b[1]]


def _state_equal(a: dict, b: dict) -> bool:
    if a.keys() != b.keys():
        return False
    for k in a:
        va, vb = a[k], b[k]
        if isinstance(va, np.ndarray) or isinstance(vb, np.ndarray):
            if not np.array_equal(np.asarray(va), np.asarray(vb)):
                return False
        elif va != vb:
            return False
    return True


def _mid_epoch_state(spec: Spec, epoch: int = 2, k: int = 3, **kw) -> tuple[dict, list, list]:
    """A state taken after ``k`` items of ``epoch`` (plain ``set_epoch`` + ``iter``),
    the items before it and the rest of that epoch."""
    s = spec.make(seed=3, **kw)
    s.set_epoch(epoch)
    out = []
    it = iter(s)
    state = None
    for x in it:
        out.append(_plain(x))
        if spec.feedback is not None:
            spec.feedback(s, out[-1])
        if len(out) == k:
            state = s.state_dict()
    assert state is not None
    return state, out[:k], out[k:]


# ------------------------------------------------------------------------------ determinism
@pytest.mark.parametrize("name", NAMES)
def test_determinism_per_seed_and_epoch(name):
    spec = BY_NAME[name]
    a, b = spec.make(seed=5), spec.make(seed=5)
    if spec.epoch_keyed:
        first = _epoch(a, spec, 2)
        assert first and first == _epoch(b, spec, 2)
        assert _epoch(a, spec) == first                  # iterating again: the same epoch
        assert _epoch(b, spec, 3) != first               # set_epoch selects another one
        assert _epoch(b, spec, 2) == first               # ... and back
        c = spec.make(seed=5)                            # whatever came before
        for e in (0, 1, 4):
            _epoch(c, spec, e)
        assert _epoch(c, spec, 2) == first
        assert _epoch(spec.make(seed=6), spec, 2) != first
    else:
        # a function of (seed, step), given the same feedback: two samplers fed alike
        # draw alike; steps keep counting, so the next epoch differs
        e0, e1 = _epoch(a, spec, 0), _epoch(a, spec, 1)
        assert e0 and e0 == _epoch(b, spec, 0) and e1 == _epoch(b, spec, 1)
        assert e1 != e0
        assert _epoch(spec.make(seed=6), spec, 0) != e0
        # the epoch number only restarts the position: a fresh sampler at epoch 3
        # draws what a fresh one draws at epoch 0
        assert _epoch(spec.make(seed=5), spec, 3) == e0


# ------------------------------------------------------------------------------ workers
@pytest.mark.parametrize("name", NAMES)
def test_dataloader_order_does_not_depend_on_workers(name):
    spec = BY_NAME[name]
    direct = _epoch(spec.make(seed=13), spec, 1, feedback=False)
    seen = []
    for workers in (0, 2):
        s = spec.make(seed=13)
        s.set_epoch(1)
        seen.append(list(_loader(DataLoader, s, spec, workers)))
    assert seen[0] == seen[1]
    if spec.batch:
        assert seen[0] == direct                         # batches and their extras
    else:
        assert _flat(seen[0]) == direct                  # labels survive the workers too


# ------------------------------------------------------------------------------ shards
def _shard_cases():
    for spec in SPECS:
        for R in (2, 3):
            for drop_last in ((False, True) if spec.drop_last else (None,)):
                yield pytest.param(spec.name, R, drop_last,
                                   id=f"{spec.name}-R{R}" + ("" if drop_last is None
                                                            else f"-drop{int(drop_last)}"))


@pytest.mark.parametrize("name,R,drop_last", list(_shard_cases()))
def test_ranks_get_disjoint_equal_shards(name, R, drop_last):
    spec = BY_NAME[name]
    kw = {} if drop_last is None else {"drop_last": drop_last}
    if spec.layout == "positions":
        order = _epoch(spec.make(seed=9, **kw), spec, 4)
        shards = []
        for r in range(R):
            s = spec.make(seed=9, num_replicas=R, rank=r, **kw)
            assert (s.num_replicas, s.rank) == (R, r)
            s.set_epoch(4)
            n_items = len(s)
            shards.append(_epoch(s, spec))
            assert n_items == len(shards[-1])
        per = len(order) // R if drop_last else -(-len(order) // R)
        assert [len(x) for x in shards] == [per] * R
        # rank r holds positions r, r + R, ... of the epoch padded by wrapping around
        # (or trimmed): disjoint positions, together the whole epoch
        padded = [order[p % len(order)] for p in range(per * R)]
        for r in range(R):
            assert shards[r] == padded[r::R]
        if spec.unique and drop_last:
            idx = [i for sh in shards for x in sh
                   for i in ([j for j, _ in x[1]] if x[0] == "batch" else [x[0]])]
            assert len(idx) == len(set(idx))
        return
    # one global batch of B * R draws per step; rank r takes [r * B, (r + 1) * B)
    assert spec.layout == "global_batch"
    B = 4
    ranks = [spec.make(seed=9, num_replicas=R, rank=r, batch_size=B) for r in range(R)]
    single = spec.make(seed=9, batch_size=B * R)
    for epoch in (0, 1):
        whole = _epoch(single, spec, epoch, feedback=False)
        parts = [_epoch(s, spec, epoch, feedback=False) for s in ranks]
        assert {len(p) for p in parts} == {len(whole)} == {len(ranks[0])}
        for t, batch in enumerate(whole):
            items = sum((p[t][1] for p in parts), ())
            assert all(len(p[t][1]) == B for p in parts)
            assert items == batch[1]
            for key, values in batch[2]:
                joined = sum((dict(p[t][2])[key] for p in parts), [])
                assert joined == values, key


# ------------------------------------------------------------------------------ len
@pytest.mark.parametrize("name", NAMES)
def test_len_is_what_one_epoch_yields_on_each_rank(name):
    spec = BY_NAME[name]
    for R in (1, 2, 3):
        for r in range(R):
            s = spec.make(seed=17, num_replicas=R, rank=r)
            for e in (0, 1, 2):
                s.set_epoch(e)
                expected = len(s)
                got = _epoch(s, spec, feedback=R == 1)
                assert expected == len(got) == len(s), (R, r, e)
    if spec.drop_last:
        s = spec.make(seed=17, num_replicas=3, rank=2, drop_last=True)
        for e in (0, 1):
            s.set_epoch(e)
            assert len(s) == len(_epoch(s, spec))


@pytest.mark.parametrize("name", [s.name for s in SPECS if s.batch])
def test_batches_are_full_but_the_last(name):
    # a batch sampler's batches hold batch_size indices, the epoch's last one the rest
    # (dropped with drop_last); HardExampleSampler draws full batches only
    spec = BY_NAME[name]
    for drop_last in ((False, True) if spec.drop_last else (None,)):
        s = spec.make(seed=23, **({} if drop_last is None else {"drop_last": drop_last}))
        B = s.batch_size
        for e in (0, 1):
            sizes = [len(b[1]) for b in _epoch(s, spec, e)]
            assert sizes and all(size == B for size in sizes[:-1]) and 0 < sizes[-1] <= B
            if drop_last is not False:
                assert sizes[-1] == B
            if spec.epoch_items is not None:
                total = spec.epoch_items
                assert sum(sizes) == (total // B * B if drop_last else total)


# ------------------------------------------------------------------------------ resume
def _stateful_loader(s: Any, spec: Spec, workers: int) -> Any:
    from torchdata.stateful_dataloader import StatefulDataLoader

    return _loader(StatefulDataLoader, s, spec, workers)


@pytest.mark.parametrize("workers", [0, 2])
@pytest.mark.parametrize("name", NAMES)
def test_stateful_dataloader_resumes_mid_epoch(name, workers):
    spec = BY_NAME[name]
    # with workers the sampler runs ahead of the loop: loss feedback would reach it at
    # other points in the two runs, so the feedback-driven sampler resumes without it
    feedback = spec.feedback if workers == 0 else None

    def run(loader, s):
        out = []
        for batch in loader:
            out.append(batch)
            if feedback is not None:
                feedback(s, batch)
        return out

    s1 = spec.make(seed=21)
    s1.set_epoch(3)
    l1 = _stateful_loader(s1, spec, workers)
    it = iter(l1)
    head = []
    for _ in range(3):
        head.append(next(it))
        if feedback is not None:
            feedback(s1, head[-1])
    state = l1.state_dict()
    rest = []
    for batch in it:
        rest.append(batch)
        if feedback is not None:
            feedback(s1, batch)
    assert rest                                          # something left to resume
    s2 = spec.make(seed=21)                              # a fresh process: epoch 0
    l2 = _stateful_loader(s2, spec, workers)
    l2.load_state_dict(state)
    assert run(l2, s2) == rest
    assert s2.epoch == 3
    s2.set_epoch(4)                                      # the next epoch is whole again
    nxt = run(l2, s2)
    assert len(nxt) == len(l2)
    assert (len(nxt) if spec.batch else len(_flat(nxt))) == len(s2)


@pytest.mark.parametrize("name", NAMES)
def test_own_state_dict_round_trip_mid_epoch(name):
    spec = BY_NAME[name]
    for kw in ({}, {"num_replicas": 2, "rank": 1}):
        # a replica's loss feedback goes through an all-gather: resume it without
        sp = dataclasses.replace(spec, feedback=None) if kw else spec
        state, head, rest = _mid_epoch_state(sp, **kw)
        assert state["yielded"] == 3 and state["epoch"] == 2
        assert rest
        if spec.epoch_keyed:   # plain Python values (StatefulDataLoader protocol)
            assert all(isinstance(v, (int, float, str, bool, type(None)))
                       for v in state.values()), state
        t = spec.make(seed=3, **kw)
        t.load_state_dict(pickle.loads(pickle.dumps(state)))   # survives torch.save
        assert t.epoch == 2
        assert _epoch(t, sp) == rest
        if spec.epoch_keyed:
            # resuming is a one-off: iterating again gives the whole epoch
            assert _epoch(t, sp) == head + rest
    # the saved rank may differ (equal shards): rank 0 continues its own shard
    sp = dataclasses.replace(spec, feedback=None)
    state, _, _ = _mid_epoch_state(sp, num_replicas=2, rank=1)
    t = spec.make(seed=3, num_replicas=2, rank=0)
    t.load_state_dict(state)
    assert _epoch(t, sp) == _mid_epoch_state(sp, num_replicas=2, rank=0)[2]


# ------------------------------------------------------------------------------ foreign states
def _refused(target: Any, state: Any, match: str | None = None) -> None:
    """The load fails with ValueError / TypeError and changes nothing."""
    before = target.state_dict()
    with pytest.raises((ValueError, TypeError), match=match):
        target.load_state_dict(state)
    assert _state_equal(target.state_dict(), before), "a refused state changed the sampler"


@pytest.mark.parametrize("name", NAMES)
def test_foreign_states_are_refused(name):
    spec = BY_NAME[name]
    state, _, rest = _mid_epoch_state(spec)
    # the sampler's own state is accepted (the control)
    t = spec.make(seed=3)
    t.load_state_dict(dict(state))
    assert _epoch(t, spec) == rest
    own_class = type(t).__name__
    # a position beyond the end of the saved epoch
    _refused(spec.make(seed=3), dict(state, yielded=10**6),
             r"yielded\W{0,3}=\W{0,3}1000000 is outside")
    # another sampler's state (another class: the error names the sampler field)
    for other in SPECS:
        if other.name == name:
            continue
        try:
            foreign, _, _ = _mid_epoch_state(other)
        except pytest.skip.Exception:
            continue
        same_class = foreign["sampler"] == own_class
        _refused(spec.make(seed=3), foreign, None if same_class else r"\bsampler=")
    # the same class on other labels or with other parameters
    for what, kw in spec.foreign.items():
        target = spec.make(**{"seed": 3, **kw})
        _refused(target, state, rf"\b{spec.foreign_key.get(what, what)}=")
