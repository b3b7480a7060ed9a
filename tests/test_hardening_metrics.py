"""Hardening of longtail.metrics and longtail.losses (issue 11: #2, #7, #11 and a sweep).

Every hostile input must end in ValueError/TypeError naming the argument, or in a
result equal to a plain NumPy / scikit-learn / float64 reference: never a crash, an
out-of-bounds read in a Numba kernel or a silently different answer.
"""
from __future__ import annotations

import math
import warnings

import numpy as np
import pytest
import scipy.sparse as sp
import torch
from hypothesis import given
from hypothesis import strategies as st
from sklearn.metrics import average_precision_score

from longtail import losses as L
from longtail import metrics as M

BAD = (ValueError, TypeError)


class DuckCSR:
    """Anything with CSR ``offsets`` / ``indices`` (and maybe ``n_labels``)."""

    def __init__(self, offsets, indices, n_labels=None):
        self.offsets = offsets
        self.indices = indices
        if n_labels is not None:
            self.n_labels = n_labels


def quiet(fn, *args, **kw):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return fn(*args, **kw)


def sk_ap(y, s, average):
    if y.shape[1] == 1:
        v = quiet(average_precision_score, y[:, 0], s[:, 0])
        return np.array([v]) if average is None else v
    return quiet(average_precision_score, y, s, average=average)


def naive_p_at_k(y, s, k):
    order = np.argsort(-s, axis=1, kind="stable")[:, :k]
    return float(np.take_along_axis(y, order, axis=1).sum() / (y.shape[0] * k))


S33 = np.array([[0.9, 0.2, 0.4], [0.3, 0.8, 0.1], [0.5, 0.6, 0.7]], dtype=np.float32)


# ---------------------------------------------------------------------------------
# #2: duck-typed CSR targets are checked (offsets first) before any kernel walks them
# ---------------------------------------------------------------------------------
@pytest.mark.parametrize("offsets, indices, match", [
    ([0, 5, 3, 3], [0, 1, 2], r"^targets: offsets decrease at row 1"),
    ([1, 2, 3, 3], [0, 1, 2], r"^targets: offsets must start at 0"),
    ([0, 1, 2, 9], [0, 1, 2], r"^targets: offsets must end at len\(indices\)=3"),
    ([0, -1, 2, 3], [0, 1, 2], r"^targets: offsets decrease at row 0"),
    ([0, 1, 2, 3], [0, 1, 2**32 + 1], r"^targets: label id 4294967297 >= n_labels=3 in row 2"),
    ([0, 1, 2, 3], [0, -1, 2], r"^targets: negative label id -1 in row 1"),
    ([0, 2, 2, 3], [2, 1, 0], r"^targets: label ids of row 0 are not sorted"),
    ([0, 2, 2, 3], [1, 1, 0], r"^targets: duplicate label id 1 in row 0"),
])
def test_duck_csr_targets_are_checked_before_kernels(offsets, indices, match):
    t = DuckCSR(np.array(offsets), np.array(indices, dtype=np.int64))
    for fn in (lambda: M.average_precision(t, S33), lambda: M.average_precision(t, S33, "micro"),
               lambda: M.precision_at_k(t, S33, k=2), lambda: M.tune_thresholds(t, S33),
               lambda: M.prediction_ratio(t, S33 > 0.5),
               lambda: M.MetricAccumulator(k=1).update(S33, t)):
        with pytest.raises(ValueError, match=match):
            fn()
    with pytest.raises(ValueError, match=match.replace("^targets", "^predictions")):
        M.prediction_ratio(S33 > 0.5, t)


def test_uint64_ids_and_garbage_n_labels_are_reported_as_given():
    t = DuckCSR(np.array([0, 1, 2, 3]), np.array([0, 1, 2**64 - 5], dtype=np.uint64))
    with pytest.raises(ValueError, match="label id 18446744073709551611 >= n_labels=3 in row 2"):
        M.precision_at_k(t, S33, k=1)
    with pytest.raises(TypeError, match="targets: n_labels must be an integer, got 'x'"):
        M.average_precision(DuckCSR(np.array([0, 1, 2, 3]), np.array([0, 1, 2]), "x"), S33)
    with pytest.raises(TypeError, match="targets: label ids must be integers"):
        M.average_precision(DuckCSR(np.array([0, 1, 2, 3]), np.array([0.0, 1, 2])), S33)
    with pytest.raises(TypeError, match="targets.offsets must be a dense tensor"):
        M.average_precision(DuckCSR(torch.tensor([0, 1, 2, 3]).to_sparse(), np.arange(3)), S33)
    with pytest.raises(ValueError, match=r"targets has shape \(2, 3\) but scores have shape"):
        M.average_precision(DuckCSR(np.array([0, 1, 3]), np.array([0, 1, 2]), 3), S33)


