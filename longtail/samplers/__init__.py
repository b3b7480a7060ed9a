"""Multilabel-aware samplers, sample weights and iterative stratification.

Four capabilities, one subpackage each: :mod:`~longtail.samplers.weights` (per-example
weights), :mod:`~longtail.samplers.balanced` (weighted, repeat-factor, class-aware
samplers), :mod:`~longtail.samplers.split` (stratification, splitters, stratified
batches) and :mod:`~longtail.samplers.replay` (hard-example replay, sum tree).

Every sampler follows ``torch.utils.data.Sampler`` (or yields lists of indices when it is a
batch sampler), takes ``seed``, has ``set_epoch``, shards across ``torch.distributed``
ranks and resumes mid-epoch through ``state_dict`` / ``load_state_dict``.

Example
-------
>>> from longtail.samplers import WeightedSampler  # doctest: +SKIP
"""
from __future__ import annotations

from longtail._core.lazy import lazy_exports
from longtail.samplers.balanced import _LAZY as _BALANCED
from longtail.samplers.replay import _LAZY as _REPLAY
from longtail.samplers.split import _LAZY as _SPLIT
from longtail.samplers.weights import _LAZY as _WEIGHTS

# ExposureWarning is named here until longtail.samplers.balanced lists it in its own map
__getattr__, __dir__, __all__, _LAZY = lazy_exports(
    __name__, globals(), {"balanced.samplers": "ExposureWarning"},
    include=(_WEIGHTS, _BALANCED, _SPLIT, _REPLAY))

# The lazily exported names, for static type checkers (mypy, pyright); never imported
# at run time. tests/test_typing_exports.py checks that they match __all__.
from typing import TYPE_CHECKING  # noqa: E402

if TYPE_CHECKING:
    from longtail.samplers.balanced import (
        ClassAwareSampler as ClassAwareSampler,
        RepeatFactorSampler as RepeatFactorSampler,
        sampled_labels as sampled_labels,
        WeightedSampler as WeightedSampler,
        with_sampled_labels as with_sampled_labels,
    )
    from longtail.samplers.balanced.samplers import ExposureWarning as ExposureWarning
    from longtail.samplers.replay import (
        HardExampleSampler as HardExampleSampler,
        SumTree as SumTree,
    )
    from longtail.samplers.split import (
        iterative_stratification as iterative_stratification,
        load_split as load_split,
        multilabel_train_test_split as multilabel_train_test_split,
        MultilabelStratifiedKFold as MultilabelStratifiedKFold,
        MultilabelStratifiedShuffleSplit as MultilabelStratifiedShuffleSplit,
        RepeatedMultilabelStratifiedKFold as RepeatedMultilabelStratifiedKFold,
        save_split as save_split,
        Split as Split,
        stratification_report as stratification_report,
        StratificationReport as StratificationReport,
        stratified_split as stratified_split,
        StratifiedBatchSampler as StratifiedBatchSampler,
    )
    from longtail.samplers.weights import (
        exposure_report as exposure_report,
        ExposureReport as ExposureReport,
        sample_weights as sample_weights,
    )
