"""Metrics against scikit-learn and plain NumPy references."""
from __future__ import annotations

import warnings

import numpy as np
import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st
from sklearn.metrics import average_precision_score

from longtail import metrics as M
from longtail.datasets.label_matrix import LabelMatrix


def sk_ap(y, s, average):
    """scikit-learn's AP (its warning for labels without positives silenced)."""
    y = np.asarray(y)
    s = np.asarray(s)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        if y.shape[1] == 1:  # sklearn reads a single column as binary
            v = average_precision_score(y[:, 0], s[:, 0])
            return np.array([v]) if average is None else v
        return average_precision_score(y, s, average=average)


def ours(y, s, average, **kw):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        return M.average_precision(y, s, average, **kw)


@st.composite
def problems(draw, max_n=30, max_c=6):
    n = draw(st.integers(1, max_n))
    c = draw(st.integers(1, max_c))
    levels = draw(st.integers(1, 6))  # few distinct values: many ties
    seed = draw(st.integers(0, 2**32 - 1))
    rng = np.random.default_rng(seed)
    density = draw(st.sampled_from([0.0, 0.05, 0.3, 0.7, 1.0]))
    y = (rng.random((n, c)) < density).astype(np.int64)
    if draw(st.booleans()) and c > 1:
        y[:, 0] = 0  # a label without positives
    s = rng.integers(0, levels, (n, c)).astype(np.float32) * np.float32(0.25) - 0.5
    if draw(st.booleans()):
        s = s + rng.normal(0, 1e-3, (n, c)).astype(np.float32) * (rng.random((n, c)) < 0.5)
    return y, s.astype(np.float32)


# ---------------------------------------------------------------------------------
# average precision
# ---------------------------------------------------------------------------------
@given(problems())
def test_ap_matches_sklearn_dense(problem):
    y, s = problem
    for average in ("macro", "micro", None):
        np.testing.assert_allclose(ours(y, s, average), sk_ap(y, s, average), rtol=0,
                                   atol=1e-12)


@given(problems(max_n=12, max_c=4))
def test_ap_matches_sklearn_label_matrix_and_torch(problem):
    y, s = problem
    labels = LabelMatrix.from_dense(y)
    for average in ("macro", "micro", None):
        expected = sk_ap(y, s, average)
        np.testing.assert_allclose(ours(labels, s, average), expected, rtol=0, atol=1e-12)
        np.testing.assert_allclose(ours(torch.from_numpy(y).bool(), torch.from_numpy(s),
                                        average), expected, rtol=0, atol=1e-12)


def test_ap_scipy_sparse_targets():
    import scipy.sparse as sp

    rng = np.random.default_rng(2)
    y = (rng.random((50, 7)) < 0.2).astype(np.int64)
    s = rng.random((50, 7)).astype(np.float32)
    m = sp.csr_matrix(y)
    m.data[:] = 1
    for average in ("macro", "micro"):
        assert ours(sp.csc_matrix(m), s, average) == pytest.approx(sk_ap(y, s, average),
                                                                   abs=1e-12)
    bad = m.copy()
    bad.data[0] = 3
    with pytest.raises(ValueError,
                       match=r"targets: value 3 at row 0, label 3: entries must be 0 or 1"):
        M.average_precision(bad, s)
    assert M.prediction_ratio(m, m).overall == 1.0


def test_ap_single_example_and_single_label():
    y = np.array([[1, 0, 1]])
    s = np.array([[0.2, 0.9, 0.2]], dtype=np.float32)
    np.testing.assert_allclose(ours(y, s, None), [1.0, 0.0, 1.0])
    assert ours(y, s, "micro") == pytest.approx(sk_ap(y, s, "micro"), abs=1e-12)
    y1 = np.array([1, 0, 1, 1, 0])
    s1 = np.array([0.3, 0.3, 0.1, 0.9, 0.5])
    assert ours(y1, s1, "macro") == pytest.approx(average_precision_score(y1, s1), abs=1e-12)


def test_ap_label_without_positives_warns_and_is_zero():
    y = np.array([[1, 0], [0, 0], [1, 0]])
    s = np.array([[0.5, 0.2], [0.3, 0.1], [0.5, 0.9]])
    with pytest.warns(UserWarning, match="1 label"):
        ap = M.average_precision(y, s, None)
    np.testing.assert_array_equal(ap, [1.0, 0.0])
    with pytest.warns(UserWarning):
        assert M.average_precision(y, s) == 0.5 == sk_ap(y, s, "macro")
    with pytest.warns(UserWarning, match="no positive entry"):
        assert M.average_precision(np.zeros((3, 2)), s, "micro") == 0.0


