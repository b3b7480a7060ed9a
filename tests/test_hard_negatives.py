"""Label-level hard negative mining: hard_negative_mask / hard_negative_loss / HardNegativeLoss
against plain NumPy references, sampling frequencies, gradients and argument checks."""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from hypothesis import given
from hypothesis import strategies as st

from longtail import losses as L

CUDA = torch.cuda.is_available()


# ---------------------------------------------------------------------------------
# plain NumPy references
# ---------------------------------------------------------------------------------
def ref_k(targets: np.ndarray, ratio: float, min_neg: int) -> np.ndarray:
    """k_c = clamp(ceil(ratio * n_pos_c), min_neg, n_neg_c), one label at a time."""
    out = []
    for c in range(targets.shape[1]):
        n_pos = int((targets[:, c] > 0).sum())
        n_neg = targets.shape[0] - n_pos
        out.append(min(max(math.ceil(ratio * n_pos), min_neg), n_neg))
    return np.array(out, dtype=np.int64)


def ref_topk_mask(loss: np.ndarray, targets: np.ndarray, ratio: float,
                  min_neg: int) -> np.ndarray:
    """Per column: every positive + the k_c largest negative losses (NaN = +inf; ties to
    the lower row)."""
    loss = np.where(np.isnan(loss), np.inf, loss).astype(np.float64)
    B, C = loss.shape
    out = np.zeros((B, C), dtype=bool)
    ks = ref_k(targets, ratio, min_neg)
    for c in range(C):
        negs = []
        for r in range(B):
            if targets[r, c] > 0:
                out[r, c] = True
            else:
                negs.append(r)
        negs.sort(key=lambda r: (-loss[r, c], r))
        for r in negs[:ks[c]]:
            out[r, c] = True
    return out


def ref_per_example(loss: np.ndarray, t: np.ndarray, m: np.ndarray, red: str) -> np.ndarray:
    out = []
    for b in range(loss.shape[0]):
        kept = [c for c in range(loss.shape[1]) if m[b, c]]
        vals = [loss[b, c] for c in kept]
        if not kept:
            out.append(0.0)
        elif red == "sum":
            out.append(sum(vals))
        elif red == "mean":
            out.append(sum(vals) / len(vals))
        elif red == "max":
            out.append(max(vals))
        else:
            wp = [t[b, c] for c in kept]
            wn = [1 - t[b, c] for c in kept]
            sp, sn = sum(wp), sum(wn)
            mp = sum(v * w for v, w in zip(vals, wp)) / sp if sp > 0 else None
            mn = sum(v * w for v, w in zip(vals, wn)) / sn if sn > 0 else None
            if mp is not None and mn is not None:
                out.append(0.5 * (mp + mn))
            else:
                out.append(mp if mp is not None else (mn if mn is not None else 0.0))
    return np.array(out)


# ---------------------------------------------------------------------------------
# strategies
# ---------------------------------------------------------------------------------
@st.composite
def mining_case(draw, special=True):
    B = draw(st.integers(1, 12))
    C = draw(st.integers(1, 6))
    value = st.sampled_from([0.0, 0.5, 1.0, 2.0]) | st.floats(0, 10, width=32)
    if special:
        value = value | st.sampled_from([math.inf, math.nan, 1e-40])
    loss = np.array(draw(st.lists(value, min_size=B * C, max_size=B * C)),
                    dtype=np.float64).reshape(B, C)
    cols = []
    for _ in range(C):
        kind = draw(st.sampled_from(["none", "all", "mixed", "one"]))
        if kind == "none":
            col = [0.0] * B
        elif kind == "all":
            col = [1.0] * B
        elif kind == "one":
            col = [0.0] * B
            col[draw(st.integers(0, B - 1))] = 1.0
        else:
            col = draw(st.lists(st.sampled_from([0.0, 1.0, 0.3]), min_size=B, max_size=B))
        cols.append(col)
    targets = np.array(cols, dtype=np.float64).T.reshape(B, C)
    ratio = draw(st.sampled_from([0.1, 0.5, 1.0, 1.5, 3.0, 1e30]) | st.floats(0.01, 20))
    min_neg = draw(st.integers(0, 15))
    return loss, targets, ratio, min_neg


# ---------------------------------------------------------------------------------
# hard_negative_mask: topk
# ---------------------------------------------------------------------------------
@given(mining_case(), st.sampled_from([torch.float32, torch.float64]),
       st.sampled_from(["float", "bool", "int"]))
