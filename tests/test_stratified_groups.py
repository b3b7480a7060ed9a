"""StratifiedBatchSampler with more than GROUP_BATCHES batches: the batches are built in
groups (dealt by rarest label, each group stratified on its own, in parallel threads).
Still a partition with exact sizes, stratified, deterministic, independent of threads."""
from __future__ import annotations

import numpy as np
import pytest

from longtail import LabelMatrix
from longtail.datasets import make_long_tail
from longtail.samplers import StratifiedBatchSampler
from longtail.samplers.split import batches as SB
from longtail.samplers.split import _kernels as K


@pytest.fixture(scope="module")
def labels():
    return make_long_tail("small", seed=0, n_examples=3_000).labels


def test_many_batches_take_the_group_path(labels):
    s = StratifiedBatchSampler(labels, batch_size=37, seed=1)      # 82 batches
    assert len(s._sizes) > SB.GROUP_BATCHES and hasattr(s, "_layout")
    bounds = s._layout[0]
    assert len(bounds) - 1 == 3 and all(b1 - b0 <= SB.GROUP_BATCHES
                                        for b0, b1 in zip(bounds, bounds[1:]))


@pytest.mark.parametrize("batch", [37, 50, 64])
def test_each_epoch_is_a_partition_with_exact_sizes(labels, batch):
    s = StratifiedBatchSampler(labels, batch_size=batch, seed=1)
    n = len(labels)
    for epoch in range(2):
        s.set_epoch(epoch)
        got = list(s)
        full, rest = divmod(n, batch)
        assert [len(b) for b in got] == [batch] * full + ([rest] if rest else [])
        np.testing.assert_array_equal(np.sort(np.concatenate(got)), np.arange(n))
    d = StratifiedBatchSampler(labels, batch_size=37, seed=1, drop_last=True)
    assert [len(b) for b in d] == [37] * (n // 37)


def _dev(labels, batches, size):
    parts = np.empty(len(labels), dtype=np.int32)
    for i, b in enumerate(batches):
        parts[b] = i
    counts = K.part_label_counts(labels.offsets, labels.indices, parts, len(batches),
                                 labels.n_labels)
    full = counts[[i for i, b in enumerate(batches) if len(b) == size]]
    expected = labels.label_counts() * size / len(labels)
    return np.abs(full - expected).mean()


def test_grouped_batches_are_as_stratified_as_one_recursive_split(labels, monkeypatch):
    grouped = list(StratifiedBatchSampler(labels, batch_size=50, seed=0))    # 60 batches
    monkeypatch.setattr(SB, "GROUP_BATCHES", 10**6)
    whole = list(StratifiedBatchSampler(labels, batch_size=50, seed=0))
    perm = np.random.default_rng(0).permutation(len(labels))
    rand = [perm[i:i + 50] for i in range(0, len(labels), 50)]
    dev_g, dev_w, dev_r = (_dev(labels, b, 50) for b in (grouped, whole, rand))
    assert dev_g < 0.8 * dev_r
    assert dev_g < 1.1 * dev_w


def test_a_rare_label_is_dealt_evenly_to_the_groups():
    # one label on 80 of 4,000 examples, 80 batches of 50 (3 groups): one per batch
    rng = np.random.default_rng(0)
    rows = [list(rng.choice(np.arange(1, 30), size=3, replace=False)) for _ in range(4_000)]
    for i in rng.choice(4_000, size=80, replace=False):
        rows[i] = sorted(rows[i] + [0])
    y = LabelMatrix.from_lists([sorted(r) for r in rows], n_labels=30)
    s = StratifiedBatchSampler(y, batch_size=50, seed=5)
    assert len(s._layout[0]) - 1 == 3
    for epoch in range(3):
        s.set_epoch(epoch)
        assert [sum(0 in y[i] for i in b) for b in s] == [1] * 80


def test_threads_prefetch_and_epochs(labels):
    one = StratifiedBatchSampler(labels, batch_size=37, seed=4, num_threads=1,
                                 prefetch=False)
    many = StratifiedBatchSampler(labels, batch_size=37, seed=4, num_threads=3)
    for epoch in range(3):
        one.set_epoch(epoch)
        many.set_epoch(epoch)
        assert list(one) == list(many)
    a, b = one.batches(0), one.batches(1)
    assert not all(np.array_equal(x, y_) for x, y_ in zip(a, b))   # epochs differ


def test_ddp_shards_of_the_grouped_epoch(labels):
    full = StratifiedBatchSampler(labels, batch_size=37, seed=2, num_replicas=1, rank=0)
    ranks = [StratifiedBatchSampler(labels, batch_size=37, seed=2, num_replicas=2, rank=r)
             for r in range(2)]
    every = list(full)
    shards = [list(r) for r in ranks]
    assert len(every) == 82
    assert shards[0] == every[0::2] and shards[1] == every[1::2]


@pytest.mark.parametrize("value", [0, -1, 1.5, "2"])
def test_num_threads_is_checked(labels, value):
    with pytest.raises((TypeError, ValueError), match="num_threads"):
        StratifiedBatchSampler(labels, batch_size=37, num_threads=value)


def test_group_kernel_maps_back_to_the_given_rows(labels):
    rows = np.arange(0, 600, 2, dtype=np.int64)
    sizes = np.full(6, 50, dtype=np.int64)
    order, starts = K.group_batches(labels.offsets, labels.indices, labels.n_labels, rows,
                                    sizes, np.uint64(3), 6)
    assert starts.tolist() == [0, 50, 100, 150, 200, 250, 300]
    assert sorted(order.tolist()) == rows.tolist()
    sub = labels.take(rows)
    t = sub.transpose()
    ref_order, ref_starts = K.stratified_batches(K.plain_units(sub.offsets, sub.indices),
                                                 t.offsets, t.indices, sizes, np.uint64(3), 6)
    np.testing.assert_array_equal(order, rows[ref_order])