def test_ap_signed_zeros_and_infinities_are_ordered_like_floats():
    y = np.array([[1], [0], [1], [0], [1], [0]])
    s = np.array([[-0.0], [0.0], [np.inf], [-np.inf], [-1e-30], [1e-30]], dtype=np.float32)
    # -0.0 and +0.0 tie; compare with a NaN-free, inf-free equivalent for sklearn
    s_equiv = np.array([[0.0], [0.0], [5.0], [-5.0], [-1e-30], [1e-30]], dtype=np.float32)
    assert ours(y, s, "macro") == pytest.approx(sk_ap(y, s_equiv, "macro"), abs=1e-12)
    assert ours(y, s, "micro") == pytest.approx(sk_ap(y, s_equiv, "micro"), abs=1e-12)


@pytest.mark.parametrize("n_jobs", [1, 2])
def test_ap_many_blocks_and_chunks(monkeypatch, n_jobs):
    # small blocks / chunks so the block loop, the micro merge and the row chunks of
    # the target conversion all run several times
    import longtail.datasets.label_matrix as lm
    from longtail.metrics import _blocks, _inputs

    monkeypatch.setattr(_blocks, "BLOCK_COLS", 7)
    monkeypatch.setattr(_inputs, "CHUNK_ELEMS", 1000)
    monkeypatch.setattr(lm, "_DENSE_CHUNK", 1000)
    rng = np.random.default_rng(1)
    n, c = 800, 37
    prev = 0.01 + 0.2 * rng.random(c)
    y = (rng.random((n, c)) < prev).astype(np.uint8)
    s = (rng.normal(size=(n, c)) + 1.5 * y).astype(np.float32)
    s[:, :10] = np.round(s[:, :10], 1)  # ties
    for average in ("macro", "micro", None):
        np.testing.assert_allclose(ours(y, s, average, n_jobs=n_jobs), sk_ap(y, s, average),
                                   rtol=0, atol=1e-12)
    assert ours(y.astype(bool), s, "micro") == ours(y, s, "micro")
    assert ours(y.astype(np.float64), s.astype(np.float64), "macro") == ours(y, s, "macro")


def test_ap_float64_scores_are_compared_as_float32():
    y = np.array([[1], [0]])
    s = np.array([[1.0], [1.0 + 1e-12]])  # distinct in float64, equal in float32
    assert ours(y, s, "macro") == pytest.approx(0.5)


def brute_ap(y, s):
    """Per-label AP by brute force (plain NumPy): the mean over the positives of
    (positives scoring >= it) / (scores >= it), compared as float32; 0 without
    positives. This is scikit-learn's step integral, ties included."""
    y = np.asarray(y).astype(bool)
    s = np.asarray(s, dtype=np.float32)
    out = np.zeros(y.shape[1])
    for c in range(y.shape[1]):
        col = s[:, c]
        ge = col[None, :] >= col[y[:, c]][:, None]  # [positives, n]
        if ge.shape[0]:
            out[c] = np.mean((ge & y[:, c]).sum(axis=1) / ge.sum(axis=1))
    return out


@st.composite
def hard_scores(draw, max_n=60, max_c=5):
    """Targets and float32 scores made of a few values (any float32: signed zeros,
    infinities, subnormals, huge and tiny) and their next few floats up: ties, all-equal
    columns and thresholds one ulp apart, so that lookup-table buckets hold several
    positives next to far-away outliers."""
    n = draw(st.integers(1, max_n))
    c = draw(st.integers(1, max_c))
    centers = draw(st.lists(st.floats(width=32, allow_nan=False), min_size=1, max_size=4))
    seed = draw(st.integers(0, 2**32 - 1))
    density = draw(st.sampled_from([0.0, 0.05, 0.3, 0.7, 1.0]))
    rng = np.random.default_rng(seed)
    values = []
    for v in np.array(centers, dtype=np.float32):
        for _ in range(4):
            values.append(v)
            with np.errstate(over="ignore"):
                v = np.nextafter(v, np.float32(np.inf))
    values = np.array(values, dtype=np.float32)
    s = values[rng.integers(0, values.size, (n, c))]
    if draw(st.booleans()):
        s[:, 0] = values[0]  # an all-equal column
    y = (rng.random((n, c)) < density).astype(np.int64)
    return y, s


