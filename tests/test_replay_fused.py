"""The host reduction of HardExampleSampler.update: [B, C] entries reduced in one Numba
pass (``_kernels.reduce_entries``) equal ``per_example_loss`` and a NumPy reference to
float32 rounding, for every reduction, target dtype and edge row."""
import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from longtail.losses import per_example_loss
from longtail.samplers.replay import _kernels as _k
from longtail.samplers.replay import feedback
from longtail.samplers.replay.sampler import HardExampleSampler

REDUCTIONS = ["mean", "sum", "max", "balanced"]


def _reference(entries, targets, reduction):
    """Plain float64 per-row loops (soft targets act as weights)."""
    out = []
    for row, t in zip(entries.astype(np.float64), targets.astype(np.float64)):
        if reduction == "mean":
            out.append(row.sum() / len(row))
        elif reduction == "sum":
            out.append(row.sum())
        elif reduction == "max":
            out.append(row.max())   # NaN propagates
        else:
            n_pos, n_neg = t.sum(), (1 - t).sum()
            pm = (row * t).sum() / (n_pos if n_pos > 0 else 1)
            nm = (row * (1 - t)).sum() / (n_neg if n_neg > 0 else 1)
            out.append((0.5 * (pm + nm) if n_neg > 0 else pm) if n_pos > 0 else nm)
    return np.array(out)


def _reduce(entries, targets, reduction):
    return feedback._per_example_loss(entries, reduction, targets)


@st.composite
def batches(draw, soft=False):
    b, c = draw(st.integers(1, 6)), draw(st.integers(1, 40))
    values = st.floats(-10, 60, allow_nan=False, width=32)
    entries = np.array(draw(st.lists(values, min_size=b * c, max_size=b * c)),
                       np.float32).reshape(b, c)
    t_values = st.floats(0, 1, width=32) if soft else st.integers(0, 1)
    targets = np.array(draw(st.lists(t_values, min_size=b * c, max_size=b * c)),
                       np.float32).reshape(b, c)
    # rows with all positives / all negatives are common cases, not accidents
    kind = draw(st.sampled_from(["any", "all_pos", "all_neg"]))
    if kind != "any":
        targets[0] = 1.0 if kind == "all_pos" else 0.0
    return entries, targets


@settings(max_examples=150, deadline=None)
@given(data=batches(), reduction=st.sampled_from(REDUCTIONS),
       t_dtype=st.sampled_from(["float32", "uint8", "bool"]), as_tensor=st.booleans())
def test_kernel_equals_per_example_loss_and_reference(data, reduction, t_dtype, as_tensor):
    entries, targets = data
    t_in = targets.astype(t_dtype)
    got = _reduce(torch.from_numpy(entries) if as_tensor else entries,
                  torch.from_numpy(t_in) if as_tensor else t_in, reduction)
    assert got.dtype == np.float32 and got.shape == (entries.shape[0],)
    ref = _reference(entries, targets, reduction)
    torch_ref = per_example_loss(torch.from_numpy(entries), torch.from_numpy(targets),
                                 reduction).numpy()
    scale = np.abs(entries).sum(axis=1)   # float32 rounding of the accumulations
    np.testing.assert_allclose(got, ref, rtol=1e-6, atol=0)
    assert (np.abs(got - torch_ref) <= 1e-6 * scale + 1e-30).all()