def _tamper(m, attr, value):
    setattr(m, attr, value)
    return m


@pytest.mark.parametrize("make, match", [
    (lambda: _tamper(sp.csr_matrix(np.eye(3)), "indptr", np.array([0, 5, 1, 3], np.int32)),
     r"targets.indptr: offsets decrease at row 1"),
    (lambda: _tamper(sp.csr_matrix(np.eye(3)), "indices", np.array([0, 7, 1], np.int32)),
     r"targets.indices\[1\]=7 is out of range \[0, 3\)"),
    (lambda: _tamper(sp.csc_matrix(np.eye(3)), "indices", np.array([0, -1, 1], np.int32)),
     r"targets.indices\[1\]=-1 is out of range"),
    (lambda: _tamper(sp.coo_matrix(np.eye(3)), "col", np.array([0, 7, 1], np.int32)),
     r"targets.col\[1\]=7 is out of range"),
    (lambda: _tamper(sp.csr_matrix(np.eye(3)), "data", np.array(["a", "b", "c"])),
     r"targets must be 0/1"),
    (lambda: sp.coo_matrix((np.ones(2), ([0, 0], [1, 1])), shape=(3, 3)),
     r"targets: value 2.0 at row 0, label 1: entries must be 0 or 1"),
])
def test_tampered_scipy_targets_are_errors_not_crashes(make, match):
    with pytest.raises(BAD, match=match):
        M.average_precision(make(), S33)


# ---------------------------------------------------------------------------------
# #11: MetricAccumulator checks its arguments at construction (k against C when known)
# ---------------------------------------------------------------------------------
def test_metric_accumulator_checks_k_early():
    with pytest.raises(ValueError, match=r"k=10 is larger than the number of labels "
                                         r"\(n_labels=3\); pos_weight has 3 labels"):
        M.MetricAccumulator(k=10, pos_weight=[1.0, 2.0, 3.0])
    with pytest.raises(ValueError, match=r"k\[1\]=4294967296 is larger than any possible"):
        M.MetricAccumulator(k=[1, 2**32])
    with pytest.raises(ValueError, match="k=18446744073709551615 is larger"):
        M.MetricAccumulator(k=np.uint64(2**64 - 1))
    with pytest.raises(TypeError, match=r"k must contain positive integers, got k\[0\]=1.5"):
        M.MetricAccumulator(k=[1.5])
    with pytest.raises(ValueError, match=r"got 0 \(k\[1\]=0\)"):
        M.MetricAccumulator(k=(1, 0))
    with pytest.raises(TypeError, match="k must be a positive integer"):
        M.MetricAccumulator(k="3")
    acc = M.MetricAccumulator(k=10)
    with pytest.raises(ValueError, match=r"k=10 is larger than the number of labels "
                                         r"\(n_labels=3\)"):
        acc.update(S33, np.eye(3))
    assert acc.n_samples == 0
    acc.update(np.zeros((2, 12)), np.zeros((2, 12)))  # a later, wider batch is fine
    assert acc.n_samples == 2


def test_metric_accumulator_checks_other_arguments_early():
    with pytest.raises(ValueError, match="threshold is NaN"):
        M.MetricAccumulator(threshold=float("nan"))
    with pytest.raises(TypeError, match="threshold must be numeric, got '0.5'"):
        M.MetricAccumulator(threshold="0.5")
    with pytest.raises(TypeError, match="threshold must be real numbers, got dtype bool"):
        M.MetricAccumulator(threshold=True)
    with pytest.raises(ValueError, match="threshold has 2, pos_weight has 3"):
        M.MetricAccumulator(threshold=[0.0, 0.0], pos_weight=[1.0, 1.0, 1.0])
    with pytest.raises(ValueError, match=r"bucket_counts must be non-negative and finite; got "
                                         r"-1.0 at label 1"):
        M.MetricAccumulator(bucket_counts=[1, -1])
    with pytest.raises(TypeError, match="pos_weight must be real numbers"):
        M.MetricAccumulator(pos_weight=["1"])
    acc = M.MetricAccumulator(k=1, bucket_counts=[1, 2])
    with pytest.raises(ValueError, match="scores have 3 labels but bucket_counts has 2"):
        acc.update(S33, np.eye(3))
    with pytest.raises(ValueError, match="objective must be"):
        acc.tune_thresholds("auc")


