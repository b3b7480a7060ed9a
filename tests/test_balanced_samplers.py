"""WeightedSampler, RepeatFactorSampler, ClassAwareSampler: distributions, sharding,
determinism across workers, mid-epoch resume, bad input."""
import os

import numpy as np
import pytest
import torch
from scipy import stats
from torch.utils.data import DataLoader, Dataset

from longtail import LabelMatrix
from longtail.datasets import ArrowDataset, write_dataset
from longtail.samplers.balanced import _kernels as BK
from longtail.samplers.balanced.samplers import (
    ClassAwareSampler,
    LabelledIndex,
    RepeatFactorSampler,
    WeightedSampler,
    sampled_labels,
    with_sampled_labels,
)
from longtail.samplers.weights.weighting import exposure_report, sample_weights

pytestmark = pytest.mark.filterwarnings("ignore:'set_vital' is deprecated:UserWarning")

_RNG = np.random.default_rng(12345)
N = 300
# a small long-tailed multilabel set: label j has about N / (j + 1) ** 1.2 examples
ROWS = [sorted({int(j) for j in np.minimum(_RNG.zipf(1.6, size=_RNG.integers(1, 4)) - 1, 29)})
        for _ in range(N)]
Y = LabelMatrix.from_lists(ROWS, n_labels=32)         # labels 30, 31: no examples
WEIGHTS = _RNG.random(N) ** 2
WEIGHTS[[5, 17]] = 0.0


def _make(kind, **kw):
    if kind == "weighted":
        return WeightedSampler(WEIGHTS, **kw)
    if kind == "weighted_norep":
        return WeightedSampler(WEIGHTS, num_samples=250, replacement=False, **kw)
    if kind == "repeat":
        return RepeatFactorSampler(Y, threshold=0.2, **kw)
    if kind == "class_aware":
        return ClassAwareSampler(Y, **kw)
    if kind == "class_aware_labels":
        return ClassAwareSampler(Y, num_samples=310, return_labels=True, **kw)
    raise AssertionError(kind)


KINDS = ["weighted", "weighted_norep", "repeat", "class_aware", "class_aware_labels"]


def _ints(items):
    return [int(i) for i in items]


# ---------------------------------------------------------------------------- kernels
def test_alias_table_is_exact():
    for w in (_RNG.random(50), np.r_[0.0, 1.0, 0.0, 3.0], np.ones(7), _RNG.random(1000) ** 8):
        w = np.ascontiguousarray(w)
        w.flags.writeable = False
        prob, alias = BK.build_alias(w)
        n = w.size
        implied = prob / n
        np.add.at(implied, alias, (1.0 - prob) / n)
        np.testing.assert_allclose(implied, w / w.sum(), rtol=1e-9, atol=1e-15)


def test_radix_argsort_matches_numpy():
    for keys in (_RNG.integers(0, 2 ** 63, size=5000, dtype=np.uint64),
                 _RNG.integers(0, 5, size=3000).astype(np.uint64),
                 (_RNG.random(4000) * 1e-3).view(np.uint64)):
        np.testing.assert_array_equal(BK.radix_argsort(keys), np.argsort(keys, kind="stable"))


# ---------------------------------------------------------------------------- distributions
def test_weighted_with_replacement_frequencies_match_weights():
    m = 200_000
    s = WeightedSampler(WEIGHTS, num_samples=m, seed=7)
    counts = np.bincount(_ints(s), minlength=N)
    assert counts[[5, 17]].sum() == 0
    pos = WEIGHTS > 0
    expected = m * WEIGHTS[pos] / WEIGHTS.sum()
    assert stats.chisquare(counts[pos], expected).pvalue > 1e-3


def test_weighted_without_replacement_is_successive_weighted_sampling():
    w = np.array([1.0, 2.0, 3.0, 4.0])
    s = WeightedSampler(w, num_samples=2, replacement=False, seed=3)
    pairs = np.zeros((4, 4))
    epochs = 3000
    for e in range(epochs):
        s.set_epoch(e)
        a, b = list(s)
        pairs[a, b] += 1
    W = w.sum()
    exact = np.array([[w[i] / W * w[j] / (W - w[i]) if i != j else 0 for j in range(4)]
                      for i in range(4)])
    off = ~np.eye(4, dtype=bool)
    assert pairs[~off].sum() == 0
    assert stats.chisquare(pairs[off], epochs * exact[off]).pvalue > 1e-3
    full = WeightedSampler(WEIGHTS, num_samples=int((WEIGHTS > 0).sum()), replacement=False)
    assert sorted(_ints(full)) == np.flatnonzero(WEIGHTS > 0).tolist()


