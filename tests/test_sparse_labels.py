"""Sparse (CSR) label batches: ``label_format="sparse"`` / ``collate(..., labels=...)`` and
``SparseLabels.dense()`` give exactly the dense multi-hot of the dense path."""
import functools
import pickle

import numpy as np
import pytest
import torch
from hypothesis import given, strategies as st
from torch.utils.data import BatchSampler, DataLoader

import longtail
from longtail.datasets import (ArrowDataset, IndexBatch, LabelMatrix, MultilabelDataset,
                               SparseLabels, write_dataset)

DTYPES = [torch.float32, torch.float16, torch.bfloat16, torch.uint8, torch.bool, torch.int64]


def _reference(lists, rows, n_labels):
    """Brute force: dense multi-hot and CSR of ``rows`` (plain NumPy, one row at a time)."""
    dense = np.zeros((len(rows), n_labels), dtype=np.float32)
    offsets, ids = [0], []
    for i, r in enumerate(rows):
        row = sorted(set(lists[r]))
        dense[i, row] = 1
        ids += row
        offsets.append(len(ids))
    return dense, np.array(offsets, dtype=np.int64), np.array(ids, dtype=np.int32)


@st.composite
def _case(draw):
    n_labels = draw(st.integers(1, 12))
    n = draw(st.integers(1, 15))
    lists = draw(st.lists(st.lists(st.integers(0, n_labels - 1), max_size=6),
                          min_size=n, max_size=n))            # empty rows, repeated ids
    rows = draw(st.lists(st.integers(-n, n - 1), max_size=20))  # duplicates, negatives, []
    dtype = draw(st.sampled_from(DTYPES))
    return lists, n_labels, rows, dtype


@given(_case())
def test_sparse_batch_equals_dense_batch(case):
    lists, n_labels, rows, dtype = case
    labels = LabelMatrix.from_lists(lists, n_labels, canonicalize=True)  # dedupe, sort
    dense_ds = MultilabelDataset(None, labels, label_dtype=dtype)
    sparse_ds = MultilabelDataset(None, labels, label_format="sparse", label_dtype=dtype)
    _, y_dense, idx, _ = MultilabelDataset.collate(dense_ds.__getitems__(rows))
    _, y, idx2, _ = MultilabelDataset.collate(sparse_ds.__getitems__(rows))
    assert isinstance(y, SparseLabels) and torch.equal(idx, idx2)
    ref_dense, ref_offsets, ref_ids = _reference(lists, [r % len(lists) for r in rows],
                                                 n_labels)
    assert y.offsets.dtype == torch.int64 and y.ids.dtype == torch.int32
    np.testing.assert_array_equal(y.offsets.numpy(), ref_offsets)
    np.testing.assert_array_equal(y.ids.numpy(), ref_ids)
    assert len(y) == len(rows) and y.shape == (len(rows), n_labels)
    out = y.dense()
    assert out.dtype == dtype == y_dense.dtype and out.shape == y_dense.shape
    assert torch.equal(out, y_dense)
    np.testing.assert_array_equal(out.float().numpy(), ref_dense)
    # conversions at collate time agree both ways
    single = [dense_ds[r] for r in rows]
    if rows:
        y_conv = MultilabelDataset.collate(single, labels="sparse")[1]
        assert torch.equal(y_conv.offsets, y.offsets) and torch.equal(y_conv.ids, y.ids)
    back = MultilabelDataset.collate(sparse_ds.__getitems__(rows), labels="dense")[1]
    assert torch.equal(back, y_dense)
    assert MultilabelDataset.collate(dense_ds.__getitems__(rows), labels="dense")[1] is not y


@pytest.fixture(scope="module")
def arrow_file(tmp_path_factory):
    rng = np.random.default_rng(3)
    lists = [sorted(rng.choice(40, size=rng.integers(0, 6), replace=False).tolist())
             for _ in range(300)]
    lists[5] = []
    features = rng.standard_normal((300, 4)).astype(np.float32)
    path = tmp_path_factory.mktemp("sparse") / "d.arrow"
    write_dataset(path, features, lists, n_labels=40)
    return path, lists


@pytest.mark.parametrize("workers", [0, 2])
def test_dataloader_sparse_equals_dense(arrow_file, workers):
    path, lists = arrow_file
    draws = np.random.default_rng(workers).integers(0, 300, size=500).tolist()  # replacement
    loaders = [DataLoader(ArrowDataset(path, label_format=fmt),
                          batch_sampler=BatchSampler(draws, 64, drop_last=False),
                          collate_fn=ArrowDataset.collate, num_workers=workers,
                          pin_memory=False)
               for fmt in ("dense", "sparse")]
    n = 0
    for (x, y, idx, extras), (xs, ys, idxs, extras_s) in zip(*loaders):
        assert isinstance(ys, SparseLabels) and extras == extras_s == {}
        assert torch.equal(x, xs) and torch.equal(idx, idxs)
        assert torch.equal(ys.dense(), y)
        ref, _, _ = _reference(lists, idx.tolist(), 40)
        np.testing.assert_array_equal(y.numpy(), ref)
        n += len(ys)
    assert n == 500


def test_extras_and_partial_collate(arrow_file):
    path, _ = arrow_file
    ds = ArrowDataset(path, label_format="sparse")
    batch = ds.__getitems__(IndexBatch([4, 4, 5], {"weight": np.array([1.0, 2.0, 3.0])}))
    x, y, idx, extras = ArrowDataset.collate(batch)
    assert extras["weight"].tolist() == [1.0, 2.0, 3.0] and len(y) == 3
    assert y.offsets[2] == y.offsets[3]                       # row 5 is empty
    dense_collate = functools.partial(ArrowDataset.collate, labels="dense")
    assert torch.equal(dense_collate(batch)[1], ArrowDataset(path).__getitems__([4, 4, 5])
                       .batch[1])
    # the label format survives pickling (what worker processes get)
    assert pickle.loads(pickle.dumps(ds)).label_format == "sparse"