@settings(max_examples=80, deadline=None)
@given(data=batches(soft=True))
def test_soft_targets_weigh_as_in_per_example_loss(data):
    entries, targets = data
    got = _reduce(entries, targets, "balanced")
    ref = _reference(entries, targets, "balanced")
    torch_ref = per_example_loss(torch.from_numpy(entries), torch.from_numpy(targets),
                                 "balanced").numpy()
    # relative to the row's magnitude over its smallest count (soft counts can be tiny)
    np.testing.assert_allclose(got, ref.astype(np.float32), rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(got, torch_ref, rtol=1e-4, atol=1e-4)


def test_edge_rows():
    entries = np.array([[1.0, 2.0, 6.0], [4.0, 0.0, 2.0], [3.0, 3.0, 0.0]], np.float32)
    targets = np.array([[0, 0, 0], [1, 1, 1], [1, 0, 0]], np.float32)
    # no positives -> negative mean; no negatives -> positive mean; both -> the average
    np.testing.assert_array_equal(_reduce(entries, targets, "balanced"), [3.0, 2.0, 2.25])
    np.testing.assert_array_equal(_reduce(entries, None, "max"), [6.0, 4.0, 3.0])
    np.testing.assert_array_equal(_reduce(entries, None, "sum"), [9.0, 6.0, 6.0])
    np.testing.assert_array_equal(_reduce(entries, None, "mean"), [3.0, 2.0, 2.0])
    one = np.array([[5.0]], np.float32)   # C = 1, and a row shorter than the max lanes
    for r in REDUCTIONS:
        assert _reduce(one, np.ones((1, 1), np.float32), r)[0] == 5.0


@pytest.mark.parametrize("c", [1, 7, 8, 9, 33])
def test_max_propagates_nan_anywhere(c):
    for pos in range(c):
        e = np.arange(c, dtype=np.float32).reshape(1, c)
        e[0, pos] = np.nan
        assert np.isnan(_reduce(e, None, "max")[0])
        assert np.isnan(per_example_loss(torch.from_numpy(e), None, "max")[0].item())
    e = np.full((1, c), -np.inf, np.float32)
    e[0, -1] = np.inf
    assert _reduce(e, None, "max")[0] == np.inf


def test_large_rows_match_torch():
    g = np.random.default_rng(0)
    entries = (g.random((64, 2000)) * 5).astype(np.float32)
    targets = g.random((64, 2000)) < 0.05
    for r in REDUCTIONS:
        got = _reduce(entries, targets, r)
        ref = per_example_loss(torch.from_numpy(entries),
                               torch.from_numpy(targets.astype(np.float32)), r).numpy()
        np.testing.assert_allclose(got, ref, rtol=1e-5)
        np.testing.assert_allclose(got, _reference(entries, targets, r), rtol=1e-6)


def test_input_dtypes_and_layouts():
    g = np.random.default_rng(1)
    e64 = g.random((5, 11)) * 3
    t = (g.random((5, 11)) < 0.3)
    expected = _reference(e64.astype(np.float32), t, "balanced").astype(np.float32)
    for entries in (e64, e64.astype(np.float32)[:, ::-1][:, ::-1],          # float64, view
                    np.asfortranarray(e64.astype(np.float32)),
                    torch.from_numpy(e64.astype(np.float32)).t().contiguous().t()):
        np.testing.assert_allclose(_reduce(entries, t, "balanced"), expected, rtol=1e-6)
    frozen = e64.astype(np.float32)
    frozen.flags.writeable = False
    np.testing.assert_allclose(_reduce(frozen, torch.from_numpy(t), "balanced"), expected,
                               rtol=1e-6)
    bf = torch.from_numpy(e64).to(torch.bfloat16)
    np.testing.assert_allclose(_reduce(bf, t, "mean"),
                               bf.float().mean(1).numpy(), rtol=1e-6)


def test_update_uses_the_kernel_and_applies_its_result():
    g = np.random.default_rng(2)
    entries = g.random((8, 300)).astype(np.float32)
    targets = (g.random((8, 300)) < 0.1).astype(np.uint8)
    idx = np.arange(0, 16, 2)
    a = HardExampleSampler(20, 4, seed=0, loss_reduction="balanced", alpha=1.0, eps=0.0,
                           staleness_half_life=None, in_flight_timeout=0)
    b = HardExampleSampler(20, 4, seed=0, loss_reduction="balanced", alpha=1.0, eps=0.0,
                           staleness_half_life=None, in_flight_timeout=0)
    a.update(torch.from_numpy(idx), torch.from_numpy(entries),
             targets=torch.from_numpy(targets).bool())
    out = np.empty(8, np.float32)
    _k.reduce_entries(entries, targets.astype(np.float32), _k.REDUCE_MODES["balanced"], out)
    b.update(idx, out)
    assert a.digest() == b.digest()


@pytest.mark.parametrize("bad, match", [
    (dict(entries=np.ones((2, 0), np.float32)), "no labels"),
    (dict(targets=None), "needs targets"),
    (dict(targets=np.ones((2, 4))), "shape"),
    (dict(targets=np.array([["a"] * 3] * 2)), "real numbers"),
    (dict(targets=torch.ones(2, 3, dtype=torch.complex64)), "real"),
    (dict(entries=np.array([[1.0, np.nan, 0.0], [0, 0, 0]])), "finite"),
    (dict(entries=np.array([[1.0, np.inf, 0.0], [0, 0, 0]])), "finite"),
    (dict(idx=[0, 20]), "outside"),
])
def test_bad_entries_raise_and_change_nothing(bad, match):
    s = HardExampleSampler(20, 4, seed=0, loss_reduction="balanced")
    s.update([3], [1.0])
    before = s.digest()
    args = dict(idx=[0, 1], entries=np.ones((2, 3), np.float32),
                targets=np.ones((2, 3), np.float32))
    args.update(bad)
    with pytest.raises(ValueError, match=match):
        s.update(args["idx"], args["entries"], targets=args["targets"])
    assert s.digest() == before
