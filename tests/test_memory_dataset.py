"""MultilabelDataset: in-memory features + any labels, with ArrowDataset's batch layout
and every longtail sampler (issue 15, point 5)."""
from __future__ import annotations

import pickle
import warnings

import numpy as np
import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st
from torch.utils.data import DataLoader

import longtail
from longtail import (
    ArrowDataset,
    ClassAwareSampler,
    HardExampleSampler,
    IndexBatch,
    LabelMatrix,
    MultilabelDataset,
    WeightedSampler,
    make_long_tail,
    sample_weights,
    write_dataset,
)


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    d = make_long_tail("small", seed=0, n_examples=400)
    path = tmp_path_factory.mktemp("mem") / "d.arrow"
    write_dataset(path, d.features, d.labels)
    rows = [d.labels[i].tolist() for i in range(len(d.labels))]
    return d, path, rows


def dense(rows, n_labels):
    out = np.zeros((len(rows), n_labels), dtype=np.float32)
    for i, r in enumerate(rows):
        out[i, r] = 1
    return out


@given(st.data())
def test_batches_match_a_brute_force_reference(draw):
    n = draw.draw(st.integers(1, 12))
    L = draw.draw(st.integers(1, 6))
    rows = draw.draw(st.lists(st.lists(st.integers(0, L - 1), max_size=4), min_size=n,
                              max_size=n))
    feats = np.arange(n * 3, dtype=np.float64).reshape(n, 3) / 7
    idx = draw.draw(st.lists(st.integers(-n, n - 1), min_size=1, max_size=10))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", longtail.UnsortedLabelsWarning)
        ds = MultilabelDataset(feats, rows, n_labels=L)
    x, y, index, extras = MultilabelDataset.collate(ds.__getitems__(idx))
    want = np.array(idx) % n
    assert index.dtype == torch.int64 and index.tolist() == want.tolist()
    assert x.dtype == torch.float32 and y.dtype == torch.float32 and extras == {}
    np.testing.assert_array_equal(x.numpy(), feats.astype(np.float32)[want])
    np.testing.assert_array_equal(y.numpy(), dense([sorted(set(rows[i])) for i in want], L))


def test_same_layout_and_values_as_arrow_dataset(data):
    d, path, rows = data
    mem, arrow = MultilabelDataset(d.features, rows), ArrowDataset(path)
    assert len(mem) == len(arrow) and mem.n_labels == arrow.n_labels
    assert mem.n_features == arrow.n_features
    for batch in ([5, 0, 399], IndexBatch([3, 3, 7], {"w": np.array([1.0, 2.0, 3.0])})):
        a = MultilabelDataset.collate(mem.__getitems__(batch))
        b = ArrowDataset.collate(arrow.__getitems__(batch))
        assert len(a) == len(b) == 4
        for u, v in zip(a[:3], b[:3]):
            assert u.dtype == v.dtype and torch.equal(u, v)
        assert a[3].keys() == b[3].keys() and all(torch.equal(a[3][k], b[3][k]) for k in a[3])
    # single samples and default_collate give the same 4-tuple too
    single = MultilabelDataset.collate([mem[5], mem[0]])
    assert len(single) == 4 and single[3] == {} and single[2].tolist() == [5, 0]
    assert torch.equal(single[1], arrow.labels.multi_hot([5, 0]))


def test_features_are_used_without_a_copy():
    f32 = np.random.default_rng(0).random((6, 4), dtype=np.float32)
    assert MultilabelDataset(f32, [[0]] * 6).features is not None
    assert np.shares_memory(MultilabelDataset(f32, [[0]] * 6).features, f32)
    t = torch.from_numpy(f32)
    assert np.shares_memory(MultilabelDataset(t, [[0]] * 6).features, f32)
    f64 = f32.astype(np.float64)
    ds = MultilabelDataset(f64, [[0]] * 6)
    assert ds.features.dtype == np.float32 and not np.shares_memory(ds.features, f64)
    none = MultilabelDataset(None, [[0], [1]])
    x, y, i, _ = MultilabelDataset.collate(none.__getitems__([1]))
    assert x.shape == (1, 0) and y.tolist() == [[0.0, 1.0]] and none[0][0].shape == (0,)


def test_labels_in_any_form():
    f = np.zeros((3, 2), np.float32)
    want = [[1.0, 0.0, 1.0], [0.0, 1.0, 0.0], [0.0, 0.0, 0.0]]
    for labels in ([[0, 2], [1], []], np.array(want), LabelMatrix.from_lists([[0, 2], [1], []],
                                                                               n_labels=3)):
        ds = MultilabelDataset(f, labels, n_labels=3)
        assert MultilabelDataset.collate(ds.__getitems__([0, 1, 2]))[1].tolist() == want
    with pytest.warns(longtail.UnsortedLabelsWarning, match="sorted 1 of 3 rows"):
        ds = MultilabelDataset(f, [[2, 0], [1], []])
    assert ds.labels[0].tolist() == [0, 2]


