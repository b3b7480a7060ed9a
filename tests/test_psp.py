"""Propensity-scored precision at k and Jain et al.'s label propensities."""
from __future__ import annotations

import math
import warnings

import numpy as np
import pytest
import scipy.sparse as sp
import torch
from hypothesis import given
from hypothesis import strategies as st

from longtail import metrics as M
from longtail.datasets import LabelMatrix

PSP = M.propensity_scored_precision_at_k


# ---------------------------------------------------------------------------------
# plain NumPy references
# ---------------------------------------------------------------------------------
def brute_psp(y, s, p, k, normalize):
    """PSP@k by a stable argsort (ties: lower label id first)."""
    y = np.asarray(y, dtype=np.float64)
    w = y / np.asarray(p, dtype=np.float64)[None, :]  # 1/p on true labels, 0 elsewhere
    order = np.argsort(-np.asarray(s, dtype=np.float32), axis=1, kind="stable")[:, :k]
    num = np.take_along_axis(w, order, axis=1).sum()
    if not normalize:
        return float(num / (y.shape[0] * k))
    best = -np.sort(-w, axis=1)[:, :k].sum()  # the k largest 1/p among true labels (0 pads)
    return float(num / best) if best > 0 else 0.0


def direct_propensity(n_l, n, a, b):
    c = (math.log(n) - 1) * (b + 1) ** a
    return 1.0 / (1.0 + c * math.exp(-a * math.log(n_l + b)))


@st.composite
def problems(draw, max_n=25, max_c=8):
    n = draw(st.integers(1, max_n))
    c = draw(st.integers(1, max_c))
    levels = draw(st.integers(1, 5))  # few distinct scores: many ties
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    density = draw(st.sampled_from([0.0, 0.1, 0.3, 0.7, 1.0]))
    y = (rng.random((n, c)) < density).astype(np.int64)
    if draw(st.booleans()):
        y[rng.random(n) < 0.5] = 0  # rows without labels
    s = (rng.integers(0, levels, (n, c)) * 0.25 - 0.5).astype(np.float32)
    if draw(st.booleans()):
        s = s + rng.normal(0, 1e-3, (n, c)).astype(np.float32) * (rng.random((n, c)) < 0.5)
    kind = draw(st.sampled_from(["uniform", "few", "ones"]))
    if kind == "uniform":
        p = rng.uniform(1e-3, 1.0, c)
    elif kind == "few":  # equal weights across labels: ties among the best labels too
        p = rng.choice([0.1, 0.5, 1.0], c)
    else:
        p = np.ones(c)
    return y, s.astype(np.float32), p


# ---------------------------------------------------------------------------------
# against the reference
# ---------------------------------------------------------------------------------
@given(problems())
def test_psp_matches_brute_force(problem):
    y, s, p = problem
    c = y.shape[1]
    ks = sorted({k for k in (1, 2, 3, 5, c) if k <= c})  # k = c exceeds most rows' labels
    for normalize in (True, False):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)  # no positive at all
            got = PSP(y, s, ks, propensities=p, normalize=normalize)
        want = {k: brute_psp(y, s, p, k, normalize) for k in ks}
        assert got == pytest.approx(want, rel=1e-12, abs=1e-12)
        if normalize:
            assert all(0.0 <= v <= 1.0 for v in got.values())
    # with all propensities 1, unnormalised PSP@k is P@k
    assert PSP(y, s, ks, propensities=np.ones(c), normalize=False) == pytest.approx(
        M.precision_at_k(y, s, ks), abs=1e-12)


