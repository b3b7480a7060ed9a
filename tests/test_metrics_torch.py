"""Average precision where the scores are (longtail.metrics._torch_ap) and the
MetricAccumulator's device path, on CPU tensors: equal to the CPU path (1e-12), with its
warnings and its errors; the GPU check script runs on the CPU."""
from __future__ import annotations

import contextlib
import importlib.util
import math
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

import longtail.metrics as M
from longtail.datasets import LabelMatrix
from longtail.metrics import _torch_ap as T
from longtail.metrics import accumulator as A
from longtail.metrics._torch_ap import average_precision_torch

ROOT = Path(__file__).resolve().parents[1]
DTYPES = [torch.float16, torch.bfloat16, torch.float32, torch.float64]
GRID = [-math.inf, -2.0, -0.5, -0.0, 0.0, 0.25, 0.5, 1.0, 3.0, math.inf]


@contextlib.contextmanager
def small_blocks():
    """One column per block and one row per micro chunk."""
    saved = T.SHARE, T.FIXED_BYTES
    T.SHARE, T.FIXED_BYTES = 0.0, 1
    try:
        yield
    finally:
        T.SHARE, T.FIXED_BYTES = saved


def host(x: torch.Tensor) -> np.ndarray:
    """The numpy copy the CPU path is given (bfloat16 widened exactly)."""
    return (x.float() if x.dtype == torch.bfloat16 else x).numpy()


def both(fn_cpu, fn_torch):
    """(cpu result, torch result, cpu warnings, torch warnings)."""
    out = []
    for fn in (fn_cpu, fn_torch):
        with warnings.catch_warnings(record=True) as rec:
            warnings.simplefilter("always")
            out.append((fn(), [str(w.message) for w in rec]))
    return out[0][0], out[1][0], out[0][1], out[1][1]


@st.composite
def problems(draw, max_n=25, max_c=5):
    n, c = draw(st.integers(1, max_n)), draw(st.integers(1, max_c))
    if draw(st.booleans()):  # many ties, signed zeros, infinities
        s = np.array(draw(st.lists(st.sampled_from(GRID), min_size=n * c, max_size=n * c)))
    else:
        s = np.array(draw(st.lists(st.floats(-50, 50, width=32), min_size=n * c,
                                   max_size=n * c)))
    s = s.reshape(n, c)
    for j in range(c):
        if draw(st.integers(0, 4)) == 0:  # an all-equal column
            s[:, j] = draw(st.sampled_from(GRID))
    density = draw(st.lists(st.sampled_from([0.0, 0.2, 0.5, 1.0]), min_size=c, max_size=c))
    rng = np.random.default_rng(draw(st.integers(0, 2**16)))
    y = rng.random((n, c)) < np.array(density)
    dtype = draw(st.sampled_from(DTYPES))
    return torch.tensor(s, dtype=dtype), y


@given(problems(), st.sampled_from(["bool", "int", "float", "labels"]), st.booleans(),
       st.booleans())
def test_equals_the_cpu_path(problem, form, small, one_d):
    scores, y = problem
    targets = {"bool": torch.from_numpy(y), "int": torch.from_numpy(y.astype(np.int64)),
               "float": torch.from_numpy(y.astype(np.float32)),
               "labels": LabelMatrix.from_dense(y)}[form]
    if one_d and y.shape[1] == 1 and form != "labels":
        scores, targets, y = scores[:, 0], targets[:, 0], y[:, 0]
    with small_blocks() if small else contextlib.nullcontext():
        for average in ("macro", "micro", None):
            ref, got, w_ref, w_got = both(
                lambda: M.average_precision(y, host(scores), average),
                lambda: average_precision_torch(targets, scores, average))
            np.testing.assert_allclose(got, ref, rtol=0, atol=1e-12)
            assert type(got) is type(ref)
            assert w_got == w_ref


