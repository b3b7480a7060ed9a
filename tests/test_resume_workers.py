"""A resumed sampler continues where it stopped under a multi-worker DataLoader, whose
iterator calls ``iter(batch_sampler)`` twice before drawing (a regression test)."""
from __future__ import annotations

import numpy as np
import pytest
from torch.utils.data import DataLoader, Dataset

import longtail


class Ids(Dataset):
    def __init__(self, n: int) -> None:
        self.n = n

    def __len__(self) -> int:
        return self.n

    def __getitem__(self, i: int) -> int:
        return i


def _labels(n=96, n_labels=8, seed=0):
    rng = np.random.default_rng(seed)
    return [sorted(set(rng.integers(0, n_labels, 1 + i % 3).tolist())) for i in range(n)]


@pytest.mark.parametrize("workers", [0, 2])
@pytest.mark.parametrize("make", [
    lambda y: longtail.StratifiedBatchSampler(y, 8, seed=1),
    lambda y: longtail.ClassAwareSampler(y, num_samples=96, batch_size=8, seed=1, warn=False),
], ids=["stratified", "class_aware_batches"])
def test_resumed_batch_sampler_under_workers(make, workers):
    y = _labels()
    a = make(y)
    a.set_epoch(2)
    full = [list(b) for b in a]
    it = iter(a)
    for _ in range(3):
        next(it)
    state = a.state_dict()
    b = make(y)
    b.load_state_dict(state)
    loader = DataLoader(Ids(96), batch_sampler=b, num_workers=workers)
    got = [t.tolist() for t in loader]
    assert got == full[3:]
    # and the next epoch starts from its beginning
    b.set_epoch(3)
    a.set_epoch(3)
    assert [t.tolist() for t in DataLoader(Ids(96), batch_sampler=b, num_workers=workers)] \
        == [list(x) for x in a]


def test_iter_twice_without_drawing_keeps_the_resume_position():
    y = _labels()
    a = longtail.StratifiedBatchSampler(y, 8, seed=1)
    full = [list(x) for x in a]
    it = iter(a)
    next(it), next(it)
    b = longtail.StratifiedBatchSampler(y, 8, seed=1)
    b.load_state_dict(a.state_dict())
    iter(b)                       # discarded, nothing drawn
    assert [list(x) for x in b] == full[2:]
    assert [list(x) for x in b] == full   # a drawn-out epoch starts over