def test_repeat_factor_stochastic_rounding():
    factors = np.array([1.0, 1.5, 2.25, 0.3, 0.0])
    s = RepeatFactorSampler.from_factors(factors, seed=1)
    epochs = 2000
    counts = np.zeros((epochs, 5), dtype=np.int64)
    for e in range(epochs):
        s.set_epoch(e)
        order = _ints(s)
        assert len(s) == len(order)
        counts[e] = np.bincount(order, minlength=5)
    floor = np.floor(factors).astype(int)
    assert ((counts == floor) | (counts == floor + 1)).all()
    extra = (counts > floor).sum(0)
    for i in (1, 2, 3):
        p = factors[i] - floor[i]
        assert stats.binomtest(int(extra[i]), epochs, p).pvalue > 1e-3
    assert extra[0] == 0 and extra[4] == 0
    # the factors are detectron2's (LVIS) repeat factors
    ref = sample_weights(Y, "repeat_factor", threshold=0.2)
    np.testing.assert_array_equal(RepeatFactorSampler(Y, 0.2).factors, ref)


def test_class_aware_cycles_labels_and_examples():
    present = np.flatnonzero(Y.label_counts() > 0)
    k = 10
    s = ClassAwareSampler(Y, num_samples=k * present.size, return_labels=True, seed=2)
    items = list(s)
    assert all(isinstance(i, LabelledIndex) for i in items)
    labs = np.array([i.label for i in items])
    idx = np.array(_ints(items))
    # every label with examples is visited exactly k times; the example has the label
    np.testing.assert_array_equal(np.bincount(labs, minlength=32)[present], k)
    assert all(i.label in ROWS[int(i)] for i in items)
    # within a label, examples come from a cycle: counts differ by at most one
    t = Y.transpose()
    for c in present:
        got = np.bincount(idx[labs == c], minlength=N)[t[c]]
        assert got.max() - got.min() <= 1


def test_class_aware_with_class_weights_and_expected_weights():
    cw = np.zeros(32)
    cw[:30] = _RNG.random(30) + 0.2
    cw[3] = 0.0                                   # never visit label 3
    m = 60_000
    s = ClassAwareSampler(Y, num_samples=m, class_weights=cw, return_labels=True, seed=4)
    items = list(s)
    labs = np.bincount([i.label for i in items], minlength=32)
    p = s.label_probabilities()
    assert labs[3] == 0 and p[3] == 0 and p.sum() == pytest.approx(1.0)
    nz = p > 0
    assert stats.chisquare(labs[nz], m * p[nz]).pvalue > 1e-3
    # expected_weights is the per-example draw rate: check it empirically too
    counts = np.bincount(_ints(items), minlength=N)
    ew = s.expected_weights()
    assert ew.mean() == pytest.approx(1.0)
    pos = ew > 0
    assert counts[~pos].sum() == 0
    assert stats.chisquare(counts[pos], m * ew[pos] / ew.sum()).pvalue > 1e-3
    r = exposure_report(Y, ew)
    assert r.exposure_ratio < r.uniform_ratio


# ---------------------------------------------------------------------------- determinism
@pytest.mark.parametrize("kind", KINDS)
def test_same_seed_and_epoch_same_order(kind):
    a, b = _make(kind, seed=5), _make(kind, seed=5)
    a.set_epoch(2)
    b.set_epoch(2)
    first = list(a)
    assert first == list(b) and first == list(a)           # iterating again: the same
    b.set_epoch(3)
    assert list(b) != first
    assert list(_make(kind, seed=6)) != list(_make(kind, seed=5))
    if kind == "class_aware_labels":
        assert [i.label for i in first] == [i.label for i in list(a)]


@pytest.mark.parametrize("kind,R,drop_last", [(k, R, d) for k in KINDS for R in (2, 3)
                                              for d in (False, True)])
def test_simulated_ranks_get_disjoint_equal_shards_of_the_epoch(kind, R, drop_last):
    whole = _make(kind, seed=9)
    whole.set_epoch(4)
    order = _ints(whole)
    shards = []
    for r in range(R):
        s = _make(kind, seed=9, num_replicas=R, rank=r, drop_last=drop_last)
        s.set_epoch(4)
        shards.append(_ints(s))
        assert len(s) == len(shards[-1])
    per = len(order) // R if drop_last else -(-len(order) // R)
    assert all(len(x) == per for x in shards)
    # rank r holds positions r, r + R, ... of the (padded / trimmed) epoch: disjoint,
    # together the whole epoch
    padded = (order * 2)[: per * R]
    for r in range(R):
        assert shards[r] == padded[r::R]