# ---------------------------------------------------------------------------------
# sweep: scores, thresholds, k, n_jobs, average, pos_weight, bucket_counts
# ---------------------------------------------------------------------------------
def test_scores_of_wrong_kind_are_type_errors_naming_scores():
    y = np.eye(3)
    for bad in (np.array([[1, 2, 3]] * 3, dtype=object), np.array([["a"] * 3] * 3),
                S33.astype(complex), torch.from_numpy(S33).to(torch.complex64),
                torch.from_numpy(S33).to_sparse()):
        with pytest.raises(TypeError, match="^scores"):
            M.average_precision(y, bad)
    with pytest.raises(ValueError, match="targets is not a rectangular array"):
        M.average_precision([[1], [0, 1], [0]], S33)
    with pytest.raises(ValueError, match=r"scores\[0, 0\]=9e\+39 is beyond the float32 range"):
        M.average_precision(y, np.array([[9e39, 0, 0], [0, 1, 0], [0, 0, 1]]))


def test_other_arguments_are_checked_by_type():
    y = np.eye(3)
    with pytest.raises(TypeError, match="n_jobs must be a positive integer, got 2.0"):
        M.average_precision(y, S33, n_jobs=2.0)
    with pytest.raises(TypeError, match="n_jobs must be a positive integer, got True"):
        M.tune_thresholds(y, S33, n_jobs=True)
    with pytest.raises(TypeError, match="average must be"):
        M.average_precision(y, S33, average=np.array(["macro"]))
    with pytest.raises(TypeError, match="objective must be"):
        M.tune_thresholds(y, S33, objective=["f1"])
    with pytest.raises(TypeError, match="thresholds must be real numbers"):
        M.apply_thresholds(S33, ["0.5"] * 3)
    with pytest.raises(ValueError, match=r"scores contain NaN at \[1, 2\]"):
        M.apply_thresholds(np.array([[0, 0, 0], [0, 0, np.nan]]), 0.5)
    with pytest.raises(ValueError, match=r"scores contain NaN at \[0, 1\]"):
        M.apply_thresholds(torch.tensor([[0.0, math.nan]]), 0.5)
    with pytest.raises(TypeError, match="scores must be numeric"):
        M.apply_thresholds(np.array([["a"]]), 0.5)
    assert M.apply_thresholds([[0.1, 0.2]], [0.1, 0.3]).tolist() == [[True, False]]
    with pytest.raises(TypeError, match="pos_weight must be numeric, got '2'"):
        M.remove_pos_weight_shift(S33, "2")
    with pytest.raises(TypeError, match="logits must be a floating point tensor"):
        M.remove_pos_weight_shift(torch.zeros(2, 2, dtype=torch.int64), [1.0, 2.0])
    np.testing.assert_allclose(M.remove_pos_weight_shift([[0.0, 1.0]], [1, 2]),
                               [[0.0, 1.0 - math.log(2)]])
    with pytest.raises(TypeError, match="bucket_counts must be real numbers"):
        M.prediction_ratio(y, y, bucket_counts=["1", "2", "3"])
    with pytest.raises(ValueError, match=r"bucket_counts must have shape \(3,\)"):
        M.prediction_ratio(y, y, bucket_counts=[1, 2])


def test_prediction_ratio_takes_n_labels_from_targets_for_a_duck_csr_without_it():
    p = DuckCSR(np.array([0, 1, 2, 3]), np.array([0, 1, 2]))
    assert M.prediction_ratio(np.eye(3), p).overall == 1.0


@pytest.mark.parametrize("n_jobs", [1, 2])
@pytest.mark.parametrize("payload", [0x7FC00000, 0xFFC00000, 0x7FFFFFFF, 0xFF800001])
def test_ap_nan_of_any_payload_in_any_block_is_rejected(monkeypatch, n_jobs, payload):
    # a NaN (quiet, negative, all-ones: the pattern whose key is the largest) in a later
    # column block, on a positive, never reaches the counting kernel: it is reported
    from longtail.metrics import _blocks

    monkeypatch.setattr(_blocks, "BLOCK_COLS", 3)
    rng = np.random.default_rng(0)
    y = (rng.random((20, 10)) < 0.3).astype(np.uint8)
    y[5, 8] = 1
    s = rng.random((20, 10)).astype(np.float32)
    s.view(np.uint32)[5, 8] = payload
    with pytest.raises(ValueError, match=r"scores contains NaN at row 5, label 8"):
        M.average_precision(y, s, None, n_jobs=n_jobs)


# ---------------------------------------------------------------------------------
# hypothesis: random corrupt CSR targets
# ---------------------------------------------------------------------------------
def _valid_csr(off, idx, n, c):
    """Plain-Python oracle: is (off, idx) a canonical CSR of n rows and c labels?"""
    def ints(a):
        return a.ndim == 1 and (a.dtype.kind in "iu" or (a.size == 0 and a.dtype.kind in "fb"))
    if not (ints(off) and ints(idx)) or off.shape[0] != n + 1:
        return False
    o = [int(v) for v in off]
    if o[0] != 0 or o[-1] != idx.shape[0] or any(b < a for a, b in zip(o, o[1:])):
        return False
    ids = [int(v) for v in idx]
    if any(v < 0 or v >= c for v in ids):
        return False
    return all(all(a < b for a, b in zip(ids[s:e], ids[s + 1:e])) for s, e in zip(o, o[1:]))


