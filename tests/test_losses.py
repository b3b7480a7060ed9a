"""Losses against naive float64 formulas, torchvision's focal formula, autograd."""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from longtail import losses as L

torch.set_default_dtype(torch.float32)


# ---------------------------------------------------------------------------------
# naive references (float64, direct transcriptions; only valid for moderate logits)
# ---------------------------------------------------------------------------------
def naive_bce(x, y, pw=None):
    p = torch.sigmoid(x)
    w = 1.0 if pw is None else pw
    return -(w * y * torch.log(p) + (1 - y) * torch.log(1 - p))


def torchvision_focal(inputs, targets, alpha=0.25, gamma=2.0):
    """torchvision.ops.sigmoid_focal_loss (reduction='none'), its exact code."""
    p = torch.sigmoid(inputs)
    ce_loss = F.binary_cross_entropy_with_logits(inputs, targets, reduction="none")
    p_t = p * targets + (1 - p) * (1 - targets)
    loss = ce_loss * ((1 - p_t) ** gamma)
    if alpha >= 0:
        alpha_t = alpha * targets + (1 - alpha) * (1 - targets)
        loss = alpha_t * loss
    return loss


def naive_focal(x, y, alpha=0.25, gamma=2.0, pw=None):
    p = torch.sigmoid(x)
    w = 1.0 if pw is None else pw
    pos = -alpha * (1 - p) ** gamma * torch.log(p) * w
    neg = -(1 - alpha) * p ** gamma * torch.log(1 - p)
    return y * pos + (1 - y) * neg


def naive_asl(x, y, gp=0.0, gn=4.0, clip=0.05, pw=None):
    """ASL as in the reference implementation (without its eps clamp)."""
    p = torch.sigmoid(x)
    p_m = (p - clip).clamp(min=0) if clip > 0 else p
    w = 1.0 if pw is None else pw
    pos = (1 - p) ** gp * torch.log(p) * w
    neg = p_m ** gn * torch.log(1 - p_m)
    return -(y * pos + (1 - y) * neg)


def naive_db(x, y, counts, n, alpha=0.1, beta=10.0, mu=0.2, kappa=0.05, lam=2.0, ref=2.9):
    counts = torch.as_tensor(counts, dtype=torch.float64)
    inv = 1 / counts.clamp(min=1)
    rate = (y * inv).sum(1, keepdim=True)
    r = inv / rate
    if ref is not None:
        r = r * y.sum(1, keepdim=True) / ref
    rb = alpha + torch.sigmoid(beta * (r - mu))
    prior = counts.clamp(0.5, n - 0.5) / n
    bias = -torch.log(1 / prior - 1) * kappa / lam  # the reference code's init_bias
    z = x + bias
    pos = -torch.log(torch.sigmoid(z))
    neg = -torch.log(1 - torch.sigmoid(lam * z)) / lam
    return rb * (y * pos + (1 - y) * neg)


def naive_la(x, y, prior, tau):
    pi = torch.as_tensor(prior, dtype=torch.float64)
    return naive_bce(x + tau * torch.log(pi / (1 - pi)), y)


def _data(b=6, c=9, seed=0, scale=6.0, soft=False):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(b, c, generator=g, dtype=torch.float64) * scale
    if soft:
        y = torch.rand(b, c, generator=g, dtype=torch.float64)
    else:
        y = (torch.rand(b, c, generator=g, dtype=torch.float64) < 0.3).to(torch.float64)
    return x, y


COUNTS9 = [5, 20, 100, 3, 40, 7, 300, 1, 0]
PRIOR9 = [0.01, 0.02, 0.05, 0.1, 0.15, 0.3, 0.5, 0.02, 0.011]

# name -> (ours(x, y, **kw), naive(x, y, **kw), kwargs)
CASES = {
    "bce": (lambda x, y, **k: L.bce_with_logits(x, y, **k), naive_bce),
    # soft targets: torchvision's form (the per-term form only holds for 0/1 targets)
    "focal": (lambda x, y, **k: L.sigmoid_focal_loss(x, y, **{"alpha": 0.25, **k}),
              torchvision_focal),
    "asl": (lambda x, y, **k: L.asymmetric_loss(x, y, **k), naive_asl),
    "db": (lambda x, y, **k: L.distribution_balanced_loss(x, y, COUNTS9, 1000, **k),
           lambda x, y: naive_db(x, y, COUNTS9, 1000)),
    "la": (lambda x, y, **k: L.logit_adjusted_bce(x, y, PRIOR9, 1.0, **k),
           lambda x, y: naive_la(x, y, PRIOR9, 1.0)),
}