def test_matches_sklearn_on_a_small_case():
    from sklearn.metrics import average_precision_score

    rng = np.random.default_rng(3)
    y = (rng.random((60, 7)) < 0.3).astype(int)
    y[0, :] = 1  # every label has a positive
    s = np.round(rng.normal(size=(60, 7)) + y, 1).astype(np.float32)  # ties
    t_y, t_s = torch.from_numpy(y), torch.from_numpy(s)
    for average in ("macro", "micro", None):
        np.testing.assert_allclose(average_precision_torch(t_y, t_s, average),
                                   average_precision_score(y, s, average=average),
                                   rtol=0, atol=1e-12)


def test_compared_as_float32_and_accumulated_in_float64():
    # float64 scores that differ only beyond float32 precision are ties, as on the CPU
    s = torch.tensor([[1.0], [1.0 + 1e-12], [0.5], [1.0 - 1e-12]], dtype=torch.float64)
    y = torch.tensor([[0], [1], [1], [0]])
    assert average_precision_torch(y, s) == pytest.approx(
        M.average_precision(y.numpy(), s.numpy()), abs=1e-15)
    assert average_precision_torch(y, s) == pytest.approx((1 / 3 + 2 / 4) / 2, abs=1e-15)
    # a large column: float64 sums (the float32 sum of these terms would drift)
    g = torch.Generator().manual_seed(0)
    y = torch.rand(20000, 2, generator=g) < 0.5
    s = torch.randn(20000, 2, generator=g) + y
    np.testing.assert_allclose(average_precision_torch(y, s, None),
                               M.average_precision(y.numpy(), s.numpy(), None),
                               rtol=0, atol=1e-12)


def test_blocks_and_chunks_do_not_change_the_result():
    g = torch.Generator().manual_seed(1)
    y = torch.rand(40, 9, generator=g) < 0.3
    s = torch.randint(0, 5, (40, 9), generator=g).to(torch.float32)
    whole = [average_precision_torch(y, s, a) for a in (None, "micro")]
    with small_blocks():
        parts = [average_precision_torch(y, s, a) for a in (None, "micro")]
    np.testing.assert_allclose(parts[0], whole[0], rtol=0, atol=1e-15)
    assert parts[1] == pytest.approx(whole[1], abs=1e-15)


def _same_error(targets, scores, average="macro", t_targets=None, t_scores=None):
    """The torch path raises exactly the CPU path's error."""
    t_targets = targets if t_targets is None else t_targets
    t_scores = scores if t_scores is None else t_scores
    with pytest.raises((TypeError, ValueError)) as ref:
        M.average_precision(targets, scores, average)
    with pytest.raises(ref.type) as got:
        average_precision_torch(t_targets, t_scores, average)
    assert str(got.value) == str(ref.value)
    return str(got.value)


@pytest.mark.parametrize("average", ["macro", "micro"])
def test_errors_are_the_cpu_path_errors(average):
    y = torch.tensor([[1, 0], [0, 1], [1, 1]])
    s = torch.tensor([[0.1, 0.2], [0.3, float("nan")], [0.5, 0.6]])
    assert "NaN at row 1, label 1" in _same_error(y, s, average)
    bad = y.clone()
    bad[2, 0] = 2
    ok = torch.zeros(3, 2)
    assert "value 2 at row 2, label 0" in _same_error(bad, ok, average)
    # both wrong: the targets are reported first, as on the CPU
    assert "value 2" in _same_error(bad, s, average)
    half = torch.tensor([[0.5, 0.0], [0.0, 1.0], [1.0, 1.0]])
    assert "value 0.5" in _same_error(half, ok, average)
    big = torch.tensor([[1e39, 0.0], [0.0, 1.0], [1.0, 1.0]], dtype=torch.float64)
    assert "beyond the float32 range" in _same_error(y, big, average)
    assert "shape" in _same_error(torch.ones(2, 2), ok, average)
    assert "shape" in _same_error(LabelMatrix.from_lists([[0]], 2), ok, average)
    assert "shape [n, C]" in _same_error(y, torch.zeros(3, 2, 1), average)
    assert "empty" in _same_error(torch.zeros(0, 2), torch.zeros(0, 2), average)
    _same_error(y, torch.zeros(3, 2, dtype=torch.complex64), average)
    # non-tensor targets go through the one CPU coercion, with its errors
    assert "value 3" in _same_error(np.array([[3, 0], [0, 1], [1, 1]]), ok, average)
    with pytest.raises(ValueError, match="average"):
        average_precision_torch(y, ok, "weighted")
    with pytest.raises(TypeError, match="torch tensor"):
        average_precision_torch(y.numpy(), ok.numpy())


