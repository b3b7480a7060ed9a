"""The Bayes-optimal oracle of the dense synthetic generator (``LongTailData.oracle``)."""
import re

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st
from scipy.stats import norm

from longtail.datasets import DenseOracle, make_long_tail
from longtail.datasets.synthetic import FEATURE_NOISE
from longtail.metrics import average_precision


@pytest.fixture(scope="module")
def data():
    # small preset shape, more rows and fewer labels: 20k x 200, ~3.3 labels/example
    return make_long_tail("small", seed=0, n_examples=20_000, n_labels=200, mean_labels=3.3)


@pytest.fixture(scope="module")
def proba(data):
    return data.oracle.predict_proba(data.features)


def test_mean_probability_matches_prevalence(data, proba):
    prev = data.labels.prevalence()
    mean_p = proba.mean(axis=0, dtype=np.float64)
    assert mean_p.mean() == pytest.approx(prev.mean(), rel=0.02)
    # ~220 positives for the rarest labels: the sample mean of p moves ~5%
    assert np.abs(mean_p / prev - 1).max() < 0.2
    assert np.abs(mean_p / prev - 1).mean() < 0.05


def test_binned_calibration(data, proba):
    y = data.labels.multi_hot_numpy().ravel()
    p = proba.ravel()
    bins = np.minimum((p * 10).astype(np.int64), 9)
    checked = 0
    for b in range(10):
        m = bins == b
        count = int(m.sum())
        if count < 500:
            continue
        freq, mean_p = y[m].mean(), p[m].mean(dtype=np.float64)
        assert abs(freq - mean_p) < 0.015 + 4 * np.sqrt(mean_p * (1 - mean_p) / count), b
        checked += 1
    assert checked >= 8  # the oracle is confident for many rows, not a constant


def test_oracle_beats_least_squares(data, proba):
    x, y = data.features.astype(np.float64), data.labels.multi_hot_numpy().astype(np.float64)
    h = len(x) // 2
    X = np.c_[x, np.ones(len(x))]
    coef = np.linalg.lstsq(X[:h], y[:h], rcond=None)[0]
    ls_ap = average_precision(y[h:], X[h:] @ coef, average=None)
    oracle_ap = average_precision(y[h:], proba[h:], average=None)
    assert oracle_ap.mean() > ls_ap.mean() + 0.01
    assert (oracle_ap > ls_ap).mean() > 0.8  # per label too, up to sampling noise


def test_oracle_ranking_ignores_threshold(data):
    """AP depends on the ranking only: any threshold gives the same per-label AP."""
    o = data.oracle
    shifted = DenseOracle(o.mix, o.directions, o.covariance, o.thresholds + 0.7, o.sd)
    x, y = data.features[:3000], data.labels.multi_hot_numpy()[:3000]
    # equal up to float32 ties of the log-odds (rare, and they move AP by ~1/n_pos)
    np.testing.assert_allclose(average_precision(y, o.logits(x), average=None),
                               average_precision(y, shifted.logits(x), average=None), atol=2e-3)


def test_features_follow_the_oracle_model(data):
    """Cov(x) = mix^T mix + noise^2 I on the generated features: ties the oracle's mix
    and noise to what the generator did."""
    mix = data.oracle.mix.astype(np.float64)
    x = data.features.astype(np.float64)
    expected = mix.T @ mix + FEATURE_NOISE ** 2 * np.eye(mix.shape[1])
    assert np.abs(np.cov(x.T) - expected).max() < 0.06
    assert np.abs(x.mean(axis=0)).max() < 0.05


def test_posterior_matches_monte_carlo(data):
    """z - E[z | x] is uncorrelated with x and has covariance Sigma (Monte Carlo)."""
    o = data.oracle
    rng = np.random.default_rng(5)
    mix = o.mix.astype(np.float64)
    z = rng.standard_normal((40_000, mix.shape[0]))
    x = z @ mix + FEATURE_NOISE * rng.standard_normal((len(z), mix.shape[1]))
    r = z - o.posterior_mean(x)
    # Sigma's diagonal is ~0.1 here: a wrong noise scale or a missing term moves it by more
    assert np.abs(r.mean(axis=0)).max() < 0.02
    assert np.abs(r.T @ x / len(z)).max() < 0.025
    assert np.abs(r.T @ r / len(z) - o.covariance).max() < 0.01
    # and the least-squares regression of z on x finds the oracle's gain
    coef = np.linalg.solve(x.T @ x, x.T @ z)
    gain = mix.T @ o.covariance / FEATURE_NOISE ** 2
    assert np.abs(coef - gain).max() < 0.03


def test_score_sd_is_unit_total(data):
    """sd_c^2 = w^T Sigma w + 1 - |w|^2: the hidden part is all that the latent leaves."""
    o = data.oracle
    w = o.directions.astype(np.float64)
    explained = 1 - (o.sd ** 2 - np.einsum("ij,jk,ik->i", w, o.covariance, w))
    np.testing.assert_allclose(explained, (w * w).sum(axis=1), rtol=1e-5)
    np.testing.assert_allclose(o.thresholds, norm.isf(data.target_prevalence), rtol=1e-10)


