"""Honest splits of multilabel data: iterative stratification, its report, scikit-learn
splitters, stratified batches and split files (:func:`save_split`, :func:`load_split`).

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
    "split_file": "save_split load_split Split",
})

# The lazily exported names, for static type checkers (mypy, pyright); never imported
# at run time. tests/test_typing_exports.py checks that they match __all__.
from typing import TYPE_CHECKING  # noqa: E402

if TYPE_CHECKING:
    from longtail.samplers.split.batches import (
        StratifiedBatchSampler as StratifiedBatchSampler,
    )
    from longtail.samplers.split.report import (
        stratification_report as stratification_report,
        StratificationReport as StratificationReport,
    )
    from longtail.samplers.split.split_file import (
        load_split as load_split,
        save_split as save_split,
        Split as Split,
    )
    from longtail.samplers.split.splitters import (
        multilabel_train_test_split as multilabel_train_test_split,
        MultilabelStratifiedKFold as MultilabelStratifiedKFold,
        MultilabelStratifiedShuffleSplit as MultilabelStratifiedShuffleSplit,
        RepeatedMultilabelStratifiedKFold as RepeatedMultilabelStratifiedKFold,
        stratified_split as stratified_split,
    )
    from longtail.samplers.split.stratification import (
        iterative_stratification as iterative_stratification,
    )
