"""Losses for imbalanced, long-tailed multilabel training.

Every loss takes ``logits [B, C]`` and multi-hot ``targets [B, C]`` (values in
``[0, 1]``: soft labels, e.g. label smoothing, are accepted) and offers

* ``reduction``: ``"none"`` (``[B, C]``), ``"sample"`` (``[B]``, one loss per example:
  what ``HardExampleSampler.update(indices, losses)`` takes), ``"mean"`` (over all
  ``B * C`` entries, as torch's losses) or ``"sum"``;
* ``sample_reduction`` (used by ``"sample"``, see :func:`per_example_loss`), default
  ``"mean"``;
* ``pos_weight [C]`` (weight of the positive term of each label, as in
  ``torch.nn.BCEWithLogitsLoss``) and ``weight`` (per entry, broadcastable to
  ``[B, C]``, e.g. label-level balancing weights);
* ``validate=True``: check the values of ``targets`` / ``pos_weight`` / ``weight``
  (on a GPU this costs a host-device synchronisation per call; shapes are always
  checked).

Checks: every hyper-parameter (``gamma``, ``alpha``, ``clip``, ``tau``, ...) must be a
finite real number in its range, checked at each call and when a module is built
(TypeError/ValueError naming it). NaN or inf *logits* are not checked (that would cost a
host-device synchronisation per step on a GPU): they propagate to the loss as in torch.

Numerics: the computation runs in float32 (float64 inputs stay float64) with autocast
disabled inside, from ``logsigmoid``/``softplus`` forms, so fp16/bf16 logits under
autocast and logits of +-100 give finite, exact-to-float32 losses and gradients. The
result is float32 (or float64).

Label-level hard negative mining: :func:`hard_negative_mask` keeps, per label, every
positive and ``k_c = clamp(ceil(negative_ratio * n_pos_c), min_negatives, n_neg_c)``
negatives (the hardest, sampled by loss, or uniform); :func:`hard_negative_loss` and
:class:`HardNegativeLoss` apply it to BCE, focal, ASL or any entry loss (a rare label
with 1 positive in a batch of 256 then learns from its ~10 hardest negatives instead of
255 mostly easy ones).

Calibration: BCE with ``pos_weight = w`` is minimised at ``logit(p) + log w``, so the
model over-predicts (``w = neg/pos`` predicted 11-12x the true number of labels at 0.5
on the seed shape, 10x on the ``medium`` preset: ``benchmarks/README.md``, "Recipe
comparison"); subtract ``log w`` at inference
(:func:`longtail.metrics.remove_pos_weight_shift`). Focal, ASL and the
distribution-balanced loss distort probabilities too: tune thresholds
(:func:`longtail.metrics.tune_thresholds`) rather than using 0.5.

Example
-------
>>> import torch
>>> from longtail.losses import sigmoid_focal_loss, per_example_loss
>>> logits = torch.tensor([[2.0, -1.0, 0.0], [-3.0, 4.0, 1.0]])
>>> targets = torch.tensor([[1.0, 0.0, 0.0], [0.0, 1.0, 1.0]])
>>> sigmoid_focal_loss(logits, targets, reduction="sample").shape
torch.Size([2])
"""
from __future__ import annotations

import contextlib
import inspect
import math
from typing import Any, Sequence, Union

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from longtail._core.checks import (check_bool, check_choice, check_int, check_number,
                                   check_positive_int)

__all__ = [
    "per_example_loss",
    "bce_with_logits",
    "sigmoid_focal_loss",
    "asymmetric_loss",
    "class_balanced_weights",
    "distribution_balanced_loss",
    "logit_adjusted_bce",
    "hard_negative_mask",
    "hard_negative_loss",
    "BCEWithLogits",
    "FocalLoss",
    "AsymmetricLoss",
    "DistributionBalancedLoss",
    "LogitAdjustedBCE",
    "HardNegativeLoss",
]

TensorLike = Union[Tensor, Sequence[float], float, Any]

_REDUCTIONS = ("none", "sample", "mean", "sum")
_SAMPLE_REDUCTIONS = ("mean", "sum", "max", "balanced")
_F32_MAX = float(torch.finfo(torch.float32).max)


# ---------------------------------------------------------------------------------
# helpers
# ---------------------------------------------------------------------------------
def _no_autocast(device: torch.device) -> contextlib.AbstractContextManager:
    """Disable autocast for ``device`` inside the loss (we upcast explicitly)."""
    try:
        if torch.is_autocast_enabled(device.type):
            return torch.autocast(device_type=device.type, enabled=False)
    except (TypeError, RuntimeError):  # pragma: no cover - old torch / exotic device
        pass
    return contextlib.nullcontext()


def _first_bad(mask: Tensor) -> tuple[int, ...]:
    return tuple(int(i) for i in mask.nonzero()[0].tolist())


def _check_reduction(reduction: str, sample_reduction: str) -> None:
    check_choice("reduction", reduction, _REDUCTIONS)
    check_choice("sample_reduction", sample_reduction, _SAMPLE_REDUCTIONS)


def _real(value: Any, name: str, *, lo: float | None = None, hi: float | None = None,
          lo_open: bool = False, hi_open: bool = False, none_ok: bool = False) -> float | None:
    """A real hyper-parameter as a Python float: finite, within float32, in range.

    :func:`longtail._core.checks.check_number` with ``lo``/``hi`` (open with
    ``lo_open``/``hi_open``); a one-element tensor is read with ``.item()``.
    TypeError/ValueError name the argument and the value.
    """
    if value is None and none_ok:
        return None
    if isinstance(value, Tensor):
        if value.numel() != 1 or value.is_complex() or value.dtype == torch.bool:
            raise TypeError(f"{name} must be a real number, got a tensor of shape "
                            f"{tuple(value.shape)} and dtype {value.dtype}")
        value = value.item()
    v = check_number(name, value, lo, hi, low_open=lo_open, high_open=hi_open)
    if abs(v) > _F32_MAX:
        raise ValueError(f"{name} must be finite (within float32), got {value!r}")
    return v


def _as_real_tensor(value: Any, name: str, dtype: torch.dtype,
                    device: torch.device | None) -> Tensor:
    """``value`` (tensor, array, sequence or number of reals) as a ``dtype`` tensor.

    Rejects strings, bools, complex and object data (TypeError) and, for non-tensor
    input, values that do not fit ``dtype`` (reported as given, not as ``inf``).
    """
    if isinstance(value, Tensor):
        if value.is_complex() or value.dtype == torch.bool or value.layout != torch.strided:
            raise TypeError(f"{name} must be a dense real tensor, got {value.dtype}, "
                            f"{value.layout}")
        return value.to(dtype=dtype, device=device)
    if isinstance(value, (str, bytes)):
        raise TypeError(f"{name} must be numeric, got {value!r}")
    try:
        arr = np.asarray(value)
    except ValueError as exc:
        raise ValueError(f"{name} is not a rectangular array: {exc}") from None
    except Exception as exc:
        raise TypeError(f"{name} must be numeric, got {type(value).__name__}") from exc
    if arr.dtype.kind not in "iuf":
        raise TypeError(f"{name} must be real numbers, got dtype {arr.dtype}")
    a64 = arr.astype(np.float64)
    big = np.isfinite(a64) & (np.abs(a64) > torch.finfo(dtype).max)
    if big.any():
        pos = tuple(int(i) for i in np.argwhere(big)[0])
        raise ValueError(f"{name} must be finite; {arr[pos].item()!r} at {list(pos)} does "
                         f"not fit {dtype}")
    return torch.as_tensor(a64, dtype=dtype, device=device)


def _compute_dtype(logits: Tensor) -> torch.dtype:
    return torch.float64 if logits.dtype == torch.float64 else torch.float32


