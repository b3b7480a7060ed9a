"""sample_weights and exposure_report: NumPy references, the solver's guarantees, bad input."""
import json
import math

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from longtail import LabelMatrix, make_long_tail
from longtail.samplers.weights import _kernels as K
from longtail.samplers.weights.weighting import (
    METHODS,
    ExposureReport,
    check_weights,
    exposure_report,
    sample_weights,
)


# ---------------------------------------------------------------------------- references
def _rows(y):
    return [y[i].tolist() for i in range(len(y))]


def _counts(rows, L):
    c = np.zeros(L, dtype=np.int64)
    for r in rows:
        for j in r:
            c[j] += 1
    return c


def _ref_label_method(rows, L, label_weight, agg, empty_weight):
    """Plain-Python reference for inverse_frequency / effective_number."""
    c = _counts(rows, L)
    w = []
    for r in rows:
        if not r:
            w.append(None)
            continue
        lw = [label_weight(c[j]) for j in r]
        if agg == "mean":
            w.append(sum(lw) / len(lw))
        elif agg == "sum":
            w.append(sum(lw))
        elif agg == "max":
            w.append(max(lw))
        else:  # rarest: the label with the fewest examples, lowest id on ties
            j = min(r, key=lambda j: (c[j], j))
            w.append(label_weight(c[j]))
    labelled = [x for x in w if x is not None]
    mean = sum(labelled) / len(labelled) if labelled else 1.0
    return np.array([empty_weight if x is None else x / mean for x in w])


def _ref_repeat(rows, L, t, sqrt, empty_weight):
    c = _counts(rows, L)
    n = len(rows)
    out = []
    for r in rows:
        if not r:
            out.append(empty_weight)
            continue
        fs = [(t / (c[j] / n)) for j in r]
        out.append(max(max(1.0, math.sqrt(f) if sqrt else f) for f in fs))
    return np.array(out)


label_rows = st.integers(min_value=1, max_value=12).flatmap(
    lambda L: st.tuples(
        st.just(L),
        st.lists(st.lists(st.integers(0, L - 1), max_size=5, unique=True).map(sorted),
                 min_size=1, max_size=40)))


def _weigh(data, method, **params):
    """``(rows, weights)`` of a drawn label matrix, or None where every example would get
    weight 0 (no example has labels and ``empty_weight=0``: an error, tested below)."""
    L, rows = data
    if not any(rows) and params.get("empty_weight", 1.0) == 0.0:
        return None
    return rows, sample_weights(LabelMatrix.from_lists(rows, n_labels=L), method, **params)


@given(label_rows, st.sampled_from(["mean", "max", "sum", "rarest"]),
       st.floats(0.0, 3.0), st.floats(0.0, 2.0))
def test_inverse_frequency_matches_reference(data, agg, power, empty_weight):
    got = _weigh(data, "inverse_frequency", power=power, agg=agg, empty_weight=empty_weight)
    if got is None:
        return
    rows, w = got
    ref = _ref_label_method(rows, data[0], lambda n: float(n) ** -power, agg, empty_weight)
    assert w.dtype == np.float64 and w.shape == (len(rows),)
    np.testing.assert_allclose(w, ref, rtol=1e-10)


@given(label_rows, st.sampled_from(["mean", "max", "sum", "rarest"]),
       st.sampled_from([0.0, 0.5, 0.9, 0.999, 0.9999]))
def test_effective_number_matches_reference(data, agg, beta):
    rows, w = _weigh(data, "effective_number", beta=beta, agg=agg)
    ref = _ref_label_method(rows, data[0], lambda n: (1 - beta) / (1 - beta ** n), agg, 1.0)
    np.testing.assert_allclose(w, ref, rtol=1e-9)


@given(label_rows, st.floats(1e-4, 1.0), st.booleans(), st.floats(0.0, 3.0))
def test_repeat_factor_matches_reference(data, t, sqrt, empty_weight):
    got = _weigh(data, "repeat_factor", threshold=t, sqrt=sqrt, empty_weight=empty_weight)
    if got is None:
        return
    rows, w = got
    np.testing.assert_allclose(w, _ref_repeat(rows, data[0], t, sqrt, empty_weight),
                               rtol=1e-12)


@given(label_rows, st.lists(st.floats(0.0, 10.0, allow_subnormal=False), min_size=40,
                            max_size=40),
       st.integers(1, 1000))