@st.composite
def csr_inputs(draw):
    n, c = draw(st.integers(1, 5)), draw(st.integers(1, 4))
    if draw(st.booleans()):  # a valid CSR, then maybe one corruption
        rows = [sorted(draw(st.sets(st.integers(0, c - 1), max_size=c))) for _ in range(n)]
        off = np.cumsum([0] + [len(r) for r in rows]).tolist()
        idx = [v for r in rows for v in r]
        kind = draw(st.sampled_from(["none", "off", "id", "swap", "extra"]))
        if kind == "off":
            off[draw(st.integers(0, n))] += draw(st.sampled_from([-2, -1, 1, 2**31, -2**40]))
        elif kind == "id" and idx:
            idx[draw(st.integers(0, len(idx) - 1))] = draw(st.sampled_from(
                [-1, c, c + 5, 2**31, 2**32 + 1, -2**63]))
        elif kind == "swap" and len(idx) > 1:
            idx[0], idx[-1] = idx[-1], idx[0]
        elif kind == "extra":
            off.append(off[-1])
    else:  # random garbage
        off = draw(st.lists(st.integers(-3, 8), min_size=0, max_size=n + 2))
        idx = draw(st.lists(st.integers(-2, c + 2), max_size=8))
    odt = draw(st.sampled_from([np.int64, np.int32, np.uint64, np.int8, np.float64, object]))
    idt = draw(st.sampled_from([np.int64, np.int32, np.uint64, np.uint8, np.float32, bool]))

    def arr(values, dt):
        try:
            return np.array(values, dtype=dt)
        except OverflowError:
            return np.array(values, dtype=np.int64 if min(values) < 0 else np.uint64)
    return n, c, arr(off, odt), arr(idx, idt), draw(st.sampled_from([None, c]))


def _dense(off, idx, n, c):
    y = np.zeros((n, c), dtype=np.int64)
    for r in range(n):
        y[r, [int(v) for v in idx[int(off[r]):int(off[r + 1])]]] = 1
    return y


@given(csr_inputs(), st.integers(0, 2**32 - 1))
def test_random_corrupt_csr_targets(case, seed):
    n, c, off, idx, n_labels = case
    s = np.random.default_rng(seed).integers(0, 3, (n, c)).astype(np.float32)
    t = DuckCSR(off, idx, n_labels)
    valid = _valid_csr(off, idx, n, c)
    y = _dense(off, idx, n, c) if valid else None
    calls = {
        "macro": (lambda: quiet(M.average_precision, t, s), lambda: sk_ap(y, s, "macro")),
        "micro": (lambda: quiet(M.average_precision, t, s, "micro"),
                  lambda: sk_ap(y, s, "micro")),
        "p@1": (lambda: M.precision_at_k(t, s, k=1), lambda: naive_p_at_k(y, s, 1)),
        "counts": (lambda: M.prediction_ratio(t, s > 0).true_counts, lambda: y.sum(0)),
    }
    for name, (ours, ref) in calls.items():
        if not valid:
            with pytest.raises(BAD):
                ours()
        else:
            np.testing.assert_allclose(ours(), ref(), atol=1e-12, err_msg=name)


@st.composite
def sparse_inputs(draw):
    n, c = draw(st.integers(1, 5)), draw(st.integers(1, 4))
    nnz = draw(st.integers(0, 8))
    rows = np.array(draw(st.lists(st.integers(0, n - 1), min_size=nnz, max_size=nnz)), np.int64)
    cols = np.array(draw(st.lists(st.integers(0, c - 1), min_size=nnz, max_size=nnz)), np.int64)
    data = np.array(draw(st.lists(st.sampled_from([1.0, 1.0, 1.0, 0.0, 2.0, -1.0, 0.5, np.nan]),
                                  min_size=nnz, max_size=nnz)), dtype=np.float64)
    fmt = draw(st.sampled_from(["coo", "csr", "csc", "lil", "bsr", "dok", "csr_array"]))
    dtype = draw(st.sampled_from([np.float64, np.float32, np.int64, bool]))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        coo = sp.coo_matrix((data.astype(dtype), (rows, cols)), shape=(n, c))
        dense = coo.toarray()  # the reference: duplicates summed, as scipy does
        m = sp.csr_array(coo) if fmt == "csr_array" else coo.asformat(fmt)
    tamper = draw(st.sampled_from([None, None, "index", "ptr"]))
    if tamper == "index" and nnz and fmt in ("coo", "csr", "csc"):
        attr = "col" if fmt == "coo" else "indices"
        bad = getattr(m, attr).copy()
        bad[draw(st.integers(0, bad.shape[0] - 1))] = draw(st.sampled_from([-1, n + c, 2**30]))
        setattr(m, attr, bad)
    elif tamper == "ptr" and fmt in ("csr", "csc") and m.indptr.shape[0] > 2:
        bad = m.indptr.copy()
        bad[1] = m.indptr[-1] + draw(st.integers(1, 3))
        m.indptr = bad
    else:
        tamper = None
    return m, dense, tamper is not None


