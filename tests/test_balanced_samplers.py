"""WeightedSampler, RepeatFactorSampler, ClassAwareSampler: distributions, sharding,
determinism across workers, mid-epoch resume, bad input."""
import os

import numpy as np
import pytest
import torch
from scipy import stats
from torch.utils.data import BatchSampler, DataLoader, Dataset

from longtail import LabelMatrix
from longtail.datasets import ArrowDataset, IndexBatch, write_dataset
from longtail.datasets.index_batch import collate_with_extras, with_extras
from longtail.samplers.balanced import _kernels as BK
from longtail.samplers.balanced.samplers import (
    ClassAwareSampler,
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
    if kind == "class_aware_labels":      # a batch sampler: IndexBatch with the labels
        return ClassAwareSampler(Y, num_samples=310, return_labels=True, batch_size=B, **kw)
    raise AssertionError(kind)


KINDS = ["weighted", "weighted_norep", "repeat", "class_aware", "class_aware_labels"]
B = 16


def _ints(items):
    """The flat sequence of indices (batches of a batch sampler concatenated)."""
    out = []
    for i in items:
        if isinstance(i, list):
            assert all(type(j) is int for j in i)
            out += i
        else:
            out.append(int(i))
    return out


def _drawn(items):
    """Flat ``(indices, sampled labels)`` of the batches of a ``return_labels`` sampler."""
    items = list(items)
    assert all(isinstance(b, IndexBatch) for b in items)
    labs = [b.extras["sampled_label"] for b in items]
    assert all(lab.dtype == np.int64 and lab.shape == (len(b),) for lab, b in zip(labs, items))
    return _ints(items), (np.concatenate(labs).tolist() if labs else [])


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
    s = ClassAwareSampler(Y, num_samples=k * present.size, return_labels=True,
                          batch_size=7, seed=2)
    idx, labs = map(np.array, _drawn(s))
    assert idx.size == k * present.size
    # every label with examples is visited exactly k times; the example has the label
    np.testing.assert_array_equal(np.bincount(labs, minlength=32)[present], k)
    assert all(c in ROWS[i] for i, c in zip(idx.tolist(), labs.tolist()))
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
    s = ClassAwareSampler(Y, num_samples=m, class_weights=cw, return_labels=True,
                          batch_size=1000, seed=4)
    items, drawn = _drawn(s)
    labs = np.bincount(drawn, minlength=32)
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


def _rank_items(items, R, r, drop_last):
    """Rank r's part of an epoch's items (ints, or the batches of a batch sampler): the
    epoch padded by wrapping around (trimmed with drop_last) to a multiple of R, then
    positions r, r + R, ..."""
    items = list(items)
    per = len(items) // R if drop_last else -(-len(items) // R)
    return (items * 2)[: per * R][r::R]


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
        order = list(whole)
        a = np.load(tmp_path / f"{kind}_0.npy").tolist()
        b = np.load(tmp_path / f"{kind}_1.npy").tolist()
        assert a == _ints(_rank_items(order, 2, 0, False))
        assert b == _ints(_rank_items(order, 2, 1, False))
        if kind != "class_aware_labels":
            assert len(a) == len(b) == -(-len(order) // 2)


class _Echo(Dataset):
    def __len__(self):
        return N

    def __getitem__(self, i):
        assert type(i) is int
        return torch.tensor(i)


def _loader(s, workers, batch_size, cls=DataLoader):
    """A loader over ``s``; a batch sampler's extras ride along with its batches."""
    if getattr(s, "batch_size", None):
        return cls(with_extras(_Echo()), batch_sampler=s, collate_fn=collate_with_extras,
                   num_workers=workers)
    return cls(_Echo(), sampler=s, batch_size=batch_size, num_workers=workers)


def _plain(batch):
    if isinstance(batch, tuple):                   # (indices, extras)
        return batch[0].tolist(), {k: v.tolist() for k, v in batch[1].items()}
    return batch.tolist()


def _batches(loader):
    return [_plain(b) for b in loader]


# ---------------------------------------------------------------------------- resume


def test_batch_mode_state_counts_batches_and_resumes_with_labels():
    def make(**kw):
        return ClassAwareSampler(Y, num_samples=100, return_labels=True, batch_size=8,
                                 seed=4, **kw)

    whole = make()
    whole.set_epoch(2)
    every = list(whole)
    assert len(whole) == len(every) == 13 and [len(b) for b in every] == [8] * 12 + [4]
    flat = ClassAwareSampler(Y, num_samples=100, seed=4)
    flat.set_epoch(2)                 # the same draws as the sampler of ints, cut in batches
    assert every == list(BatchSampler(list(flat), 8, False))
    s = make(num_replicas=2, rank=0)
    s.set_epoch(2)
    assert len(s) == 7
    it = iter(s)
    head = [next(it) for _ in range(3)]
    state = s.state_dict()
    assert state["yielded"] == 3 and state["batch_size"] == 8 and state["epoch"] == 2
    assert all(isinstance(v, (int, str, bool, type(None))) for v in state.values())
    rest = list(it)
    assert [len(b) for b in rest] == [8, 8, 8, 4]
    assert head + rest == every[0::2] and _drawn(head + rest) == _drawn(every[0::2])
    other = make(num_replicas=2, rank=1)
    other.set_epoch(2)                # padded by wrapping around: batch 0 again
    assert list(other) == every[1::2] + every[:1]
    t = make(num_replicas=2, rank=1)  # the saved rank may differ
    t.load_state_dict(state)
    assert t.state_dict()["yielded"] == 3
    u = make(num_replicas=2, rank=0)
    u.load_state_dict(state)
    again = list(u)
    assert again == rest and _drawn(again) == _drawn(rest)
    assert u.state_dict()["yielded"] == 7
    with pytest.raises(ValueError, match="yielded=8 is outside"):
        u.load_state_dict(dict(state, yielded=8))
    with pytest.raises(ValueError, match="batch_size=8"):   # items are not batches
        flat.load_state_dict(ClassAwareSampler(Y, num_samples=100, batch_size=8,
                                               seed=4).state_dict())
    # without labels: IndexBatch lists with empty extras; drop_last drops the short batch
    plain = ClassAwareSampler(Y, num_samples=100, batch_size=8, seed=4, drop_last=True)
    plain.set_epoch(2)
    batches = list(plain)
    assert len(batches) == len(plain) == 12 and all(len(b) == 8 for b in batches)
    assert all(isinstance(b, IndexBatch) and b.extras == {} for b in batches)
    assert _ints(batches) == list(flat)[:96]


def test_batch_mode_state_counts_across_chunks():
    s = ClassAwareSampler(Y, num_samples=70_000, return_labels=True, batch_size=1, seed=1)
    it = iter(s)
    head = [next(it) for _ in range(65_541)]
    state = s.state_dict()
    assert state["yielded"] == 65_541
    rest = list(it)
    t = ClassAwareSampler(Y, num_samples=70_000, return_labels=True, batch_size=1, seed=1)
    t.load_state_dict(state)
    again = list(t)
    assert again == rest and _drawn(again) == _drawn(rest)
    assert len(head) + len(rest) == 70_000 == len(s)


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


# ---------------------------------------------------------------------------- ArrowDataset
def test_class_aware_labels_reach_arrow_dataset_batches(tmp_path):
    path = tmp_path / "d.arrow"
    write_dataset(path, _RNG.random((N, 3)).astype(np.float32), ROWS, n_labels=32)
    ds = ArrowDataset(path)
    flat = ClassAwareSampler(ds.labels, seed=3)       # the same draws, one int at a time
    flat.set_epoch(1)
    for workers in (0, 2):
        s = ClassAwareSampler(ds.labels, return_labels=True, batch_size=40, seed=3)
        s.set_epoch(1)
        drawn = _drawn(s)
        loader = DataLoader(ds, batch_sampler=s, collate_fn=ArrowDataset.collate,
                            num_workers=workers)
        seen, labels = [], []
        for x, y, idx, extras in loader:
            assert list(extras) == ["sampled_label"]
            c = extras["sampled_label"]
            assert c.dtype == torch.int64 and c.shape == idx.shape
            assert y[torch.arange(len(c)), c].eq(1).all()   # drawn for a label it has
            seen += idx.tolist()
            labels += c.tolist()
        assert (seen, labels) == drawn
        assert seen == list(flat)


def test_deprecated_shims_warn_and_point_to_index_batch_extras(tmp_path):
    path = tmp_path / "d.arrow"
    write_dataset(path, _RNG.random((N, 3)).astype(np.float32), ROWS, n_labels=32)
    ds = ArrowDataset(path)
    with pytest.warns(DeprecationWarning, match=r"returns the dataset unchanged.*batch_size"):
        assert with_sampled_labels(ds) is ds
    with pytest.warns(DeprecationWarning), pytest.raises(ValueError, match="another key"):
        with_sampled_labels(ds, key="label")
    batch = IndexBatch([4, 2], {"sampled_label": np.array([1, 0])})
    with pytest.warns(DeprecationWarning, match=r"extras\['sampled_label'\]"):
        assert sampled_labels(batch).tolist() == [1, 0]
    with pytest.warns(DeprecationWarning):
        assert sampled_labels([4, 3]).tolist() == [-1, -1]
    import longtail.samplers.balanced as balanced
    assert not hasattr(balanced, "LabelledIndex") and "LabelledIndex" not in balanced.__all__
    import longtail
    assert longtail.with_sampled_labels is with_sampled_labels
    assert longtail.sampled_labels is sampled_labels


def test_return_labels_needs_batch_size():
    with pytest.raises(ValueError, match="return_labels=True needs batch_size: the sampled "
                                         "labels travel with a batch"):
        ClassAwareSampler(Y, return_labels=True)
    with pytest.raises(TypeError, match="batch_size must be a positive integer"):
        ClassAwareSampler(Y, batch_size=8.0)
    with pytest.raises(ValueError, match="batch_size must be a positive integer, got 0"):
        ClassAwareSampler(Y, batch_size=0)
    with pytest.raises(TypeError, match="return_labels must be True or False"):
        ClassAwareSampler(Y, return_labels="yes", batch_size=4)
    with pytest.raises(TypeError, match="samples_per_label must be a positive integer"):
        ClassAwareSampler(Y, samples_per_label=1.5)
    with pytest.raises(TypeError, match="sqrt must be True or False"):
        RepeatFactorSampler(Y, 0.2, sqrt="no")


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
    with pytest.raises(TypeError, match="replacement must be True or False"):
        WeightedSampler(WEIGHTS, replacement="no")
    with pytest.raises(ValueError, match="epoch must be a non-negative integer"):
        WeightedSampler(WEIGHTS).set_epoch(-1)