def test_topk_mask_matches_numpy_brute_force(case, dtype, tkind):
    loss, targets, ratio, min_neg = case
    lt = torch.tensor(loss, dtype=dtype)
    tt = torch.tensor(targets, dtype=torch.float32)
    if tkind == "bool":
        tt = tt > 0
        targets = (targets > 0).astype(np.float64)
    elif tkind == "int":
        tt = (tt > 0).to(torch.int64)
        targets = (targets > 0).astype(np.float64)
    got = L.hard_negative_mask(lt, tt, negative_ratio=ratio, min_negatives=min_neg)
    assert got.dtype == torch.bool and got.shape == lt.shape
    # the reference sees the values the mask sees (float32 rounding of the losses)
    want = ref_topk_mask(lt.double().numpy(), targets, ratio, min_neg)
    np.testing.assert_array_equal(got.numpy(), want)


def test_topk_mask_edge_columns():
    loss = torch.tensor([[5.0, 1.0, 3.0], [5.0, 2.0, 3.0], [1.0, 3.0, 3.0], [5.0, 4.0, 3.0]])
    y = torch.tensor([[0.0, 1, 0], [0, 1, 0], [0, 1, 1], [0, 1, 0]])
    m = L.hard_negative_mask(loss, y, negative_ratio=1.0, min_negatives=2)
    # col 0: no positive -> min_negatives=2 of the tied 5s, lower rows first
    assert m[:, 0].tolist() == [True, True, False, False]
    # col 1: all positive -> all kept, no negatives
    assert m[:, 1].all()
    # col 2: one positive (row 2), k = max(ceil(1), 2) = 2 of the three tied 3s
    assert m[:, 2].tolist() == [True, True, True, False]
    # min_negatives beyond the negatives: all kept
    assert L.hard_negative_mask(loss, y, min_negatives=100).all()
    # min_negatives=0 and no positive: the column keeps nothing
    m0 = L.hard_negative_mask(loss, y, negative_ratio=1.0, min_negatives=0)
    assert not m0[:, 0].any()


def test_mask_is_not_differentiable_and_does_not_touch_the_input():
    loss = torch.rand(6, 3, requires_grad=True)
    before = loss.detach().clone()
    m = L.hard_negative_mask(loss, torch.zeros(6, 3), min_negatives=2)
    assert not m.requires_grad and m.dtype == torch.bool
    torch.testing.assert_close(loss.detach(), before)


def test_empty_batch_gives_empty_mask():
    assert L.hard_negative_mask(torch.zeros(0, 3), torch.zeros(0, 3)).shape == (0, 3)
    assert L.hard_negative_mask(torch.zeros(4, 0), torch.zeros(4, 0)).shape == (4, 0)


@pytest.mark.parametrize("mode", ["topk", "sample", "random"])
def test_large_batch_is_one_sort(monkeypatch, mode):
    calls = []
    real_sort = torch.sort

    def counting_sort(*args, **kwargs):
        calls.append(args[0].shape)
        return real_sort(*args, **kwargs)

    monkeypatch.setattr(torch, "sort", counting_sort)
    for name in ("topk", "argsort", "kthvalue", "msort"):
        monkeypatch.setattr(torch, name, lambda *a, **k: pytest.fail(f"torch.{name} called"))
    g = torch.Generator().manual_seed(0)
    loss = torch.rand(256, 2000, generator=g)
    y = (torch.rand(256, 2000, generator=g) < 0.01).float()
    m = L.hard_negative_mask(loss, y, mode=mode, generator=g)
    assert calls == [torch.Size([256, 2000])]
    k = torch.tensor(ref_k(y.numpy(), 10.0, 16))
    torch.testing.assert_close(m.sum(0), y.sum(0).long() + k)


# ---------------------------------------------------------------------------------
# hard_negative_mask: sample / random
# ---------------------------------------------------------------------------------
@given(mining_case(special=False), st.sampled_from(["sample", "random"]),
       st.sampled_from([0.05, 1.0, 3.0]), st.integers(0, 2**31 - 1))
