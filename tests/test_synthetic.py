import numpy as np
import pytest
import torch

from longtail.datasets import make_long_tail


def test_small_preset_targets():
    d = make_long_tail("small", seed=0)
    y = d.labels
    prev = y.prevalence()
    assert d.features.shape == (12_000, 64) and d.features.dtype == np.float32
    assert prev.min() == pytest.approx(0.011, abs=2e-4)
    assert 0.13 <= prev.max() <= 0.15
    assert y.stats().cardinality == pytest.approx(8.2, rel=0.03)
    # most labels near the minimum prevalence, a tail of frequent ones
    assert np.median(prev) < 0.02 and (prev > 0.05).mean() < 0.15


def test_seed_preset_targets():
    d = make_long_tail("seed", seed=0)
    y = d.labels
    prev = y.prevalence()
    assert len(y) == 80_000 and y.n_labels == 7_900
    assert prev.min() == pytest.approx(0.011, abs=1e-4)
    assert 0.14 <= prev.max() <= 0.15
    assert y.stats().cardinality == pytest.approx(130, rel=0.02)
    assert 0.8 < np.mean((prev >= 0.01) & (prev <= 0.02)) < 1.0
    assert y.nnz == pytest.approx(10.4e6, rel=0.02)


def test_sparse_preset_is_zipf_like():
    d = make_long_tail("sparse", seed=0, n_examples=40_000)
    counts = d.labels.label_counts()
    assert d.labels.stats().cardinality == pytest.approx(3.0, rel=0.05)
    assert np.median(counts) < 25 and counts.max() > 50 * np.median(counts)


def test_same_seed_same_data_and_different_seed_differs():
    a = make_long_tail("small", seed=3, n_examples=2000)
    b = make_long_tail("small", seed=3, n_examples=2000)
    c = make_long_tail("small", seed=4, n_examples=2000)
    assert a.labels.equals(b.labels) and np.array_equal(a.features, b.features)
    assert not a.labels.equals(c.labels)


def test_labels_are_correlated_through_topics():
    y = make_long_tail("small", seed=0).labels.multi_hot_numpy().astype(np.float64)
    corr = np.corrcoef(y.T)
    off = corr[~np.eye(corr.shape[0], dtype=bool)]
    # independent labels would give |corr| ~ 0.01; topics give strongly correlated pairs
    assert np.quantile(np.abs(off), 0.99) > 0.1


def _train_mlp_ap(d, steps=600):
    from sklearn.metrics import average_precision_score

    x = torch.from_numpy(d.features)
    y = d.labels.multi_hot()
    ntr = int(0.8 * len(x))
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(x.shape[1], 256), torch.nn.ReLU(),
                                torch.nn.Linear(256, y.shape[1]))
    with torch.no_grad():  # output bias at the label prior
        model[2].bias.copy_(torch.logit(y[:ntr].mean(0).clamp(1e-4, 1 - 1e-4)))
    opt = torch.optim.Adam(model.parameters(), lr=3e-3)
    g = torch.Generator().manual_seed(0)
    for _ in range(steps):
        idx = torch.randint(0, ntr, (256,), generator=g)
        opt.zero_grad()
        torch.nn.functional.binary_cross_entropy_with_logits(model(x[idx]), y[idx]).backward()
        opt.step()
    with torch.no_grad():
        s = model(x[ntr:]).numpy()
    t = y[ntr:].numpy()
    keep = t.sum(0) > 0
    ap = np.array([average_precision_score(t[:, c], s[:, c]) for c in np.flatnonzero(keep)])
    return ap, t[:, keep].mean(0)


def test_labels_are_learnable_and_rare_labels_harder():
    d = make_long_tail("small", seed=0, n_examples=6000)
    ap, prevalence = _train_mlp_ap(d)
    assert ap.mean() > 4 * prevalence.mean()  # clearly non-trivial macro AUPRC
    rare = prevalence <= np.quantile(prevalence, 0.33)
    frequent = prevalence >= np.quantile(prevalence, 0.67)
    assert ap[rare].mean() < ap[frequent].mean()
    assert ap.mean() < 0.9  # noisy: far from perfect


def test_bad_arguments():
    with pytest.raises(ValueError, match="unknown preset 'huge'"):
        make_long_tail("huge")
    with pytest.raises(ValueError, match=r"unknown parameters .*\['n_rows'\]"):
        make_long_tail("small", n_rows=5)
    with pytest.raises(ValueError, match="mean_labels=100"):
        make_long_tail("small", mean_labels=100)
    with pytest.raises(ValueError, match="seed"):
        make_long_tail("small", seed=-1)


def test_extreme_preset_shape_scaled_down():
    # the extreme preset (3M x 670k) at a tenth of its size, same examples-per-label ratio
    d = make_long_tail("extreme", seed=0, n_examples=300_000, n_labels=67_000)
    counts = d.labels.label_counts()
    assert d.labels.stats().cardinality == pytest.approx(5.0, rel=0.03)
    assert (counts < 10).mean() > 0.5  # most labels have fewer than 10 examples
    assert counts.max() > 10_000  # Zipf head
    assert d.features.shape == (300_000, 32)
