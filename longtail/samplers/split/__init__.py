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

__getattr__, __dir__, __all__, _LAZY = lazy_exports(__name__, globals(), {
    "stratification": "iterative_stratification",
    "report": "stratification_report StratificationReport",
    "splitters": "stratified_split multilabel_train_test_split MultilabelStratifiedKFold "
                 "RepeatedMultilabelStratifiedKFold MultilabelStratifiedShuffleSplit",
    "batches": "StratifiedBatchSampler",
})