# ---------------------------------------------------------------------------------
# values
# ---------------------------------------------------------------------------------
@pytest.mark.parametrize("name", sorted(CASES))
@pytest.mark.parametrize("soft", [False, True])
def test_values_match_naive_float64(name, soft):
    ours, naive = CASES[name]
    # |logit| up to ~16 (x2 in DB's negative term): the naive log(1 - sigmoid) keeps
    # ~1e-9 relative precision there
    x, y = _data(soft=soft, scale=4.0)
    if name == "db":  # every row needs a positive for the naive r (no inf handling)
        y[:, 0] = 1.0
    expected = naive(x, y)
    got64 = ours(x, y, reduction="none")
    assert got64.dtype == torch.float64
    torch.testing.assert_close(got64, expected, rtol=1e-9, atol=1e-12)
    got32 = ours(x.float(), y.float(), reduction="none")
    assert got32.dtype == torch.float32
    torch.testing.assert_close(got32.double(), expected, rtol=2e-5, atol=1e-6)


@pytest.mark.parametrize("alpha,gamma", [(0.25, 2.0), (0.5, 0.0), (-1.0, 1.5), (0.9, 0.5)])
def test_focal_equals_torchvision_formula(alpha, gamma):
    x, y = _data(b=16, c=11, seed=3, scale=4.0)
    x, y = x.float(), y.float()
    expected = torchvision_focal(x, y, alpha, gamma)
    got = L.sigmoid_focal_loss(x, y, alpha=alpha, gamma=gamma, reduction="none")
    torch.testing.assert_close(got, expected, rtol=1e-5, atol=1e-7)
    # and the reductions are the plain ones
    torch.testing.assert_close(L.sigmoid_focal_loss(x, y, alpha, gamma, reduction="sum"),
                               expected.sum(), rtol=1e-5, atol=1e-6)


def test_focal_binary_targets_equal_per_term_form():
    x, y = _data(seed=12, scale=4.0)
    torch.testing.assert_close(L.sigmoid_focal_loss(x, y, alpha=0.25, reduction="none"),
                               naive_focal(x, y), rtol=1e-9, atol=1e-12)
    # the default: no alpha weighting (alpha=0.25 is RetinaNet's detection default)
    torch.testing.assert_close(L.sigmoid_focal_loss(x, y, reduction="none"),
                               torchvision_focal(x, y, alpha=-1.0), rtol=1e-9, atol=1e-12)
    torch.testing.assert_close(L.FocalLoss(reduction="none")(x, y),
                               torchvision_focal(x, y, alpha=-1.0), rtol=1e-9, atol=1e-12)


def test_pos_weight_and_entry_weight():
    x, y = _data(b=5, c=9, seed=4)
    pw = torch.linspace(0.5, 8, 9, dtype=torch.float64)
    w = torch.rand(5, 9, dtype=torch.float64)
    torch.testing.assert_close(L.bce_with_logits(x, y, pos_weight=pw, weight=w, reduction="none"),
                               naive_bce(x, y, pw) * w)
    torch.testing.assert_close(L.sigmoid_focal_loss(x, y, alpha=0.25, pos_weight=pw,
                                                    reduction="none"),
                               naive_focal(x, y, pw=pw))
    torch.testing.assert_close(L.asymmetric_loss(x, y, 1.0, 3.0, 0.1, pos_weight=pw,
                                                 reduction="none"),
                               naive_asl(x, y, 1.0, 3.0, 0.1, pw=pw))
    # a per-label weight [C] broadcasts over the batch
    wc = torch.arange(1, 10, dtype=torch.float64)
    torch.testing.assert_close(L.bce_with_logits(x, y, weight=wc, reduction="none"),
                               naive_bce(x, y) * wc)


def test_asl_without_clip_and_gammas():
    x, y = _data(seed=5, scale=3.0)
    torch.testing.assert_close(L.asymmetric_loss(x, y, 2.0, 1.0, 0.0, reduction="none"),
                               naive_asl(x, y, 2.0, 1.0, 0.0))
    # gamma 0 and clip 0 is BCE
    torch.testing.assert_close(L.asymmetric_loss(x, y, 0.0, 0.0, 0.0, reduction="none"),
                               naive_bce(x, y))