@given(sparse_inputs(), st.integers(0, 2**32 - 1))
def test_random_scipy_targets(case, seed):
    m, dense, tampered = case
    n, c = dense.shape
    s = np.random.default_rng(seed).integers(0, 3, (n, c)).astype(np.float32)
    ok = not tampered and bool(np.all((dense == 0) | (dense == 1)))
    if not ok:
        with pytest.raises(BAD):
            quiet(M.average_precision, m, s, None)
        return
    y = dense.astype(np.int64)
    np.testing.assert_allclose(quiet(M.average_precision, m, s, None), sk_ap(y, s, None),
                               atol=1e-12)
    assert M.precision_at_k(m, s, k=1) == pytest.approx(naive_p_at_k(y, s, 1), abs=1e-12)


# ---------------------------------------------------------------------------------
# hypothesis: random bad arguments to every public metrics function
# ---------------------------------------------------------------------------------
GARBAGE = [None, "x", b"1", 1 + 2j, math.nan, math.inf, -math.inf, -1, 0, True, 2**64,
           np.uint64(2**64 - 1), -2**63, 1e308, [], [[]], [1, [2]], np.zeros((2, 2, 2)),
           np.array(["a", "b"]), np.array([object(), 1]), np.array([1 + 1j, 2]),
           np.zeros(0), {"a": 1}, object(), torch.zeros(3, 3, dtype=torch.complex64)]

Y = np.array([[1, 0, 1], [0, 1, 0], [1, 1, 0], [0, 0, 1]])
S = np.array([[0.9, 0.2, 0.4], [0.3, 0.8, 0.1], [0.5, 0.6, 0.7], [0.2, 0.1, 0.9]],
             dtype=np.float32)

# (function, argument) -> call with that argument replaced
TARGETS = {
    ("average_precision", "targets"): lambda v: M.average_precision(v, S),
    ("average_precision", "scores"): lambda v: M.average_precision(Y, v),
    ("average_precision", "average"): lambda v: M.average_precision(Y, S, v),
    ("average_precision", "n_jobs"): lambda v: M.average_precision(Y, S, n_jobs=v),
    ("precision_at_k", "targets"): lambda v: M.precision_at_k(v, S, 1),
    ("precision_at_k", "scores"): lambda v: M.precision_at_k(Y, v, 1),
    ("precision_at_k", "k"): lambda v: M.precision_at_k(Y, S, v),
    ("prediction_ratio", "targets"): lambda v: M.prediction_ratio(v, S > 0.5),
    ("prediction_ratio", "predictions"): lambda v: M.prediction_ratio(Y, v),
    ("prediction_ratio", "bucket_counts"): lambda v: M.prediction_ratio(Y, Y, bucket_counts=v),
    ("tune_thresholds", "targets"): lambda v: M.tune_thresholds(v, S),
    ("tune_thresholds", "scores"): lambda v: M.tune_thresholds(Y, v),
    ("tune_thresholds", "objective"): lambda v: M.tune_thresholds(Y, S, v),
    ("tune_thresholds", "n_jobs"): lambda v: M.tune_thresholds(Y, S, n_jobs=v),
    ("apply_thresholds", "scores"): lambda v: M.apply_thresholds(v, 0.5),
    ("apply_thresholds", "thresholds"): lambda v: M.apply_thresholds(S, v),
    ("remove_pos_weight_shift", "logits"): lambda v: M.remove_pos_weight_shift(v, 2.0),
    ("remove_pos_weight_shift", "pos_weight"): lambda v: M.remove_pos_weight_shift(S, v),
    ("MetricAccumulator", "k"): lambda v: M.MetricAccumulator(k=v).update(S, Y),
    ("MetricAccumulator", "threshold"): lambda v: M.MetricAccumulator(threshold=v),
    ("MetricAccumulator", "pos_weight"): lambda v: M.MetricAccumulator(pos_weight=v),
    ("MetricAccumulator", "bucket_counts"): lambda v: M.MetricAccumulator(bucket_counts=v),
    ("MetricAccumulator.update", "scores"): lambda v: M.MetricAccumulator(k=1).update(v, Y),
    ("MetricAccumulator.update", "targets"): lambda v: M.MetricAccumulator(k=1).update(S, v),
}
# garbage that is a legitimate value for that argument (checked against a reference below)
LEGIT = {
    ("average_precision", "average"): [None],
    ("average_precision", "n_jobs"): [2**64, np.uint64(2**64 - 1)],
    ("tune_thresholds", "n_jobs"): [2**64, np.uint64(2**64 - 1)],
    ("apply_thresholds", "thresholds"): [math.inf, -math.inf, -1, 0, 2**64,
                                         np.uint64(2**64 - 1), -2**63, 1e308],
    ("apply_thresholds", "scores"): [[], [[]], np.zeros(0), np.zeros((2, 2, 2))],
    ("remove_pos_weight_shift", "pos_weight"): [2**64, 1e308, np.uint64(2**64 - 1)],
    ("remove_pos_weight_shift", "logits"): [math.nan, math.inf, -math.inf, -1, 0, 2**64,
                                            np.uint64(2**64 - 1), -2**63, 1e308, [], [[]],
                                            np.zeros(0), np.zeros((2, 2, 2))],
    ("MetricAccumulator", "threshold"): [math.inf, -math.inf, -1, 0, 2**64, -2**63, 1e308,
                                         np.uint64(2**64 - 1)],
    ("MetricAccumulator", "pos_weight"): [None, 2**64, 1e308, np.uint64(2**64 - 1)],
    ("MetricAccumulator", "bucket_counts"): [None],
    ("prediction_ratio", "bucket_counts"): [None],
}


