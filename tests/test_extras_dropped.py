"""A batch sampler's extras are never lost silently: a dataset without ``__getitems__``
under torch's default fetcher gets one warning naming the remedy."""
from __future__ import annotations

import warnings

import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader, TensorDataset

import longtail
from longtail.datasets import index_batch


@pytest.fixture(autouse=True)
def _fresh_flag(monkeypatch):
    monkeypatch.setattr(index_batch, "_WARNED", False)


def _sampler():
    y = [[0], [1], [0, 1], [1]] * 10
    return longtail.ClassAwareSampler(y, num_samples=40, batch_size=8, return_labels=True,
                                      warn=False)


def test_plain_dataset_warns_once_that_extras_are_dropped():
    loader = DataLoader(TensorDataset(torch.arange(40)), batch_sampler=_sampler())
    with pytest.warns(UserWarning, match=r"\['sampled_label'\].*with_extras") as rec:
        batches = list(loader)
    assert len(batches) == 5
    assert sum("IndexBatch.extras" in str(w.message) for w in rec) == 1


def test_with_extras_keeps_them_and_does_not_warn():
    loader = DataLoader(longtail.with_extras(TensorDataset(torch.arange(40))),
                        batch_sampler=_sampler(), collate_fn=longtail.collate_with_extras)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        for x, extras in loader:
            assert extras["sampled_label"].shape == x.shape


def test_own_datasets_and_plain_use_do_not_warn():
    ds = longtail.MultilabelDataset(np.zeros((40, 3), np.float32), [[0], [1], [0, 1], [1]] * 10)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        for x, y, idx, extras in DataLoader(ds, batch_sampler=_sampler(), collate_fn=ds.collate):
            assert extras["sampled_label"].shape == idx.shape
        b = longtail.IndexBatch([3, 1], {"w": np.ones(2)})
        assert list(b) == [3, 1] and sorted(b) == [1, 3]  # iterating by hand is fine