def _prepare(logits: Tensor, targets: Tensor, validate: bool) -> tuple[Tensor, Tensor]:
    """Check shapes (always) and target values (if ``validate``); upcast both."""
    if not isinstance(logits, Tensor):
        raise TypeError(f"logits must be a torch.Tensor, got {type(logits).__name__}")
    if not isinstance(targets, Tensor):
        raise TypeError(f"targets must be a torch.Tensor, got {type(targets).__name__}")
    check_bool("validate", validate)
    if logits.layout != torch.strided or targets.layout != torch.strided:
        raise TypeError(f"logits and targets must be dense tensors, got {logits.layout}, "
                        f"{targets.layout}")
    if targets.is_complex():
        raise TypeError(f"targets must be real (bool, integer or float), got {targets.dtype}")
    if logits.dim() != 2:
        raise ValueError(f"logits must have shape [B, C], got {tuple(logits.shape)}")
    if targets.shape != logits.shape:
        raise ValueError(
            f"targets has shape {tuple(targets.shape)} but logits have shape "
            f"{tuple(logits.shape)}")
    if logits.numel() == 0:
        raise ValueError(f"logits is empty (shape {tuple(logits.shape)})")
    if not logits.is_floating_point():
        raise TypeError(f"logits must be floating point, got {logits.dtype}")
    dtype = _compute_dtype(logits)
    x = logits.to(dtype)
    y = targets.to(device=x.device, dtype=dtype)
    if validate:
        bad = ~((y >= 0) & (y <= 1))  # also catches NaN
        if bool(bad.any()):
            pos = _first_bad(bad)
            raise ValueError(
                f"targets must be in [0, 1] (multi-hot); got {targets[pos].item()!r} at "
                f"(row {pos[0]}, label {pos[1]})")
    return x, y


def _per_class(value: TensorLike | None, name: str, x: Tensor, validate: bool, *,
               positive: bool = False, open_unit: bool = False) -> Tensor | None:
    """A per-label vector ``[C]`` (or scalar) on ``x``'s device and dtype, checked."""
    if value is None:
        return None
    v = _as_real_tensor(value, name, x.dtype, x.device)
    if v.dim() > 1 or (v.dim() == 1 and v.shape[0] != x.shape[1]):
        raise ValueError(
            f"{name} must be a scalar or have shape [{x.shape[1]}], got {tuple(v.shape)}")
    if validate:
        _check_vector(v, name, positive=positive, open_unit=open_unit)
    return v


def _check_vector(v: Tensor, name: str, *, positive: bool = False,
                  open_unit: bool = False) -> None:
    if open_unit:
        bad, rule = ~((v > 0) & (v < 1)), "in (0, 1)"
    elif positive:
        bad, rule = ~(torch.isfinite(v) & (v > 0)), "positive and finite"
    else:
        bad, rule = ~(torch.isfinite(v) & (v >= 0)), "non-negative and finite"
    if bool(bad.any()):
        flat = bad.reshape(-1)
        i = int(flat.nonzero()[0])
        where = f" at label {i}" if v.dim() == 1 else ""
        raise ValueError(f"{name} must be {rule}; got {v.reshape(-1)[i].item()!r}{where}")


def _entry_weight(weight: TensorLike | None, x: Tensor, validate: bool) -> Tensor | None:
    if weight is None:
        return None
    w = _as_real_tensor(weight, "weight", x.dtype, x.device)
    try:
        shape = torch.broadcast_shapes(w.shape, x.shape)
    except RuntimeError:
        shape = None
    if shape != x.shape:
        raise ValueError(
            f"weight of shape {tuple(w.shape)} does not broadcast to logits' shape "
            f"{tuple(x.shape)}")
    if validate:
        bad = ~(torch.isfinite(w) & (w >= 0))
        if bool(bad.any()):
            raise ValueError(
                f"weight must be non-negative and finite; got {w[bad][0].item()!r} at "
                f"index {_first_bad(bad)}")
    return w


def _reduce(loss: Tensor, y: Tensor, weight: Tensor | None, reduction: str,
            sample_reduction: str) -> Tensor:
    if weight is not None:
        loss = loss * weight
    if reduction == "none":
        return loss
    if reduction == "sample":
        return per_example_loss(loss, y, sample_reduction)
    if reduction == "mean":
        return loss.mean()
    return loss.sum()


# ---------------------------------------------------------------------------------
# per-example reduction (shared with the replay sampler)
# ---------------------------------------------------------------------------------
def per_example_loss(loss: Tensor, targets: Tensor | None = None,
                     reduction: str = "mean", *, mask: Tensor | None = None) -> Tensor:
    """Reduce an element-wise loss ``[B, C]`` to one loss per example ``[B]``.

    This is what ``HardExampleSampler.update(indices, losses)`` consumes, and what
    ``reduction="sample"`` of every loss here returns.

    Parameters
    ----------
    loss : Tensor [B, C]
        Element-wise loss (``reduction="none"``).
    targets : Tensor [B, C], optional
        Multi-hot targets (values in ``[0, 1]`` act as weights; their values are not
        checked here, the losses check them with ``validate=True``); needed by
        ``"balanced"``.
    reduction : {"mean", "sum", "max", "balanced"}
        ``"balanced"`` = ``0.5 * (mean over the positive entries + mean over the
        negative entries)``; a row without positives uses the negative mean only (and
        a row without negatives the positive mean only).
    mask : bool Tensor [B, C], optional
        Entries to reduce over (e.g. :func:`hard_negative_mask`); the others are
        ignored, as if absent: ``"mean"`` is the mean over the example's kept entries,
        ``"max"`` their maximum, ``"balanced"`` counts only kept positives and kept
        negatives. A row without kept entries gives 0 (and no gradient).

    Why "balanced": with 7,900 labels and ~130 positives per example, ``"sum"`` and
    ``"mean"`` are dominated by the ~7,770 easy negatives (each small, together
    large), so the per-example loss says little about whether the example's *labels*
    are learned; a replay sampler fed with it replays examples with many
    slightly-wrong negatives. ``"balanced"`` weighs the positives and the negatives
    equally. ``"mean"`` is the default of the losses' ``sample_reduction`` because it
    is the plain per-example version of the usual mean loss (same scale across
    batches); prefer ``"balanced"`` for hard-example replay on dense label sets.

    Returns
    -------
    Tensor [B]
        Differentiable in ``loss``.

    Example
    -------
    >>> import torch
    >>> loss = torch.tensor([[4.0, 1.0, 1.0, 0.0]])
    >>> per_example_loss(loss, torch.tensor([[1.0, 0.0, 0.0, 0.0]]), "balanced")
    tensor([2.3333])
    """
    if not isinstance(loss, Tensor):
        raise TypeError(f"loss must be a torch.Tensor, got {type(loss).__name__}")
    if not loss.is_floating_point():
        raise TypeError(f"loss must be floating point, got {loss.dtype}")
    if loss.dim() != 2:
        raise ValueError(f"loss must have shape [B, C], got {tuple(loss.shape)}")
    check_choice("reduction", reduction, _SAMPLE_REDUCTIONS)
    if targets is not None and not isinstance(targets, Tensor):
        raise TypeError(f"targets must be a torch.Tensor or None, got {type(targets).__name__}")
    if targets is not None and targets.is_complex():
        raise TypeError(f"targets must be real, got {targets.dtype}")
    if targets is not None and targets.shape != loss.shape:
        raise ValueError(
            f"targets has shape {tuple(targets.shape)} but loss has shape "
            f"{tuple(loss.shape)}")
    if loss.shape[1] == 0:
        raise ValueError(f"loss has no labels (shape {tuple(loss.shape)})")
    if mask is not None:
        return _masked_per_example(loss, targets, reduction, mask)
    if reduction == "mean":
        return loss.mean(dim=1)
    if reduction == "sum":
        return loss.sum(dim=1)
    if reduction == "max":
        return loss.amax(dim=1)
    if targets is None:
        raise ValueError("reduction='balanced' needs targets")
    t = targets.to(device=loss.device, dtype=loss.dtype)
    neg = 1 - t
    n_pos = t.sum(dim=1)
    n_neg = neg.sum(dim=1)
    # safe denominators: torch.where would pass 0 * inf = nan gradients otherwise
    pos_mean = (loss * t).sum(dim=1) / torch.where(n_pos > 0, n_pos, torch.ones_like(n_pos))
    neg_mean = (loss * neg).sum(dim=1) / torch.where(n_neg > 0, n_neg, torch.ones_like(n_neg))
    both = 0.5 * (pos_mean + neg_mean)
    return torch.where(n_pos > 0, torch.where(n_neg > 0, both, pos_mean), neg_mean)


