"""longtail: sampling, splits, losses and metrics for long-tailed multilabel training.

Public names are imported lazily, so ``import longtail`` stays fast (no torch, no Numba
compilation) until a name is used.

Example
-------
>>> import longtail
>>> labels = longtail.LabelMatrix.from_lists([[0, 2], [1], [2]])
>>> labels.label_counts().tolist()
[1, 1, 2]
"""
from __future__ import annotations

from typing import Any

__version__ = "0.1.0"

# public name -> module that defines it
_LAZY: dict[str, str] = {
    # datasets
    "LabelMatrix": "longtail.datasets.label_matrix",
    "LabelStats": "longtail.datasets.label_matrix",
    "ArrowDataset": "longtail.datasets.arrow_dataset",
    "make_long_tail": "longtail.datasets.synthetic",
    "write_dataset": "longtail.datasets.io",
    # sample weights and balancing samplers
    "sample_weights": "longtail.samplers.weights",
    "exposure_report": "longtail.samplers.weights",
    "WeightedSampler": "longtail.samplers.balanced",
    "RepeatFactorSampler": "longtail.samplers.balanced",
    "ClassAwareSampler": "longtail.samplers.balanced",
    "LabelledIndex": "longtail.samplers.balanced",
    "with_sampled_labels": "longtail.samplers.balanced",
    "sampled_labels": "longtail.samplers.balanced",
    # stratification
    "iterative_stratification": "longtail.samplers.stratification",
    "stratification_report": "longtail.samplers.stratification",
    "stratified_split": "longtail.samplers.splitters",
    "multilabel_train_test_split": "longtail.samplers.splitters",
    "MultilabelStratifiedKFold": "longtail.samplers.splitters",
    "RepeatedMultilabelStratifiedKFold": "longtail.samplers.splitters",
    "MultilabelStratifiedShuffleSplit": "longtail.samplers.splitters",
    "StratifiedBatchSampler": "longtail.samplers.stratified_batch",
    # hard-example replay
    "HardExampleSampler": "longtail.samplers.replay",
    # submodules
    "losses": "longtail.losses",
    "metrics": "longtail.metrics",
    "datasets": "longtail.datasets",
    "samplers": "longtail.samplers",
}

__all__ = sorted(_LAZY)

from longtail._lazy import lazy_exports  # noqa: E402

__getattr__, __dir__ = lazy_exports(__name__, globals(), _LAZY)