@given(st.sampled_from(sorted(TARGETS)), st.sampled_from(range(len(GARBAGE))))
def test_random_bad_arguments_to_metrics(target, g):
    value = GARBAGE[g]
    call = TARGETS[target]
    legit = any(value is v or (type(value) is type(v) and _same(value, v))
                for v in LEGIT.get(target, []))
    if legit:
        quiet(call, value)  # a result; its value is checked by the reference tests
        return
    with pytest.raises(BAD) as info:
        quiet(call, value)
    arg = target[1].rstrip("s") if target[1] in ("thresholds",) else target[1]
    assert arg.split("_")[0] in str(info.value) or target[1] == "targets" and (
        "scores" in str(info.value) or "targets" in str(info.value)), str(info.value)


def _same(a, b):
    try:
        return bool(np.array_equal(np.asarray(a), np.asarray(b), equal_nan=True))
    except Exception:
        return False


ODD_SCORES = [
    lambda s: torch.from_numpy(s).half(), lambda s: torch.from_numpy(s).bfloat16(),
    lambda s: np.asfortranarray(s.astype(np.float64)), lambda s: s.astype(np.float16),
    lambda s: np.repeat(s, 2, axis=1)[:, ::2], lambda s: (s * 4).astype(np.int64),
    lambda s: torch.from_numpy((s * 4).astype(np.int32)), lambda s: s.tolist(),
    lambda s: torch.from_numpy(np.repeat(s, 2, axis=0)).t().contiguous().t()[::2],
]
ODD_TARGETS = [
    lambda y: y.astype(bool), lambda y: y.astype(np.float16), lambda y: torch.from_numpy(y).half(),
    lambda y: torch.from_numpy(y).bfloat16(), lambda y: np.asfortranarray(y.astype(np.uint8)),
    lambda y: np.repeat(y, 2, axis=1)[:, ::2], lambda y: y.tolist(),
    lambda y: torch.from_numpy(y).to(torch.int8), lambda y: sp.csc_matrix(y),
]


@given(st.integers(0, len(ODD_SCORES) - 1), st.integers(0, len(ODD_TARGETS) - 1),
       st.integers(1, 6), st.integers(1, 4), st.integers(0, 2**32 - 1))
def test_odd_dtypes_and_layouts_give_the_reference_result(si, ti, n, c, seed):
    rng = np.random.default_rng(seed)
    y = (rng.random((n, c)) < 0.4).astype(np.int64)
    s = (rng.integers(0, 5, (n, c)) / 4).astype(np.float32)
    scores, targets = ODD_SCORES[si](s), ODD_TARGETS[ti](y)
    ref_s = np.asarray(torch.as_tensor(np.asarray(scores.float() if torch.is_tensor(scores)
                                                  else scores, dtype=np.float32)))
    np.testing.assert_allclose(quiet(M.average_precision, targets, scores, None),
                               sk_ap(y, ref_s, None), atol=1e-12)
    assert M.precision_at_k(targets, scores, k=1) == pytest.approx(
        naive_p_at_k(y, ref_s, 1), abs=1e-12)