def _masked_per_example(loss: Tensor, targets: Tensor | None, reduction: str,
                        mask: Tensor) -> Tensor:
    """:func:`per_example_loss` over the entries where ``mask`` is True only."""
    if not isinstance(mask, Tensor):
        raise TypeError(f"mask must be a torch.Tensor or None, got {type(mask).__name__}")
    if mask.dtype != torch.bool:
        raise TypeError(f"mask must be a bool tensor, got {mask.dtype}")
    if mask.shape != loss.shape:
        raise ValueError(
            f"mask has shape {tuple(mask.shape)} but loss has shape {tuple(loss.shape)}")
    m = mask.to(loss.device)
    zero = torch.zeros((), dtype=loss.dtype, device=loss.device)
    kept = torch.where(m, loss, zero)  # where, not *: a dropped inf/NaN stays out
    count = m.sum(dim=1)
    if reduction == "sum":
        return kept.sum(dim=1)
    if reduction == "mean":
        return kept.sum(dim=1) / count.clamp_min(1)
    if reduction == "max":
        top = torch.where(m, loss, torch.full_like(loss, -math.inf)).amax(dim=1)
        return torch.where(count > 0, top, zero)
    if targets is None:
        raise ValueError("reduction='balanced' needs targets")
    t = targets.to(device=loss.device, dtype=loss.dtype)
    pos, neg = t * m, (1 - t) * m
    n_pos, n_neg = pos.sum(dim=1), neg.sum(dim=1)
    pos_mean = (kept * pos).sum(dim=1) / torch.where(n_pos > 0, n_pos, torch.ones_like(n_pos))
    neg_mean = (kept * neg).sum(dim=1) / torch.where(n_neg > 0, n_neg, torch.ones_like(n_neg))
    both = 0.5 * (pos_mean + neg_mean)
    return torch.where(n_pos > 0, torch.where(n_neg > 0, both, pos_mean),
                       torch.where(n_neg > 0, neg_mean, zero))


# ---------------------------------------------------------------------------------
# losses
# ---------------------------------------------------------------------------------
def bce_with_logits(logits: Tensor, targets: Tensor, *, pos_weight: TensorLike | None = None,
                    weight: TensorLike | None = None, reduction: str = "mean",
                    sample_reduction: str = "mean", validate: bool = True) -> Tensor:
    """Binary cross-entropy on logits with the reductions of this module.

    ``-[w_c * y * log sigmoid(x) + (1 - y) * log sigmoid(-x)]`` per entry, ``w_c`` the
    ``pos_weight`` of label ``c``.

    Example
    -------
    >>> import torch
    >>> bce_with_logits(torch.zeros(1, 2), torch.tensor([[1.0, 0.0]]), reduction="sum")
    tensor(1.3863)
    """
    _check_reduction(reduction, sample_reduction)
    x, y = _prepare(logits, targets, validate)
    with _no_autocast(x.device):
        pw = _per_class(pos_weight, "pos_weight", x, validate)
        w = _entry_weight(weight, x, validate)
        loss = F.binary_cross_entropy_with_logits(x, y, pos_weight=pw, reduction="none")
        return _reduce(loss, y, w, reduction, sample_reduction)


def sigmoid_focal_loss(logits: Tensor, targets: Tensor, alpha: float | None = None,
                       gamma: float = 2.0, *, pos_weight: TensorLike | None = None,
                       weight: TensorLike | None = None, reduction: str = "mean",
                       sample_reduction: str = "mean", validate: bool = True) -> Tensor:
    """Sigmoid focal loss (Lin et al. 2017, "Focal Loss for Dense Object Detection").

    ``alpha_t * (1 - p_t)^gamma * BCE``, with ``p_t = p`` for positives and ``1 - p``
    for negatives, ``alpha_t = alpha`` for positives and ``1 - alpha`` for negatives.
    With ``reduction="none"`` the values equal ``torchvision.ops.sigmoid_focal_loss``
    (whose default reduction is "none"; ours is "mean", like torch's losses).
    ``alpha=None`` (the default) or ``alpha < 0`` disables the alpha weighting (as
    torchvision). ``1 - p_t`` is computed as ``y * sigmoid(-x) + (1 - y) * sigmoid(x)``,
    which has no cancellation at large ``|x|``.

    The default differs from torchvision's ``alpha=0.25`` on purpose: ``alpha=0.25`` is
    RetinaNet's detection default; on multilabel data it down-weights every positive 3x
    against its negatives (measured macro AP 0.064 with ``alpha=0.25`` vs 0.131 with
    ``alpha=None`` on the seed shape). Pass ``alpha=0.25`` explicitly for torchvision's
    values.

    Parameters
    ----------
    logits, targets : Tensor [B, C]
    alpha : float or None
        In ``[0, 1]``; weight of the positive term (``1 - alpha`` for the negatives).
        Default ``None``: no alpha weighting.
    gamma : float
        Focusing parameter, ``>= 0`` (0 gives alpha-weighted BCE).

    Example
    -------
    >>> import torch
    >>> x, y = torch.tensor([[0.0]]), torch.tensor([[1.0]])
    >>> sigmoid_focal_loss(x, y, reduction="none")  # 0.25 * log(2)
    tensor([[0.1733]])
    >>> sigmoid_focal_loss(x, y, alpha=0.25, reduction="none")  # torchvision's default
    tensor([[0.0433]])
    """
    _check_reduction(reduction, sample_reduction)
    alpha, gamma = _focal_params(alpha, gamma)
    x, y = _prepare(logits, targets, validate)
    with _no_autocast(x.device):
        pw = _per_class(pos_weight, "pos_weight", x, validate)
        w = _entry_weight(weight, x, validate)
        ce = F.binary_cross_entropy_with_logits(x, y, pos_weight=pw, reduction="none")
        if gamma != 0:
            one_minus_pt = y * torch.sigmoid(-x) + (1 - y) * torch.sigmoid(x)
            if gamma < 1:  # d/dz z^gamma is infinite at z = 0
                one_minus_pt = one_minus_pt.clamp_min(torch.finfo(x.dtype).tiny)
            ce = ce * one_minus_pt.pow(gamma)
        if alpha is not None and alpha >= 0:
            ce = (alpha * y + (1 - alpha) * (1 - y)) * ce
        return _reduce(ce, y, w, reduction, sample_reduction)


def _focal_params(alpha: Any, gamma: Any) -> tuple[float | None, float]:
    try:  # a negative alpha (or None) disables the weighting, as in torchvision
        alpha = _real(alpha, "alpha", hi=1.0, none_ok=True)
    except ValueError as exc:
        raise ValueError(f"{exc} (alpha in [0, 1] weights the positives; a negative alpha "
                         "or None disables it)") from None
    gamma = _real(gamma, "gamma", lo=0.0)
    return alpha, gamma


def _asl_params(gamma_pos: Any, gamma_neg: Any, clip: Any) -> tuple[float, float, float]:
    return (_real(gamma_pos, "gamma_pos", lo=0.0), _real(gamma_neg, "gamma_neg", lo=0.0),
            _real(clip, "clip", lo=0.0, hi=1.0, hi_open=True))