def test_hand_example():
    # weights 1/p = [2, 4, 1, 1.25]; ties in row 0 (labels 0 and 2) and row 1 (1, 2, 3)
    y = np.array([[1, 0, 1, 0], [0, 1, 0, 0], [0, 0, 0, 0]])
    s = np.array([[0.3, 0.9, 0.3, 0.2], [0.1, 0.5, 0.5, 0.5], [0.4, 0.3, 0.2, 0.1]])
    p = [0.5, 0.25, 1.0, 0.8]
    # k=1: row 0 -> label 1 (miss), row 1 -> label 1 (4): 4 / (3 * 1); best 2 + 4 = 6
    # k=2: row 0 -> 1, 0 (2), row 1 -> 1, 2 (4): 6 / (3 * 2); best (2 + 1) + 4 = 7
    # k=3: row 0 -> 1, 0, 2 (3), row 1 -> 1, 2, 3 (4): 7 / 9; best 3 + 4 = 7
    assert PSP(y, s, (1, 2, 3), propensities=p, normalize=False) == pytest.approx(
        {1: 4 / 3, 2: 1.0, 3: 7 / 9}, abs=1e-15)
    assert PSP(y, s, (1, 2, 3), propensities=p) == pytest.approx(
        {1: 4 / 6, 2: 6 / 7, 3: 1.0}, abs=1e-15)
    assert PSP(y, s, 2, propensities=p) == pytest.approx(6 / 7, abs=1e-15)
    assert isinstance(PSP(y, s, 2, propensities=p), float)
    # ties go to the lower label id: with only label 2 true in row 0, it loses the tie
    # with label 0 and drops out of the top 2
    y2 = y.copy()
    y2[0] = [0, 0, 1, 0]
    assert PSP(y2, s, 2, propensities=p, normalize=False) == pytest.approx(4 / 6, abs=1e-15)


@given(problems(), st.floats(1e-3, 1.0))
def test_equal_propensities_scale_precision(problem, p0):
    y, s, _ = problem
    c = y.shape[1]
    ks = [k for k in (1, 2, 3) if k <= c]
    got = PSP(y, s, ks, propensities=np.full(c, p0), normalize=False)
    pk = M.precision_at_k(y, s, ks)
    assert got == pytest.approx({k: pk[k] / p0 for k in ks}, rel=1e-12, abs=1e-12)


def test_perfect_ranking_of_rare_labels_normalises_to_one():
    rng = np.random.default_rng(3)
    y = (rng.random((50, 12)) < 0.3).astype(np.int8)
    y[0] = 0
    p = rng.uniform(0.05, 1.0, 12)
    s = y / p  # true labels ranked by weight, above every false one
    assert PSP(y, s, (1, 3, 5), propensities=p) == pytest.approx(
        {1: 1.0, 3: 1.0, 5: 1.0}, abs=1e-15)
    # the reverse order of the true labels is worse as soon as k < row cardinality
    s_bad = y * p + 2 * y
    got = PSP(y, s_bad, (1, 3), propensities=p)
    assert got[1] < 0.99 and got[3] < 1.0


def test_many_row_chunks(monkeypatch):
    from longtail.metrics import _inputs

    rng = np.random.default_rng(1)
    y = (rng.random((300, 17)) < 0.15).astype(np.uint8)
    s = np.round(rng.normal(size=(300, 17)) + y, 1).astype(np.float32)  # ties
    p = rng.uniform(0.01, 1.0, 17)
    whole = PSP(y, s, (1, 3, 5), propensities=p)
    monkeypatch.setattr(_inputs, "CHUNK_ELEMS", 50)  # 2 rows per chunk
    assert PSP(y, s, (1, 3, 5), propensities=p) == pytest.approx(whole, rel=1e-12)
    assert whole == pytest.approx({k: brute_psp(y, s, p, k, True) for k in (1, 3, 5)},
                                  rel=1e-12)


def test_no_positive_at_all():
    y = np.zeros((3, 4))
    s = np.arange(12.0).reshape(3, 4)
    with pytest.warns(UserWarning, match="no positive entry"):
        assert PSP(y, s, (1, 2), propensities=np.full(4, 0.5)) == {1: 0.0, 2: 0.0}
    assert PSP(y, s, 1, propensities=np.full(4, 0.5), normalize=False) == 0.0


