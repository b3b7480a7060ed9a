"""StratifiedBatchSampler: partitions, stratification, determinism, DDP shards, resume."""
import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader, Dataset

from longtail import LabelMatrix
from longtail.datasets import make_long_tail
from longtail.samplers import StratifiedBatchSampler
from longtail.samplers.split import _kernels as K


@pytest.fixture(scope="module")
def labels():
    return make_long_tail("small", seed=0, n_examples=3_000).labels


def test_each_epoch_is_a_partition_into_batches(labels):
    s = StratifiedBatchSampler(labels, batch_size=256, seed=1)
    for epoch in range(3):
        s.set_epoch(epoch)
        batches = list(s)
        assert len(s) == len(batches) == 12
        assert [len(b) for b in batches[:-1]] == [256] * 11 and len(batches[-1]) == 184
        flat = np.concatenate(batches)
        np.testing.assert_array_equal(np.sort(flat), np.arange(len(labels)))


def test_drop_last_drops_the_partial_batch(labels):
    s = StratifiedBatchSampler(labels, batch_size=256, drop_last=True, seed=1)
    batches = list(s)
    assert len(batches) == 11 and all(len(b) == 256 for b in batches)
    assert len(np.unique(np.concatenate(batches))) == 11 * 256


def _flz(labels, batches):
    parts = np.empty(len(labels), dtype=np.int32)
    for i, b in enumerate(batches):
        parts[b] = i
    counts = K.part_label_counts(labels.offsets, labels.indices, parts, len(batches),
                                 labels.n_labels)
    full = counts[:-1]  # equal-sized batches only
    return int((full[:, labels.label_counts() > 0] == 0).sum()), full


def test_batches_are_stratified(labels):
    s = StratifiedBatchSampler(labels, batch_size=100, seed=0)
    batches = list(s)
    flz, counts = _flz(labels, batches)
    rng = np.random.default_rng(0)
    perm = rng.permutation(len(labels))
    rand = [perm[i:i + 100] for i in range(0, len(labels), 100)]
    flz_rand, counts_rand = _flz(labels, rand)
    expected = labels.label_counts() * 100 / len(labels)
    dev = np.abs(counts - expected).mean()
    dev_rand = np.abs(counts_rand - expected).mean()
    assert flz < 0.6 * flz_rand
    assert dev < 0.8 * dev_rand


def test_rare_label_spread_over_batches():
    # one label on 20 of 2,000 examples, 20 batches: one positive per batch
    rng = np.random.default_rng(0)
    rows = [list(rng.choice(np.arange(1, 30), size=3, replace=False)) for _ in range(2_000)]
    for i in rng.choice(2_000, size=20, replace=False):
        rows[i] = sorted(rows[i] + [0])
    y = LabelMatrix.from_lists([sorted(r) for r in rows], n_labels=30)
    s = StratifiedBatchSampler(y, batch_size=100, seed=5)
    for epoch in range(3):
        s.set_epoch(epoch)
        per_batch = [sum(0 in y[i] for i in b) for b in s]
        assert per_batch == [1] * 20


class _Rows(Dataset):
    def __len__(self):
        return 3_000

    def __getitem__(self, i):
        return torch.tensor(i)


def test_small_and_bad_inputs():
    y = LabelMatrix.from_lists([[0], [1], [0, 1]])
    assert list(StratifiedBatchSampler(y, 10)) in ([[0, 1, 2]], [[0, 2, 1]], [[1, 0, 2]],
                                                  [[1, 2, 0]], [[2, 0, 1]], [[2, 1, 0]])
    assert list(StratifiedBatchSampler(y, 10, drop_last=True)) == []
    with pytest.raises(ValueError, match="batch_size"):
        StratifiedBatchSampler(y, 0)
    with pytest.raises(ValueError, match="no labels at all"):
        StratifiedBatchSampler([[], []], 2)