@pytest.mark.parametrize("features, labels, exc, match", [
    (np.zeros(3), [[0]] * 3, ValueError, r"features must be 2-D .* got shape \(3,\)"),
    (np.array([["a"]]), [[0]], TypeError, "features must be real numbers"),
    (np.zeros((1, 1), complex), [[0]], TypeError, "features must be real numbers"),
    ("abc", [[0]], TypeError, "features must be a 2-D array or tensor, got str"),
    (np.zeros((3, 2)), [[0]] * 4, ValueError,
     "features have 3 rows but labels have 4: one label row per example"),
    (np.array([[0.0, 1.0], [2.0, np.nan]]), [[0]] * 2, ValueError,
     r"features\[1, 1\] is nan \(not finite"),
    (np.array([[1e300]]), [[0]], ValueError, r"features\[0, 0\] is inf"),
])
def test_bad_input(features, labels, exc, match):
    with pytest.raises(exc, match=match):
        MultilabelDataset(features, labels)


def test_check_finite_can_be_turned_off_and_bad_indices():
    ds = MultilabelDataset(np.array([[np.nan]]), [[0]], check_finite=False)
    assert np.isnan(ds[0][0].item())
    with pytest.raises(TypeError, match="check_finite"):
        MultilabelDataset(np.zeros((1, 1)), [[0]], check_finite="no")
    with pytest.raises(IndexError, match="index 1 is out of range for 1 examples"):
        ds.__getitems__([0, 1])
    with pytest.raises(IndexError, match="index -2 is out of range"):
        ds[-2]
    with pytest.raises(ValueError, match=r"extras\['w'\] has shape \(2,\)"):
        ds.__getitems__(IndexBatch([0], {"w": np.ones(2)}))


@pytest.mark.parametrize("workers", [0, 2])
def test_weighted_sampler(data, workers):
    d, _, rows = data
    ds = MultilabelDataset(d.features, rows)
    sampler = WeightedSampler(sample_weights(ds.labels, "inverse_frequency"),
                              num_samples=120, seed=3)
    loader = DataLoader(ds, sampler=sampler, batch_size=32,
                        collate_fn=MultilabelDataset.collate, num_workers=workers)
    seen = []
    for x, y, idx, extras in loader:
        np.testing.assert_array_equal(x.numpy(), d.features[idx.numpy()])
        assert torch.equal(y, ds.labels.multi_hot(idx)) and extras == {}
        seen += idx.tolist()
    assert seen == list(sampler)


@pytest.mark.parametrize("workers", [0, 2])
def test_class_aware_batches_carry_the_sampled_label(data, workers):
    d, _, rows = data
    ds = MultilabelDataset(d.features, rows)
    sampler = ClassAwareSampler(ds.labels, num_samples=100, return_labels=True,
                                batch_size=32, seed=0, warn=False)
    drawn = list(sampler)
    loader = DataLoader(ds, batch_sampler=sampler, collate_fn=MultilabelDataset.collate,
                        num_workers=workers)
    n = 0
    for (x, y, idx, extras), want in zip(loader, drawn):
        lab = extras["sampled_label"]
        assert idx.tolist() == list(want)
        assert lab.tolist() == want.extras["sampled_label"].tolist()
        assert bool((y[torch.arange(len(idx)), lab] == 1).all())
        n += 1
    assert n == len(drawn) == 4


@pytest.mark.parametrize("workers", [0, 2])
def test_hard_example_sampler_weights_travel_with_the_batch(data, workers):
    d, _, rows = data
    ds = MultilabelDataset(d.features, rows)
    sampler = HardExampleSampler(len(ds), batch_size=16, seed=0)
    loader = DataLoader(ds, batch_sampler=sampler, collate_fn=MultilabelDataset.collate,
                        num_workers=workers)
    steps = 0
    for x, y, idx, extras in loader:
        assert set(extras) >= {"index", "weight", "prob"}
        assert torch.equal(extras["index"], idx) and extras["weight"].shape == (16,)
        sampler.update(idx, torch.rand(len(idx)))
        steps += 1
        if steps == 3:
            break
    assert steps == 3


def test_pickles(data):
    d, _, rows = data
    ds = MultilabelDataset(d.features[:5], rows[:5])
    again = pickle.loads(pickle.dumps(ds))
    a, b = ds.__getitems__([4, 1]).batch, again.__getitems__([4, 1]).batch
    assert all(torch.equal(u, v) for u, v in zip(a[:3], b[:3]))
    assert "MultilabelDataset(n=5" in repr(again)