def _dist_worker(rank, world, init_file, out_dir):
    import torch.distributed as dist

    dist.init_process_group("gloo", init_method=f"file://{init_file}", world_size=world,
                            rank=rank)
    try:
        for kind in KINDS:
            s = _make(kind, seed=11)          # num_replicas / rank from the group
            assert (s.num_replicas, s.rank) == (world, rank)
            s.set_epoch(1)
            np.save(os.path.join(out_dir, f"{kind}_{rank}.npy"), np.array(_ints(s)))
        dist.barrier()
    finally:
        dist.destroy_process_group()


def test_two_process_gloo_run(tmp_path):
    import torch.multiprocessing as mp

    mp.spawn(_dist_worker, args=(2, str(tmp_path / "init"), str(tmp_path)), nprocs=2,
             join=True)
    for kind in KINDS:
        whole = _make(kind, seed=11, num_replicas=1, rank=0)
        whole.set_epoch(1)
        order = _ints(whole)
        a = np.load(tmp_path / f"{kind}_0.npy").tolist()
        b = np.load(tmp_path / f"{kind}_1.npy").tolist()
        assert len(a) == len(b) == -(-len(order) // 2)
        padded = (order * 2)[: 2 * len(a)]
        assert a == padded[0::2] and b == padded[1::2]


class _Echo(Dataset):
    def __len__(self):
        return N

    def __getitem__(self, i):
        return torch.tensor([int(i), getattr(i, "label", -1)])


def _batches(loader):
    return [b.tolist() for b in loader]


@pytest.mark.parametrize("kind", ["weighted", "repeat", "class_aware_labels"])
def test_order_does_not_depend_on_workers(kind):
    out = []
    for workers in (0, 2):
        s = _make(kind, seed=13)
        s.set_epoch(1)
        out.append(_batches(DataLoader(_Echo(), sampler=s, batch_size=32,
                                       num_workers=workers)))
    assert out[0] == out[1]
    if kind == "class_aware_labels":   # labels survive the trip to worker processes
        assert all(lab >= 0 for b in out[1] for _, lab in b)


# ---------------------------------------------------------------------------- resume
@pytest.mark.parametrize("kind", ["weighted", "weighted_norep", "repeat",
                                  "class_aware_labels"])
@pytest.mark.parametrize("workers", [0, 2])
def test_stateful_dataloader_resumes_the_epoch(kind, workers):
    from torchdata.stateful_dataloader import StatefulDataLoader

    s1 = _make(kind, seed=21)
    s1.set_epoch(3)
    l1 = StatefulDataLoader(_Echo(), sampler=s1, batch_size=16, num_workers=workers)
    it = iter(l1)
    for _ in range(5):
        next(it)
    state = l1.state_dict()
    rest = [b.tolist() for b in it]
    assert rest                                    # something left to resume
    s2 = _make(kind, seed=21)                      # a fresh process: epoch 0
    l2 = StatefulDataLoader(_Echo(), sampler=s2, batch_size=16, num_workers=workers)
    l2.load_state_dict(state)
    assert [b.tolist() for b in l2] == rest
    assert s2.epoch == 3
    s2.set_epoch(4)                                # the next epoch is whole again
    assert sum(len(b) for b in _batches(l2)) == len(s2)


def test_state_dict_counts_across_chunks():
    s = WeightedSampler(WEIGHTS, num_samples=70_000, seed=1)
    it = iter(s)
    head = [next(it) for _ in range(65_541)]
    state = s.state_dict()
    assert state["yielded"] == 65_541 and state["epoch"] == 0
    rest = list(it)
    t = WeightedSampler(WEIGHTS, num_samples=70_000, seed=1)
    t.load_state_dict(state)
    assert list(t) == rest and len(head) + len(rest) == 70_000
    assert all(isinstance(v, (int, str, bool, type(None))) for v in state.values())


def test_load_state_dict_rejects_other_samplers():
    s = WeightedSampler(WEIGHTS, seed=1)
    state = s.state_dict()
    with pytest.raises(ValueError, match="n=300"):
        WeightedSampler(WEIGHTS[:-1], seed=1).load_state_dict(state)
    with pytest.raises(ValueError, match="seed=1"):
        WeightedSampler(WEIGHTS, seed=2).load_state_dict(state)
    with pytest.raises(ValueError, match="weights_crc"):
        WeightedSampler(WEIGHTS + 1, seed=1).load_state_dict(state)
    with pytest.raises(ValueError, match="sampler='WeightedSampler'"):
        RepeatFactorSampler(Y, 0.2, seed=1).load_state_dict(state)
    with pytest.raises(ValueError, match="num_samples"):
        ClassAwareSampler(Y, seed=1).load_state_dict(
            ClassAwareSampler(Y, num_samples=10, seed=1).state_dict())
    bad = dict(state, yielded=10**6)
    with pytest.raises(ValueError, match="yielded=1000000 is outside"):
        WeightedSampler(WEIGHTS, seed=1).load_state_dict(bad)


# ---------------------------------------------------------------------------- ArrowDataset
def test_class_aware_labels_reach_arrow_dataset_batches(tmp_path):
    path = tmp_path / "d.arrow"
    write_dataset(path, _RNG.random((N, 3)).astype(np.float32), ROWS, n_labels=32)
    ds = ArrowDataset(path)
    for workers in (0, 2):
        s = ClassAwareSampler(ds.labels, return_labels=True, seed=3)
        loader = DataLoader(with_sampled_labels(ds), sampler=s, batch_size=40,
                            collate_fn=ArrowDataset.collate, num_workers=workers)
        seen = []
        for x, y, idx, extras in loader:
            c = extras["sampled_label"]
            assert y[torch.arange(len(c)), c].eq(1).all()
            seen += idx.tolist()
        assert seen == _ints(s)
    # a plain ArrowDataset takes LabelledIndex items as indices (labels ignored)
    batch = ArrowDataset.collate(ds.__getitems__([LabelledIndex(4, 1), LabelledIndex(2, 0)]))
    assert batch[2].tolist() == [4, 2]
    assert sampled_labels([LabelledIndex(4, 1), 3]).tolist() == [1, -1]


# ---------------------------------------------------------------------------- scale
def test_no_two_to_the_24_limit():
    n = 2 ** 24 + 2
    w = np.zeros(n)
    w[-1] = 1.0
    w[5] = 1e-300
    s = WeightedSampler(w, num_samples=50, seed=0)
    assert set(_ints(s)) <= {n - 1, 5} and (n - 1) in _ints(s)
    t = WeightedSampler(w, num_samples=2, replacement=False, seed=0)
    assert _ints(t) == [n - 1, 5]


# ---------------------------------------------------------------------------- bad input
@pytest.mark.parametrize("weights,match", [
    ([1.0, float("nan")], r"weights\[1\] is NaN"),
    ([float("inf"), 1.0], r"weights\[0\] is infinite"),
    ([1.0, 2.0, -0.5], r"weights\[2\] is negative \(-0.5\)"),
    ([0.0, 0.0], "all zero"),
    ([], "empty"),
    (np.ones((2, 2)), "1-D"),
])
def test_weighted_sampler_rejects_bad_weights(weights, match):
    with pytest.raises(ValueError, match=match):
        WeightedSampler(weights)


def test_bad_sampler_arguments():
    with pytest.raises(ValueError, match="num_samples must be a positive integer, got 0"):
        WeightedSampler(WEIGHTS, num_samples=0)
    with pytest.raises(ValueError, match="num_samples must be a positive integer, got -3"):
        ClassAwareSampler(Y, num_samples=-3)
    with pytest.raises(ValueError, match="num_samples=299 distinct examples: only 298"):
        WeightedSampler(WEIGHTS, num_samples=299, replacement=False)
    with pytest.raises(ValueError, match=r"rank must be in \[0, num_replicas=2\), got rank=2"):
        WeightedSampler(WEIGHTS, num_replicas=2, rank=2)
    with pytest.raises(ValueError, match="num_replicas must be a positive integer"):
        RepeatFactorSampler(Y, 0.1, num_replicas=0, rank=0)
    with pytest.raises(ValueError, match=r"threshold must be in \(0, 1\], got 0"):
        RepeatFactorSampler(Y, 0)
    with pytest.raises(ValueError, match="threshold must be in"):
        RepeatFactorSampler(Y, -1.0)
    with pytest.raises(ValueError, match=r"factors\[1\] is negative"):
        RepeatFactorSampler.from_factors([1.0, -1.0])
    with pytest.raises(ValueError, match="class_weights has length 3, expected 32"):
        ClassAwareSampler(Y, class_weights=[1.0, 1.0, 1.0])
    with pytest.raises(ValueError, match=r"class_weights\[0\] is NaN"):
        ClassAwareSampler(Y, class_weights=np.r_[np.nan, np.ones(31)])
    with pytest.raises(ValueError, match="no label has both examples and a positive"):
        ClassAwareSampler(Y, class_weights=np.r_[np.zeros(30), np.ones(2)])
    with pytest.raises(ValueError, match="seed must be a non-negative integer"):
        WeightedSampler(WEIGHTS, seed=-1)
    with pytest.raises(ValueError, match="replacement must be True or False"):
        WeightedSampler(WEIGHTS, replacement="no")
    with pytest.raises(ValueError, match="epoch must be a non-negative integer"):
        WeightedSampler(WEIGHTS).set_epoch(-1)