def test_default_collate_refuses_sparse_batches(arrow_file):
    path, _ = arrow_file
    loader = DataLoader(ArrowDataset(path, label_format="sparse"), batch_size=8)
    with pytest.raises(TypeError, match="collate_fn"):
        next(iter(loader))


def test_bad_label_format():
    with pytest.raises(ValueError, match="label_format must be one of"):
        MultilabelDataset(None, [[0]], label_format="csr")
    with pytest.raises(TypeError, match="label_format must be one of"):
        MultilabelDataset(None, [[0]], label_format=True)
    ds = MultilabelDataset(None, [[0]])
    with pytest.raises(ValueError, match="labels must be one of"):
        MultilabelDataset.collate(ds.__getitems__([0]), labels="coo")


def test_to_round_trip_and_pinning_hook():
    y = SparseLabels(torch.tensor([0, 2, 2, 3]), torch.tensor([1, 4, 0], dtype=torch.int32), 5)
    z = y.to("cpu")
    assert isinstance(z, SparseLabels) and z.device.type == "cpu"
    assert torch.equal(z.offsets, y.offsets) and torch.equal(z.ids, y.ids)
    assert z.n_labels == 5 and torch.equal(z.dense(), y.dense())
    z = y.to(torch.device("cpu"), non_blocking=True)
    assert torch.equal(z.dense(), y.dense())
    assert hasattr(y, "pin_memory") and not y.is_pinned()   # DataLoader calls pin_memory()
    assert "SparseLabels(B=3, n_labels=5, nnz=3" in repr(y)
    assert pickle.loads(pickle.dumps(y)).ids.tolist() == [1, 4, 0]


@pytest.mark.parametrize("dtype", DTYPES)
def test_dense_dtypes(dtype):
    lists = [[0, 3], [], [2]]
    y = SparseLabels.from_dense(LabelMatrix.from_lists(lists, n_labels=4).multi_hot())
    ref = torch.tensor([[1, 0, 0, 1], [0, 0, 0, 0], [0, 0, 1, 0]]).to(dtype)
    out = y.dense(dtype)
    assert out.dtype == dtype and torch.equal(out, ref)
    assert SparseLabels(y.offsets, y.ids, 4, dtype=dtype).dense().dtype == dtype


def test_empty_batch_and_no_labels():
    y = SparseLabels(torch.zeros(1, dtype=torch.int64), torch.zeros(0, dtype=torch.int32), 7)
    assert len(y) == 0 and y.dense().shape == (0, 7) and y.nbytes == 8
    y = SparseLabels(torch.zeros(3, dtype=torch.int64), torch.zeros(0, dtype=torch.int32), 7)
    assert torch.equal(y.dense(), torch.zeros(2, 7))


def test_constructor_checks():
    off, ids = torch.tensor([0, 1]), torch.tensor([2], dtype=torch.int32)
    with pytest.raises(TypeError, match="ids must be a 1-D torch.int32"):
        SparseLabels(off, ids.long(), 3)
    with pytest.raises(TypeError, match="offsets must be a torch.Tensor"):
        SparseLabels([0, 1], ids, 3)
    with pytest.raises(ValueError, match=r"ids must be in \[0, 2\)"):
        SparseLabels(off, ids, 2)
    with pytest.raises(ValueError, match="end at len"):
        SparseLabels(torch.tensor([0, 2]), ids, 3)
    with pytest.raises(ValueError, match="non-decreasing"):
        SparseLabels(torch.tensor([0, 2, 1, 1]), torch.tensor([0], dtype=torch.int32), 3)
    with pytest.raises(TypeError, match="n_labels must be an integer"):
        SparseLabels(off, ids, 3.0)
    with pytest.raises(TypeError, match="dtype must be a torch.dtype"):
        SparseLabels(off, ids, 3).dense("float32")


def test_bytes_per_example_at_seed_density():
    rng = np.random.default_rng(0)
    n_labels, per_row, batch = 7_900, 130, 256
    lists = [np.sort(rng.choice(n_labels, size=per_row, replace=False)) for _ in range(batch)]
    ds = MultilabelDataset(None, lists, n_labels=n_labels, label_format="sparse")
    y = MultilabelDataset.collate(ds.__getitems__(list(range(batch))))[1]
    sparse_per_example = y.nbytes / batch
    dense_per_example = n_labels * torch.float32.itemsize
    assert sparse_per_example == 8 * (batch + 1) / batch + 4 * per_row
    assert sparse_per_example / dense_per_example <= 1 / 20


def test_exported_at_top_level():
    assert longtail.SparseLabels is SparseLabels


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_cuda_pinned_transfer_and_dense(arrow_file):
    path, _ = arrow_file
    loaders = [DataLoader(ArrowDataset(path, label_format=fmt), batch_size=32,
                          collate_fn=ArrowDataset.collate, pin_memory=True)
               for fmt in ("dense", "sparse")]
    for (_, y, _, _), (_, ys, _, _) in zip(*loaders):
        assert ys.is_pinned()
        on_gpu = ys.to("cuda", non_blocking=True)
        assert on_gpu.device.type == "cuda"
        for dtype in (torch.float32, torch.bfloat16):
            out = on_gpu.dense(dtype)
            assert out.device.type == "cuda" and torch.equal(out.cpu(), y.to(dtype))