def test_logit_adjusted_tau0_is_bce_and_shift():
    x, y = _data(seed=6)
    torch.testing.assert_close(L.logit_adjusted_bce(x, y, PRIOR9, tau=0.0, reduction="none"),
                               naive_bce(x, y))
    # the minimiser of the adjusted loss for prevalence pi is logit(pi) - tau*logit(pi) = 0
    pi = 0.05
    z = torch.zeros(1, 1, dtype=torch.float64, requires_grad=True)
    loss = pi * L.logit_adjusted_bce(z, torch.ones(1, 1, dtype=torch.float64), [pi]) + \
        (1 - pi) * L.logit_adjusted_bce(z, torch.zeros(1, 1, dtype=torch.float64), [pi])
    (g,) = torch.autograd.grad(loss, z)
    assert abs(g.item()) < 1e-12


# ---------------------------------------------------------------------------------
# numerical stability
# ---------------------------------------------------------------------------------
@pytest.mark.parametrize("name", sorted(CASES))
def test_extreme_logits_finite_and_exact(name):
    ours, _ = CASES[name]
    x = torch.tensor([[100.0, -100.0, 100.0, -100.0, 0.0, 50.0, -50.0, 30.0, -30.0]],
                     requires_grad=True)
    y = torch.tensor([[1.0, 0.0, 0.0, 1.0, 1.0, 1.0, 0.0, 0.0, 1.0]])
    loss = ours(x, y, reduction="none")
    assert torch.isfinite(loss).all()
    loss.sum().backward()
    assert torch.isfinite(x.grad).all()
    if name == "bce":
        torch.testing.assert_close(loss[0, :4], torch.tensor([0.0, 0.0, 100.0, 100.0]))
        torch.testing.assert_close(x.grad[0, :4], torch.tensor([0.0, 0.0, 1.0, -1.0]))
    if name == "focal":  # wrong by 100 logits: (1 - p_t) = 1, alpha_t * 100
        torch.testing.assert_close(loss[0, 2:4], torch.tensor([75.0, 25.0]))
    if name == "asl":  # positive at -100 costs 100 (the reference's eps clamp gives 18.4)
        torch.testing.assert_close(loss[0, 3], torch.tensor(100.0))
        torch.testing.assert_close(loss[0, 2], -math.log(0.05) * 0.95 ** 4 * torch.ones(()),
                                   rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("name", sorted(CASES))
@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
def test_autocast_low_precision_computes_in_float32(name, dtype):
    ours, _ = CASES[name]
    x, y = _data(b=8, c=9, seed=7, scale=8.0)
    x_low = x.to(dtype)
    with torch.autocast("cpu", dtype=dtype):
        got = ours(x_low, y.float(), reduction="none")
        got_mean = ours(x_low, y.float())
    assert got.dtype == torch.float32 and got_mean.dtype == torch.float32
    expected = ours(x_low.float(), y.float(), reduction="none")
    torch.testing.assert_close(got, expected, rtol=0, atol=0)
    assert torch.isfinite(got).all()


# ---------------------------------------------------------------------------------
# gradients
# ---------------------------------------------------------------------------------
@pytest.mark.parametrize("name", sorted(CASES))
def test_gradcheck_float64(name):
    ours, _ = CASES[name]
    x, y = _data(b=3, c=9, seed=8, scale=3.0)
    x.requires_grad_(True)
    for red in ("mean", "sample"):
        assert torch.autograd.gradcheck(lambda z: ours(z, y, reduction=red), (x,))


@pytest.mark.parametrize("name", sorted(CASES))
def test_float32_gradients_match_naive_float64_autograd(name):
    ours, naive = CASES[name]
    x, y = _data(b=6, c=9, seed=9, scale=5.0)
    y[:, 0] = 1.0
    x64 = x.clone().requires_grad_(True)
    naive(x64, y).sum().backward()
    x32 = x.float().requires_grad_(True)
    ours(x32, y.float(), reduction="sum").backward()
    torch.testing.assert_close(x32.grad.double(), x64.grad, rtol=1e-4, atol=1e-6)


def test_focal_small_gamma_gradient_finite_at_saturation():
    x = torch.tensor([[120.0, -120.0]], requires_grad=True)
    y = torch.tensor([[1.0, 0.0]])
    L.sigmoid_focal_loss(x, y, gamma=0.5, reduction="sum").backward()
    assert torch.isfinite(x.grad).all()


# ---------------------------------------------------------------------------------
# reductions and per_example_loss
# ---------------------------------------------------------------------------------
@pytest.mark.parametrize("name", sorted(CASES))
def test_reductions_consistent(name):
    ours, _ = CASES[name]
    x, y = _data(b=7, c=9, seed=10)
    none = ours(x, y, reduction="none")
    assert none.shape == (7, 9)
    torch.testing.assert_close(ours(x, y, reduction="mean"), none.mean())
    torch.testing.assert_close(ours(x, y, reduction="sum"), none.sum())
    for sr in ("mean", "sum", "max", "balanced"):
        got = ours(x, y, reduction="sample", sample_reduction=sr)
        assert got.shape == (7,)
        torch.testing.assert_close(got, L.per_example_loss(none, y, sr))
    # default sample reduction is the mean
    torch.testing.assert_close(ours(x, y, reduction="sample"), none.mean(1))


def test_per_example_loss_values():
    loss = torch.tensor([[4.0, 1.0, 1.0, 0.0],
                         [2.0, 2.0, 6.0, 0.0],
                         [1.0, 3.0, 5.0, 7.0]])
    t = torch.tensor([[1.0, 0.0, 0.0, 0.0],
                      [0.0, 0.0, 0.0, 0.0],  # no positives: negative mean only
                      [1.0, 1.0, 1.0, 1.0]])  # no negatives: positive mean only
    torch.testing.assert_close(L.per_example_loss(loss, t, "balanced"),
                               torch.tensor([0.5 * (4.0 + 2.0 / 3.0), 2.5, 4.0]))
    torch.testing.assert_close(L.per_example_loss(loss, reduction="mean"),
                               torch.tensor([1.5, 2.5, 4.0]))
    torch.testing.assert_close(L.per_example_loss(loss, reduction="sum"),
                               torch.tensor([6.0, 10.0, 16.0]))
    torch.testing.assert_close(L.per_example_loss(loss, reduction="max"),
                               torch.tensor([4.0, 6.0, 7.0]))


def test_per_example_balanced_gradients_finite_for_rows_without_positives():
    loss = torch.rand(3, 5, requires_grad=True)
    t = torch.zeros(3, 5)
    t[0, 1] = 1.0
    L.per_example_loss(loss, t, "balanced").sum().backward()
    assert torch.isfinite(loss.grad).all()
    # row 1 has no positives: its gradient is the plain negative mean's
    torch.testing.assert_close(loss.grad[1], torch.full((5,), 0.2))
    torch.testing.assert_close(loss.grad[0], torch.tensor([0.125, 0.5, 0.125, 0.125, 0.125]))


def test_per_example_balanced_against_easy_negative_dominance():
    # 7,900 labels, 130 positives all badly wrong, negatives all easy: the mean says
    # the example is easy, balanced says it is hard
    c, k = 7900, 130
    y = torch.zeros(2, c)
    y[:, :k] = 1
    x = torch.full((2, c), -6.0)
    x[1, :k] = 6.0  # row 1 has its positives right
    none = L.bce_with_logits(x, y, reduction="none")
    mean = L.per_example_loss(none, y, "mean")
    bal = L.per_example_loss(none, y, "balanced")
    assert bal[0] / bal[1] > 100
    assert mean[0] < 0.2 and bal[0] > 3


def test_per_example_loss_errors():
    with pytest.raises(ValueError, match="needs targets"):
        L.per_example_loss(torch.zeros(2, 3), None, "balanced")
    with pytest.raises(ValueError, match="reduction"):
        L.per_example_loss(torch.zeros(2, 3), None, "median")
    with pytest.raises(ValueError, match=r"targets has shape \(2, 4\)"):
        L.per_example_loss(torch.zeros(2, 3), torch.zeros(2, 4), "balanced")
    with pytest.raises(ValueError, match=r"\[B, C\]"):
        L.per_example_loss(torch.zeros(3), None)


# ---------------------------------------------------------------------------------
# class-balanced weights, distribution-balanced loss
# ---------------------------------------------------------------------------------
def test_class_balanced_weights():
    counts = np.array([1, 10, 100, 1000, 0])
    beta = 0.99
    raw = (1 - beta) / (1 - beta ** np.maximum(counts, 1))
    expected = raw / raw.sum() * 5
    np.testing.assert_allclose(L.class_balanced_weights(counts, beta).numpy(), expected,
                               rtol=1e-6)
    np.testing.assert_allclose(L.class_balanced_weights(counts, beta, normalize=False).numpy(),
                               raw, rtol=1e-6)
    assert torch.equal(L.class_balanced_weights(torch.tensor(counts), 0.0), torch.ones(5))
    # beta -> 1: inverse frequency
    w = L.class_balanced_weights([10, 100], 0.999999, normalize=False)
    assert abs(float(w[0] / w[1]) - 10) < 1e-2
    for bad in (1.0, -0.1, float("nan")):
        with pytest.raises(ValueError, match="beta"):
            L.class_balanced_weights(counts, bad)
    with pytest.raises(ValueError, match="counts must be non-negative"):
        L.class_balanced_weights([3, -1], 0.9)


def _dense_targets(b, c, per_row, seed):
    g = np.random.default_rng(seed)
    freq = 1.0 / np.arange(1, c + 1) ** 0.8
    y = np.zeros((b, c))
    for i in range(b):
        y[i, g.choice(c, size=per_row, replace=False, p=freq / freq.sum())] = 1
    return torch.tensor(y), y.sum(0)


def _db_weights(y, counts, ref):
    # rb is applied to all entries; recover it through a zero-logit evaluation
    x = torch.zeros_like(y)
    plain = L.distribution_balanced_loss(x, y, counts, 10_000, kappa=0.0, neg_scale=1.0,
                                         ref_cardinality=ref, reduction="none")
    return plain / math.log(2)


def test_distribution_balanced_does_not_collapse_with_130_labels():
    y, counts = _dense_targets(64, 2000, 130, seed=0)
    counts = counts * 100 + 1
    pos = y.bool()
    scaled = _db_weights(y, counts, 2.9)[pos]
    unscaled = _db_weights(y, counts, None)[pos]
    # unscaled: every positive gets ~alpha + sigmoid(-2): a constant
    assert float(unscaled.std()) < 0.01
    assert abs(float(unscaled.mean()) - (0.1 + 1 / (1 + math.exp(2)))) < 0.02
    # scaled: rare labels weigh more than frequent ones, over a wide range
    assert float(scaled.max() - scaled.min()) > 0.5
    inv = (1 / torch.as_tensor(counts)).expand_as(y)[pos]
    rare, frequent = inv > inv.median(), inv <= inv.median()
    assert float(scaled[rare].mean()) > float(scaled[frequent].mean()) + 0.2


def test_distribution_balanced_scaling_is_neutral_at_reference_cardinality():
    # with |pos(k)| == ref_cardinality the scaled r equals the paper's
    y, counts = _dense_targets(32, 50, 3, seed=1)
    a = _db_weights(y, counts + 1, 3.0)
    b = _db_weights(y, counts + 1, None)
    torch.testing.assert_close(a, b)


def test_distribution_balanced_rows_without_positives():
    y = torch.zeros(2, 9, dtype=torch.float64)
    y[0, 3] = 1
    x = torch.zeros(2, 9, dtype=torch.float64, requires_grad=True)
    loss = L.distribution_balanced_loss(x, y, COUNTS9, 1000, reduction="none")
    assert torch.isfinite(loss).all()
    # row 1: weight alpha + 1 on every entry, NTR negative term
    prior = torch.tensor(COUNTS9, dtype=torch.float64).clamp(0.5, 999.5) / 1000
    z = 0.05 * torch.log(prior / (1 - prior)) / 2.0
    torch.testing.assert_close(loss[1], 1.1 * F.softplus(2.0 * z) / 2.0)
    loss.sum().backward()
    assert torch.isfinite(x.grad).all()


# ---------------------------------------------------------------------------------
# modules
# ---------------------------------------------------------------------------------
def test_modules_match_functions():
    x, y = _data(b=4, c=9, seed=11)
    x, y = x.float(), y.float()
    pw = torch.linspace(1, 3, 9)
    pairs = [
        (L.BCEWithLogits(pos_weight=pw), lambda: L.bce_with_logits(x, y, pos_weight=pw)),
        (L.FocalLoss(0.3, 1.5), lambda: L.sigmoid_focal_loss(x, y, 0.3, 1.5)),
        (L.AsymmetricLoss(1.0, 3.0, 0.1), lambda: L.asymmetric_loss(x, y, 1.0, 3.0, 0.1)),
        (L.DistributionBalancedLoss(COUNTS9, 1000),
         lambda: L.distribution_balanced_loss(x, y, COUNTS9, 1000)),
        (L.LogitAdjustedBCE(PRIOR9, 0.5), lambda: L.logit_adjusted_bce(x, y, PRIOR9, 0.5)),
    ]
    for module, fn in pairs:
        torch.testing.assert_close(module(x, y), fn())
        per = module(x, y, reduction="sample")
        assert per.shape == (4,)
        assert module(x, y, reduction="none").shape == (4, 9)
        assert module.state_dict() == {} or all(
            not k.endswith(("pos_weight", "prior", "class_counts")) for k in module.state_dict())
    m = L.FocalLoss(reduction="sample", sample_reduction="balanced")
    torch.testing.assert_close(
        m(x, y), L.per_example_loss(L.sigmoid_focal_loss(x, y, reduction="none"), y,
                                    "balanced"))


def test_module_buffers_follow_dtype_and_device():
    m = L.BCEWithLogits(pos_weight=[1.0, 2.0]).double()
    assert m.pos_weight.dtype == torch.float64
    out = m(torch.zeros(1, 2, dtype=torch.float64), torch.ones(1, 2, dtype=torch.float64))
    assert out.dtype == torch.float64


# ---------------------------------------------------------------------------------
# bad input
# ---------------------------------------------------------------------------------
def test_bad_inputs():
    x, y = torch.zeros(2, 3), torch.zeros(2, 3)
    with pytest.raises(ValueError, match=r"targets has shape \(2, 4\) but logits have shape \(2, 3\)"):
        L.sigmoid_focal_loss(x, torch.zeros(2, 4))
    with pytest.raises(ValueError, match=r"targets must be in \[0, 1\].*2\.0.*row 1, label 2"):
        L.asymmetric_loss(x, torch.tensor([[0.0, 1, 0], [0, 0, 2]]))
    with pytest.raises(ValueError, match=r"targets must be in \[0, 1\].*nan"):
        L.bce_with_logits(x, torch.tensor([[0.0, float("nan"), 0], [0, 0, 0]]))
    with pytest.raises(ValueError, match=r"pos_weight must be non-negative.*-1\.0.*label 1"):
        L.bce_with_logits(x, y, pos_weight=[1.0, -1.0, 2.0])
    with pytest.raises(ValueError, match=r"pos_weight must be a scalar or have shape \[3\]"):
        L.sigmoid_focal_loss(x, y, pos_weight=[1.0, 2.0])
    with pytest.raises(ValueError, match=r"pos_weight must be non-negative"):
        L.FocalLoss(pos_weight=[1.0, -2.0])
    with pytest.raises(ValueError, match="logits is empty"):
        L.bce_with_logits(torch.zeros(0, 3), torch.zeros(0, 3))
    with pytest.raises(ValueError, match=r"logits must have shape \[B, C\]"):
        L.bce_with_logits(torch.zeros(3), torch.zeros(3))
    with pytest.raises(ValueError, match="reduction must be one of"):
        L.bce_with_logits(x, y, reduction="avg")
    with pytest.raises(ValueError, match="sample_reduction must be one of"):
        L.FocalLoss(sample_reduction="median")
    with pytest.raises(ValueError, match=r"weight of shape \(3, 3\) does not broadcast"):
        L.bce_with_logits(x, y, weight=torch.ones(3, 3))
    with pytest.raises(ValueError, match="weight must be non-negative"):
        L.bce_with_logits(x, y, weight=-torch.ones(3))
    with pytest.raises(ValueError, match="gamma must be >= 0"):
        L.sigmoid_focal_loss(x, y, gamma=-1)
    with pytest.raises(ValueError,
                       match=r"alpha must be <= 1, got 1.5 \(.*a negative alpha or None disables"):
        L.sigmoid_focal_loss(x, y, alpha=1.5)
    with pytest.raises(ValueError, match="clip must be in"):
        L.asymmetric_loss(x, y, clip=1.0)
    with pytest.raises(ValueError, match=r"prior must be in \(0, 1\).*label 1"):
        L.logit_adjusted_bce(x, y, prior=[0.1, 0.0, 0.2])
    with pytest.raises(ValueError, match="n_samples must be a positive integer"):
        L.distribution_balanced_loss(x, y, [1, 2, 3], 0)
    with pytest.raises(ValueError, match=r"class_counts must be non-negative.*-3"):
        L.DistributionBalancedLoss([1, 2, -3], 10)
    with pytest.raises(TypeError, match="logits must be a torch.Tensor"):
        L.bce_with_logits(np.zeros((2, 3)), y)
    # validate=False skips the value checks (no host-device sync)
    L.bce_with_logits(x, torch.full((2, 3), 2.0), validate=False)
