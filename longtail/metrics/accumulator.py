"""Collect validation batches, then compute every metric at once.

Example
-------
>>> import numpy as np
>>> acc = MetricAccumulator(k=1)
>>> acc.update(np.array([[2.0, -1.0], [0.5, 1.0]]), np.array([[1, 0], [0, 1]]))
>>> acc.n_samples, acc.compute()["ap_macro"]
(2, 1.0)
"""
from __future__ import annotations

import warnings
from typing import Any, Sequence

import numpy as np

from longtail._core.checks import check_choice, freeze
from longtail.datasets import LabelMatrix
from longtail.metrics._inputs import ArrayLike, as_labels, score_bits
from longtail.metrics.counts import check_bucket_counts, prediction_ratio
from longtail.metrics.ranking import average_precision, check_k, precision_at_k
from longtail.metrics.thresholds import (
    OBJECTIVES,
    apply_thresholds,
    check_pos_weight,
    check_thresholds,
    remove_pos_weight_shift,
    tune_thresholds,
)

__all__ = ["MetricAccumulator"]


class MetricAccumulator:
    """Collect validation batches, then compute all metrics at once.

    Scores are stored as float32 (``n x C x 4`` bytes), targets as CSR.

    Parameters
    ----------
    k : int or sequence of int
        For precision at k.
    threshold : float or array [C]
        Decision threshold on the (shift-corrected) scores for the prediction ratio;
        0.0 suits logits, 0.5 probabilities.
    pos_weight : array or tensor [C], optional
        If the model was trained with BCE ``pos_weight``, its logits are corrected with
        :func:`~longtail.metrics.remove_pos_weight_shift` before every metric (macro AP
        is unaffected, micro AP and the prediction ratio are).
    bucket_counts : array [C], optional
        Counts defining head/medium/tail buckets (default: validation counts).

    Example
    -------
    >>> import numpy as np
    >>> acc = MetricAccumulator(k=1)
    >>> acc.update(np.array([[2.0, -1.0]]), np.array([[1, 0]]))
    >>> acc.update(np.array([[-3.0, 0.5]]), np.array([[0, 1]]))
    >>> m = acc.compute()
    >>> m["ap_macro"], m["precision_at_k"], m["prediction_ratio"].overall
    (1.0, {1: 1.0}, 1.0)
    """

    def __init__(self, *, k: int | Sequence[int] = (1, 3, 5), threshold: Any = 0.0,
                 pos_weight: Any = None, bucket_counts: Any = None) -> None:
        # everything is checked here; what needs the number of labels C is checked as
        # soon as C is known: here if a per-label argument gives it, else at update()
        check_k(k, None)
        thr = check_thresholds(threshold, None, "threshold")
        pw = None if pos_weight is None else check_pos_weight(pos_weight)
        bc = None if bucket_counts is None else check_bucket_counts(bucket_counts, None)
        widths = {name: v.shape[0] for name, v in
                  (("threshold", thr), ("pos_weight", pw), ("bucket_counts", bc))
                  if v is not None and v.ndim == 1}
        if len(set(widths.values())) > 1:
            raise ValueError("per-label arguments disagree on the number of labels: " +
                             ", ".join(f"{name} has {w}" for name, w in widths.items()))
        self._width: tuple[str, int] | None = next(iter(widths.items()), None)
        if self._width is not None:
            try:
                check_k(k, self._width[1])
            except ValueError as exc:
                raise ValueError(f"{exc}; {self._width[0]} has {self._width[1]} labels"
                                 ) from None
        self.k = k
        self.threshold = threshold if thr.ndim == 0 else thr
        self.pos_weight = pw
        self.bucket_counts = bc
        self.reset()

    def reset(self) -> None:
        """Forget all collected batches."""
        self._scores: list[np.ndarray] = []
        self._indices: list[np.ndarray] = []
        self._row_nnz: list[np.ndarray] = []
        self._labels: LabelMatrix | None = None
        self._n = 0
        self._n_labels: int | None = None

    @property
    def n_samples(self) -> int:
        """Number of examples collected so far."""
        return self._n

    def update(self, scores: ArrayLike, targets: Any) -> None:
        """Add a batch: scores ``[B, C]`` (tensor on any device or array), targets ``[B, C]``
        0/1 or a LabelMatrix of B rows.

        Everything is checked before anything is stored: a rejected batch leaves the
        accumulator as it was.
        """
        bits = score_bits(scores)
        b, c = bits.shape
        if self._n_labels is None:
            if self._width is not None and c != self._width[1]:
                raise ValueError(f"scores have {c} labels but {self._width[0]} has "
                                 f"{self._width[1]}")
            check_k(self.k, c)
        elif c != self._n_labels:
            raise ValueError(f"scores have {c} labels but earlier batches had {self._n_labels}")
        labels = as_labels(targets, b, c)
        self._scores.append(np.array(bits.view(np.float32), copy=True))
        self._indices.append(labels.indices)  # immutable: kept without a copy
        self._row_nnz.append(labels.row_lengths())
        self._labels = None
        self._n += b
        self._n_labels = c

    def _collect(self) -> tuple[np.ndarray, LabelMatrix]:
        if self._n == 0:
            raise ValueError("MetricAccumulator is empty: call update() first")
        if len(self._scores) > 1:
            out = np.empty((self._n, self._n_labels), dtype=np.float32)
            r = 0
            batches, self._scores = self._scores[::-1], []
            while batches:  # free each batch as soon as it is copied
                s = batches.pop()
                out[r:r + s.shape[0]] = s
                r += s.shape[0]
            self._scores = [out]
            self._indices = [freeze(np.concatenate(self._indices))]
            self._row_nnz = [np.concatenate(self._row_nnz)]
        if self._labels is None:
            offsets = np.zeros(self._n + 1, dtype=np.int64)
            np.cumsum(self._row_nnz[0], out=offsets[1:])
            self._labels = LabelMatrix(freeze(offsets), self._indices[0], self._n_labels)
        scores = self._scores[0]
        if self.pos_weight is not None:
            scores = remove_pos_weight_shift(scores, self.pos_weight)
        return scores, self._labels

    def compute(self) -> dict[str, Any]:
        """All metrics over the collected examples.

        Returns
        -------
        dict with ``n_samples``, ``ap_macro``, ``ap_micro``, ``ap_per_label`` (array),
        ``precision_at_k`` (dict), ``prediction_ratio``
        (:class:`~longtail.metrics.PredictionRatio` at ``threshold``) and
        ``label_counts`` (true counts).
        """
        scores, targets = self._collect()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)
            per_label = average_precision(targets, scores, average=None)
            micro = average_precision(targets, scores, average="micro")
        ks, scalar = check_k(self.k, self._n_labels)
        p_at_k = precision_at_k(targets, scores, k=[int(v) for v in ks])
        preds = apply_thresholds(scores, self.threshold)
        ratio = prediction_ratio(targets, preds, bucket_counts=self.bucket_counts)
        return {
            "n_samples": self._n,
            "ap_macro": float(per_label.mean()),
            "ap_micro": micro,
            "ap_per_label": per_label,
            "precision_at_k": p_at_k,
            "prediction_ratio": ratio,
            "label_counts": ratio.true_counts,
        }

    def tune_thresholds(self, objective: str = "f1") -> np.ndarray:
        """:func:`~longtail.metrics.tune_thresholds` on the collected (shift-corrected)
        scores."""
        check_choice("objective", objective, OBJECTIVES)
        scores, targets = self._collect()
        return tune_thresholds(targets, scores, objective)