# ---------------------------------------------------------------------------------
# input forms, as precision_at_k
# ---------------------------------------------------------------------------------
def test_torch_label_matrix_and_sparse_targets():
    rng = np.random.default_rng(0)
    y = (rng.random((40, 9)) < 0.25).astype(np.int64)
    s = rng.normal(size=(40, 9)).astype(np.float32)
    p = rng.uniform(0.1, 1.0, 9)
    want = PSP(y, s, (1, 3), propensities=p)
    assert want == pytest.approx({k: brute_psp(y, s, p, k, True) for k in (1, 3)}, rel=1e-12)
    forms = [
        (torch.from_numpy(y), torch.from_numpy(s), torch.from_numpy(p)),
        (torch.from_numpy(y).bool(), torch.from_numpy(s).double(), p.tolist()),
        (LabelMatrix.from_dense(y), s, p[::-1][::-1]),
        (sp.csr_matrix(y), s.astype(np.float64), p),
        (y.tolist(), s.tolist(), torch.from_numpy(p)),
    ]
    for targets, scores, props in forms:
        assert PSP(targets, scores, (1, 3), propensities=props) == pytest.approx(
            want, rel=1e-12)
    # float32 propensities are widened, not rounded further
    p32 = p.astype(np.float32)
    assert PSP(y, s, 3, propensities=p32) == pytest.approx(
        brute_psp(y, s, p32.astype(np.float64), 3, True), rel=1e-12)


def test_kernel_compiles_once_whatever_the_input_types():
    from longtail.metrics import _kernels as K

    rng = np.random.default_rng(0)
    y = rng.random((20, 5)) < 0.3
    s = rng.random((20, 5))
    p = rng.uniform(0.2, 1.0, 5)
    for yy in (y, y.astype(np.int8), torch.from_numpy(y), LabelMatrix.from_dense(y),
               sp.csr_matrix(y.astype(int))):
        for ss in (s, s.astype(np.float32), torch.from_numpy(s).half(), np.asfortranarray(s)):
            for pp in (p, p.astype(np.float32), torch.from_numpy(p), p.tolist(), p[::-1][::-1]):
                PSP(yy, ss, (1, 2), propensities=pp)
                PSP(yy, ss, 2, propensities=pp, normalize=False)
    assert len(K.topk_weighted_hits.signatures) == 1, K.topk_weighted_hits.signatures


# ---------------------------------------------------------------------------------
# label_propensities
# ---------------------------------------------------------------------------------
@pytest.mark.parametrize("a, b", [(0.55, 1.5), (0.6, 2.6), (0.5, 0.4), (1.0, 0.0)])
@pytest.mark.parametrize("n", [3, 100, 1_000_000])
def test_propensities_match_the_formula(a, b, n):
    counts = [0, 1, 2, 7, 100, 12345, 1e9] if b > 0 else [1, 2, 7, 100, 12345, 1e9]
    got = M.label_propensities(counts, n, a=a, b=b)
    assert got.dtype == np.float64 and got.shape == (len(counts),)
    want = [direct_propensity(c, n, a, b) for c in counts]
    np.testing.assert_allclose(got, want, rtol=1e-13, atol=0)
    assert np.all((got > 0) & (got <= 1)) and np.all(np.diff(got) > 0)  # rarer: smaller


def test_propensities_defaults_and_input_forms():
    counts = np.array([0, 3, 50, 800])
    want = [direct_propensity(c, 1000, 0.55, 1.5) for c in counts]
    for form in (counts, counts.astype(np.uint16), counts.astype(np.float32), counts.tolist(),
                 torch.from_numpy(counts), counts.astype(object), counts[::-1][::-1]):
        np.testing.assert_allclose(M.label_propensities(form, 1000), want, rtol=1e-13)
    np.testing.assert_allclose(M.label_propensities([2.5], 10), [direct_propensity(2.5, 10,
                                                                                   0.55, 1.5)])
    assert M.label_propensities([], 10).shape == (0,)
    # no overflow for large a and b: (b + 1) ** a is 1e400
    p = M.label_propensities([0, 1e6], 50, a=100.0, b=1e4 - 1)
    assert np.all(np.isfinite(p)) and 0 < p[0] < p[1] <= 1


