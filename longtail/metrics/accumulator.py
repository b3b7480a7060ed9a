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
from longtail.metrics._inputs import (ArrayLike, as_labels, as_matrix, is_torch, score_bits,
                                      torch_module)
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

    Scores are stored as float32 (``n x C x 4`` bytes), targets as CSR. If the first
    batch's scores are a CUDA tensor (any device but the CPU and MPS, which lacks
    float64), scores stay on that device: batches are concatenated there and the average
    precisions are computed there (``ap_macro``, ``ap_micro``, ``ap_per_label``, equal
    to the host values to float64 rounding); only the other metrics read a host copy.
    Dense 0/1 target tensors there are checked there; only their positions come to the
    host.

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
        self._device = None  # the torch device holding the scores, None for the host

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
        device = self._device
        if self._n == 0 and _keeps_device(scores):
            device = scores.device
        if device is None:
            bits = score_bits(scores)
            b, c = bits.shape
            self._check_width(c)
            labels = as_labels(targets, b, c)
            stored = np.array(bits.view(np.float32), copy=True)
        else:
            stored, labels = _device_batch(scores, targets, device, self._check_width)
            b, c = stored.shape
        self._scores.append(stored)
        self._indices.append(labels.indices)  # immutable: kept without a copy
        self._row_nnz.append(labels.row_lengths())
        self._labels = None
        self._n += b
        self._n_labels = c
        self._device = device

    def _check_width(self, c: int) -> None:
        """The number of labels ``c`` of a new batch against the arguments and earlier batches."""
        if self._n_labels is None:
            if self._width is not None and c != self._width[1]:
                raise ValueError(f"scores have {c} labels but {self._width[0]} has "
                                 f"{self._width[1]}")
            check_k(self.k, c)
        elif c != self._n_labels:
            raise ValueError(f"scores have {c} labels but earlier batches had {self._n_labels}")

    def _collect(self) -> tuple[np.ndarray, LabelMatrix]:
        if self._n == 0:
            raise ValueError("MetricAccumulator is empty: call update() first")
        if len(self._scores) > 1:
            if self._device is None:
                out = np.empty((self._n, self._n_labels), dtype=np.float32)
            else:
                out = torch_module().empty((self._n, self._n_labels),
                                           dtype=torch_module().float32, device=self._device)
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
            if self._device is None:
                per_label = average_precision(targets, scores, average=None)
                micro = average_precision(targets, scores, average="micro")
            else:  # where the scores are; the other metrics read a host copy
                from longtail.metrics._torch_ap import average_precision_torch

                per_label = average_precision_torch(targets, scores, average=None)
                micro = average_precision_torch(targets, scores, average="micro")
                scores = scores.cpu().numpy()
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


def _keeps_device(scores: Any) -> bool:
    """Whether a first batch's scores keep the accumulator on their device: a torch
    tensor neither on the CPU nor on MPS (no float64 there)."""
    return is_torch(scores) and scores.device.type not in ("cpu", "mps")


def _device_batch(scores: Any, targets: Any, device: Any, check_width: Any
                  ) -> tuple[Any, LabelMatrix]:
    """A batch checked as :meth:`MetricAccumulator.update` checks it, for storage on
    ``device``: ``(float32 scores [B, C] there, targets as a LabelMatrix)``.

    Scores on another device (or numpy) are checked on the host and copied there. Values
    are checked on ``device`` (one synchronisation); on a bad value the host checks run on
    a host copy, so errors and their order are the host path's.
    """
    torch = torch_module()
    if not is_torch(scores) or scores.device != device:
        bits = score_bits(scores)
        check_width(bits.shape[1])
        labels = as_labels(targets, *bits.shape)
        return torch.from_numpy(np.array(bits.view(np.float32))).to(device), labels
    if scores.layout != torch.strided or scores.is_complex():
        score_bits(scores)  # the host path's TypeError
    s = as_matrix(scores.detach(), "scores", nonempty=True)
    b, c = s.shape
    s32 = s.to(torch.float32, copy=True)
    flags = [torch.zeros((), dtype=torch.bool, device=device)] * 3  # NaN, overflow, targets
    if s.is_floating_point():
        flags[0] = torch.isnan(s32).any()
        if s.dtype == torch.float64:
            flags[1] = (torch.isinf(s32) & torch.isfinite(s)).any()
    hit = None
    shapes = [(b, c)] + ([(b,)] if c == 1 else [])
    if (is_torch(targets) and tuple(targets.shape) in shapes  # else the host coercion
            and targets.layout == torch.strided and not targets.is_complex()):
        t = targets.detach().reshape(b, c).to(device)
        hit = t if t.dtype == torch.bool else t != 0
        if t.dtype != torch.bool:
            flags[2] = (hit & (t != 1)).any()
    nan, over, bad = torch.stack(flags).tolist()
    if nan or over:
        score_bits(scores)  # raises the host path's error
    check_width(c)
    if hit is None or bad:
        return s32, as_labels(targets, b, c)  # the host coercion, with its errors
    where = hit.nonzero().cpu().numpy()
    offsets = np.zeros(b + 1, dtype=np.int64)
    np.cumsum(np.bincount(where[:, 0], minlength=b), out=offsets[1:])
    return s32, LabelMatrix(offsets, where[:, 1].astype(np.int32), c)