def test_sampled_masks_keep_positives_and_exactly_k_negatives(case, mode, temp, seed):
    loss, targets, ratio, min_neg = case
    lt, tt = torch.tensor(loss, dtype=torch.float32), torch.tensor(targets)
    kw = dict(negative_ratio=ratio, min_negatives=min_neg, mode=mode, temperature=temp)
    m = L.hard_negative_mask(lt, tt, generator=torch.Generator().manual_seed(seed), **kw)
    pos = targets > 0
    assert m.numpy()[pos].all()
    neg_kept = (m.numpy() & ~pos).sum(0)
    np.testing.assert_array_equal(neg_kept, ref_k(targets, ratio, min_neg))
    again = L.hard_negative_mask(lt, tt, generator=torch.Generator().manual_seed(seed), **kw)
    assert torch.equal(m, again)
    if mode == "sample":
        # zero-loss negatives only when too few negatives have a positive loss
        live = (lt.numpy() > 0) & ~pos
        zero_kept = (m.numpy() & ~pos & ~live).sum(0)
        n_live = live.sum(0)
        k = ref_k(targets, ratio, min_neg)
        np.testing.assert_array_equal(zero_kept, np.maximum(k - n_live, 0))
        # and then every positive-loss negative is kept
        full = k >= n_live
        assert (m.numpy() | ~live)[:, full].all()


def test_sample_differs_across_seeds():
    loss = torch.rand(64, 50, generator=torch.Generator().manual_seed(1))
    y = torch.zeros(64, 50)
    masks = {tuple(L.hard_negative_mask(loss, y, min_negatives=8, mode="sample",
                                        generator=torch.Generator().manual_seed(s))
                   .flatten().tolist()) for s in range(4)}
    assert len(masks) == 4


def _frequencies(losses, k, n=20000, **kw):
    """Inclusion frequency of each row over n independent draws (n identical columns)."""
    loss = torch.tensor(losses, dtype=torch.float32)[:, None].repeat(1, n)
    m = L.hard_negative_mask(loss, torch.zeros_like(loss), min_negatives=k,
                             generator=torch.Generator().manual_seed(123), **kw)
    assert (m.sum(0) == k).all()
    return m.float().mean(1).numpy()


def test_sample_frequencies_follow_loss_to_the_one_over_temperature():
    p = np.array([1.0, 2.0, 3.0, 4.0])
    got = _frequencies(p, 1, mode="sample")
    np.testing.assert_allclose(got, p / p.sum(), atol=0.02)
    got = _frequencies(p, 1, mode="sample", temperature=0.5)
    np.testing.assert_allclose(got, p**2 / (p**2).sum(), atol=0.02)
    # tiny temperature: top-k; huge: uniform
    np.testing.assert_array_equal(_frequencies(p, 1, mode="sample", temperature=1e-6),
                                  [0, 0, 0, 1])
    np.testing.assert_allclose(_frequencies(p, 1, mode="sample", temperature=1e6), 0.25,
                               atol=0.02)
    # without replacement (k = 2): Plackett-Luce inclusion probabilities
    q = p / p.sum()
    incl = [q[i] + sum(q[j] * q[i] / (1 - q[j]) for j in range(4) if j != i)
            for i in range(4)]
    np.testing.assert_allclose(_frequencies(p, 2, mode="sample"), incl, atol=0.02)
    got = _frequencies(p, 2, mode="sample")
    assert np.all(np.diff(got) > 0)  # higher loss, chosen more often


def test_sample_fills_uniformly_from_zero_losses_and_never_otherwise():
    got = _frequencies([0.0, 0.0, 5.0, 0.0, 0.0], 3, mode="sample")
    assert got[2] == 1.0
    np.testing.assert_allclose(got[[0, 1, 3, 4]], 0.5, atol=0.02)
    got = _frequencies([0.0, 1e-30, 5.0, 0.0, 2.0], 3, mode="sample")
    np.testing.assert_array_equal(got, [0, 1, 1, 0, 1])


def test_random_ignores_the_loss():
    got = _frequencies([0.0, 100.0, 1.0, 7.0], 1, mode="random")
    np.testing.assert_allclose(got, 0.25, atol=0.02)
    got = _frequencies([0.0, 100.0, 1.0, 7.0, 0.5], 2, mode="random")
    np.testing.assert_allclose(got, 0.4, atol=0.02)


# ---------------------------------------------------------------------------------
# per_example_loss with a mask
# ---------------------------------------------------------------------------------
@given(st.integers(1, 6), st.integers(1, 5), st.integers(0, 2**31 - 1),
       st.sampled_from(["mean", "sum", "max", "balanced"]))