def _reference(mix, w, t, noise, x):
    """P(s > t | x) by plain joint-Gaussian conditioning of (s, x), unit-variance scores."""
    cov_x = mix.T @ mix + noise ** 2 * np.eye(mix.shape[1])
    cov_sx = w @ mix
    beta = np.linalg.solve(cov_x, cov_sx.T)  # (d, L)
    mean = x @ beta
    var = 1 - np.einsum("ld,dl->l", cov_sx, beta)
    return norm.sf((t - mean) / np.sqrt(var))


@settings(max_examples=40, deadline=None)
@given(K=st.integers(1, 6), d=st.integers(1, 8), L=st.integers(1, 7), n=st.integers(0, 30),
       chunk=st.one_of(st.none(), st.integers(1, 9)), noise=st.floats(0.2, 2.0),
       seed=st.integers(0, 2**32 - 1))
def test_matches_joint_gaussian_reference(K, d, L, n, chunk, noise, seed):
    rng = np.random.default_rng(seed)
    mix = rng.standard_normal((K, d)).astype(np.float32)
    w = rng.standard_normal((L, K))
    w *= rng.uniform(0.05, 0.95, L)[:, None] / np.linalg.norm(w, axis=1, keepdims=True)
    w = w.astype(np.float32).astype(np.float64)
    t = rng.normal(1.5, 0.7, L)
    m64 = mix.astype(np.float64)
    cov = np.linalg.inv(np.eye(K) + m64 @ m64.T / noise ** 2)
    sd = np.sqrt(np.einsum("ij,jk,ik->i", w, cov, w) + 1 - (w * w).sum(axis=1))
    oracle = DenseOracle(mix, w, cov, t, sd, noise)
    x = rng.standard_normal((n, d)).astype(np.float32)
    ref = _reference(m64, w, t, noise, x.astype(np.float64))
    p = oracle.predict_proba(x, chunk_rows=chunk)
    assert p.shape == (n, L) and p.dtype == np.float32
    np.testing.assert_allclose(p, ref, rtol=1e-4, atol=1e-6)
    z = oracle.logits(x, chunk_rows=chunk)
    assert z.shape == (n, L) and z.dtype == np.float32
    ok = (ref > 1e-9) & (ref < 1 - 1e-7)
    np.testing.assert_allclose(z[ok], (np.log(ref) - np.log1p(-ref))[ok], rtol=1e-4, atol=1e-4)


def test_logits_stable_for_extreme_features(data):
    x = 1e4 * data.features[:50]
    z = data.oracle.logits(x)
    p = data.oracle.predict_proba(x)
    assert np.isfinite(z).all() and np.abs(z).max() > 1e3
    assert ((z > 0) == (p > 0.5))[(p != 0.5)].all()


def test_chunking_does_not_change_results(data):
    x = data.features[:777]
    full = data.oracle.logits(x)
    np.testing.assert_array_equal(full, data.oracle.logits(x, chunk_rows=100))
    np.testing.assert_array_equal(full, data.oracle.logits(x, chunk_rows=1))


@pytest.mark.parametrize("preset", ["sparse", "extreme"])
def test_sparse_presets_have_no_oracle(preset):
    d = make_long_tail(preset, seed=0, n_examples=500,
                       **({"n_labels": 1000, "n_topics": 20} if preset == "extreme" else {}))
    assert d.oracle is None


@pytest.mark.parametrize("preset", ["small", "medium", "seed"])
def test_dense_presets_have_an_oracle(preset):
    d = make_long_tail(preset, seed=0, n_examples=300)
    assert isinstance(d.oracle, DenseOracle)
    assert d.oracle.n_labels == d.labels.n_labels
    assert d.oracle.n_features == d.features.shape[1]


@pytest.mark.parametrize("shape", [(5, 63), (5, 65), (64,), (2, 5, 64), (0, 3)])
def test_bad_feature_shape_raises(data, shape):
    x = np.zeros(shape, dtype=np.float32)
    for method in ("logits", "predict_proba", "posterior_mean"):
        with pytest.raises(ValueError, match=re.escape(f"shape (n, 64), got shape {shape}")):
            getattr(data.oracle, method)(x)


def test_bad_features_raise(data):
    x = data.features[:10].copy()
    x[7, 3] = np.nan
    with pytest.raises(ValueError, match="row 7"):
        data.oracle.logits(x, chunk_rows=3)
    with pytest.raises(TypeError, match="real"):
        data.oracle.predict_proba(np.full((2, 64), "a"))
    with pytest.raises(ValueError, match="chunk_rows"):
        data.oracle.logits(data.features[:2], chunk_rows=0)
    with pytest.raises(TypeError, match="chunk_rows"):
        data.oracle.logits(data.features[:2], chunk_rows=2.0)


def test_bad_oracle_arrays_raise(data):
    o = data.oracle
    with pytest.raises(ValueError, match="shapes do not fit"):
        DenseOracle(o.mix, o.directions[:, :-1], o.covariance, o.thresholds, o.sd)
    with pytest.raises(ValueError, match="sd must be > 0"):
        DenseOracle(o.mix, o.directions, o.covariance, o.thresholds, 0 * o.sd)
    assert not o.mix.flags.writeable and not o.sd.flags.writeable


def test_oracle_separates_generated_labels():
    """Positives of the generated labels get much higher oracle log-odds."""
    a = make_long_tail("small", seed=2, n_examples=1500)
    y = a.labels.multi_hot_numpy().astype(bool)
    z = a.oracle.logits(a.features)
    assert (z[y].mean() - z[~y].mean()) > 2
