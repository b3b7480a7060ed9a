"""Metrics for imbalanced multilabel validation: AUPRC, precision@k, calibration.

Scores are a dense ``[n, C]`` array (numpy or torch, any float dtype, logits or
probabilities); targets are a dense 0/1 array of the same shape (numpy or torch, bool,
integer or float, or a list of 0/1 rows), a :class:`~longtail.datasets.LabelMatrix`
(or anything with CSR ``offsets`` / ``indices`` and ``n_labels``) or a scipy sparse 0/1
matrix. Every target becomes a LabelMatrix first (:meth:`LabelMatrix.from_any` for
dense input).

Modules: :mod:`~longtail.metrics.ranking` (:func:`average_precision`,
:func:`precision_at_k`, :func:`propensity_scored_precision_at_k`,
:func:`label_propensities`), :mod:`~longtail.metrics.thresholds` (:func:`tune_thresholds`,
:func:`apply_thresholds`, :func:`remove_pos_weight_shift`),
:mod:`~longtail.metrics.counts` (:func:`prediction_ratio`, :class:`PredictionRatio`),
:mod:`~longtail.metrics.accumulator` (:class:`MetricAccumulator`); every name is also
importable from ``longtail.metrics`` (loaded on first use).

Conventions
-----------
* Scores are compared as **float32** (they are converted once at the boundary, so each
  Numba kernel compiles once). Float64 scores that differ only beyond float32 precision
  count as ties. NaN scores are rejected; ``+-inf`` are allowed.
* :func:`average_precision` equals scikit-learn's ``average_precision_score`` (the
  non-interpolated step integral ``sum_n (R_n - R_{n-1}) P_n`` with precision taken at
  distinct thresholds, so ties count exactly as there). A label without positives gets
  AP 0, as the installed scikit-learn 1.9.1 does (it warns "No positive class found in
  y_true, recall is set to one for all thresholds" and returns 0; this value has
  differed between scikit-learn versions); we warn once per call with the number of
  such labels, and the macro average includes them (the plain mean over all labels, as
  scikit-learn's). Average ``average_precision(..., average=None)[counts > 0]``
  yourself to leave them out.
* Inputs are untrusted: every CSR target (LabelMatrix, any object with ``offsets`` /
  ``indices``, scipy sparse) goes through :func:`longtail._core.checks.check_csr` (offsets
  first, then ids on their own dtype, then sorted/unique rows) and every other array is
  checked for dtype, shape and NaN before a Numba kernel sees it; errors name the
  argument, the value and the first position.
* Work is done in column blocks (per label) or row chunks (micro), so an 80,000 x 7,900
  score matrix needs only small extra memory beyond itself.

Example
-------
>>> import numpy as np
>>> from longtail.metrics import average_precision, precision_at_k
>>> y = np.array([[1, 0], [0, 1], [1, 1]])
>>> s = np.array([[0.9, 0.2], [0.3, 0.8], [0.5, 0.1]], dtype=np.float32)
>>> round(average_precision(y, s), 6)
0.916667
>>> precision_at_k(y, s, k=1)
1.0
"""
from __future__ import annotations

from longtail._core.lazy import lazy_exports

__getattr__, __dir__, __all__, _LAZY = lazy_exports(__name__, globals(), {
    "ranking": "average_precision precision_at_k propensity_scored_precision_at_k "
               "label_propensities",
    "thresholds": "tune_thresholds apply_thresholds remove_pos_weight_shift",
    "counts": "PredictionRatio prediction_ratio",
    "accumulator": "MetricAccumulator",
})

# The lazily exported names, for static type checkers (mypy, pyright); never imported
# at run time. tests/test_typing_exports.py checks that they match __all__.
from typing import TYPE_CHECKING  # noqa: E402

if TYPE_CHECKING:
    from longtail.metrics.accumulator import MetricAccumulator as MetricAccumulator
    from longtail.metrics.counts import (
        prediction_ratio as prediction_ratio,
        PredictionRatio as PredictionRatio,
    )
    from longtail.metrics.ranking import (
        average_precision as average_precision,
        label_propensities as label_propensities,
        precision_at_k as precision_at_k,
        propensity_scored_precision_at_k as propensity_scored_precision_at_k,
    )
    from longtail.metrics.thresholds import (
        apply_thresholds as apply_thresholds,
        remove_pos_weight_shift as remove_pos_weight_shift,
        tune_thresholds as tune_thresholds,
    )