def test_per_example_loss_mask_matches_numpy(B, C, seed, red):
    g = torch.Generator().manual_seed(seed)
    loss = torch.rand(B, C, generator=g, dtype=torch.float64) * 3
    t = (torch.rand(B, C, generator=g) < 0.4).double()
    m = torch.rand(B, C, generator=g) < 0.6
    m[0] = False  # a row without kept entries
    got = L.per_example_loss(loss, t, red, mask=m)
    want = ref_per_example(loss.numpy(), t.numpy(), m.numpy(), red)
    np.testing.assert_allclose(got.numpy(), want, rtol=1e-12, atol=1e-12)


def test_per_example_loss_mask_ignores_dropped_inf_and_gives_no_gradient():
    loss = torch.tensor([[1.0, math.inf, 3.0], [math.nan, 2.0, 0.0]], requires_grad=True)
    m = torch.tensor([[True, False, True], [False, True, False]])
    t = torch.tensor([[1.0, 0.0, 0.0], [0.0, 1.0, 0.0]])
    for red in ("mean", "sum", "max", "balanced"):
        out = L.per_example_loss(loss, t, red, mask=m)
        assert torch.isfinite(out).all(), (red, out)
        (grad,) = torch.autograd.grad(out.sum(), loss)
        assert (grad[~m] == 0).all() and torch.isfinite(grad).all()


def test_per_example_loss_mask_errors():
    loss = torch.rand(2, 3)
    with pytest.raises(TypeError, match="mask must be a bool"):
        L.per_example_loss(loss, mask=torch.ones(2, 3))
    with pytest.raises(ValueError, match="mask has shape"):
        L.per_example_loss(loss, mask=torch.ones(3, 2, dtype=torch.bool))
    with pytest.raises(TypeError, match="mask must be a torch.Tensor"):
        L.per_example_loss(loss, mask=[[True] * 3] * 2)


# ---------------------------------------------------------------------------------
# hard_negative_loss
# ---------------------------------------------------------------------------------
def _batch(B=16, C=7, seed=0):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(B, C, generator=g) * 2
    y = (torch.rand(B, C, generator=g) < 0.2).float()
    y[:, 0] = 0  # a label without positives
    y[:, 1] = 1  # a label without negatives
    return x, y


PLAIN = {"bce": lambda x, y, **k: L.bce_with_logits(x, y, **k),
         "focal": lambda x, y, **k: L.sigmoid_focal_loss(x, y, **k),
         "asl": lambda x, y, **k: L.asymmetric_loss(x, y, **k)}


@pytest.mark.parametrize("name", sorted(PLAIN))
@pytest.mark.parametrize("normalize", ["mask", "all"])
def test_huge_ratio_equals_the_plain_loss(name, normalize):
    x, y = _batch()
    for red in ("mean", "sum", "none", "sample"):
        for sr in ("mean", "sum", "max", "balanced"):
            got = L.hard_negative_loss(x, y, loss=name, negative_ratio=1e30, normalize=normalize,
                                       reduction=red, sample_reduction=sr)
            want = PLAIN[name](x, y, reduction=red, sample_reduction=sr)
            torch.testing.assert_close(got, want)


@given(st.integers(2, 12), st.integers(1, 6), st.integers(0, 2**31 - 1),
       st.sampled_from([0.5, 1.0, 3.0]), st.integers(0, 5))
def test_loss_values_against_numpy(B, C, seed, ratio, min_neg):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(B, C, generator=g, dtype=torch.float64) * 3
    y = (torch.rand(B, C, generator=g) < 0.3).double()
    entry = F.binary_cross_entropy_with_logits(x, y, reduction="none").numpy()
    m = ref_topk_mask(entry, y.numpy(), ratio, min_neg)
    kept = np.where(m, entry, 0.0)
    kw = dict(negative_ratio=ratio, min_negatives=min_neg)
    np.testing.assert_allclose(L.hard_negative_loss(x, y, reduction="none", **kw).numpy(), kept)
    np.testing.assert_allclose(L.hard_negative_loss(x, y, reduction="sum", **kw).item(),
                               kept.sum())
    np.testing.assert_allclose(L.hard_negative_loss(x, y, **kw).item(),
                               kept.sum() / max(m.sum(), 1))
    np.testing.assert_allclose(L.hard_negative_loss(x, y, normalize="all", **kw).item(),
                               kept.sum() / (B * C))
    for sr in ("mean", "sum", "max", "balanced"):
        got = L.hard_negative_loss(x, y, reduction="sample", sample_reduction=sr, **kw)
        np.testing.assert_allclose(got.numpy(), ref_per_example(entry, y.numpy(), m, sr),
                                   rtol=1e-10, atol=1e-12)
        got = L.hard_negative_loss(x, y, reduction="sample", sample_reduction=sr,
                                   normalize="all", **kw)
        want = L.per_example_loss(torch.tensor(kept), y, sr).numpy()
        np.testing.assert_allclose(got.numpy(), want, rtol=1e-10, atol=1e-12)