def asymmetric_loss(logits: Tensor, targets: Tensor, gamma_pos: float = 0.0,
                    gamma_neg: float = 4.0, clip: float = 0.05, *,
                    pos_weight: TensorLike | None = None, weight: TensorLike | None = None,
                    reduction: str = "mean", sample_reduction: str = "mean",
                    validate: bool = True) -> Tensor:
    """Asymmetric loss, ASL (Ridnik et al. 2021, "Asymmetric Loss For Multi-Label
    Classification").

    ``L+ = (1 - p)^gamma_pos * log(p)`` for positives and ``L- = p_m^gamma_neg *
    log(1 - p_m)`` for negatives, with the shifted probability ``p_m = max(p - clip,
    0)`` (probability margin: very easy negatives are discarded entirely);
    loss ``= -(y * L+ + (1 - y) * L-)``.

    Unlike the reference code, the logs are not clamped at ``eps=1e-8`` but computed
    from ``logsigmoid`` (and ``log(min(sigmoid(-x) + clip, 1))``), so a positive with
    logit -100 costs 100, not 18.4. The focusing weights keep their gradient (the
    reference's default ``disable_torch_grad_focal_loss=False``).

    Defaults: ``gamma_pos=0, gamma_neg=4, clip=0.05``, the paper's multilabel settings
    (kept as they are: they suit multilabel data, unlike focal's detection ``alpha``).
    Measured on generated data (``benchmarks/README.md``, "Recipe comparison", the
    ``medium`` preset): the best loss there, +4.1% macro AP over BCE with
    ``pos_weight``; at a 0.5 threshold it predicts 1.67x the true number of labels, so
    tune per-label thresholds (:func:`longtail.metrics.tune_thresholds`). On real data
    see ``benchmarks/bench_real.py`` and its table in ``benchmarks/README.md``.

    Parameters
    ----------
    gamma_pos, gamma_neg : float
        Focusing exponents, ``>= 0``.
    clip : float
        Probability margin ``m`` in ``[0, 1)``; 0 disables the shift.

    Example
    -------
    >>> import torch
    >>> asymmetric_loss(torch.tensor([[0.0, -4.0]]), torch.tensor([[1.0, 0.0]]),
    ...                 reduction="none")
    tensor([[0.6931, 0.0000]])
    """
    _check_reduction(reduction, sample_reduction)
    gamma_pos, gamma_neg, clip = _asl_params(gamma_pos, gamma_neg, clip)
    x, y = _prepare(logits, targets, validate)
    with _no_autocast(x.device):
        pw = _per_class(pos_weight, "pos_weight", x, validate)
        w = _entry_weight(weight, x, validate)
        tiny = torch.finfo(x.dtype).tiny  # d/dz z^gamma is infinite at z = 0 for gamma < 1
        loss_pos = -F.logsigmoid(x)
        if gamma_pos != 0:
            base = torch.sigmoid(-x)
            if gamma_pos < 1:
                base = base.clamp_min(tiny)
            loss_pos = loss_pos * base.pow(gamma_pos)
        if pw is not None:
            loss_pos = loss_pos * pw
        if clip > 0:
            p_m = (torch.sigmoid(x) - clip).clamp_min(0)
            loss_neg = -torch.log((torch.sigmoid(-x) + clip).clamp_max(1))
        else:
            p_m = torch.sigmoid(x)
            loss_neg = -F.logsigmoid(-x)
        if gamma_neg != 0:
            if gamma_neg < 1:
                p_m = p_m.clamp_min(tiny)
            loss_neg = loss_neg * p_m.pow(gamma_neg)
        loss = y * loss_pos + (1 - y) * loss_neg
        return _reduce(loss, y, w, reduction, sample_reduction)


def class_balanced_weights(counts: TensorLike, beta: float = 0.999, *,
                           normalize: bool = True) -> Tensor:
    """Per-class weights from the effective number of samples (Cui et al. 2019).

    ``w_c = (1 - beta) / (1 - beta^n_c)``; with ``normalize`` they are scaled to sum
    to the number of classes ``C`` (as in the paper). ``beta = 0`` gives equal weights,
    ``beta -> 1`` inverse frequency. A class with 0 examples is treated as having 1.
    Use them as per-label loss weights (``weight=w`` broadcasts over the batch) or as
    ``pos_weight``.

    Parameters
    ----------
    counts : array or tensor [C]
        Number of (positive) training examples per class, ``>= 0``.
    beta : float
        In ``[0, 1)``; the paper uses 0.9 .. 0.9999.

    Returns
    -------
    Tensor [C], float32 (on ``counts``' device when it is a tensor).

    Example
    -------
    >>> class_balanced_weights([1, 10, 100], beta=0.9)
    tensor([2.3932, 0.3674, 0.2393])
    """
    beta = _real(beta, "beta", lo=0.0, hi=1.0, hi_open=True)
    normalize = check_bool("normalize", normalize)
    device = counts.device if isinstance(counts, Tensor) else None
    n = _as_real_tensor(counts, "counts", torch.float64, device)
    if n.dim() != 1 or n.shape[0] == 0:
        raise ValueError(f"counts must be a non-empty 1-D array, got shape {tuple(n.shape)}")
    _check_vector(n, "counts")
    n = n.clamp_min(1)
    if beta == 0:
        w = torch.ones_like(n)
    else:
        # (1 - beta) / (1 - beta^n), with 1 - beta^n = -expm1(n log beta) for precision
        w = (1 - beta) / -torch.expm1(n * math.log(beta))
    if normalize:
        w = w / w.sum() * n.shape[0]
    return w.to(torch.float32)


def _logit_prior(prior: Tensor) -> Tensor:
    return torch.log(prior) - torch.log1p(-prior)


def _logit_adjustment(prior: TensorLike, tau: float, x: Tensor) -> Tensor:
    """``tau * logit(prior)`` ``[C]`` in ``x``'s dtype, from the prior in float64.

    Checks (one host sync, as any validation of a tensor argument) that every prior is
    in (0, 1) and that the adjustment fits ``x``'s dtype (a huge ``tau`` would make the
    logits infinite and the loss NaN).
    """
    hp = torch.float32 if x.device.type == "mps" else torch.float64  # MPS has no float64
    pi = _as_real_tensor(prior, "prior", hp, x.device)
    if pi.dim() > 1 or (pi.dim() == 1 and pi.shape[0] != x.shape[1]):
        raise ValueError(
            f"prior must be a scalar or have shape [{x.shape[1]}], got {tuple(pi.shape)}")
    adj = (tau * _logit_prior(pi)).to(x.dtype)
    bad_prior = ~((pi > 0) & (pi < 1))
    flags = torch.stack([bad_prior.any(), (~torch.isfinite(adj)).any()]).tolist()
    if flags[0]:
        _check_vector(pi, "prior", open_unit=True)
    if flags[1]:
        i = int((~torch.isfinite(adj)).reshape(-1).nonzero()[0])
        raise ValueError(f"tau * logit(prior) overflows {x.dtype} (tau={tau!r}, prior "
                         f"{pi.reshape(-1)[i].item()!r} at label {i})")
    return adj


def _db_params(n_samples: Any, alpha: Any, beta: Any, mu: Any, kappa: Any, neg_scale: Any,
               ref_cardinality: Any) -> tuple[int, tuple]:
    """Checked hyper-parameters of :func:`distribution_balanced_loss`."""
    n_samples = check_positive_int("n_samples", n_samples)
    if n_samples > 2**53:
        raise ValueError(f"n_samples must be at most 2**53, got {n_samples!r}")
    tiny = float(torch.finfo(torch.float32).tiny)
    return n_samples, (
        _real(alpha, "alpha", lo=0.0), _real(beta, "beta", lo=0.0), _real(mu, "mu"),
        _real(kappa, "kappa", lo=0.0), _real(neg_scale, "neg_scale", lo=tiny),
        _real(ref_cardinality, "ref_cardinality", lo=tiny, none_ok=True))


