"""Multilabel-aware samplers, sample weights and iterative stratification.

Every sampler follows ``torch.utils.data.Sampler`` (or yields lists of indices when it is a
batch sampler), takes ``seed``, has ``set_epoch``, shards across ``torch.distributed``
ranks and resumes mid-epoch through ``state_dict`` / ``load_state_dict``.

Example
-------
>>> from longtail.samplers import WeightedSampler  # doctest: +SKIP
"""
from __future__ import annotations

from longtail._lazy import lazy_exports

_LAZY = {
    "sample_weights": "longtail.samplers.weights",
    "exposure_report": "longtail.samplers.weights",
    "ExposureReport": "longtail.samplers.weights",
    "WeightedSampler": "longtail.samplers.balanced",
    "RepeatFactorSampler": "longtail.samplers.balanced",
    "ClassAwareSampler": "longtail.samplers.balanced",
    "LabelledIndex": "longtail.samplers.balanced",
    "with_sampled_labels": "longtail.samplers.balanced",
    "sampled_labels": "longtail.samplers.balanced",
    "iterative_stratification": "longtail.samplers.stratification",
    "stratification_report": "longtail.samplers.stratification",
    "StratificationReport": "longtail.samplers.stratification",
    "stratified_split": "longtail.samplers.splitters",
    "multilabel_train_test_split": "longtail.samplers.splitters",
    "MultilabelStratifiedKFold": "longtail.samplers.splitters",
    "RepeatedMultilabelStratifiedKFold": "longtail.samplers.splitters",
    "MultilabelStratifiedShuffleSplit": "longtail.samplers.splitters",
    "StratifiedBatchSampler": "longtail.samplers.stratified_batch",
    "HardExampleSampler": "longtail.samplers.replay",
    "SumTree": "longtail.samplers.sumtree",
}
__all__ = sorted(_LAZY)
__getattr__, __dir__ = lazy_exports(__name__, globals(), _LAZY)