def test_mask_normalisation_keeps_the_scale():
    x, y = _batch(64, 5, seed=3)
    full = L.bce_with_logits(x, y)
    hard = L.hard_negative_loss(x, y, negative_ratio=1.0, min_negatives=4)
    hard_all = L.hard_negative_loss(x, y, negative_ratio=1.0, min_negatives=4,
                                    normalize="all")
    assert hard_all < full < hard  # dropping the easy negatives raises the mean
    n_kept = L.hard_negative_mask(L.bce_with_logits(x, y, reduction="none"), y,
                                  negative_ratio=1.0, min_negatives=4).sum()
    torch.testing.assert_close(hard_all, hard * n_kept / x.numel())


@pytest.mark.parametrize("mode", ["topk", "sample", "random"])
def test_gradient_reaches_only_kept_entries(mode):
    x, y = _batch(32, 6, seed=5)
    x = x.requires_grad_()
    g = torch.Generator().manual_seed(9)
    out = L.hard_negative_loss(x, y, negative_ratio=1.0, min_negatives=3, mode=mode,
                               generator=g)
    (grad,) = torch.autograd.grad(out, x)
    entry = L.bce_with_logits(x.detach(), y, reduction="none")
    m = L.hard_negative_mask(entry, y, negative_ratio=1.0, min_negatives=3, mode=mode,
                             generator=torch.Generator().manual_seed(9))
    assert (grad[~m] == 0).all()
    assert (grad[m] != 0).all()
    want = torch.where(m, torch.sigmoid(x.detach()) - y, 0.0) / m.sum()
    torch.testing.assert_close(grad, want)


def test_callable_loss_matches_builtin_and_runs_in_float32_without_autocast():
    x, y = _batch()
    seen = {}

    def my_bce(logits, targets, reduction):
        seen["dtype"] = logits.dtype
        seen["autocast"] = torch.is_autocast_enabled("cpu")
        return F.binary_cross_entropy_with_logits(logits, targets, reduction=reduction)

    ref = L.hard_negative_loss(x, y, min_negatives=2)
    torch.testing.assert_close(L.hard_negative_loss(x, y, loss=my_bce, min_negatives=2), ref)
    torch.testing.assert_close(
        L.hard_negative_loss(x, y, loss=F.binary_cross_entropy_with_logits, min_negatives=2,
                             pos_weight=torch.full((7,), 2.0)),
        L.hard_negative_loss(x, y, min_negatives=2, pos_weight=torch.full((7,), 2.0)))
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out = L.hard_negative_loss(x.bfloat16(), y, loss=my_bce)
    assert seen == {"dtype": torch.float32, "autocast": False}
    assert out.dtype == torch.float32


@pytest.mark.parametrize("name", sorted(PLAIN))
@pytest.mark.parametrize("mode", ["topk", "sample"])
def test_bf16_logits_under_autocast_are_finite(name, mode):
    x, y = _batch(32, 9, seed=2)
    x = (x * 40).bfloat16().requires_grad_()
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out = L.hard_negative_loss(x, y, loss=name, mode=mode, negative_ratio=2.0,
                                   min_negatives=2)
    assert out.dtype == torch.float32 and torch.isfinite(out)
    (grad,) = torch.autograd.grad(out, x)
    assert torch.isfinite(grad.float()).all()


def test_loss_kwargs_reach_the_entry_loss():
    x, y = _batch()
    kw = dict(negative_ratio=1e30)
    torch.testing.assert_close(
        L.hard_negative_loss(x, y, loss="focal", alpha=0.5, gamma=1.0, **kw),
        L.sigmoid_focal_loss(x, y, alpha=0.5, gamma=1.0))
    w = torch.rand(7)
    torch.testing.assert_close(L.hard_negative_loss(x, y, weight=w, **kw),
                               L.bce_with_logits(x, y, weight=w))