def distribution_balanced_loss(
        logits: Tensor, targets: Tensor, class_counts: TensorLike, n_samples: int, *,
        alpha: float = 0.1, beta: float = 10.0, mu: float = 0.2, kappa: float = 0.05,
        neg_scale: float = 2.0, ref_cardinality: float | None = 2.9,
        pos_weight: TensorLike | None = None, weight: TensorLike | None = None,
        reduction: str = "mean", sample_reduction: str = "mean",
        validate: bool = True) -> Tensor:
    """Distribution-balanced loss (Wu et al. 2020, "Distribution-Balanced Loss for
    Multi-Label Classification in Long-Tailed Datasets"), BCE form.

    Two parts, as in the authors' code (``ResampleLoss`` with ``reweight_func=
    'rebalance'`` and ``logit_reg``):

    1. **Re-balanced weighting.** For example ``k`` and label ``i``,
       ``r_ki = (1 / n_i) / sum_{j in pos(k)} (1 / n_j)`` (the ratio of the
       class-level to the instance-level sampling probability), smoothed to
       ``w_ki = alpha + sigmoid(beta * (r_ki - mu))`` and applied to all entries of
       the example (no gradient).
    2. **Negative-tolerant regularisation.** With the class prior ``p_i = n_i / N``
       and ``nu_i = kappa * logit(p_i)`` (the reference code's ``init_bias``), the
       logit becomes ``z' = z + nu_i / lambda``; positives cost
       ``softplus(-z')``, negatives ``softplus(lambda * z') / lambda``
       (``lambda = neg_scale``), so negatives saturate sooner and suppress rare labels
       less.

    **Scaling for 100+ labels per example.** ``r_ki`` is about ``1 / |pos(k)|``: with
    COCO's ~2.9 labels per image it lies around ``mu = 0.2`` and the smoothing maps it
    to a useful range, but with 130 labels every ``r`` is ~0.008, ``sigmoid(10 * (r -
    0.2))`` is ~0.13 for every label and the re-weighting collapses to a constant. We
    therefore multiply ``r_ki`` by ``|pos(k)| / ref_cardinality``: ``r`` becomes the
    label's inverse frequency relative to the *mean* inverse frequency of the example's
    labels, divided by ``ref_cardinality`` (default 2.9, the cardinality the published
    ``alpha=0.1, beta=10, mu=0.2`` were tuned for). On COCO-like data this changes
    nothing; on dense data a label as frequent as the example's typical label gets the
    same weight (~0.9) as on COCO, a 10x rarer one ~1.1, a 10x more frequent one ~0.26.
    ``ref_cardinality=None`` gives the paper's unscaled ``r``. Rows without positives
    get ``r = inf`` (weight ``alpha + 1``), the limit the reference code reaches.

    Parameters
    ----------
    class_counts : array or tensor [C]
        Positive training examples per label (0 is treated as 1 / as prior ``0.5/N``).
    n_samples : int
        Number of training examples ``N`` (for the prior).
    alpha, beta, mu : float
        Smoothing of ``r`` (paper defaults 0.1, 10, 0.2).
    kappa, neg_scale : float
        NTR bias scale (0.05) and negative scale ``lambda`` (2.0); ``kappa=0`` and
        ``neg_scale=1`` turn NTR off.
    ref_cardinality : float or None
        See above.

    Example
    -------
    >>> import torch
    >>> y = torch.tensor([[1.0, 0.0, 1.0]])
    >>> loss = distribution_balanced_loss(torch.zeros(1, 3), y, [10, 50, 500], 1000)
    >>> bool(loss > 0)
    True
    """
    _check_reduction(reduction, sample_reduction)
    n_samples, params = _db_params(n_samples, alpha, beta, mu, kappa, neg_scale,
                                   ref_cardinality)
    alpha, beta, mu, kappa, neg_scale, ref_cardinality = params
    x, y = _prepare(logits, targets, validate)
    with _no_autocast(x.device):
        counts = _per_class(class_counts, "class_counts", x, True)
        if counts is None or counts.dim() != 1:
            raise ValueError("class_counts must have shape [C]")
        pw = _per_class(pos_weight, "pos_weight", x, validate)
        w = _entry_weight(weight, x, validate)
        # 1. re-balanced weights (no gradient: a function of the targets only)
        with torch.no_grad():
            inv = 1.0 / counts.clamp_min(1)
            rate = (y * inv).sum(dim=1, keepdim=True)  # instance-level, up to 1/C
            safe = torch.where(rate > 0, rate, torch.ones_like(rate))
            r = inv / safe
            if ref_cardinality is not None:
                r = r * (y.sum(dim=1, keepdim=True) / ref_cardinality)
            r = torch.where(rate > 0, r, torch.full_like(r, math.inf))
            # beta = 0: sigmoid(0) = 0.5 for every r (0 * inf would be NaN)
            rb = alpha + (torch.sigmoid(beta * (r - mu)) if beta != 0 else
                          torch.full_like(r, 0.5))
        # 2. negative-tolerant regularisation
        prior = (counts.clamp(0.5, n_samples - 0.5) / n_samples) if n_samples > 1 else (
            torch.full_like(counts, 0.5))
        z = x + (kappa * _logit_prior(prior)) / neg_scale
        loss_pos = F.softplus(-z)
        if pw is not None:
            loss_pos = loss_pos * pw
        loss_neg = F.softplus(neg_scale * z) / neg_scale
        loss = rb * (y * loss_pos + (1 - y) * loss_neg)
        return _reduce(loss, y, w, reduction, sample_reduction)


def logit_adjusted_bce(logits: Tensor, targets: Tensor, prior: TensorLike, tau: float = 1.0,
                       *, pos_weight: TensorLike | None = None,
                       weight: TensorLike | None = None, reduction: str = "mean",
                       sample_reduction: str = "mean", validate: bool = True) -> Tensor:
    """Logit-adjusted BCE (Menon et al. 2021, "Long-tail learning via logit
    adjustment"), sigmoid form.

    Training adds ``tau * logit(prior_c)`` to each label's logit, the binary version of
    the paper's ``f_y + tau * log pi_y`` (each label is a two-class problem with priors
    ``pi_c`` and ``1 - pi_c``, whose log ratio is ``logit(pi_c)``):
    ``loss = BCE(z + tau * logit(pi), y)``. At inference use the raw logits ``z``:
    they estimate the prior-free (balanced) log-odds, which favours rare labels; tune
    thresholds if you need calibrated counts.

    Parameters
    ----------
    prior : array or tensor [C]
        Label prevalence in the training set, each in ``(0, 1)``.
    tau : float
        Adjustment strength (1 is the Bayes-consistent choice for the balanced error).

    Example
    -------
    >>> import torch
    >>> logit_adjusted_bce(torch.zeros(1, 2), torch.tensor([[1.0, 0.0]]),
    ...                    prior=[0.5, 0.5], reduction="sum")
    tensor(1.3863)
    """
    _check_reduction(reduction, sample_reduction)
    tau = _real(tau, "tau")
    x, y = _prepare(logits, targets, validate)
    with _no_autocast(x.device):
        adj = _logit_adjustment(prior, tau, x)
        pw = _per_class(pos_weight, "pos_weight", x, validate)
        w = _entry_weight(weight, x, validate)
        z = x + adj
        loss = F.binary_cross_entropy_with_logits(z, y, pos_weight=pw, reduction="none")
        return _reduce(loss, y, w, reduction, sample_reduction)


# ---------------------------------------------------------------------------------
# label-level hard negative mining
# ---------------------------------------------------------------------------------
_HN_MODES = ("topk", "sample", "random")
_HN_NORMALIZE = ("mask", "all")
_HN_LOSSES = {"bce": bce_with_logits, "focal": sigmoid_focal_loss, "asl": asymmetric_loss}
# keyword arguments that hard_negative_loss sets itself when it calls the entry loss
_HN_RESERVED = ("logits", "targets", "reduction", "sample_reduction", "validate")


def _hn_params(negative_ratio: Any, min_negatives: Any, mode: Any, temperature: Any,
               generator: Any) -> tuple[float, int, str, float]:
    """Checked mining parameters (TypeError/ValueError naming the argument)."""
    ratio = _real(negative_ratio, "negative_ratio", lo=0.0, lo_open=True)
    min_neg = check_int("min_negatives", min_negatives, 0)
    mode = check_choice("mode", mode, _HN_MODES)
    temperature = _real(temperature, "temperature", lo=0.0, lo_open=True)
    if generator is not None and not isinstance(generator, torch.Generator):
        raise TypeError(f"generator must be a torch.Generator or None, got "
                        f"{type(generator).__name__}")
    return ratio, min_neg, mode, temperature


def _check_generator(generator: torch.Generator | None, device: torch.device) -> None:
    if generator is None:
        return
    g = torch.device(generator.device)
    if g.type != device.type or (g.index is not None and device.index is not None
                                 and g.index != device.index):
        raise ValueError(f"generator is on {g} but the losses are on {device}; pass "
                         f"torch.Generator(device={str(device)!r})")


def _ordered_int(key: Tensor) -> Tensor:
    """An int64 tensor with the order of the float (not NaN) tensor ``key``.

    IEEE floats order like sign-magnitude integers: flipping the magnitude bits of the
    negative ones makes the bit patterns order like the values (-0.0 just below 0.0).
    """
    if key.dtype == torch.float64:
        bits, flip = key.view(torch.int64), 0x7FFF_FFFF_FFFF_FFFF
    else:
        bits, flip = key.view(torch.int32).to(torch.int64), 0x7FFF_FFFF
    return torch.where(bits < 0, bits ^ flip, bits)


