import pickle

import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader

from longtail.datasets import ArrowDataset, make_long_tail, read_features, write_dataset
from longtail.datasets.io import LabelFileError


@pytest.fixture(scope="module")
def data_file(tmp_path_factory):
    d = make_long_tail("small", seed=0, n_examples=1000)
    path = tmp_path_factory.mktemp("data") / "small.arrow"
    d.save(path)
    return path, d


def test_items_match_the_source(data_file):
    path, d = data_file
    ds = ArrowDataset(path)
    assert len(ds) == 1000 and ds.n_labels == 500 and ds.n_features == 64
    x, y, i = ds[7]
    np.testing.assert_array_equal(x.numpy(), d.features[7])
    np.testing.assert_array_equal(y.numpy(), d.labels.multi_hot_numpy([7])[0])
    assert i == 7
    x2, y2, i2 = ds[-1]
    assert i2 == 999
    with pytest.raises(IndexError, match="index 1000 is out of range"):
        ds[1000]


def test_getitems_batches_and_collate(data_file):
    path, d = data_file
    ds = ArrowDataset(path)
    batch = ds.__getitems__([3, 1, 4])
    x, y, idx = ArrowDataset.collate(batch)
    assert x.shape == (3, 64) and y.shape == (3, 500) and idx.tolist() == [3, 1, 4]
    # default_collate over the same samples gives the same batch
    x2, y2, idx2 = torch.utils.data.default_collate(batch)
    assert torch.equal(x, x2) and torch.equal(y, y2) and torch.equal(idx, idx2)
    np.testing.assert_array_equal(y.numpy(), d.labels.multi_hot_numpy([3, 1, 4]))


class _Batch(list):
    """Stand-in for a batch sampler's index list that carries per-index extras."""

    def __init__(self, items, extras):
        super().__init__(items)
        self.extras = extras


def test_extras_travel_with_the_batch(data_file):
    path, _ = data_file
    ds = ArrowDataset(path)
    out = ArrowDataset.collate(ds.__getitems__(_Batch([5, 6], {"weight": np.array([0.5, 2.0])})))
    assert len(out) == 4 and out[3]["weight"].tolist() == [0.5, 2.0]
    out2 = torch.utils.data.default_collate(ds.__getitems__(_Batch([5, 6], {"w": np.array([1, 2])})))
    assert out2[3]["w"].tolist() == [1, 2]


@pytest.mark.parametrize("workers, ctx", [(0, None), (2, "fork"), (2, "spawn")])
def test_dataloader_workers(data_file, workers, ctx):
    path, d = data_file
    ds = ArrowDataset(path)
    loader = DataLoader(ds, batch_size=64, shuffle=False, num_workers=workers,
                        collate_fn=ArrowDataset.collate,
                        multiprocessing_context=ctx)
    seen = []
    for x, y, idx in loader:
        np.testing.assert_array_equal(y.numpy(), d.labels.multi_hot_numpy(idx.numpy()))
        np.testing.assert_array_equal(x.numpy(), d.features[idx.numpy()])
        seen.append(idx)
    assert torch.cat(seen).tolist() == list(range(1000))


def test_default_collate_path_with_workers(data_file):
    path, _ = data_file
    loader = DataLoader(ArrowDataset(path), batch_size=100, num_workers=2)
    x, y, idx = next(iter(loader))
    assert x.shape == (100, 64) and y.shape == (100, 500) and idx.tolist() == list(range(100))


def test_dataset_pickles_as_path(data_file):
    path, _ = data_file
    ds = ArrowDataset(path)
    blob = pickle.dumps(ds)
    assert len(blob) < 1000
    ds2 = pickle.loads(blob)
    assert torch.equal(ds2[3][1], ds[3][1])


def test_write_dataset_validation(tmp_path):
    with pytest.raises(ValueError, match="features have 3 rows but labels have 2"):
        write_dataset(tmp_path / "a.arrow", np.zeros((3, 2)), [[0], [1]])
    with pytest.raises(ValueError, match="NaN or inf .* row 1"):
        write_dataset(tmp_path / "a.arrow", np.array([[0.0], [np.nan]]), [[0], [1]])
    assert not (tmp_path / "a.arrow").exists()
    write_dataset(tmp_path / "a.arrow", np.zeros((2, 2)), [[0], [1]])
    with pytest.raises(FileExistsError):
        write_dataset(tmp_path / "a.arrow", np.zeros((2, 2)), [[0], [1]])
    assert read_features(tmp_path / "a.arrow").shape == (2, 2)
    with pytest.raises(LabelFileError):
        ArrowDataset(tmp_path / "missing.arrow")
    with pytest.raises(ValueError, match="no column 'feats'"):
        ArrowDataset(tmp_path / "a.arrow", features="feats")
    assert ArrowDataset(tmp_path / "a.arrow", features=None)[0][0].shape == (0,)


def test_class_aware_sampled_labels_reach_the_batch(data_file):
    from longtail import ClassAwareSampler

    path, d = data_file
    ds = ArrowDataset(path)
    sampler = ClassAwareSampler(ds.labels, num_samples=200, return_labels=True, seed=0)
    loader = DataLoader(ds, batch_size=50, sampler=sampler, collate_fn=ArrowDataset.collate,
                        num_workers=2)
    n_batches = 0
    for x, y, idx, extras in loader:
        lab = extras["sampled_label"]
        assert lab.shape == idx.shape
        assert bool((y[torch.arange(len(idx)), lab] == 1).all())  # drawn for a label it has
        n_batches += 1
    assert n_batches == 4
