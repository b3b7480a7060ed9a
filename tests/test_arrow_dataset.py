import pickle

import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader

from longtail.datasets import (ArrowDataset, BatchedSamples, IndexBatch, make_long_tail,
                               read_features, write_dataset)
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
    assert isinstance(batch, BatchedSamples) and len(batch) == 3
    out = ArrowDataset.collate(batch)
    assert isinstance(out, tuple) and len(out) == 4     # one layout, whatever the sampler
    x, y, idx, extras = out
    assert x.shape == (3, 64) and y.shape == (3, 500) and idx.tolist() == [3, 1, 4]
    assert extras == {}
    # default_collate over the same samples gives the same batch
    x2, y2, idx2, extras2 = torch.utils.data.default_collate(batch)
    assert torch.equal(x, x2) and torch.equal(y, y2) and torch.equal(idx, idx2)
    assert extras2 == {}
    np.testing.assert_array_equal(y.numpy(), d.labels.multi_hot_numpy([3, 1, 4]))
    # collate of single samples (dataset[i]) gives the same 4-tuple
    single = ArrowDataset.collate([ds[3], ds[1], ds[4]])
    assert isinstance(single, tuple) and len(single) == 4 and single[3] == {}
    assert all(torch.equal(a, b) for a, b in zip(single[:3], out[:3]))
    # an IndexBatch without extras, and one of plain ints with extras
    assert ArrowDataset.collate(ds.__getitems__(IndexBatch([3, 1, 4])))[3] == {}


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
    b = IndexBatch([7, 2, 9], {"sampled_label": np.array([4, 0, 1]),
                               "weight": np.array([1.0, 0.5, 2.0], dtype=np.float32)})
    x, y, idx, extras = ArrowDataset.collate(ds.__getitems__(b))
    assert idx.tolist() == [7, 2, 9] and sorted(extras) == ["sampled_label", "weight"]
    assert extras["sampled_label"].dtype == torch.int64 and extras["weight"].dtype == torch.float32
    assert extras["sampled_label"].tolist() == [4, 0, 1]
    # extras come only from the batch's extras, never from the index objects themselves
    class Labelled(int):
        label = 3

    assert ArrowDataset.collate(ds.__getitems__([Labelled(1), Labelled(2)]))[3] == {}
    with pytest.raises(ValueError, match=r"extras\['w'\] has shape \(2,\): expected one row "
                                         r"per index of the batch \(3\)"):
        ds.__getitems__(IndexBatch([1, 2, 3], {"w": np.array([1.0, 2.0])}))


@pytest.mark.parametrize("workers, ctx", [(0, None), (2, "fork"), (2, "spawn")])
def test_dataloader_workers(data_file, workers, ctx):
    path, d = data_file
    ds = ArrowDataset(path)
    loader = DataLoader(ds, batch_size=64, shuffle=False, num_workers=workers,
                        collate_fn=ArrowDataset.collate,
                        multiprocessing_context=ctx)
    seen = []
    for x, y, idx, extras in loader:
        assert extras == {}
        np.testing.assert_array_equal(y.numpy(), d.labels.multi_hot_numpy(idx.numpy()))
        np.testing.assert_array_equal(x.numpy(), d.features[idx.numpy()])
        seen.append(idx)
    assert torch.cat(seen).tolist() == list(range(1000))


def test_default_collate_path_with_workers(data_file):
    path, _ = data_file
    loader = DataLoader(ArrowDataset(path), batch_size=100, num_workers=2)
    x, y, idx, extras = next(iter(loader))
    assert x.shape == (100, 64) and y.shape == (100, 500) and idx.tolist() == list(range(100))
    assert extras == {}


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


@pytest.mark.parametrize("workers", [0, 2])
def test_class_aware_sampled_labels_reach_the_batch(data_file, workers):
    from longtail import ClassAwareSampler

    path, d = data_file
    ds = ArrowDataset(path)
    sampler = ClassAwareSampler(ds.labels, num_samples=230, return_labels=True,
                                batch_size=50, seed=0)
    sampler.set_epoch(1)
    drawn = list(sampler)                     # what the sampler drew: batches with labels
    assert [len(b) for b in drawn] == [50, 50, 50, 50, 30]
    loader = DataLoader(ds, batch_sampler=sampler, collate_fn=ArrowDataset.collate,
                        num_workers=workers)
    n_batches = 0
    for batch, want in zip(loader, drawn):
        x, y, idx, extras = batch
        lab = extras["sampled_label"]
        assert idx.tolist() == list(want)
        assert lab.tolist() == want.extras["sampled_label"].tolist()
        assert lab.shape == idx.shape and lab.dtype == torch.int64
        assert bool((y[torch.arange(len(idx)), lab] == 1).all())  # drawn for a label it has
        np.testing.assert_array_equal(x.numpy(), d.features[idx.numpy()])
        n_batches += 1
    assert n_batches == len(sampler) == 5
    # the flat order is that of the sampler of single ints
    flat = ClassAwareSampler(ds.labels, num_samples=230, seed=0)
    flat.set_epoch(1)
    assert [i for b in drawn for i in b] == list(flat)


@pytest.mark.filterwarnings("ignore:'set_vital' is deprecated:UserWarning")
def test_class_aware_batches_resume_mid_epoch(data_file):
    from torchdata.stateful_dataloader import StatefulDataLoader

    from longtail import ClassAwareSampler

    path, _ = data_file
    ds = ArrowDataset(path)

    def loader():
        s = ClassAwareSampler(ds.labels, num_samples=300, return_labels=True,
                              batch_size=32, seed=5)
        return StatefulDataLoader(ds, batch_sampler=s, collate_fn=ArrowDataset.collate,
                                  num_workers=2)

    def plain(batch):
        return batch[2].tolist(), batch[3]["sampled_label"].tolist()

    first = loader()
    it = iter(first)
    head = [plain(next(it)) for _ in range(4)]
    state = first.state_dict()
    rest = [plain(b) for b in it]
    assert len(head) + len(rest) == 10
    again = loader()
    again.load_state_dict(state)
    assert [plain(b) for b in again] == rest