# ---------------------------------------------------------------------------------
# #7 losses: every hyper-parameter is checked, at call and at construction
# ---------------------------------------------------------------------------------
X = torch.tensor([[-100.0, 0.0, 100.0], [20.0, -20.0, 3.0]])
T = torch.tensor([[1.0, 0.0, 1.0], [0.0, 1.0, 0.0]])
C3, P3 = [5, 50, 500], [0.1, 0.2, 0.3]

# name -> (call with keyword overrides, {parameter: [bad values]})
LOSSES = {
    "asymmetric_loss": (lambda **k: L.asymmetric_loss(X, T, **k),
                        {"gamma_pos": [math.inf, -1, math.nan, 1e300, "1", True],
                         "gamma_neg": [math.inf, -0.5, math.nan, 1e39, None],
                         "clip": [1.0, -0.1, math.nan, math.inf, "0.1"]}),
    "AsymmetricLoss": (lambda **k: L.AsymmetricLoss(**k),
                       {"gamma_pos": [math.inf, -1], "gamma_neg": [math.inf, math.nan],
                        "clip": [1.5, math.nan], "pos_weight": [["a"], [-1.0], [math.inf]]}),
    "sigmoid_focal_loss": (lambda **k: L.sigmoid_focal_loss(X, T, **k),
                           {"alpha": [1.5, math.nan, math.inf, -math.inf, "0.25", False],
                            "gamma": [-1, math.inf, math.nan, 1e300, torch.ones(2)]}),
    "FocalLoss": (lambda **k: L.FocalLoss(**k),
                  {"alpha": [2.0, math.nan], "gamma": [math.inf, -2], "validate": ["yes", 1],
                   "reduction": [["mean"], "avg", None]}),
    "distribution_balanced_loss": (
        lambda **k: L.distribution_balanced_loss(X, T, k.pop("class_counts", C3),
                                                 k.pop("n_samples", 1000), **k),
        {"n_samples": [0, 2.0, True, -5, 2**60, "10"], "alpha": [-1, math.inf, math.nan],
         "beta": [-1, math.inf], "mu": [math.nan, math.inf, "0.2"], "kappa": [-1, math.inf],
         "neg_scale": [0, -1, math.inf, math.nan], "ref_cardinality": [0, -1, math.inf],
         "class_counts": [[1, 2], [-1, 2, 3], [math.nan, 1, 2], ["a", "b", "c"], [1e39, 1, 1]]}),
    "DistributionBalancedLoss": (
        lambda **k: L.DistributionBalancedLoss(k.pop("class_counts", C3),
                                               k.pop("n_samples", 1000), **k),
        {"n_samples": [0, 1.5], "mu": [math.nan], "kappa": [math.inf], "neg_scale": [0.0],
         "class_counts": [[], [[1, 2]], [math.inf]], "beta": [math.nan]}),
    "logit_adjusted_bce": (lambda **k: L.logit_adjusted_bce(X, T, k.pop("prior", P3), **k),
                           {"tau": [math.inf, math.nan, "1", None],
                            "prior": [[0, 0.5, 0.5], [1.0, 0.5, 0.5], [0.5, 0.5], ["a"] * 3,
                                      [math.nan, 0.1, 0.1]]}),
    "LogitAdjustedBCE": (lambda **k: L.LogitAdjustedBCE(k.pop("prior", P3), **k),
                         {"tau": [math.inf, math.nan], "prior": [[1 - 1e-10, 0.5], [0.0],
                                                                 [[0.5]]]}),
    "bce_with_logits": (lambda **k: L.bce_with_logits(X, T, **k),
                        {"pos_weight": [[-1.0, 1, 1], "2", [1, 1, 1e39], [True] * 3, [1, 1]],
                         "weight": [[-1.0, 1, 1], [[1.0] * 3] * 3, ["a"] * 3],
                         "reduction": ["avg", ["sum"]], "sample_reduction": ["median"],
                         "validate": ["yes", None]}),
    "BCEWithLogits": (lambda **k: L.BCEWithLogits(**k),
                      {"pos_weight": [[[1.0]], [math.nan]], "reduction": [1]}),
    "class_balanced_weights": (lambda **k: L.class_balanced_weights(k.pop("counts", C3), **k),
                               {"beta": [1.0, -0.1, math.nan, "0.9"], "normalize": ["no"],
                                "counts": [[], [-1], ["1"], [math.inf]]}),
    "per_example_loss": (lambda **k: L.per_example_loss(k.pop("loss", X), k.pop("targets", T),
                                                        **k),
                         {"reduction": ["median", None], "targets": [[[1.0] * 3] * 2],
                          "loss": [X.long(), X[0], [[1.0]]]}),
}