@given(hard_scores())
def test_ap_per_label_matches_brute_force_reference(problem):
    y, s = problem
    got = ours(y, s, None)
    np.testing.assert_allclose(got, brute_ap(y, s), rtol=0, atol=1e-12)
    if np.isfinite(s).all():  # scikit-learn refuses infinities
        np.testing.assert_allclose(got, sk_ap(y, s, None), rtol=0, atol=1e-12)


@given(problems(max_n=40, max_c=6))
def test_ap_counting_equals_sorting_to_the_bit(problem):
    """The counting kernel gives today's values exactly: the column-sorting path (kept
    for 2**31 rows and more) is the reference, bit for bit."""
    from longtail.metrics import ranking

    y, s = problem
    counted = ours(y, s, None)
    limit = ranking.COUNT_MAX_ROWS
    ranking.COUNT_MAX_ROWS = 0
    try:
        sorted_ = ours(y, s, None)
    finally:
        ranking.COUNT_MAX_ROWS = limit
    np.testing.assert_array_equal(counted, sorted_)


def test_ap_many_positives_in_one_lookup_bucket():
    # one far-away positive stretches the key range, so each lookup bucket is wide and
    # the 200 positives one ulp apart (with negatives between them) share a bucket
    rng = np.random.default_rng(3)
    cluster = np.float32(0.5) + np.arange(400, dtype=np.float32) * np.spacing(np.float32(0.5))
    s = np.concatenate([cluster, [-3e38, 3e38, 0.25]]).astype(np.float32)
    y = np.concatenate([rng.random(400) < 0.5, [1, 0, 1]]).astype(np.int64)
    order = rng.permutation(s.size)
    s, y = s[order, None], y[order, None]
    expected = brute_ap(y, s)
    assert ours(y, s, None) == pytest.approx(expected, abs=1e-12)
    assert ours(y, s, None)[0] == pytest.approx(sk_ap(y, s, None)[0], abs=1e-12)


# ---------------------------------------------------------------------------------
# precision at k
# ---------------------------------------------------------------------------------
def naive_p_at_k(y, s, k):
    order = np.argsort(-s, axis=1, kind="stable")[:, :k]  # ties: lower label id first
    return float(np.take_along_axis(y, order, axis=1).sum() / (y.shape[0] * k))


@given(problems(max_n=20, max_c=8))
def test_precision_at_k_matches_naive(problem):
    y, s = problem
    ks = [k for k in (1, 2, 3, 5) if k <= y.shape[1]]
    got = M.precision_at_k(y, s, k=ks)
    assert got == pytest.approx({k: naive_p_at_k(y, s, k) for k in ks}, abs=1e-12)
    assert M.precision_at_k(LabelMatrix.from_dense(y), s, k=1) == pytest.approx(
        naive_p_at_k(y, s, 1), abs=1e-12)


# ---------------------------------------------------------------------------------
# prediction ratio, thresholds
# ---------------------------------------------------------------------------------
def test_prediction_ratio_counts_and_buckets():
    y = np.zeros((10, 6), dtype=int)
    true_counts = [9, 6, 5, 3, 1, 0]
    for c, k in enumerate(true_counts):
        y[:k, c] = 1
    p = np.zeros_like(y)
    pred_counts = [9, 10, 5, 6, 4, 2]
    for c, k in enumerate(pred_counts):
        p[:k, c] = 1
    r = M.prediction_ratio(y, p.astype(bool))
    assert r.overall == pytest.approx(36 / 24)
    np.testing.assert_array_equal(r.true_counts, true_counts)
    np.testing.assert_array_equal(r.predicted_counts, pred_counts)
    np.testing.assert_allclose(r.per_label[:5], np.array(pred_counts[:5]) / true_counts[:5])
    assert np.isinf(r.per_label[5])
    # tertiles of the label ranking by count: {0, 1} head, {2, 3} medium, {4, 5} tail
    np.testing.assert_array_equal(r.bucket, [0, 0, 1, 1, 2, 2])
    assert r.buckets == pytest.approx({"head": 19 / 15, "medium": 11 / 8, "tail": 6.0})
    # buckets from other (training) counts
    r2 = M.prediction_ratio(y, p, bucket_counts=[0, 1, 2, 3, 4, 5])
    np.testing.assert_array_equal(r2.bucket, [2, 2, 1, 1, 0, 0])
    # LabelMatrix predictions and targets
    r3 = M.prediction_ratio(LabelMatrix.from_dense(y), LabelMatrix.from_dense(p))
    assert r3.overall == r.overall