def _hn_keys(loss: Tensor, mode: str, temperature: float,
             generator: torch.Generator | None) -> Tensor:
    """Sort keys ``[B, C]``: the negatives with the largest keys are kept first."""
    if mode == "topk":
        return loss  # NaN already replaced by +inf
    hp = torch.float32 if loss.device.type == "mps" else torch.float64  # MPS: no float64
    u = torch.rand(loss.shape, generator=generator, device=loss.device, dtype=hp)
    if mode == "random":
        return u
    # Gumbel-top-k: the k largest log(loss) / T + G (G iid Gumbel) are k draws without
    # replacement with probability proportional to loss ** (1 / T).
    g = -torch.log(-torch.log(u.clamp_min(torch.finfo(hp).tiny)))
    live = loss > 0
    key = torch.where(live, torch.log(loss.to(hp)) / temperature + g, g)
    # Two tiers in one int64 key: every positive loss above every zero loss; within the
    # zero tier the iid Gumbel noise alone orders the entries (a uniform fill).
    half = _ordered_int(key) >> 1  # in [-2**62, 2**62)
    return torch.where(live, half + 2**62, half - 2**62)


def _hn_mask(loss: Tensor, pos: Tensor, ratio: float, min_neg: int, mode: str,
             temperature: float, generator: torch.Generator | None) -> Tensor:
    """The mask of :func:`hard_negative_mask`, from checked arguments (no gradient)."""
    with torch.no_grad():
        loss = loss.detach()
        loss = torch.where(torch.isnan(loss), torch.full_like(loss, math.inf), loss)
        neg = ~pos
        n_pos = pos.sum(dim=0)
        n_neg = neg.sum(dim=0)
        # k_c = clamp(ceil(ratio * n_pos_c), min_neg, n_neg_c), in float64 (exact counts)
        hp = torch.float32 if loss.device.type == "mps" else torch.float64
        want = torch.ceil(n_pos.to(hp) * ratio).clamp_min(min_neg)
        k = torch.minimum(want, n_neg.to(hp)).to(torch.int64)
        # one stable sort per column (all columns at once): ties go to the lower row
        order = torch.sort(_hn_keys(loss, mode, temperature, generator), dim=0,
                           descending=True, stable=True).indices
        neg_sorted = neg.gather(0, order)
        # 1-based rank among the column's negatives (int32: B < 2**31)
        rank = neg_sorted.cumsum(dim=0, dtype=torch.int32)
        keep_sorted = neg_sorted & (rank <= k)
        keep = torch.zeros_like(neg).scatter_(0, order, keep_sorted)
        return keep | pos


def hard_negative_mask(entry_loss: Tensor, targets: Tensor, *, negative_ratio: float = 10.0,
                       min_negatives: int = 16, mode: str = "topk", temperature: float = 1.0,
                       generator: torch.Generator | None = None) -> Tensor:
    """Label-level hard negative mining: which entries ``[B, C]`` a loss should keep.

    Multilabel imbalance lives at the label level: in a batch of 256 a rare label has
    about one positive and 255 negatives, most of them easy. For every label (column)
    ``c`` the mask keeps every positive (``targets > 0``) and ``k_c`` negatives,
    ``k_c = clamp(ceil(negative_ratio * n_pos_c), min_negatives, n_neg_c)``, so a label
    without positives in the batch keeps ``min_negatives`` negatives (all of them if it
    has fewer).

    Which negatives:

    * ``"topk"``: the ``k_c`` with the largest entry loss; ties go to the lower row
      index; a NaN loss counts as ``+inf`` (the hardest).
    * ``"sample"``: ``k_c`` drawn without replacement with probability proportional to
      ``loss ** (1 / temperature)`` (Gumbel-top-k on ``log(loss) / temperature`` plus
      Gumbel noise from ``generator``). A loss ``<= 0`` has probability 0, unless fewer
      than ``k_c`` negatives have a positive loss: those are all taken and the rest is
      filled uniformly from the others. ``temperature -> 0`` approaches ``"topk"``,
      a large one ``"random"``.
    * ``"random"``: ``k_c`` uniform negatives (the ablation).

    Cost: one stable sort of ``[B, C]`` along the batch dimension for all labels at once
    (``O(C * B log B)``; a ``[256, 2000]`` batch is one ``torch.sort``), then a cumulative
    count of the negatives in sorted order compared with ``k_c`` and scattered back; no
    Python loop over labels or rows. Works on CPU and CUDA tensors; no gradient.

    Parameters
    ----------
    entry_loss : Tensor [B, C]
        Element-wise loss (e.g. ``reduction="none"`` of a loss here); detached.
    targets : Tensor [B, C]
        Targets; an entry is a positive when its target is ``> 0`` (soft labels too).
    negative_ratio : float
        Negatives kept per positive, finite and ``> 0``.
    min_negatives : int
        At least this many negatives per label (when it has them), ``>= 0``.
    mode : {"topk", "sample", "random"}
    temperature : float
        ``> 0``; used by ``"sample"``.
    generator : torch.Generator, optional
        On ``entry_loss``' device; the noise of ``"sample"`` and ``"random"`` (the
        global generator when None).

    Returns
    -------
    bool Tensor [B, C]
        On ``entry_loss``' device.

    Example
    -------
    >>> import torch
    >>> loss = torch.tensor([[0.1, 2.0], [0.9, 0.3], [0.5, 0.0], [0.2, 0.7]])
    >>> y = torch.tensor([[1.0, 0.0], [0.0, 0.0], [0.0, 1.0], [0.0, 0.0]])
    >>> hard_negative_mask(loss, y, negative_ratio=1.0, min_negatives=0)
    tensor([[ True,  True],
            [ True, False],
            [False,  True],
            [False, False]])
    """
    params = _hn_params(negative_ratio, min_negatives, mode, temperature, generator)
    if not isinstance(entry_loss, Tensor):
        raise TypeError(f"entry_loss must be a torch.Tensor, got {type(entry_loss).__name__}")
    if not isinstance(targets, Tensor):
        raise TypeError(f"targets must be a torch.Tensor, got {type(targets).__name__}")
    if entry_loss.layout != torch.strided or targets.layout != torch.strided:
        raise TypeError(f"entry_loss and targets must be dense tensors, got "
                        f"{entry_loss.layout}, {targets.layout}")
    if not entry_loss.is_floating_point():
        raise TypeError(f"entry_loss must be floating point, got {entry_loss.dtype}")
    if targets.is_complex():
        raise TypeError(f"targets must be real (bool, integer or float), got {targets.dtype}")
    if entry_loss.dim() != 2:
        raise ValueError(f"entry_loss must have shape [B, C], got {tuple(entry_loss.shape)}")
    if targets.shape != entry_loss.shape:
        raise ValueError(f"targets has shape {tuple(targets.shape)} but entry_loss has shape "
                         f"{tuple(entry_loss.shape)}")
    if params[2] != "topk":
        _check_generator(generator, entry_loss.device)
    pos = targets.to(entry_loss.device) > 0
    return _hn_mask(entry_loss, pos, *params, generator)


def _hn_loss_fn(loss: Any) -> Any:
    if isinstance(loss, str):
        return _HN_LOSSES[check_choice("loss", loss, tuple(_HN_LOSSES))]
    if not callable(loss):
        raise TypeError(f"loss must be one of {', '.join(map(repr, _HN_LOSSES))} or a "
                        f"callable, got {loss!r} ({type(loss).__name__})")
    return loss


def _check_loss_kwargs(loss: Any, loss_kwargs: dict[str, Any]) -> None:
    """Keyword arguments of a built-in entry loss: known names, hyper-parameters checked."""
    if not isinstance(loss, str):
        return
    fn = _HN_LOSSES[loss]
    allowed = [n for n in inspect.signature(fn).parameters if n not in _HN_RESERVED]
    for name in loss_kwargs:
        if name not in allowed:
            raise TypeError(f"unexpected keyword argument {name!r} for loss={loss!r}; "
                            f"it takes {', '.join(allowed)}")
    if loss == "focal":
        _focal_params(loss_kwargs.get("alpha"), loss_kwargs.get("gamma", 2.0))
    elif loss == "asl":
        _asl_params(loss_kwargs.get("gamma_pos", 0.0), loss_kwargs.get("gamma_neg", 4.0),
                    loss_kwargs.get("clip", 0.05))


