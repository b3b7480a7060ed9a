"""How many labels a model predicts against how many are true: overall, per label and
per frequency bucket (head / medium / tail).

Example
-------
>>> import numpy as np
>>> prediction_ratio(np.array([[1, 0], [1, 1]]), np.array([[1, 1], [1, 1]])).overall
1.3333333333333333
"""
from __future__ import annotations

import dataclasses
import math
from typing import Any

import numpy as np

from longtail.metrics._inputs import as_labels, claimed_shape, real_array

__all__ = ["PredictionRatio", "prediction_ratio"]


@dataclasses.dataclass(frozen=True)
class PredictionRatio:
    """Predicted / true positive counts, overall, per label and per frequency bucket.

    Attributes
    ----------
    overall : float
        Total predicted positives / total true positives (1.0 is calibrated in count;
        a model trained with ``pos_weight = neg/pos`` showed 11-12 at 0.5 on the seed
        shape, 10 on the ``medium`` preset: ``benchmarks/README.md``).
    per_label : numpy.ndarray
        ``predicted_c / true_c`` (``inf`` where a label has predictions but no true
        positive, ``nan`` where it has neither).
    buckets : dict
        ``{"head": r, "medium": r, "tail": r}``: summed predicted / summed true counts
        over the labels of each bucket (``nan`` for a bucket without true positives).
    bucket : numpy.ndarray
        Bucket of each label: 0 head, 1 medium, 2 tail.
    predicted_counts, true_counts : numpy.ndarray
        int64 per-label counts.
    """

    overall: float
    per_label: np.ndarray
    buckets: dict[str, float]
    bucket: np.ndarray
    predicted_counts: np.ndarray
    true_counts: np.ndarray


_BUCKETS = ("head", "medium", "tail")


def _frequency_buckets(counts: np.ndarray) -> np.ndarray:
    order = np.argsort(-counts, kind="stable")
    bucket = np.empty(counts.shape[0], dtype=np.int8)
    for b, part in enumerate(np.array_split(order, 3)):
        bucket[part] = b
    return bucket


def _total_ratio(pred: int, true: int) -> float:
    """``pred / true``; ``inf`` for predictions without true positives, ``nan`` for none."""
    if true:
        return pred / true
    return math.nan if pred == 0 else math.inf


def check_bucket_counts(bucket_counts: Any, n_labels: int | None) -> np.ndarray:
    """Per-label counts ``[C]``: real, finite, non-negative."""
    bc = real_array(bucket_counts, "bucket_counts")
    if bc.ndim != 1 or (n_labels is not None and bc.shape[0] != n_labels):
        want = n_labels if n_labels is not None else "C"
        raise ValueError(f"bucket_counts must have shape ({want},), got {bc.shape}")
    bad = ~(np.isfinite(bc) & (bc >= 0))
    if bad.any():
        i = int(np.flatnonzero(bad)[0])
        raise ValueError(f"bucket_counts must be non-negative and finite; got "
                         f"{bc[i].item()!r} at label {i}")
    return bc


def prediction_ratio(targets: Any, predictions: Any, *, bucket_counts: Any = None
                     ) -> PredictionRatio:
    """How many labels the model predicts compared with how many are true.

    Bucket rule: labels are ranked by ``bucket_counts`` (default: their true counts in
    ``targets``; pass the training-set counts to bucket by training frequency),
    descending, ties by label id; the first third is "head", the next "medium", the
    last "tail" (``numpy.array_split`` of that order: sizes differ by at most one,
    earlier buckets get the extra labels).

    Parameters
    ----------
    targets : array or tensor [n, C] of 0/1, LabelMatrix or scipy sparse
    predictions : array or tensor [n, C] of 0/1 (bool), LabelMatrix or scipy sparse
        Binary predictions, e.g. ``apply_thresholds(scores, thresholds)``.
    bucket_counts : array [C], optional
        Per-label counts defining the buckets.

    Returns
    -------
    PredictionRatio

    Example
    -------
    >>> import numpy as np
    >>> y = np.array([[1, 0, 0], [1, 1, 0]])
    >>> p = np.array([[1, 1, 0], [1, 1, 1]])
    >>> r = prediction_ratio(y, p)
    >>> r.overall, r.per_label.tolist()
    (1.6666666666666667, [1.0, 2.0, inf])
    """
    p_n, p_labels, predictions = claimed_shape(predictions, "predictions")
    t_n, t_labels, targets = claimed_shape(targets, "targets")
    n = p_n if p_n is not None else t_n
    n_labels = p_labels if p_labels is not None else t_labels
    if n is None or n_labels is None:
        raise ValueError("prediction_ratio cannot tell the shape of predictions/targets: "
                         "give a LabelMatrix its n_labels")
    if n == 0 or n_labels == 0:
        raise ValueError(f"predictions is empty (shape ({n}, {n_labels}))")
    bc = None if bucket_counts is None else check_bucket_counts(bucket_counts, n_labels)
    pred = np.array(as_labels(predictions, n, n_labels, "predictions").label_counts())
    true = np.array(as_labels(targets, n, n_labels, "targets").label_counts())
    bucket = _frequency_buckets(true if bc is None else bc)
    buckets = {}
    for b, name in enumerate(_BUCKETS):
        m = bucket == b
        buckets[name] = _total_ratio(int(pred[m].sum()), int(true[m].sum()))
    with np.errstate(divide="ignore", invalid="ignore"):
        per_label = np.true_divide(pred, true).astype(np.float64)
    return PredictionRatio(overall=_total_ratio(int(pred.sum()), int(true.sum())),
                           per_label=per_label, buckets=buckets, bucket=bucket,
                           predicted_counts=pred, true_counts=true)