def brute_best_f1(y, s):
    best = 0.0
    for t in np.unique(s):
        pred = s >= t
        tp = np.sum(pred & (y == 1))
        f1 = 2 * tp / (pred.sum() + y.sum()) if y.sum() else 0.0
        best = max(best, f1)
    return best


@pytest.mark.parametrize("objective", ["f1", "match_count"])
@given(problems(max_n=25, max_c=4))
def test_tune_thresholds_are_optimal(objective, problem):
    """f1: each label's F1 is the best any threshold gives, at a positive's score;
    match_count: each label's predicted count is the achievable one nearest its count."""
    y, s = problem
    thr = M.tune_thresholds(y, s, objective)
    pred = M.apply_thresholds(s, thr)
    for c in range(y.shape[1]):
        yc, sc, pc = y[:, c], s[:, c], pred[:, c]
        npos = yc.sum()
        if npos == 0:
            assert thr[c] == np.inf and not pc.any()
            continue
        if objective == "f1":
            tp = np.sum(pc & (yc == 1))
            f1 = 2 * tp / (pc.sum() + npos)
            assert f1 == pytest.approx(brute_best_f1(yc, sc), abs=1e-12)
            assert thr[c] in set(sc[yc == 1].astype(np.float64))
        else:
            achievable = {int((sc >= t).sum()) for t in np.unique(sc)} | {0}
            best = min(abs(k - npos) for k in achievable)
            assert abs(int(pc.sum()) - npos) == best


def test_apply_thresholds_numpy_and_torch():
    s = np.array([[0.1, 0.5], [0.7, 0.2]], dtype=np.float32)
    thr = np.array([0.5, 0.2])
    np.testing.assert_array_equal(M.apply_thresholds(s, thr), [[False, True], [True, True]])
    t = M.apply_thresholds(torch.from_numpy(s), thr)
    assert t.dtype == torch.bool and t.tolist() == [[False, True], [True, True]]
    assert M.apply_thresholds(s, 0.15).tolist() == [[False, True], [True, True]]
    with pytest.raises(ValueError, match=r"thresholds must be a scalar or have shape \(2,\)"):
        M.apply_thresholds(s, [0.1, 0.2, 0.3])
    with pytest.raises(ValueError, match="thresholds contain NaN at label 1"):
        M.apply_thresholds(s, [0.1, np.nan])


# ---------------------------------------------------------------------------------
# calibration of a pos_weight model
# ---------------------------------------------------------------------------------
def _pos_weight_model(n=4000, c=200, sharpness=10.0, seed=0):
    """Targets drawn from a known posterior, and the logits that BCE with pos_weight
    = neg/pos converges to (``logit(p) + log w``)."""
    from scipy.stats import norm

    rng = np.random.default_rng(seed)
    prevalence = 0.01 + 0.14 * rng.random(c) ** 3  # most labels rare, a frequent tail
    z = rng.standard_normal((n, c))
    true_logit = sharpness * (z - norm.ppf(1 - prevalence))
    y = (rng.random((n, c)) < 1 / (1 + np.exp(-true_logit))).astype(np.uint8)
    pos = y.sum(0)
    w = (n - pos) / np.maximum(pos, 1)
    return y, (true_logit + np.log(w)).astype(np.float32), w


def test_remove_pos_weight_shift_restores_count_calibration():
    y, logits, w = _pos_weight_model()
    before = M.prediction_ratio(y, logits >= 0).overall
    fixed = M.remove_pos_weight_shift(logits, w)
    after = M.prediction_ratio(y, fixed >= 0)
    assert before > 1.5  # the over-prediction
    assert abs(after.overall - 1) <= 0.1
    ap_before = ours(y, logits, None)
    ap_after = ours(y, fixed, None)
    np.testing.assert_allclose(ap_after, ap_before, atol=1e-6)  # per-label ranking kept
    # torch gives the same
    t = M.remove_pos_weight_shift(torch.from_numpy(logits), torch.from_numpy(w))
    np.testing.assert_allclose(t.numpy(), fixed, rtol=0, atol=1e-5)
    # match_count thresholds give ratio 1 up to ties, whatever the calibration
    thr = M.tune_thresholds(y, logits, "match_count")
    assert abs(M.prediction_ratio(y, M.apply_thresholds(logits, thr)).overall - 1) < 0.01


