"""Hugging Face datasets: LabelMatrix.from_hf / from_any read the Arrow table, HFDataset
gives ArrowDataset's batch layout, hf_collate makes multi-hot batches (issue 15, point 5).
"""
from __future__ import annotations

import subprocess
import sys
import warnings

import numpy as np
import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st
from torch.utils.data import DataLoader, default_collate

datasets = pytest.importorskip(
    "datasets", reason="Hugging Face `datasets` is an optional dependency (test extra)")

from longtail import (  # noqa: E402
    ClassAwareSampler,
    HardExampleSampler,
    HFDataset,
    LabelMatrix,
    MultilabelDataset,
    UnsortedLabelsWarning,
    WeightedSampler,
    hf_collate,
    with_extras,
)
from longtail.datasets import IndexBatch  # noqa: E402

HFList = getattr(datasets, "List", datasets.Sequence)   # `Sequence` before datasets 4

rows_strategy = st.lists(st.lists(st.integers(0, 9), max_size=6), min_size=1, max_size=30)


def rows_of(y):
    return [y[i].tolist() for i in range(len(y))]


def canon(rows):
    return [sorted(set(r)) for r in rows]


def dense(rows, n_labels):
    out = np.zeros((len(rows), n_labels), dtype=np.float32)
    for i, r in enumerate(rows):
        out[i, r] = 1
    return out


def hf(rows, **columns):
    feats = datasets.Features({"labels": HFList(datasets.Value("int64")),
                               **{k: datasets.Value("float32") for k in columns}})
    return datasets.Dataset.from_dict({"labels": rows, **columns}, features=feats)


@pytest.fixture(scope="module")
def small():
    rng = np.random.default_rng(0)
    n, L = 300, 20
    rows = [sorted(rng.choice(L, size=int(rng.integers(0, 5)), replace=False).tolist())
            for _ in range(n)]
    feats = rng.random((n, 3)).astype(np.float32)
    ds = datasets.Dataset.from_dict({"labels": rows, "f": feats.tolist(),
                                     "g": rng.random(n).astype(np.float32).tolist()})
    return ds, rows, feats


