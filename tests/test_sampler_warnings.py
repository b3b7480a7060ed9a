"""Samplers say when they cannot help (issue 15 #8): one ExposureWarning at construction
when RepeatFactorSampler / ClassAwareSampler hardly lift the rare labels."""
import warnings

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import longtail
from longtail import ClassAwareSampler, ExposureWarning, LabelMatrix, RepeatFactorSampler
from longtail.samplers.balanced import samplers as S


@pytest.fixture(scope="module")
def dense():
    return longtail.make_long_tail("small", seed=0, n_examples=3000).labels


@pytest.fixture(scope="module")
def sparse():
    return longtail.make_long_tail("sparse", seed=0, n_examples=5000, n_labels=800).labels


def _caught(make):
    with warnings.catch_warnings(record=True) as seen:
        warnings.simplefilter("always")
        sampler = make()
    return sampler, [w for w in seen if issubclass(w.category, ExposureWarning)]


MAKERS = {
    "repeat_factor": lambda y, **k: RepeatFactorSampler(y, threshold=0.05, **k),
    "class_aware": lambda y, **k: ClassAwareSampler(y, **k),
    "class_aware_batches": lambda y, **k: ClassAwareSampler(y, batch_size=8,
                                                            return_labels=True, **k),
}


@pytest.mark.parametrize("kind", MAKERS)
def test_one_warning_on_dense_data_that_says_what_was_measured(dense, kind):
    _, seen = _caught(lambda: MAKERS[kind](dense))
    assert len(seen) == 1
    msg = str(seen[0].message)
    assert seen[0].filename == __file__          # points at the caller's line
    assert "cannot flatten label exposure" in msg and "rarest tenth" in msg
    assert "(uniform)" in msg and "labels per example" in msg
    assert "tune_thresholds" in msg and "longtail.losses" in msg and "warn=False" in msg
    if kind == "repeat_factor":
        assert "each epoch is" in msg


@pytest.mark.parametrize("kind", MAKERS)
def test_silent_where_the_sampler_helps(sparse, kind):
    with warnings.catch_warnings():
        warnings.simplefilter("error", ExposureWarning)
        MAKERS[kind](sparse)
    # and there it really flattens exposure (the full report agrees)
    s = MAKERS[kind](sparse)
    report = longtail.exposure_report(sparse, s.expected_weights())
    assert report.improvement > 2


@pytest.mark.parametrize("kind", MAKERS)
def test_suppressible(dense, kind):
    assert _caught(lambda: MAKERS[kind](dense, warn=False))[1] == []
    with warnings.catch_warnings():
        warnings.filterwarnings("error")
        warnings.filterwarnings("ignore", category=ExposureWarning)
        MAKERS[kind](dense)
    with pytest.raises(TypeError, match="warn"):
        MAKERS[kind](dense, warn="no")
    assert issubclass(ExposureWarning, UserWarning)


def test_no_warning_without_a_tail_or_labels():
    flat = LabelMatrix.from_lists([[i % 4] for i in range(40)])       # no long tail
    one = LabelMatrix.from_lists([[0]] * 5)                            # one label
    for y in (flat, one):
        assert _caught(lambda: ClassAwareSampler(y))[1] == []
        assert _caught(lambda: RepeatFactorSampler(y, threshold=1.0))[1] == []
    assert _caught(lambda: RepeatFactorSampler.from_factors([1.0] * 10))[1] == []


def test_the_tiny_dense_case_fires_for_both():
    # label 0 everywhere, one rare label per example: every example is "rare"
    y = LabelMatrix.from_lists([[0, k] for k in range(1, 21)])
    assert len(_caught(lambda: RepeatFactorSampler(y, threshold=0.5))[1]) == 1
    assert len(_caught(lambda: ClassAwareSampler(y))[1]) == 1
    # single-label data: the same samplers help, no warning
    z = LabelMatrix.from_lists([[0]] * 18 + [[1], [2]])
    assert _caught(lambda: RepeatFactorSampler(z, threshold=0.5))[1] == []
    assert _caught(lambda: ClassAwareSampler(z))[1] == []


# ---------------------------------------------------------------------------- the measure
def _brute_tails(rows, n_labels, w):
    """Rare / frequent tenth lifts by plain loops (w: per-example rate, mean 1)."""
    counts = np.zeros(n_labels, dtype=np.int64)
    for r in rows:
        for c in r:
            counts[c] += 1
    present = [c for c in range(n_labels) if counts[c] > 0]
    if len(present) < 2:
        return None
    ranked = sorted(present, key=lambda c: (counts[c], c))
    g = max(1, len(present) // 10)
    rare, freq = set(ranked[:g]), set(ranked[-g:])

    def lift(group):
        vals = [w[i] for i, r in enumerate(rows) for c in r if c in group]
        return sum(vals) / len(vals)

    ratio = np.mean([counts[c] for c in freq]) / np.mean([counts[c] for c in rare])
    return ratio, lift(rare), lift(freq)


label_rows = st.lists(st.lists(st.integers(0, 11), max_size=5, unique=True).map(sorted),
                      min_size=1, max_size=40)


@given(rows=label_rows, threshold=st.floats(0.05, 1.0))
def test_tail_lift_matches_brute_force(rows, threshold):
    y = LabelMatrix.from_lists(rows, n_labels=12)
    if y.nnz == 0:
        return
    rfs = RepeatFactorSampler(y, threshold=threshold, warn=False)
    f = rfs.factors / rfs.factors.mean()
    got = S._tail_exposure(y, lambda r, sub: f)
    want = _brute_tails(rows, 12, f)
    assert (got is None) == (want is None)
    if want is not None:
        np.testing.assert_allclose(got, want, rtol=1e-9)
    cas = ClassAwareSampler(y, warn=False)
    w = cas._row_weights(None, y)
    np.testing.assert_allclose(w, cas.expected_weights(), rtol=1e-9, atol=1e-12)
    if want is not None:
        np.testing.assert_allclose(S._tail_exposure(y, cas._row_weights),
                                   _brute_tails(rows, 12, cas.expected_weights()),
                                   rtol=1e-9)


def test_big_data_is_subsampled_and_the_estimate_holds(monkeypatch):
    y = longtail.make_long_tail("medium", seed=0, n_examples=6000).labels
    assert y.nnz > 4 * S._CHECK_INCIDENCES
    cas = ClassAwareSampler(y, warn=False)
    seen = []

    def spy(rows, sub):
        seen.append(len(sub))
        return cas._row_weights(rows, sub)

    estimate = S._tail_exposure(y, spy)
    # the cost does not grow with the data: at most ~2**15 incidences are read
    assert seen[0] <= S._CHECK_INCIDENCES / (y.nnz / len(y)) + 1
    monkeypatch.setattr(S, "_CHECK_INCIDENCES", 10 ** 9)
    exact = S._tail_exposure(y, cas._row_weights)
    assert estimate[0] == exact[0]
    np.testing.assert_allclose(estimate[1:], exact[1:], rtol=0.1)