def test_remove_pos_weight_shift_values_and_errors():
    x = np.array([[0.0, 1.0]], dtype=np.float32)
    out = M.remove_pos_weight_shift(x, np.array([1.0, np.e]))
    assert out.dtype == np.float32
    np.testing.assert_allclose(out, [[0.0, 0.0]], atol=1e-7)
    xt = torch.zeros(2, 2, dtype=torch.bfloat16)
    assert M.remove_pos_weight_shift(xt, [1.0, 2.0]).dtype == torch.bfloat16
    with pytest.raises(ValueError, match=r"pos_weight must be positive and finite; got -1\.0 at label 1"):
        M.remove_pos_weight_shift(x, [1.0, -1.0])
    with pytest.raises(ValueError, match="pos_weight must be positive"):
        M.remove_pos_weight_shift(x, [0.0, 1.0])
    with pytest.raises(ValueError, match=r"pos_weight has shape \(3,\) but logits have 2 labels"):
        M.remove_pos_weight_shift(x, [1.0, 2.0, 3.0])


# ---------------------------------------------------------------------------------
# accumulator
# ---------------------------------------------------------------------------------
def test_metric_accumulator_matches_functions():
    y, logits, w = _pos_weight_model(n=600, c=40, seed=3)
    acc = M.MetricAccumulator(k=(1, 3), threshold=0.0, pos_weight=w)
    for i in range(0, 600, 128):  # torch, numpy and LabelMatrix batches
        sl = slice(i, i + 128)
        if i % 256 == 0:
            acc.update(torch.from_numpy(logits[sl]).to(torch.bfloat16).float(),
                       torch.from_numpy(y[sl]).float())
        else:
            acc.update(logits[sl], LabelMatrix.from_dense(y[sl]))
    assert acc.n_samples == 600
    out = acc.compute()
    scores = torch.from_numpy(logits).to(torch.bfloat16).float().numpy()
    for i in range(128, 600, 256):
        scores[i:i + 128] = logits[i:i + 128]
    fixed = M.remove_pos_weight_shift(scores, w)
    np.testing.assert_allclose(out["ap_per_label"], ours(y, fixed, None), atol=1e-12)
    assert out["ap_macro"] == pytest.approx(ours(y, fixed, "macro"), abs=1e-12)
    assert out["ap_micro"] == pytest.approx(ours(y, fixed, "micro"), abs=1e-12)
    assert out["precision_at_k"] == pytest.approx(M.precision_at_k(y, fixed, k=(1, 3)))
    assert out["prediction_ratio"].overall == M.prediction_ratio(y, fixed >= 0).overall
    np.testing.assert_array_equal(out["label_counts"], y.sum(0))
    assert acc.compute()["ap_macro"] == out["ap_macro"]  # again, from the cached concat
    np.testing.assert_array_equal(acc.tune_thresholds("f1"), M.tune_thresholds(y, fixed, "f1"))
    acc.reset()
    with pytest.raises(ValueError, match="empty"):
        acc.compute()
    with pytest.raises(ValueError, match="scores have 3 labels but pos_weight has 40"):
        acc.update(np.zeros((2, 3)), np.zeros((2, 3)))  # before any batch is stored
    assert acc.n_samples == 0
    acc = M.MetricAccumulator(k=1)
    acc.update(np.zeros((2, 3)), np.zeros((2, 3)))
    with pytest.raises(ValueError, match="scores have 4 labels but earlier batches had 3"):
        acc.update(np.zeros((2, 4)), np.zeros((2, 4)))