@given(rows_strategy, st.randoms(use_true_random=False))
def test_from_hf_and_from_any_match_the_rows(rows, rnd):
    ds = hf(rows)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UnsortedLabelsWarning)
        for y in (LabelMatrix.from_hf(ds, "labels"), LabelMatrix.from_any(ds),
                  LabelMatrix.from_any(ds["labels"])):
            assert rows_of(y) == canon(rows)
        order = list(range(len(rows)))
        rnd.shuffle(order)
        sub = ds.select(order[: max(1, len(order) // 2)])
        want = [rows[i] for i in order[: max(1, len(order) // 2)]]
        assert rows_of(LabelMatrix.from_hf(sub, "labels")) == canon(want)
        assert rows_of(LabelMatrix.from_any(sub["labels"])) == canon(want)


def test_indices_mappings_are_followed(small):
    ds, rows, _ = small
    for sub in (ds.shuffle(seed=1), ds.select([5, 3, 3, 299]), ds.select(range(10, 40)),
                ds.train_test_split(test_size=0.25, seed=0)["test"],
                ds.shuffle(seed=2).select(range(7)).shuffle(seed=3)):
        y = LabelMatrix.from_hf(sub, "labels", n_labels=20)
        assert rows_of(y) == canon(sub["labels"])
        assert y.equals(LabelMatrix.from_hf(sub.flatten_indices(), "labels", n_labels=20))


def test_many_chunks_and_class_labels():
    parts = [hf([[i % 3, 3]] * 3) for i in range(5)]
    ds = datasets.concatenate_datasets(parts)
    assert ds.data.column("labels").num_chunks > 1
    assert rows_of(LabelMatrix.from_hf(ds)) == canon([[i % 3, 3] for i in range(5)
                                                      for _ in range(3)])
    feats = datasets.Features({"tags": HFList(datasets.ClassLabel(
        names=list("abcdefg")))})
    cl = datasets.Dataset.from_dict({"tags": [[1, 3], [0]]}, features=feats)
    assert LabelMatrix.from_hf(cl, "tags").shape == (2, 7)      # ClassLabel size
    assert LabelMatrix.from_any(cl["tags"]).n_labels == 7
    assert LabelMatrix.from_hf(cl, "tags", n_labels=9).n_labels == 9
    with pytest.raises(ValueError, match="label id 3 >= n_labels=2"):
        LabelMatrix.from_hf(cl, "tags", n_labels=2)


def test_unsorted_hf_rows_are_sorted_and_reported():
    with pytest.warns(UnsortedLabelsWarning, match="sorted 1 of 2 rows") as w:
        y = LabelMatrix.from_any(hf([[3, 1], [2]]))
    assert rows_of(y) == [[1, 3], [2]] and w[0].filename == __file__


def test_column_does_not_go_through_python_rows(monkeypatch):
    ds = hf([[0, 1], [2]])
    col = ds["labels"]
    if isinstance(col, list):  # datasets < 4: a plain list, no Column to read through
        assert rows_of(LabelMatrix.from_any(col)) == [[0, 1], [2]]
        return

    def refuse(*args, **kwargs):
        raise AssertionError("from_any read the column row by row")

    monkeypatch.setattr(type(col), "__iter__", refuse)
    monkeypatch.setattr(type(col), "__getitem__", refuse)
    assert rows_of(LabelMatrix.from_any(col)) == [[0, 1], [2]]


def test_clear_errors():
    two = datasets.Dataset.from_dict({"a": [[0]], "b": [[1]], "s": ["x"]})
    with pytest.raises(ValueError, match=r"2 list-of-integer columns \['a', 'b'\].*"
                       r"from_hf\(dataset, column\)"):
        LabelMatrix.from_any(two)
    with pytest.raises(ValueError, match=r"no list-of-integer column \(columns: \['s'\]\)"):
        LabelMatrix.from_any(datasets.Dataset.from_dict({"s": ["x"]}))
    with pytest.raises(ValueError, match=r"no column 'labels' \(columns: \['a', 'b', 's'\]\)"):
        LabelMatrix.from_hf(two)
    with pytest.raises(TypeError, match="must be list<int> or large_list<int>"):
        LabelMatrix.from_hf(two, "s")
    with pytest.raises(TypeError, match=r"DatasetDict holds several splits.*dataset\['train'\]"):
        LabelMatrix.from_any(datasets.DatasetDict({"train": two}))
    with pytest.raises(TypeError, match="streaming"):
        LabelMatrix.from_any(two.to_iterable_dataset())
    with pytest.raises(TypeError, match="expected a Hugging Face datasets.Dataset"):
        LabelMatrix.from_hf([[0]])
    with pytest.raises(ValueError, match="column='b' but the Hugging Face column"):
        LabelMatrix.from_hf(two["a"], "b")


def test_longtail_does_not_import_datasets():
    code = ("import sys, longtail; longtail.LabelMatrix.from_any([[0, 1]]); "
            "import longtail.datasets.hf; longtail.MultilabelDataset; "
            "assert 'datasets' not in sys.modules, 'datasets imported'")
    subprocess.run([sys.executable, "-c", code], check=True)


# ------------------------------------------------------------------------ HFDataset
def test_hf_dataset_matches_the_in_memory_dataset(small):
    ds, rows, feats = small
    h = HFDataset(ds, "labels", ["f", "g"])
    x_all = np.concatenate([feats, np.asarray(ds["g"], np.float32)[:, None]], axis=1)
    mem = MultilabelDataset(x_all, rows, n_labels=h.n_labels)
    assert h.n_features == 4 and len(h) == 300
    for batch in ([0, 7, -1], IndexBatch([2, 2], {"w": np.array([0.5, 2.0])})):
        a = HFDataset.collate(h.__getitems__(batch))
        b = MultilabelDataset.collate(mem.__getitems__(batch))
        assert all(u.dtype == v.dtype and torch.equal(u, v) for u, v in zip(a[:3], b[:3]))
        assert a[3].keys() == b[3].keys()
    x, y, i = h[4]
    assert i == 4 and torch.equal(y, mem[4][1]) and torch.equal(x, mem[4][0])
    assert HFDataset(ds).__getitems__([1]).batch[0].shape == (1, 0)   # labels only


def test_hf_dataset_follows_a_shuffle(small):
    ds, _, _ = small
    sub = ds.shuffle(seed=4).select(range(50))
    h = HFDataset(sub, "labels", "f", n_labels=20)
    x, y, idx, _ = HFDataset.collate(h.__getitems__([0, 10, 49]))
    want = sub[[0, 10, 49]]
    np.testing.assert_allclose(x.numpy(), np.asarray(want["f"], np.float32))
    np.testing.assert_array_equal(y.numpy(), dense(want["labels"], 20))


@pytest.mark.parametrize("workers", [0, 2])
def test_hf_dataset_with_longtail_samplers(small, workers):
    ds, rows, _ = small
    h = HFDataset(ds, "labels", ["f"])
    cas = ClassAwareSampler(h.labels, num_samples=64, return_labels=True, batch_size=16,
                            seed=0, warn=False)
    for x, y, idx, extras in DataLoader(h, batch_sampler=cas, collate_fn=HFDataset.collate,
                                        num_workers=workers):
        assert bool((y[torch.arange(len(idx)), extras["sampled_label"]] == 1).all())
        np.testing.assert_array_equal(y.numpy(), dense([rows[i] for i in idx], h.n_labels))
    hard = HardExampleSampler(len(h), batch_size=8, seed=0)
    x, y, idx, extras = next(iter(DataLoader(h, batch_sampler=hard, collate_fn=HFDataset.collate,
                                             num_workers=workers)))
    assert torch.equal(extras["index"], idx) and x.shape == (8, 3)
    ws = WeightedSampler(np.ones(len(h)), num_samples=40, seed=1)
    got = [i for b in DataLoader(h, sampler=ws, batch_size=16, collate_fn=HFDataset.collate,
                                 num_workers=workers) for i in b[2].tolist()]
    assert got == list(ws)


def test_hf_dataset_errors(small):
    ds, _, _ = small
    with pytest.raises(ValueError, match=r"no column 'nope' in the dataset"):
        HFDataset(ds, "labels", ["nope"])
    with pytest.raises(ValueError, match="includes the label column 'labels'"):
        HFDataset(ds, "labels", ["f", "labels"])
    with pytest.raises(TypeError, match="feature_columns must be a column name"):
        HFDataset(ds, "labels", [1])
    ragged = datasets.Dataset.from_dict({"labels": [[0], [1]], "r": [[1.0], [2.0, 3.0]]})
    with pytest.raises(TypeError, match="feature column 'r' is not numeric with one fixed"):
        HFDataset(ragged, "labels", "r").__getitems__([0, 1])
    with pytest.raises(IndexError, match="out of range for 300 examples"):
        HFDataset(ds).__getitems__([300])


# ------------------------------------------------------------------------ hf_collate
def test_default_collate_fails_and_hf_collate_works(small):
    ds, rows, _ = small
    torch_ds = ds.with_format("torch")
    sampler = WeightedSampler(np.ones(len(ds)), num_samples=32, seed=0)
    order = list(sampler)
    with pytest.raises(RuntimeError, match="equal size"):   # the crash of issue 15
        for _ in DataLoader(torch_ds, sampler=sampler, batch_size=32,
                            collate_fn=default_collate):
            pass
    batch = next(iter(DataLoader(torch_ds, sampler=sampler, batch_size=32,
                                 collate_fn=hf_collate(20))))
    np.testing.assert_array_equal(batch["labels"].numpy(), dense([rows[i] for i in order], 20))
    assert batch["f"].shape == (32, 3) and batch["extras"] == {}


@pytest.mark.parametrize("workers", [0, 2])
def test_hf_collate_keeps_sampler_extras(small, workers):
    ds, rows, _ = small
    cas = ClassAwareSampler(LabelMatrix.from_hf(ds), num_samples=32, return_labels=True,
                            batch_size=16, seed=0, warn=False)
    drawn = list(cas)
    loader = DataLoader(with_extras(ds.with_format("numpy")), batch_sampler=cas,
                        collate_fn=hf_collate(20), num_workers=workers)
    for batch, want in zip(loader, drawn):
        lab = batch["extras"]["sampled_label"]
        assert lab.tolist() == want.extras["sampled_label"].tolist()
        np.testing.assert_array_equal(batch["labels"].numpy(),
                                      dense([rows[i] for i in want], 20))
        assert bool((batch["labels"][torch.arange(len(lab)), lab] == 1).all())


def test_hf_collate_inputs_and_errors():
    c = hf_collate(3, "y", label_dtype=torch.uint8)
    out = c({"y": [[2, 2, 0], np.array([1])], "w": [1, 2]})   # a batched dict of columns
    assert out["y"].tolist() == [[1, 0, 1], [0, 1, 0]] and out["y"].dtype == torch.uint8
    assert out["w"] == [1, 2]
    assert c([{"y": torch.tensor([1])}, {"y": []}])["y"].tolist() == [[0, 1, 0], [0, 0, 0]]
    with pytest.raises(ValueError, match=r"label id 3 of row 1 of the batch is outside "
                       r"\[0, n_labels=3\)"):
        c([{"y": [0]}, {"y": [3]}])
    with pytest.raises(TypeError, match="label ids must be integers"):
        c([{"y": [0.5]}])
    with pytest.raises(KeyError, match="no column 'y'"):
        c([{"labels": [0]}])
    with pytest.raises(TypeError, match="expects the dict rows"):
        c([[0, 1]])
    with pytest.raises(ValueError, match=r"n_labels must be in \[1, inf\], got 0"):
        hf_collate(0)
    with pytest.raises(TypeError, match="n_labels must be an integer"):
        hf_collate("3")