# ---------------------------------------------------------------------------------
# HardNegativeLoss
# ---------------------------------------------------------------------------------
def test_module_matches_function_and_repr():
    x, y = _batch()
    pw = torch.full((7,), 3.0)
    crit = L.HardNegativeLoss("asl", negative_ratio=2.0, min_negatives=3, pos_weight=pw,
                              gamma_neg=2.0, reduction="sample")
    want = L.hard_negative_loss(x, y, loss="asl", negative_ratio=2.0, min_negatives=3,
                                pos_weight=pw, gamma_neg=2.0, reduction="sample")
    torch.testing.assert_close(crit(x, y), want)
    torch.testing.assert_close(
        crit(x, y, reduction="mean"),
        L.hard_negative_loss(x, y, loss="asl", negative_ratio=2.0, min_negatives=3,
                             pos_weight=pw, gamma_neg=2.0))
    r = repr(crit)
    for part in ("loss='asl'", "negative_ratio=2.0", "min_negatives=3", "mode='topk'",
                 "normalize='mask'", "'gamma_neg': 2.0", "reduction='sample'"):
        assert part in r, r
    assert "temperature" not in r
    s = L.HardNegativeLoss(F.binary_cross_entropy_with_logits, mode="sample", temperature=0.5,
                           generator=torch.Generator().manual_seed(0))
    assert "temperature=0.5" in repr(s) and "binary_cross_entropy_with_logits" in repr(s)
    assert torch.isfinite(s(x, y))
    assert "pos_weight" in dict(crit.named_buffers())


def test_module_sample_mode_is_reproducible_with_its_generator():
    x, y = _batch(64, 5)
    a = L.HardNegativeLoss(mode="sample", min_negatives=4,
                           generator=torch.Generator().manual_seed(7))(x, y, reduction="none")
    b = L.HardNegativeLoss(mode="sample", min_negatives=4,
                           generator=torch.Generator().manual_seed(7))(x, y, reduction="none")
    assert torch.equal(a, b)


# ---------------------------------------------------------------------------------
# errors
# ---------------------------------------------------------------------------------
BAD_MINING = {
    "negative_ratio": [(0.0, ValueError), (-1.0, ValueError), (math.nan, ValueError),
                       (math.inf, ValueError), ("2", TypeError), (True, TypeError),
                       (1e39, ValueError)],
    "min_negatives": [(-1, ValueError), (1.5, TypeError), (True, TypeError), ("3", TypeError),
                      (None, TypeError)],
    "mode": [("hard", ValueError), (3, TypeError), (None, TypeError)],
    "temperature": [(0.0, ValueError), (-0.5, ValueError), (math.nan, ValueError),
                    (math.inf, ValueError), ("1", TypeError)],
    "generator": [(0, TypeError), ("cpu", TypeError)],
}
CASES = [(p, v, e) for p, vals in BAD_MINING.items() for v, e in vals]


@pytest.mark.parametrize("param,value,exc", CASES)
def test_bad_mining_arguments_are_named(param, value, exc):
    x, y = _batch()
    calls = [lambda **k: L.hard_negative_mask(x.abs(), y, **k),
             lambda **k: L.hard_negative_loss(x, y, **k),
             lambda **k: L.HardNegativeLoss(**k)]
    for call in calls:
        with pytest.raises(exc, match=param):
            call(**{param: value})


BAD_LOSS = {
    "loss": [("mse", ValueError), (3, TypeError), (None, TypeError)],
    "normalize": [("none", ValueError), (True, TypeError)],
    "reduction": [("avg", ValueError), (["mean"], TypeError)],
    "sample_reduction": [("median", ValueError)],
    "validate": [("yes", TypeError), (1, TypeError)],
}


@pytest.mark.parametrize("param,value,exc",
                         [(p, v, e) for p, vals in BAD_LOSS.items() for v, e in vals])
def test_bad_loss_arguments_are_named(param, value, exc):
    x, y = _batch()
    with pytest.raises(exc, match=param):
        L.hard_negative_loss(x, y, **{param: value})
    with pytest.raises(exc, match=param):
        L.HardNegativeLoss(**{param: value}) if param != "loss" else L.HardNegativeLoss(value)