@given(st.sampled_from([(f, p, i) for f, (_, bad) in sorted(LOSSES.items())
                        for p, vals in sorted(bad.items()) for i in range(len(vals))]))
def test_random_bad_hyper_parameters_of_every_loss(case):
    fn_name, param, i = case
    call, bad = LOSSES[fn_name]
    value = bad[param][i]
    with pytest.raises(BAD) as info:
        call(**{param: value})
    key = {"class_counts": "class_counts", "counts": "counts"}.get(param, param)
    assert key.split("_")[0] in str(info.value) or (
        param in ("loss", "targets") and "loss" in str(info.value)), str(info.value)


def test_asymmetric_loss_gamma_inf_is_rejected_not_nan():
    with pytest.raises(ValueError, match=r"gamma_neg must be finite, got inf"):
        L.asymmetric_loss(X, T, gamma_neg=math.inf)
    with pytest.raises(ValueError, match=r"gamma_neg must be finite"):
        L.AsymmetricLoss(gamma_neg=math.inf)


@st.composite
def loss_params(draw):
    g = st.sampled_from([0.0, 1e-30, 0.3, 0.999, 1.0, 2.0, 4.0, 50.0])
    return dict(gp=draw(g), gn=draw(g), clip=draw(st.sampled_from([0.0, 1e-6, 0.05, 0.9])),
                alpha=draw(st.sampled_from([None, -1.0, 0.0, 0.25, 1.0])),
                beta=draw(st.sampled_from([0.0, 1e-3, 10.0, 1e4])),
                tau=draw(st.sampled_from([-3.0, 0.0, 1.0, 30.0])),
                scale=draw(st.sampled_from([1.0, 30.0, 100.0, 1e4])),
                seed=draw(st.integers(0, 2**31 - 1)))


@given(loss_params())
def test_valid_hyper_parameters_give_finite_losses_and_gradients(p):
    g = torch.Generator().manual_seed(p["seed"])
    x = (torch.randn(4, 5, generator=g) * p["scale"]).requires_grad_()
    y = (torch.rand(4, 5, generator=g) < 0.3).float()
    y[0] = 0  # a row without positives
    losses = [
        L.asymmetric_loss(x, y, p["gp"], p["gn"], p["clip"], reduction="sum"),
        L.sigmoid_focal_loss(x, y, p["alpha"], p["gp"], reduction="sum"),
        L.distribution_balanced_loss(x, y, [0, 1, 10, 100, 1000], 1000, beta=p["beta"],
                                     reduction="sum"),
        L.logit_adjusted_bce(x, y, [1e-6, 0.01, 0.5, 0.9, 1 - 1e-9], p["tau"], reduction="sum"),
        L.class_balanced_weights([0, 1, 10, 1e6, 1e30], beta=min(p["clip"], 0.999)).sum(),
    ]
    for loss in losses:
        assert torch.isfinite(loss), loss
        if loss.requires_grad:
            (grad,) = torch.autograd.grad(loss, x)
            assert torch.isfinite(grad).all(), grad


def test_distribution_balanced_beta_zero_rows_without_positives_are_finite():
    y = torch.tensor([[0.0, 0.0, 0.0], [1.0, 0.0, 0.0]])
    out = L.distribution_balanced_loss(torch.zeros(2, 3), y, C3, 1000, beta=0.0,
                                       reduction="none")
    assert torch.isfinite(out).all()
    # beta = 0: every weight is alpha + sigmoid(0) = alpha + 0.5
    ref = L.distribution_balanced_loss(torch.zeros(2, 3), y, C3, 1000, beta=0.0, alpha=0.0,
                                       reduction="none")
    torch.testing.assert_close(out, ref * (0.6 / 0.5))


def test_logit_adjusted_prior_near_one_is_exact_or_rejected_early():
    x = torch.zeros(1, 2, dtype=torch.float64)
    y = torch.tensor([[1.0, 0.0]], dtype=torch.float64)
    got = L.logit_adjusted_bce(x.float(), y.float(), [0.5, 1 - 1e-10], reduction="none")
    ref = torch.nn.functional.binary_cross_entropy_with_logits(
        x + torch.log(torch.tensor([1.0, (1 - 1e-10) / 1e-10], dtype=torch.float64)), y,
        reduction="none")
    torch.testing.assert_close(got.double(), ref, rtol=1e-6, atol=1e-6)
    with pytest.raises(ValueError, match=r"prior must be in \(0, 1\) in float32; 0.9999999999 "
                                         r"at label 1 rounds to 1.0"):
        L.LogitAdjustedBCE([0.5, 1 - 1e-10])
    with pytest.raises(ValueError, match=r"tau \* logit\(prior\) overflows"):
        L.logit_adjusted_bce(torch.zeros(1, 2), y.float(), [0.5, 1e-30], tau=1e37)