def test_propensities_errors():
    with pytest.raises(ValueError, match=r"label_counts\[2\]=-1\.0 is negative"):
        M.label_propensities([3, 0, -1, -2], 100)
    with pytest.raises(ValueError, match=r"label_counts\[1\]=nan is not finite"):
        M.label_propensities([3, math.nan, math.inf], 100)
    with pytest.raises(ValueError, match=r"label_counts\[0\]=inf is not finite"):
        M.label_propensities(np.array([math.inf]), 100)
    with pytest.raises(ValueError, match=r"label_counts must be 1-D.*\(2, 2\)"):
        M.label_propensities(np.ones((2, 2)), 100)
    with pytest.raises(ValueError, match=r"label_counts must be 1-D.*\(\)"):
        M.label_propensities(5, 100)
    with pytest.raises(TypeError, match="label_counts must be real numbers"):
        M.label_propensities(np.array([True, False]), 100)
    with pytest.raises(TypeError, match="label_counts must be"):
        M.label_propensities(["a", "b"], 100)
    with pytest.raises(TypeError, match="n_examples must be a positive integer"):
        M.label_propensities([1, 2], 100.0)
    with pytest.raises(ValueError, match="n_examples must be a positive integer, got 0"):
        M.label_propensities([1, 2], 0)
    with pytest.raises(ValueError, match=r"n_examples must be at least 3 .* got 2"):
        M.label_propensities([1, 2], 2)
    with pytest.raises(ValueError, match="a must be > 0, got 0"):
        M.label_propensities([1, 2], 100, a=0)
    with pytest.raises(ValueError, match="a must be finite, got nan"):
        M.label_propensities([1, 2], 100, a=math.nan)
    with pytest.raises(ValueError, match="b must be >= 0, got -0.5"):
        M.label_propensities([1, 2], 100, b=-0.5)
    with pytest.raises(ValueError, match="b must be finite, got inf"):
        M.label_propensities([1, 2], 100, b=math.inf)
    with pytest.raises(TypeError, match="b must be a real number"):
        M.label_propensities([1, 2], 100, b="1.5")
    with pytest.raises(ValueError, match=r"propensity of label 1 is 0 \(label_counts\[1\]=0"):
        M.label_propensities([1, 0], 100, b=0)


# ---------------------------------------------------------------------------------
# PSP errors
# ---------------------------------------------------------------------------------
Y = np.array([[1, 0, 1], [0, 1, 0]])
S = np.array([[0.9, 0.2, 0.4], [0.3, 0.8, 0.1]], dtype=np.float32)
P3 = np.array([0.5, 1.0, 0.25])


@pytest.mark.parametrize("props, exc, match", [
    (np.array([0.5, 1.0]), ValueError, r"propensities must have shape \(3,\).*got shape \(2,\)"),
    (np.ones((3, 1)), ValueError, r"propensities must have shape \(3,\).*\(3, 1\)"),
    (0.5, ValueError, r"propensities must have shape \(3,\).*\(\)"),
    ([0.5, 0.0, 1.0], ValueError, r"propensities\[1\]=0\.0 must be in \(0, 1\]"),
    ([0.5, 1.0, 1.5], ValueError, r"propensities\[2\]=1\.5 must be in \(0, 1\]"),
    ([math.nan, 1.0, 0.5], ValueError, r"propensities\[0\]=nan must be in \(0, 1\]"),
    ([0.5, -0.2, math.nan], ValueError, r"propensities\[1\]=-0\.2 must be in \(0, 1\]"),
    ([0.5, 1e-310, 1.0], ValueError, r"propensities\[1\]=1e-310 is too small"),
    (["a", "b", "c"], TypeError, "propensities must be"),
    (np.array([True, True, True]), TypeError, "propensities must be real numbers"),
    (None, TypeError, "propensities must be real numbers"),
])
def test_bad_propensities(props, exc, match):
    with pytest.raises(exc, match=match):
        PSP(Y, S, 1, propensities=props)