def test_exposure_report_matches_reference(data, raw, num_samples):
    L, rows = data
    w = np.array(raw[: len(rows)])
    if not w.any():
        w[0] = 1.0
    y = LabelMatrix.from_lists(rows, n_labels=L)
    r = exposure_report(y, w, num_samples=num_samples)
    dense = y.multi_hot_numpy(dtype=np.float64)
    expected = num_samples * (w @ dense) / w.sum()
    np.testing.assert_allclose(r.expected_draws, expected, rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(r.uniform_draws, num_samples * dense.sum(0) / len(rows))
    present = dense.sum(0) > 0
    if present.any():
        e = expected[present]
        with np.errstate(over="ignore"):
            ratio = e.max() / e.min() if e.min() > 0 else math.inf
        assert r.exposure_ratio == pytest.approx(ratio, rel=1e-10)
    ws = w / w.max()
    assert r.ess == pytest.approx(ws.sum() ** 2 / (ws ** 2).sum(), rel=1e-12)
    assert r.ess_fraction == pytest.approx(r.ess / len(rows), rel=1e-12)
    assert r.labels_without_examples == int((~present).sum())
    assert r.zero_weight_examples == int((w == 0).sum())


def test_rarest_is_the_label_with_fewest_examples():
    # label 2 has one example, label 0 three: the rarest of row 0 is label 2
    y = LabelMatrix.from_lists([[0, 2], [0], [0, 1], [1]])
    c = np.array([3, 2, 1])
    lw = np.array([10.0, 20.0, 30.0])
    np.testing.assert_array_equal(
        K.aggregate_rows(y.offsets, y.indices, lw, c, K.AGG_RAREST, -1.0), [30, 10, 20, 20])


def test_first_bad_weight_kernel():
    assert K.first_bad_weight(np.array([1.0, 2.0]))[:2] == (-1, 0)
    assert K.first_bad_weight(np.array([1.0, np.nan, -1]))[:2] == (1, 1)
    assert K.first_bad_weight(np.array([1.0, 0.0, -np.inf]))[:2] == (2, 2)
    assert K.first_bad_weight(np.array([1.0, -0.5]))[:2] == (1, 3)


# ---------------------------------------------------------------------------- the solver
@pytest.fixture(scope="module")
def sparse_small():
    # seed 4: its derived kernel seeds fit int64 (see the note on synthetic.py in the report)
    return make_long_tail("sparse", seed=4, n_examples=6000, n_labels=600, n_topics=40).labels


def test_exposure_solver_flattens_a_feasible_problem():
    # single-label examples: exact flat exposure exists (weight 1/n_c)
    rows = [[0]] * 12 + [[1]] * 4 + [[2]] * 2 + [[3]]
    w = sample_weights(rows, "exposure", min_ess=0.0)
    r = exposure_report(rows, w)
    assert r.uniform_ratio == 12.0
    assert r.exposure_ratio < 1.05
    assert abs(w.mean() - 1.0) < 1e-9


@pytest.mark.parametrize("min_ess", [0.0, 0.5, 0.8])
def test_exposure_solver_keeps_bounds_mean_and_ess_floor(sparse_small, min_ess):
    lo, hi = 0.05, 20.0
    w = sample_weights(sparse_small, "exposure", min_weight=lo, max_weight=hi, min_ess=min_ess,
                       max_iter=60)
    assert np.isfinite(w).all()
    assert w.min() >= lo * (1 - 1e-9) and w.max() <= hi * (1 + 1e-9)
    assert w.mean() == pytest.approx(1.0, rel=1e-9)
    r = exposure_report(sparse_small, w)
    assert r.ess_fraction >= min_ess - 1e-9
    assert r.exposure_ratio < r.uniform_ratio / 3


def test_exposure_solver_beats_label_aggregates_at_equal_ess(sparse_small):
    """The solver's reason to exist: at an ESS no lower than another method's, its
    max/min label exposure is lower (sparse data, where example weights can work)."""
    for method, params in [("inverse_frequency", {"agg": "max"}),
                           ("inverse_frequency", {}),
                           ("repeat_factor", {"threshold": 0.01})]:
        other = exposure_report(sparse_small, sample_weights(sparse_small, method, **params))
        w = sample_weights(sparse_small, "exposure", min_ess=other.ess_fraction, max_iter=80)
        mine = exposure_report(sparse_small, w)
        assert mine.ess_fraction >= other.ess_fraction - 1e-9
        assert mine.exposure_ratio < other.exposure_ratio, method


def test_exposure_solver_is_deterministic_and_takes_a_target(sparse_small):
    a = sample_weights(sparse_small, "exposure", max_iter=20)
    b = sample_weights(sparse_small, "exposure", max_iter=20)
    np.testing.assert_array_equal(a, b)
    # power=0 targets the natural shares: uniform weights are already optimal
    w0 = sample_weights(sparse_small, "exposure", power=0.0, max_iter=20)
    r0 = exposure_report(sparse_small, w0)
    assert r0.exposure_ratio == pytest.approx(r0.uniform_ratio, rel=0.05)
    # an explicit target equal to the prevalence does the same
    t = sparse_small.prevalence()
    wt = sample_weights(sparse_small, "exposure", target=t, max_iter=20)
    assert exposure_report(sparse_small, wt).exposure_ratio == pytest.approx(
        r0.uniform_ratio, rel=0.05)


def test_exposure_solver_on_dense_data_is_reported_honestly():
    y = make_long_tail("small", seed=0, n_examples=3000).labels   # ~8 labels/example
    w = sample_weights(y, "exposure", max_iter=40)
    r = exposure_report(y, w)
    assert r.ess_fraction >= 0.5 - 1e-9
    assert r.exposure_ratio <= r.uniform_ratio


# ---------------------------------------------------------------------------- empties
def test_examples_without_labels_get_empty_weight():
    rows = [[0], [], [1], [0, 1], []]
    for method in METHODS:
        w = sample_weights(rows, method, empty_weight=0.25)
        assert w[1] == 0.25 and w[4] == 0.25, method
        assert sample_weights(rows, method)[1] == 1.0
    w = sample_weights(rows, "inverse_frequency", empty_weight=0.0)
    assert w[1] == 0 and w[[0, 2, 3]].mean() == pytest.approx(1.0)
    with pytest.raises(ValueError, match="every example would get weight 0"):
        sample_weights([[], []], "inverse_frequency", empty_weight=0.0)
    np.testing.assert_array_equal(sample_weights([[], []], "exposure"), [1.0, 1.0])


def test_extreme_parameters_stay_finite():
    rows = [[0]] * 1000 + [[1]]
    for w in (sample_weights(rows, "inverse_frequency", power=500.0),
              sample_weights(rows, "effective_number", beta=0.9999999),
              sample_weights(rows, "repeat_factor", threshold=1.0, sqrt=False)):
        assert np.isfinite(w).all() and (w >= 0).all() and w.any()


# ---------------------------------------------------------------------------- report
def test_report_prints_and_serialises():
    y = LabelMatrix.from_lists([[0], [0], [0], [1], [0, 1]], n_labels=3)
    r = exposure_report(y, sample_weights(y, "inverse_frequency"))
    assert isinstance(r, ExposureReport)
    text = str(r)
    assert "label exposure max/min" in text and "effective sample size" in text
    assert "1 labels have no examples" in text
    d = r.to_dict()
    json.dumps(d)
    assert d["exposure_ratio"] == r.exposure_ratio and "expected_draws" not in d
    assert len(r.to_dict(per_label=True)["expected_draws"]) == 3
    # a label whose every example has weight 0 is never drawn: the ratio is infinite
    r0 = exposure_report(y, [1, 1, 1, 0, 0])
    assert r0.exposure_ratio == math.inf and "inf" in str(r0)
    assert json.loads(json.dumps(r0.to_dict()))["exposure_ratio"] is None


def test_report_says_when_example_weights_cannot_help():
    # every example carries the frequent label 0: example weights barely move exposure
    rng = np.random.default_rng(0)
    rows = [[0] + sorted(rng.choice(np.arange(1, 40), size=15, replace=False).tolist())
            for _ in range(300)]
    y = LabelMatrix.from_lists(rows)
    r = exposure_report(y, sample_weights(y, "inverse_frequency"))
    assert r.improvement < 1.5
    assert "barely move" in str(r) and "15 labels per example" not in str(r)
    assert "16 labels per example" in str(r)
    sparse = LabelMatrix.from_lists([[0]] * 50 + [[1]] * 2)
    assert "barely move" not in str(exposure_report(sparse, sample_weights(sparse, "inverse_frequency")))


# ---------------------------------------------------------------------------- bad input
@pytest.mark.parametrize("weights,match", [
    ([1.0, np.nan, 1.0], r"weights\[1\] is NaN"),
    ([1.0, 1.0, np.inf], r"weights\[2\] is infinite"),
    ([1.0, -2.0, 1.0], r"weights\[1\] is negative \(-2.0\)"),
    ([0.0, 0.0, 0.0], "all zero"),
    ([1.0, 1.0], "length 2, expected 3"),
    ([[1.0, 1.0, 1.0]], "must be 1-D"),
])
def test_report_rejects_bad_weights(weights, match):
    y = LabelMatrix.from_lists([[0], [1], [0, 1]])
    with pytest.raises(ValueError, match=match):
        exposure_report(y, weights)


def test_sample_weights_method_and_num_samples_types():
    with pytest.raises(TypeError, match=r"method must be one of .* got \['exposure'\]"):
        sample_weights([[0], [1]], ["exposure"])
    y = LabelMatrix.from_lists([[0], [1], [0, 1]])
    with pytest.raises(TypeError, match="num_samples must be a positive integer, got 1.5"):
        exposure_report(y, [1.0, 1.0, 1.0], num_samples=1.5)
    with pytest.raises(ValueError, match="num_samples must be a positive integer, got 0"):
        exposure_report(y, [1.0, 1.0, 1.0], num_samples=0)


def test_check_number_convention():
    from longtail._core.checks import check_number

    assert check_number("x", np.float32(0.5), 0.0, 1.0) == 0.5
    assert check_number("x", 10**400, finite=False) == math.inf
    for bad in ("0.5", None, True, np.bool_(False), [0.5], np.array(0.5), 1j):
        with pytest.raises(TypeError, match="x must be a real number"):
            check_number("x", bad)
    for value, kw, match in [(math.nan, {}, "x must be finite, got nan"),
                             (math.nan, {"finite": False}, "x must be a number, got nan"),
                             (10**400, {}, "x must be finite"),
                             (0.0, {"low": 0.0, "low_open": True}, r"x must be > 0, got 0.0"),
                             (2, {"high": 1.0}, r"x must be <= 1, got 2"),
                             (np.float64(1.0), {"low": 0.0, "high": 1.0, "high_open": True},
                              r"x must be in \[0, 1\), got 1.0$")]:
        with pytest.raises(ValueError, match=match):
            check_number("x", value, **kw)


def test_check_weights_types():
    with pytest.raises(TypeError, match="must be numbers"):
        check_weights(["a", "b"])
    with pytest.raises(ValueError, match="is empty"):
        check_weights([])
    with pytest.raises(ValueError, match="sum to infinity"):
        check_weights([1e308, 1e308])
    import torch

    assert check_weights(torch.ones(3)).tolist() == [1.0, 1.0, 1.0]


@pytest.mark.parametrize("method,params,err,match", [
    ("nope", {}, ValueError, "method must be one of"),
    ("inverse_frequency", {"beta": 0.9}, TypeError, "takes no parameter 'beta'"),
    ("inverse_frequency", {"power": -1}, ValueError, r"power must be >= 0, got -1"),
    ("inverse_frequency", {"agg": "median"}, ValueError, "agg must be one of"),
    ("effective_number", {"beta": 1.0}, ValueError, r"beta must be in \[0, 1\)"),
    ("repeat_factor", {"threshold": 0.0}, ValueError, r"threshold must be in \(0, 1\], got 0.0"),
    ("repeat_factor", {"threshold": -0.1}, ValueError, "threshold must be in"),
    ("repeat_factor", {"threshold": float("nan")}, ValueError, "threshold must be finite"),
    ("repeat_factor", {"sqrt": "yes"}, TypeError, "sqrt must be True or False"),
    ("exposure", {"min_weight": 0.0}, ValueError, "min_weight must be in"),
    ("exposure", {"max_weight": 0.5}, ValueError, r"max_weight must be >= 1, got 0.5"),
    ("exposure", {"min_ess": 1.5}, ValueError, "min_ess must be in"),
    ("exposure", {"max_iter": 0}, ValueError, "max_iter must be a positive integer"),
    ("exposure", {"target": [1.0, 1.0]}, ValueError, "target has length 2, expected 3"),
    ("exposure", {"target": [1.0, -1.0, 1.0]}, ValueError, r"target\[1\] is negative"),
    ("exposure", {"empty_weight": -1}, ValueError, r"empty_weight must be >= 0, got -1"),
    # wrong types are TypeErrors naming the argument and the value
    ("inverse_frequency", {"power": "1"}, TypeError, "power must be a real number, got '1'"),
    ("inverse_frequency", {"agg": ["mean"]}, TypeError, r"agg must be one of .* got \['mean'\]"),
    ("effective_number", {"beta": True}, TypeError, "beta must be a real number, got True"),
    ("exposure", {"max_iter": 2.5}, TypeError, "max_iter must be a positive integer, got 2.5"),
    ("exposure", {"min_ess": None}, TypeError, "min_ess must be a real number, got None"),
])
def test_sample_weights_rejects_bad_parameters(method, params, err, match):
    with pytest.raises(err, match=match):
        sample_weights([[0], [1], [0, 2]], method, **params)


# ---------------------------------------------------------------------------- CLI
@pytest.fixture(scope="module")
def label_file(tmp_path_factory):
    from longtail.datasets import write_dataset

    path = tmp_path_factory.mktemp("cli") / "d.arrow"
    rng = np.random.default_rng(0)
    rows = [sorted({int(j) for j in np.minimum(rng.zipf(1.5, size=3) - 1, 40)})
            for _ in range(400)] + [[]]
    write_dataset(path, None, rows, n_labels=42)
    return path, LabelMatrix.from_lists(rows, n_labels=42)


def test_cli_writes_weights_and_prints_the_report(label_file, tmp_path, capsys):
    import pyarrow.parquet as pq

    from longtail.cli import main

    path, y = label_file
    out = tmp_path / "w.npy"
    assert main(["weights", str(path), "--method", "repeat_factor", "--threshold", "0.05",
                 "-o", str(out)]) == 0
    text = capsys.readouterr().out
    assert "label exposure max/min" in text and "wrote" in text
    np.testing.assert_array_equal(np.load(out),
                                  sample_weights(y, "repeat_factor", threshold=0.05))
    pout = tmp_path / "w.parquet"
    assert main(["weights", str(path), "--method", "exposure", "--min-ess", "0.7",
                 "--max-iter", "30", "-o", str(pout), "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["ess_fraction"] >= 0.7 - 1e-9 and report["params"]["min_ess"] == 0.7
    table = pq.read_table(pout)
    assert table.column_names == ["index", "weight"]
    assert table.column("index").to_pylist() == list(range(len(y)))
    np.testing.assert_array_equal(table.column("weight").to_numpy(), sample_weights(
        y, "exposure", min_ess=0.7, max_iter=30))
    # --force replaces, without it the file is kept
    before = out.read_bytes()
    with pytest.raises(SystemExit):
        main(["weights", str(path), "--method", "inverse_frequency", "-o", str(out)])
    assert "--force" in capsys.readouterr().err and out.read_bytes() == before
    assert main(["weights", str(path), "--method", "inverse_frequency", "--agg", "max",
                 "--power", "0.5", "-o", str(out), "--force"]) == 0
    np.testing.assert_array_equal(np.load(out), sample_weights(
        y, "inverse_frequency", agg="max", power=0.5))


@pytest.mark.parametrize("argv,match", [
    (["--method", "repeat_factor", "--threshold", "0"], "threshold must be in (0, 1]"),
    (["--method", "repeat_factor", "--beta", "0.9"], "--beta does not apply to --method"),
    (["--method", "exposure", "--min-ess", "2"], "min_ess must be in"),
    (["--method", "inverse_frequency", "-o", "{tmp}/w.csv"], "must end with .npy or .parquet"),
    (["--method", "inverse_frequency", "--column", "nope"], "no column 'nope'"),
])
def test_cli_writes_nothing_on_bad_input(label_file, tmp_path, capsys, argv, match):
    from longtail.cli import main

    path, _ = label_file
    argv = [a.replace("{tmp}", str(tmp_path)) for a in argv]
    if "-o" not in argv:
        argv += ["-o", str(tmp_path / "w.npy")]
    with pytest.raises(SystemExit) as e:
        main(["weights", str(path)] + argv)
    assert e.value.code == 2
    err = capsys.readouterr().err
    assert match in err, err
    assert list(tmp_path.iterdir()) == []


def test_cli_missing_input(tmp_path, capsys):
    from longtail.cli import main

    with pytest.raises(SystemExit):
        main(["weights", str(tmp_path / "none.arrow"), "--method", "repeat_factor",
              "-o", str(tmp_path / "w.npy")])
    assert "no such file" in capsys.readouterr().err
    assert list(tmp_path.iterdir()) == []