# ---------------------------------------------------------------------------------
# bad input
# ---------------------------------------------------------------------------------
def test_bad_inputs():
    y = np.array([[1, 0], [0, 1]])
    s = np.array([[0.1, 0.2], [0.3, 0.4]])
    with pytest.raises(ValueError, match=r"targets has shape \(2, 3\) but scores have shape \(2, 2\)"):
        M.average_precision(np.zeros((2, 3)), s)
    with pytest.raises(ValueError, match="scores contains NaN at row 1, label 0"):
        M.average_precision(y, np.array([[0.1, 0.2], [np.nan, 0.4]]))
    with pytest.raises(ValueError, match="scores contains NaN at row 0, label 1"):
        M.average_precision(y, np.array([[0.1, np.nan], [0.3, 0.4]]), "micro")
    with pytest.raises(ValueError, match="scores contains NaN"):
        M.precision_at_k(y, np.array([[0.1, np.nan], [0.3, 0.4]]), k=1)
    with pytest.raises(ValueError, match="scores contains NaN"):
        M.tune_thresholds(y, np.array([[0.1, np.nan], [0.3, 0.4]]))
    with pytest.raises(ValueError,
                       match=r"targets: value 2 at row 1, label 1: entries must be 0 or 1"):
        M.average_precision(np.array([[1, 0], [0, 2]]), s)
    with pytest.raises(ValueError, match=r"value -1 at row 0, label 1"):
        M.average_precision(np.array([[1, -1], [0, 1]]), s)
    with pytest.raises(ValueError, match=r"value 0\.5 at row 0, label 0"):
        M.average_precision(np.array([[0.5, 0], [0, 1]]), s)
    with pytest.raises(ValueError, match="scores is empty"):
        M.average_precision(np.zeros((0, 2)), np.zeros((0, 2)))
    with pytest.raises(ValueError, match="scores is empty"):
        M.precision_at_k(np.zeros((3, 0)), np.zeros((3, 0)))
    with pytest.raises(ValueError, match=r"k=3 is larger than the number of labels \(n_labels=2\)"):
        M.precision_at_k(y, s, k=(1, 3))
    with pytest.raises(ValueError, match="k must contain positive integers, got 0"):
        M.precision_at_k(y, s, k=[0])
    with pytest.raises(ValueError, match="average must be"):
        M.average_precision(y, s, "weighted")
    with pytest.raises(ValueError, match="objective must be"):
        M.tune_thresholds(y, s, "accuracy")
    with pytest.raises(ValueError, match="n_jobs must be a positive integer"):
        M.average_precision(y, s, n_jobs=0)
    with pytest.raises(ValueError, match=r"scores must have shape \[n, C\]"):
        M.average_precision(np.zeros((2, 2, 2)), np.zeros((2, 2, 2)))
    with pytest.raises(ValueError, match=r"targets has shape \(3, 2\) but scores have shape \(2, 2\)"):
        M.average_precision(LabelMatrix.from_dense(np.eye(3, 2, dtype=int)), s)
    with pytest.raises(ValueError,
                       match="predictions: value 3 at row 0, label 0: entries must be 0 or 1"):
        M.prediction_ratio(y, np.array([[3, 0], [0, 1]]))
    with pytest.raises(ValueError, match=r"pos_weight must be positive and finite; got -2\.0"):
        M.MetricAccumulator(pos_weight=[1.0, -2.0])


def test_each_kernel_compiles_once_whatever_the_input_types():
    import scipy.sparse as sp

    from longtail.metrics import _kernels as K

    rng = np.random.default_rng(0)
    y = rng.random((30, 5)) < 0.3
    s = rng.random((30, 5))
    targets = [y, y.astype(np.int8), y.astype(np.float32), torch.from_numpy(y),
               LabelMatrix.from_dense(y), sp.csr_matrix(y.astype(int))]
    scores = [s, s.astype(np.float32), torch.from_numpy(s).half(), np.asfortranarray(s)]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for yy in targets:
            for ss in scores:
                for average in ("macro", "micro"):
                    M.average_precision(yy, ss, average)
                M.precision_at_k(yy, ss, k=(1, 2))
                M.tune_thresholds(yy, ss, "f1")
                M.tune_thresholds(yy, ss, "match_count")
                M.prediction_ratio(yy, ss > 0.5)
    compiled = {name: len(f.signatures) for name, f in vars(K).items()
                if hasattr(f, "signatures") and f.signatures}
    assert len(compiled) >= 10
    assert all(v == 1 for v in compiled.values()), compiled
    # dense targets become a LabelMatrix through one kernel too, whatever their dtype
    from longtail.datasets import _kernels as DK

    assert len(DK.dense_nonzero.signatures) == 1, DK.dense_nonzero.signatures