def hard_negative_loss(logits: Tensor, targets: Tensor, *, loss: Any = "bce",
                       negative_ratio: float = 10.0, min_negatives: int = 16,
                       mode: str = "topk", temperature: float = 1.0,
                       generator: torch.Generator | None = None, normalize: str = "mask",
                       reduction: str = "mean", sample_reduction: str = "mean",
                       validate: bool = True, **loss_kwargs: Any) -> Tensor:
    """A loss restricted to every positive and the hard negatives of each label.

    The entry loss ``[B, C]`` is computed, :func:`hard_negative_mask` of its detached
    values picks per label every positive and ``k_c`` negatives, and the dropped
    entries become 0 (no gradient reaches them).

    Parameters
    ----------
    logits, targets : Tensor [B, C]
    loss : {"bce", "focal", "asl"} or callable
        :func:`bce_with_logits`, :func:`sigmoid_focal_loss`, :func:`asymmetric_loss`
        (``loss_kwargs`` go to it: ``alpha``, ``gamma``, ``pos_weight``, ``weight``,
        ...), or ``f(logits, targets, reduction="none", **loss_kwargs) -> [B, C]``
        (e.g. ``torch.nn.functional.binary_cross_entropy_with_logits``), called with
        float32 (float64 stays) logits and float targets, autocast disabled. The mask
        ranks the entries as the loss returns them (after ``weight``/``pos_weight``).
    negative_ratio, min_negatives, mode, temperature, generator
        See :func:`hard_negative_mask`.
    normalize : {"mask", "all"}
        ``"mask"``: dropped entries are ignored; ``reduction="mean"`` divides the kept
        sum by the number of kept entries, so the loss scale does not shrink with the
        mask. ``"all"``: dropped entries count as zeros; ``"mean"`` divides by
        ``B * C`` (torch's mean of the masked ``[B, C]``).
    reduction : {"none", "sample", "mean", "sum"}
        ``"none"``: the masked ``[B, C]`` (zeros where dropped); ``"sum"``: their sum.
    sample_reduction : {"mean", "sum", "max", "balanced"}
        For ``reduction="sample"``, by :func:`per_example_loss`: with
        ``normalize="mask"`` over each example's kept entries only (``"mean"`` is the
        mean over the example's kept entries, 0 for an example with none); with
        ``"all"`` over the masked row, dropped entries as zeros (``"mean"`` divides by
        ``C``).
    validate : bool
        Check the target values (and ``pos_weight``/``weight`` of a built-in loss).

    Example
    -------
    >>> import torch
    >>> logits = torch.tensor([[3.0, -2.0], [-1.0, 0.5], [-4.0, 1.0]])
    >>> y = torch.tensor([[1.0, 0.0], [0.0, 0.0], [0.0, 1.0]])
    >>> hard_negative_loss(logits, y, negative_ratio=1.0, min_negatives=0, reduction="none")
    tensor([[0.0486, 0.0000],
            [0.3133, 0.9741],
            [0.0000, 0.3133]])
    """
    _check_reduction(reduction, sample_reduction)
    check_choice("normalize", normalize, _HN_NORMALIZE)
    params = _hn_params(negative_ratio, min_negatives, mode, temperature, generator)
    fn = _hn_loss_fn(loss)
    check_bool("validate", validate)
    if isinstance(loss, str):
        _check_loss_kwargs(loss, loss_kwargs)
        entry = fn(logits, targets, reduction="none", validate=validate, **loss_kwargs)
        x, y = _prepare(logits, targets, False)  # checked by the loss already
    else:
        x, y = _prepare(logits, targets, validate)
        with _no_autocast(x.device):
            entry = fn(x, y, reduction="none", **loss_kwargs)
        if not isinstance(entry, Tensor) or entry.shape != x.shape or (
                not entry.is_floating_point()):
            got = (f"shape {tuple(entry.shape)}, dtype {entry.dtype}"
                   if isinstance(entry, Tensor) else type(entry).__name__)
            raise TypeError(f"loss must return a floating-point [B, C] tensor of shape "
                            f"{tuple(x.shape)} with reduction='none', got {got}")
        entry = entry.to(device=x.device, dtype=x.dtype)
    if params[2] != "topk":
        _check_generator(generator, entry.device)
    with _no_autocast(x.device):
        mask = _hn_mask(entry, y > 0, *params, generator)
        kept = torch.where(mask, entry, torch.zeros((), dtype=entry.dtype, device=x.device))
        if reduction == "none":
            return kept
        if reduction == "sum":
            return kept.sum()
        if reduction == "mean":
            if normalize == "all":
                return kept.mean()
            return kept.sum() / mask.sum().clamp_min(1)
        if normalize == "all":
            return per_example_loss(kept, y, sample_reduction)
        return per_example_loss(entry, y, sample_reduction, mask=mask)


# ---------------------------------------------------------------------------------
# nn.Module wrappers
# ---------------------------------------------------------------------------------
class _LossModule(nn.Module):
    """Common part: reductions, optional ``pos_weight`` buffer, per-call overrides."""

    def __init__(self, pos_weight: TensorLike | None, reduction: str, sample_reduction: str,
                 validate: bool) -> None:
        super().__init__()
        _check_reduction(reduction, sample_reduction)
        self.reduction = reduction
        self.sample_reduction = sample_reduction
        self.validate = check_bool("validate", validate)
        pw = None
        if pos_weight is not None:
            pw = _as_real_tensor(pos_weight, "pos_weight", torch.float32, None
                                 ).detach().clone()
            if pw.dim() > 1:
                raise ValueError(f"pos_weight must be a scalar or 1-D, got {tuple(pw.shape)}")
            _check_vector(pw, "pos_weight")
        self.register_buffer("pos_weight", pw, persistent=False)

    def _kwargs(self, weight: TensorLike | None, reduction: str | None) -> dict[str, Any]:
        return dict(pos_weight=self.pos_weight, weight=weight,
                    reduction=self.reduction if reduction is None else reduction,
                    sample_reduction=self.sample_reduction, validate=self.validate)

    def extra_repr(self) -> str:
        return f"reduction={self.reduction!r}, sample_reduction={self.sample_reduction!r}"


class BCEWithLogits(_LossModule):
    """Module form of :func:`bce_with_logits`.

    ``forward(logits, targets, weight=None, reduction=None)``; ``reduction`` overrides
    the module's for one call (e.g. ``"none"`` to get both the mean and the
    per-example losses from one evaluation).

    Example
    -------
    >>> import torch
    >>> BCEWithLogits(reduction="sample")(torch.zeros(2, 3), torch.ones(2, 3)).shape
    torch.Size([2])
    """

    def __init__(self, pos_weight: TensorLike | None = None, reduction: str = "mean",
                 sample_reduction: str = "mean", validate: bool = True) -> None:
        super().__init__(pos_weight, reduction, sample_reduction, validate)

    def forward(self, logits: Tensor, targets: Tensor, weight: TensorLike | None = None,
                reduction: str | None = None) -> Tensor:
        return bce_with_logits(logits, targets, **self._kwargs(weight, reduction))


class FocalLoss(_LossModule):
    """Module form of :func:`sigmoid_focal_loss` (default ``alpha=None``: no alpha
    weighting; ``alpha=0.25`` is RetinaNet's detection default, see there).

    Example
    -------
    >>> import torch
    >>> FocalLoss()(torch.zeros(2, 3), torch.ones(2, 3)).item()
    0.17328...
    >>> FocalLoss(alpha=0.25, gamma=2)(torch.zeros(2, 3), torch.ones(2, 3)).item()
    0.04332...
    """

    def __init__(self, alpha: float | None = None, gamma: float = 2.0,
                 pos_weight: TensorLike | None = None, reduction: str = "mean",
                 sample_reduction: str = "mean", validate: bool = True) -> None:
        super().__init__(pos_weight, reduction, sample_reduction, validate)
        alpha, gamma = _focal_params(alpha, gamma)
        self.alpha = alpha
        self.gamma = gamma

    def forward(self, logits: Tensor, targets: Tensor, weight: TensorLike | None = None,
                reduction: str | None = None) -> Tensor:
        return sigmoid_focal_loss(logits, targets, self.alpha, self.gamma,
                                  **self._kwargs(weight, reduction))

    def extra_repr(self) -> str:
        return f"alpha={self.alpha}, gamma={self.gamma}, " + super().extra_repr()


