"""Honest splits of multilabel data: iterative stratification, its report, scikit-learn
splitters and stratified batches.

Example
-------
>>> from longtail.samplers.split import iterative_stratification
>>> iterative_stratification([[0], [0], [1], [1]], [0.5, 0.5], seed=0).tolist()
[0, 1, 0, 1]
"""
from __future__ import annotations

from longtail._core.lazy import lazy_exports

_LAZY = {
    "iterative_stratification": "longtail.samplers.split.stratification",
    "stratification_report": "longtail.samplers.split.stratification",
    "StratificationReport": "longtail.samplers.split.stratification",
    "stratified_split": "longtail.samplers.split.splitters",
    "multilabel_train_test_split": "longtail.samplers.split.splitters",
    "MultilabelStratifiedKFold": "longtail.samplers.split.splitters",
    "RepeatedMultilabelStratifiedKFold": "longtail.samplers.split.splitters",
    "MultilabelStratifiedShuffleSplit": "longtail.samplers.split.splitters",
    "StratifiedBatchSampler": "longtail.samplers.split.batches",
}
__all__ = sorted(_LAZY)
__getattr__, __dir__ = lazy_exports(__name__, globals(), _LAZY)