def test_no_positives_and_other_target_forms():
    s = torch.tensor([[0.1, float("nan")], [0.3, 0.2]])
    none = torch.zeros(2, 2, dtype=torch.bool)
    # micro without positives: 0 with the CPU warning, NaN not looked at (as on the CPU)
    ref, got, w_ref, w_got = both(lambda: M.average_precision(none.numpy(), s.numpy(), "micro"),
                                  lambda: average_precision_torch(none, s, "micro"))
    assert got == ref == 0.0 and w_got == w_ref and len(w_got) == 1
    ok = torch.nan_to_num(s)
    ref, got, w_ref, w_got = both(lambda: M.average_precision(none.numpy(), ok.numpy(), None),
                                  lambda: average_precision_torch(none, ok, None))
    assert got.tolist() == ref.tolist() == [0.0, 0.0] and w_got == w_ref
    assert w_got == ["2 label(s) have no positive example; their average precision is 0 "
                     "(scikit-learn's convention)"]
    # scipy sparse, lists of 0/1 rows, numpy: the CPU coercion, then the device computation
    import scipy.sparse as sp

    y = np.array([[1, 0], [0, 1]])
    for targets in (sp.csr_matrix(y), y.tolist(), y):
        assert average_precision_torch(targets, ok) == M.average_precision(y, ok.numpy())
    # the warning points at the caller
    with pytest.warns(UserWarning) as rec:
        average_precision_torch(none, ok)
    assert rec[0].filename == __file__


# ---------------------------------------------------------------------------------
# MetricAccumulator: the device path, exercised on CPU tensors
# ---------------------------------------------------------------------------------
@pytest.fixture
def device_path(monkeypatch):
    """CPU tensors take the path of CUDA tensors (kept where they are)."""
    monkeypatch.setattr(A, "_keeps_device", lambda s: isinstance(s, torch.Tensor))


def _batches(seed=0, n_batches=4, c=6):
    g = torch.Generator().manual_seed(seed)
    out = []
    for b in range(n_batches):
        y = torch.rand(7 + b, c, generator=g) < 0.3
        s = torch.randint(-3, 4, (7 + b, c), generator=g).to(torch.float32) / 2 + y
        out.append((s, y))
    return out


def _assert_same_metrics(got, ref):
    assert set(got) == set(ref)
    np.testing.assert_allclose(got["ap_per_label"], ref["ap_per_label"], rtol=0, atol=1e-12)
    assert got["ap_macro"] == pytest.approx(ref["ap_macro"], abs=1e-12)
    assert got["ap_micro"] == pytest.approx(ref["ap_micro"], abs=1e-12)
    assert got["precision_at_k"] == ref["precision_at_k"]
    assert got["n_samples"] == ref["n_samples"]
    assert got["prediction_ratio"].overall == ref["prediction_ratio"].overall
    np.testing.assert_array_equal(got["label_counts"], ref["label_counts"])