class AsymmetricLoss(_LossModule):
    """Module form of :func:`asymmetric_loss`.

    Example
    -------
    >>> import torch
    >>> AsymmetricLoss()(torch.zeros(2, 3), torch.ones(2, 3)).item()
    0.6931...
    """

    def __init__(self, gamma_pos: float = 0.0, gamma_neg: float = 4.0, clip: float = 0.05,
                 pos_weight: TensorLike | None = None, reduction: str = "mean",
                 sample_reduction: str = "mean", validate: bool = True) -> None:
        super().__init__(pos_weight, reduction, sample_reduction, validate)
        gamma_pos, gamma_neg, clip = _asl_params(gamma_pos, gamma_neg, clip)
        self.gamma_pos, self.gamma_neg, self.clip = gamma_pos, gamma_neg, clip

    def forward(self, logits: Tensor, targets: Tensor, weight: TensorLike | None = None,
                reduction: str | None = None) -> Tensor:
        return asymmetric_loss(logits, targets, self.gamma_pos, self.gamma_neg, self.clip,
                               **self._kwargs(weight, reduction))

    def extra_repr(self) -> str:
        return (f"gamma_pos={self.gamma_pos}, gamma_neg={self.gamma_neg}, clip={self.clip}, "
                + super().extra_repr())


class DistributionBalancedLoss(_LossModule):
    """Module form of :func:`distribution_balanced_loss` (counts kept as a buffer).

    Example
    -------
    >>> import torch
    >>> loss = DistributionBalancedLoss([10, 50, 500], n_samples=1000)
    >>> loss(torch.zeros(2, 3), torch.tensor([[1.0, 0, 1], [0, 1, 0]])).shape
    torch.Size([])
    """

    def __init__(self, class_counts: TensorLike, n_samples: int, *, alpha: float = 0.1,
                 beta: float = 10.0, mu: float = 0.2, kappa: float = 0.05,
                 neg_scale: float = 2.0, ref_cardinality: float | None = 2.9,
                 pos_weight: TensorLike | None = None, reduction: str = "mean",
                 sample_reduction: str = "mean", validate: bool = True) -> None:
        super().__init__(pos_weight, reduction, sample_reduction, validate)
        counts = _as_real_tensor(class_counts, "class_counts", torch.float32, None
                                 ).detach().clone()
        if counts.dim() != 1 or counts.shape[0] == 0:
            raise ValueError(f"class_counts must have shape [C], got {tuple(counts.shape)}")
        _check_vector(counts, "class_counts")
        self.register_buffer("class_counts", counts, persistent=False)
        n_samples, params = _db_params(n_samples, alpha, beta, mu, kappa, neg_scale,
                                       ref_cardinality)
        self.n_samples = n_samples
        self.params = dict(zip(("alpha", "beta", "mu", "kappa", "neg_scale",
                                "ref_cardinality"), params))

    def forward(self, logits: Tensor, targets: Tensor, weight: TensorLike | None = None,
                reduction: str | None = None) -> Tensor:
        return distribution_balanced_loss(logits, targets, self.class_counts, self.n_samples,
                                          **self.params, **self._kwargs(weight, reduction))


class LogitAdjustedBCE(_LossModule):
    """Module form of :func:`logit_adjusted_bce` (prior kept as a buffer).

    Example
    -------
    >>> import torch
    >>> LogitAdjustedBCE([0.01, 0.2], tau=1.0)(torch.zeros(4, 2), torch.ones(4, 2)).shape
    torch.Size([])
    """

    def __init__(self, prior: TensorLike, tau: float = 1.0, pos_weight: TensorLike | None = None,
                 reduction: str = "mean", sample_reduction: str = "mean",
                 validate: bool = True) -> None:
        super().__init__(pos_weight, reduction, sample_reduction, validate)
        pi = _as_real_tensor(prior, "prior", torch.float64, None).detach().clone()
        if pi.dim() != 1 or pi.shape[0] == 0:
            raise ValueError(f"prior must have shape [C], got {tuple(pi.shape)}")
        _check_vector(pi, "prior", open_unit=True)
        pi32 = pi.to(torch.float32)  # the buffer's dtype: still in (0, 1) there?
        bad = ~((pi32 > 0) & (pi32 < 1))
        if bool(bad.any()):
            i = int(bad.nonzero()[0])
            raise ValueError(f"prior must be in (0, 1) in float32; {pi[i].item()!r} at label "
                             f"{i} rounds to {pi32[i].item()!r}")
        self.tau = _real(tau, "tau")
        _logit_adjustment(pi32, self.tau, torch.empty(1, pi.shape[0]))  # fits float32?
        self.register_buffer("prior", pi32, persistent=False)

    def forward(self, logits: Tensor, targets: Tensor, weight: TensorLike | None = None,
                reduction: str | None = None) -> Tensor:
        return logit_adjusted_bce(logits, targets, self.prior, self.tau,
                                  **self._kwargs(weight, reduction))


class HardNegativeLoss(_LossModule):
    """Module form of :func:`hard_negative_loss` (parameters checked when built).

    ``forward(logits, targets, weight=None, reduction=None)``; ``pos_weight`` is kept
    as a buffer (moves with ``.to()``), the other ``loss_kwargs`` (``alpha``,
    ``gamma``, ...) as they are; ``weight`` is given per call. A built-in ``loss``
    checks the names and hyper-parameters of ``loss_kwargs`` here.

    Example
    -------
    >>> import torch
    >>> crit = HardNegativeLoss("focal", negative_ratio=3.0, min_negatives=4, gamma=1.0)
    >>> crit  # doctest: +NORMALIZE_WHITESPACE
    HardNegativeLoss(loss='focal', negative_ratio=3.0, min_negatives=4, mode='topk',
      normalize='mask', loss_kwargs={'gamma': 1.0}, reduction='mean', sample_reduction='mean')
    >>> crit(torch.zeros(8, 3), torch.eye(8, 3)).shape
    torch.Size([])
    """

    def __init__(self, loss: Any = "bce", *, negative_ratio: float = 10.0,
                 min_negatives: int = 16, mode: str = "topk", temperature: float = 1.0,
                 generator: torch.Generator | None = None, normalize: str = "mask",
                 pos_weight: TensorLike | None = None, reduction: str = "mean",
                 sample_reduction: str = "mean", validate: bool = True,
                 **loss_kwargs: Any) -> None:
        super().__init__(pos_weight, reduction, sample_reduction, validate)
        _hn_loss_fn(loss)
        self.normalize = check_choice("normalize", normalize, _HN_NORMALIZE)
        ratio, min_neg, mode, temperature = _hn_params(negative_ratio, min_negatives, mode,
                                                       temperature, generator)
        if "weight" in loss_kwargs:
            raise TypeError("weight is per batch: pass it to forward(), not to "
                            "HardNegativeLoss()")
        _check_loss_kwargs(loss, loss_kwargs)
        self.loss = loss
        self.negative_ratio, self.min_negatives = ratio, min_neg
        self.mode, self.temperature, self.generator = mode, temperature, generator
        self.loss_kwargs = dict(loss_kwargs)

    def forward(self, logits: Tensor, targets: Tensor, weight: TensorLike | None = None,
                reduction: str | None = None) -> Tensor:
        kwargs = dict(self.loss_kwargs)
        if self.pos_weight is not None:
            kwargs["pos_weight"] = self.pos_weight
        if weight is not None:
            kwargs["weight"] = weight
        return hard_negative_loss(
            logits, targets, loss=self.loss, negative_ratio=self.negative_ratio,
            min_negatives=self.min_negatives, mode=self.mode, temperature=self.temperature,
            generator=self.generator, normalize=self.normalize,
            reduction=self.reduction if reduction is None else reduction,
            sample_reduction=self.sample_reduction, validate=self.validate, **kwargs)

    def extra_repr(self) -> str:
        name = self.loss if isinstance(self.loss, str) else getattr(
            self.loss, "__name__", type(self.loss).__name__)
        parts = [f"loss={name!r}", f"negative_ratio={self.negative_ratio}",
                 f"min_negatives={self.min_negatives}", f"mode={self.mode!r}"]
        if self.mode == "sample":
            parts.append(f"temperature={self.temperature}")
        parts.append(f"normalize={self.normalize!r}")
        if self.loss_kwargs:
            parts.append(f"loss_kwargs={self.loss_kwargs!r}")
        return ", ".join(parts) + ", " + super().extra_repr()