def test_bad_tensors_are_named():
    loss = torch.rand(4, 3)
    with pytest.raises(ValueError, match="targets has shape"):
        L.hard_negative_mask(loss, torch.zeros(3, 4))
    with pytest.raises(ValueError, match=r"entry_loss must have shape \[B, C\]"):
        L.hard_negative_mask(torch.rand(4), torch.zeros(4))
    with pytest.raises(TypeError, match="entry_loss must be floating point"):
        L.hard_negative_mask(torch.ones(4, 3, dtype=torch.long), torch.zeros(4, 3))
    with pytest.raises(TypeError, match="entry_loss must be a torch.Tensor"):
        L.hard_negative_mask(np.ones((4, 3)), torch.zeros(4, 3))
    with pytest.raises(TypeError, match="targets must be a torch.Tensor"):
        L.hard_negative_mask(loss, np.zeros((4, 3)))
    with pytest.raises(TypeError, match="targets must be real"):
        L.hard_negative_mask(loss, torch.zeros(4, 3, dtype=torch.complex64))
    x, y = _batch()
    with pytest.raises(ValueError, match="targets must be in"):
        L.hard_negative_loss(x, y * 2)
    with pytest.raises(ValueError, match="targets must be in"):
        L.hard_negative_loss(x, y * 2, loss=F.binary_cross_entropy_with_logits)
    with pytest.raises(ValueError, match="targets has shape"):
        L.hard_negative_loss(x, y[:, :3])
    with pytest.raises(TypeError, match="loss must return"):
        L.hard_negative_loss(x, y, loss=lambda a, b, reduction: a.sum())
    with pytest.raises(TypeError, match="loss must return"):
        L.hard_negative_loss(x, y, loss=lambda a, b, reduction: "x")


def test_bad_loss_kwargs_are_named():
    x, y = _batch()
    with pytest.raises(TypeError, match="'gamma' for loss='bce'"):
        L.hard_negative_loss(x, y, gamma=2.0)
    with pytest.raises(TypeError, match="'gamma' for loss='bce'"):
        L.HardNegativeLoss(gamma=2.0)
    with pytest.raises(ValueError, match="gamma must be"):
        L.HardNegativeLoss("focal", gamma=-1.0)
    with pytest.raises(ValueError, match="clip must be"):
        L.HardNegativeLoss("asl", clip=1.5)
    with pytest.raises(ValueError, match="pos_weight must be"):
        L.HardNegativeLoss(pos_weight=[-1.0])
    with pytest.raises(TypeError, match="pass it to forward"):
        L.HardNegativeLoss(weight=torch.ones(7))


def test_generator_on_another_device_is_refused():
    # meta tensors: the device check runs before any computation
    loss = torch.empty(3, 2, device="meta")
    for mode in ("sample", "random"):
        with pytest.raises(ValueError, match="generator is on cpu but the losses are on meta"):
            L.hard_negative_mask(loss, torch.zeros(3, 2), mode=mode, generator=torch.Generator())
    # topk does not use the generator
    L.hard_negative_mask(torch.rand(3, 2), torch.zeros(3, 2), generator=torch.Generator())


@pytest.mark.skipif(not CUDA, reason="needs a CUDA device")
def test_cuda_matches_cpu():
    g = torch.Generator().manual_seed(0)
    loss = torch.rand(256, 500, generator=g)
    loss[::7] = loss[1::7][: loss[::7].shape[0]]  # ties
    y = (torch.rand(256, 500, generator=g) < 0.02).float()
    cpu = L.hard_negative_mask(loss, y)
    gpu = L.hard_negative_mask(loss.cuda(), y.cuda())
    assert gpu.is_cuda and torch.equal(gpu.cpu(), cpu)
    for mode in ("sample", "random"):
        a = L.hard_negative_mask(loss.cuda(), y.cuda(), mode=mode,
                                 generator=torch.Generator("cuda").manual_seed(3))
        b = L.hard_negative_mask(loss.cuda(), y.cuda(), mode=mode,
                                 generator=torch.Generator("cuda").manual_seed(3))
        assert torch.equal(a, b)
        torch.testing.assert_close(a.sum(0).cpu(), cpu.sum(0))
    x = torch.randn(256, 500, device="cuda", requires_grad=True)
    with torch.autocast("cuda", dtype=torch.bfloat16):
        out = L.hard_negative_loss(x, y.cuda(), mode="sample")
    out.backward()
    assert torch.isfinite(out) and torch.isfinite(x.grad).all()
    with pytest.raises(ValueError, match="generator is on cpu"):
        L.hard_negative_mask(loss.cuda(), y.cuda(), mode="sample", generator=torch.Generator())