@pytest.mark.parametrize("pos_weight", [None, [1.0, 2.0, 0.5, 3.0, 1.0, 4.0]])
def test_accumulator_device_path_equals_host(device_path, pos_weight):
    dev = A.MetricAccumulator(k=(1, 3), pos_weight=pos_weight)
    cpu = A.MetricAccumulator(k=(1, 3), pos_weight=pos_weight)
    forms = [lambda y: y, lambda y: y.to(torch.float16), LabelMatrix.from_dense,
             lambda y: y.numpy().astype(np.int8)]
    for (s, y), form in zip(_batches(), forms):
        dev.update(s.to(torch.bfloat16) if form is forms[1] else s, form(y))
        cpu.update(host(s.to(torch.bfloat16)) if form is forms[1] else s.numpy(), y.numpy())
    dev.update(np.zeros((2, 6), dtype=np.float32), np.eye(2, 6))  # numpy: checked, moved
    cpu.update(np.zeros((2, 6), dtype=np.float32), np.eye(2, 6))
    assert all(isinstance(b, torch.Tensor) for b in dev._scores)
    _assert_same_metrics(dev.compute(), cpu.compute())
    assert isinstance(dev._scores[0], torch.Tensor) and len(dev._scores) == 1  # concatenated
    np.testing.assert_array_equal(dev.tune_thresholds("f1"), cpu.tune_thresholds("f1"))
    dev.reset()
    dev.update(np.ones((1, 6)), np.ones((1, 6)))  # after reset: a host batch sets the host
    assert isinstance(dev._scores[0], np.ndarray)


def test_accumulator_device_path_one_label_and_1d(device_path):
    dev, cpu = A.MetricAccumulator(k=1), A.MetricAccumulator(k=1)
    s = torch.tensor([0.3, 0.1, 0.9, 0.9], dtype=torch.float64)
    y = torch.tensor([1, 0, 1, 0])
    dev.update(s, y)
    cpu.update(s.numpy(), y.numpy())
    _assert_same_metrics(dev.compute(), cpu.compute())


def test_accumulator_device_path_rejects_as_the_host(device_path):
    (s, y), = _batches(n_batches=1)
    nan = s.clone()
    nan[2, 3] = float("nan")
    bad = y.to(torch.int64)
    bad[1, 1] = 5
    big = s.to(torch.float64)
    big[0, 0] = 1e300
    cases = [(nan, y), (s, bad), (nan, bad), (big, y), (s[:, :4], y), (s, y[:3]),
             (s.to(torch.complex64), y), (torch.zeros(0, 6), torch.zeros(0, 6)),
             (torch.zeros(2, 2, 2), y), (s, [[9]] * s.shape[0])]
    for scores, targets in cases:
        dev, cpu = A.MetricAccumulator(k=1), A.MetricAccumulator(k=1)
        dev.update(*_batches(1, 1)[0])
        cpu.update(*_batches(1, 1)[0])
        with pytest.raises((TypeError, ValueError)) as ref:
            cpu.update(scores, targets)
        with pytest.raises(ref.type) as got:
            dev.update(scores, targets)
        assert str(got.value) == str(ref.value)
        assert dev.n_samples == cpu.n_samples and len(dev._scores) == 1  # left as it was
        _assert_same_metrics(dev.compute(), cpu.compute())


def test_accumulator_host_path_unchanged_for_cpu_tensors():
    acc = A.MetricAccumulator(k=1)
    (s, y), = _batches(n_batches=1)
    acc.update(s, y)
    assert isinstance(acc._scores[0], np.ndarray)


# ---------------------------------------------------------------------------------
# the GPU check script, small, on the CPU
# ---------------------------------------------------------------------------------
def test_gpu_check_script_runs_on_cpu(capsys):
    spec = importlib.util.spec_from_file_location(
        "gpu_ap_check", ROOT / "benchmarks" / "gpu_ap_check.py")
    script = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(script)
    result = script.main(["--device", "cpu", "--rows", "2000"])
    out = capsys.readouterr().out
    assert "2000 x 7900 on cpu" in out and "max |torch - CPU|" in out
    assert result["check_rows"] == 2000 and result["max_abs_diff"] < 1e-12
    assert 0 < result["micro"] < 1 and 0 < result["macro"] < 1
