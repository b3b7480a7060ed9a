"""Decisions from scores: per-label thresholds tuned on validation data, applied, and
the calibration shift of ``pos_weight`` undone.

Example
-------
>>> import numpy as np
>>> y = np.array([[1], [0], [1], [0]])
>>> s = np.array([[0.9], [0.8], [0.7], [0.1]], dtype=np.float32)  # compared as float32
>>> thr = tune_thresholds(y, s, "match_count")
>>> apply_thresholds(s, thr).ravel().tolist()
[True, True, False, False]
"""
from __future__ import annotations

from typing import Any

import numpy as np

from longtail._core.checks import check_choice
from longtail.metrics import _kernels as _k
from longtail.metrics._blocks import decode_keys, for_each_block, positives
from longtail.metrics._inputs import (
    ArrayLike,
    as_labels,
    first_true,
    is_torch,
    real_array,
    score_bits,
    tensor_or_array,
    torch_module,
)
from longtail.metrics.ranking import check_n_jobs

__all__ = ["tune_thresholds", "apply_thresholds", "remove_pos_weight_shift"]

OBJECTIVES = ("f1", "match_count")


def tune_thresholds(targets: Any, scores: ArrayLike, objective: str = "f1", *,
                    n_jobs: int = 1) -> np.ndarray:
    """Per-label decision thresholds tuned on a validation set.

    Predict label ``c`` when ``score >= threshold[c]`` (see :func:`apply_thresholds`).

    Parameters
    ----------
    targets : array or tensor [n, C] of 0/1, LabelMatrix or scipy sparse
    scores : array or tensor [n, C]
    objective : {"f1", "match_count"}
        ``"f1"``: maximise each label's F1 on this set (the threshold is the score of a
        positive; among equal F1 the highest threshold). ``"match_count"``: make each
        label's predicted count as close as possible to its true count (ratio 1), the
        score at rank ``P``; under ties the nearer of the two candidate counts, a draw
        predicting at least ``P``.
    n_jobs : int
        Threads (opt-in), as in :func:`~longtail.metrics.average_precision`.

    Returns
    -------
    numpy.ndarray
        float64 ``[C]``; ``+inf`` (never predict) for labels without positives. The
        values are float32 scores, so the comparison is exact on float32 scores.

    Example
    -------
    >>> import numpy as np
    >>> y = np.array([[1], [0], [1], [0]])
    >>> s = np.array([[0.9], [0.8], [0.7], [0.1]])
    >>> tune_thresholds(y, s, "match_count").round(6).tolist()
    [0.8]
    """
    check_choice("objective", objective, OBJECTIVES)
    n_jobs = check_n_jobs(n_jobs)
    bits = score_bits(scores, check_nan=False)
    labels = as_labels(targets, *bits.shape)
    pos64, col_off = positives(bits, labels)
    keys_out = np.empty(bits.shape[1], dtype=np.int64)
    aux = np.empty(bits.shape[1], dtype=np.float64 if objective == "f1" else np.int64)

    if objective == "f1":
        def fn(c0, c1, keys):
            _k.block_f1_thresholds(keys, c0, pos64, col_off, keys_out[c0:c1], aux[c0:c1])
    else:
        def fn(c0, c1, keys):
            _k.block_count_thresholds(keys, c0, col_off, keys_out[c0:c1], aux[c0:c1])

    for_each_block(bits, fn, n_jobs)
    return decode_keys(keys_out)


def check_thresholds(thresholds: Any, n_labels: int | None, name: str = "thresholds"
                     ) -> np.ndarray:
    """Thresholds as float64, a scalar or ``[C]``; real, no NaN (``+-inf`` allowed)."""
    thr = real_array(thresholds, name)
    if thr.ndim > 1 or (thr.ndim == 1 and n_labels is not None and thr.shape[0] != n_labels):
        want = n_labels if n_labels is not None else "C"
        raise ValueError(f"{name} must be a scalar or have shape ({want},), got {thr.shape}")
    nan = np.isnan(thr)
    if nan.any():
        where = f" at label {int(np.flatnonzero(nan.reshape(-1))[0])}" if thr.ndim else ""
        raise ValueError(f"{name} contain NaN{where}" if name == "thresholds" else
                         f"{name} is NaN{where}")
    return thr