def test_bad_arguments():
    with pytest.raises(TypeError, match="propensities"):
        PSP(Y, S, 1)  # keyword-only and required
    with pytest.raises(ValueError, match=r"k=4 is larger than the number of labels "
                                         r"\(n_labels=3\) at k\[1\]"):
        PSP(Y, S, (1, 4), propensities=P3)
    with pytest.raises(ValueError, match=r"k=5 is larger than the number of labels"):
        PSP(Y, S, propensities=P3)  # the default (1, 3, 5)
    with pytest.raises(ValueError, match="k must contain positive integers, got 0"):
        PSP(Y, S, [0], propensities=P3)
    with pytest.raises(TypeError, match="k must be a positive integer"):
        PSP(Y, S, True, propensities=P3)
    with pytest.raises(TypeError, match="k must be a positive integer"):
        PSP(Y, S, 1.0, propensities=P3)
    with pytest.raises(ValueError, match="k must be a positive integer or a non-empty"):
        PSP(Y, S, [], propensities=P3)
    with pytest.raises(TypeError, match="normalize must be True or False"):
        PSP(Y, S, 1, propensities=P3, normalize=1)
    with pytest.raises(ValueError, match=r"scores contains NaN at row 1, label 2"):
        PSP(Y, np.array([[0.1, 0.2, 0.3], [0.3, 0.4, np.nan]]), 1, propensities=P3)
    with pytest.raises(ValueError, match=r"targets has shape \(2, 4\) but scores have shape"):
        PSP(np.zeros((2, 4)), S, 1, propensities=P3)
    with pytest.raises(ValueError, match=r"targets: value 2 at row 1, label 1"):
        PSP(np.array([[1, 0, 0], [0, 2, 0]]), S, 1, propensities=P3)


GARBAGE = [None, "x", b"1", 1 + 2j, math.nan, math.inf, -1, 0, True, 2**64, 1e308, [], [[]],
           [1, [2]], np.zeros((2, 2, 2)), np.array(["a", "b"]), np.array([object(), 1]),
           np.zeros(0), {"a": 1}, object(), torch.zeros(3, dtype=torch.complex64)]
CALLS = {
    "propensities": lambda v: PSP(Y, S, 1, propensities=v),
    "normalize": lambda v: PSP(Y, S, 1, propensities=P3, normalize=v),
    "label_counts": lambda v: M.label_propensities(v, 10),
    "n_examples": lambda v: M.label_propensities([1, 2], v),
    "a": lambda v: M.label_propensities([1, 2], 10, a=v),
    "b": lambda v: M.label_propensities([1, 2], 10, b=v),
}
# garbage that is a valid value for that argument
LEGIT = {"n_examples": [2**64], "a": [2**64, 1e308], "b": [2**64, 1e308, 0],
         "label_counts": [[], np.zeros(0)], "normalize": [True]}


def _same(a, b):
    if type(a) is not type(b):
        return False
    try:
        return bool(np.array_equal(np.asarray(a), np.asarray(b)))
    except ValueError:  # ragged
        return False


@given(st.sampled_from(sorted(CALLS)), st.integers(0, len(GARBAGE) - 1))
def test_garbage_gives_a_clear_error(arg, g):
    value = GARBAGE[g]
    if any(_same(value, v) for v in LEGIT.get(arg, [])):
        out = CALLS[arg](value)
        assert isinstance(out, (float, np.ndarray))
        if isinstance(out, np.ndarray):
            assert np.all((out > 0) & (out <= 1))
        return
    with pytest.raises((TypeError, ValueError)) as info:
        CALLS[arg](value)
    assert str(info.value).startswith(arg), str(info.value)