def apply_thresholds(scores: ArrayLike, thresholds: Any) -> ArrayLike:
    """Binary predictions ``scores >= thresholds`` (per label; ``+inf`` never fires).

    Returns a bool tensor for a tensor input, else a bool numpy array. Scores must be
    real numbers without NaN (a NaN would silently predict nothing).

    Example
    -------
    >>> import numpy as np
    >>> apply_thresholds(np.array([[0.2, 0.9]]), np.array([0.1, np.inf])).tolist()
    [[True, False]]
    """
    thr = check_thresholds(thresholds, None)
    scores, shape = tensor_or_array(scores, "scores")
    if not shape:
        raise ValueError("scores must have shape [..., C], got a scalar")
    check_thresholds(thr, shape[-1])
    if is_torch(scores):
        torch = torch_module()
        # compare in float64 (MPS has none): thresholds from tune_thresholds are exact
        # float32 values and scores are widened exactly
        dt = torch.float32 if scores.device.type == "mps" else torch.float64
        s = scores.detach().to(dt)
        if s.is_floating_point() and bool(torch.isnan(s).any()):
            pos = tuple(int(i) for i in torch.isnan(s).nonzero()[0].tolist())
            raise ValueError(f"scores contain NaN at {list(pos)}")
        return s >= torch.as_tensor(thr, dtype=dt, device=scores.device)
    if scores.dtype.kind == "f":
        nan = np.isnan(scores)
        if nan.any():
            raise ValueError(f"scores contain NaN at {first_true(nan)}")
    return scores >= thr


def remove_pos_weight_shift(logits: ArrayLike, pos_weight: Any) -> ArrayLike:
    """Undo the calibration shift of BCE trained with ``pos_weight``: ``logit - log w_c``.

    BCE with weight ``w`` on positives is minimised at ``logit(p) + log w``, so with
    ``w = neg/pos`` the 0.5 threshold fires whenever the posterior exceeds the base
    rate (with ``w = neg/pos`` the model predicted 11-12x the true number of labels on
    the seed shape, 10x on the ``medium`` preset: ``benchmarks/README.md``, "Recipe
    comparison"). Subtracting ``log w_c`` restores calibrated logits;
    a per-label shift leaves each label's ranking, hence macro AP, unchanged (micro AP
    changes: it compares labels).

    Parameters
    ----------
    logits : tensor or array [..., C]
        Real numbers (a NaN stays NaN). Integer arrays give float64; tensors must be
        floating point.
    pos_weight : tensor, array or float, shape [C] or scalar, all > 0 and finite

    Returns
    -------
    Same kind as ``logits`` (torch keeps its dtype and device).

    Example
    -------
    >>> import numpy as np
    >>> remove_pos_weight_shift(np.array([[0.0, 1.0]]), np.array([1.0, np.e])).tolist()
    [[0.0, 0.0]]
    """
    w = check_pos_weight(pos_weight)
    logits, shape = tensor_or_array(logits, "logits", floating=True)
    n_labels = shape[-1] if shape else None
    if w.ndim == 1 and w.shape[0] != n_labels:
        raise ValueError(
            f"pos_weight has shape {w.shape} but logits have {n_labels} labels "
            f"(shape {shape})")
    shift = np.log(w)
    if is_torch(logits):
        torch = torch_module()
        return logits - torch.as_tensor(shift, dtype=logits.dtype, device=logits.device)
    return logits - shift.astype(logits.dtype) if logits.dtype.kind == "f" else logits - shift


def check_pos_weight(pos_weight: Any) -> np.ndarray:
    """``pos_weight`` as float64, a scalar or 1-D, every entry positive and finite."""
    w = real_array(pos_weight, "pos_weight")
    if w.ndim > 1:
        raise ValueError(f"pos_weight must be a scalar or 1-D, got shape {w.shape}")
    if w.ndim == 1 and w.shape[0] == 0:
        raise ValueError("pos_weight is empty")
    bad = ~(np.isfinite(w) & (w > 0))
    if bad.any():
        i = int(np.flatnonzero(bad.reshape(-1))[0])
        raise ValueError(
            f"pos_weight must be positive and finite; got {w.reshape(-1)[i].item()!r} at label {i}")
    return w
