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


__version__ = "0.1.0"

from longtail._core.compile_notice import install as _compile_notice  # noqa: E402
from longtail._core.lazy import lazy_exports  # noqa: E402  (no heavy imports)
from longtail.datasets import _LAZY as _DATASETS  # noqa: E402
from longtail.samplers import _LAZY as _SAMPLERS  # noqa: E402

# one line on stderr the first time a kernel compiles (LONGTAIL_QUIET=1 hides it)
_compile_notice()

# everything the subpackages export, plus the modules themselves
__getattr__, __dir__, __all__, _LAZY = lazy_exports(
    __name__, globals(), {"losses": "losses", "metrics": "metrics", "datasets": "datasets",
                          "samplers": "samplers"}, include=(_DATASETS, _SAMPLERS))

# The lazily exported names, for static type checkers (mypy, pyright); never imported
# at run time. tests/test_typing_exports.py checks that they match __all__.
from typing import TYPE_CHECKING  # noqa: E402

if TYPE_CHECKING:
    from longtail import (
        datasets as datasets,
        losses as losses,
        metrics as metrics,
        samplers as samplers,
    )
    from longtail.datasets import (
        ArrowDataset as ArrowDataset,
        BatchedSamples as BatchedSamples,
        collate_with_extras as collate_with_extras,
        DenseOracle as DenseOracle,
        ExtrasDataset as ExtrasDataset,
        HFDataset as HFDataset,
        hf_collate as hf_collate,
        IndexBatch as IndexBatch,
        LabelMatrix as LabelMatrix,
        LabelStats as LabelStats,
        LongTailData as LongTailData,
        make_long_tail as make_long_tail,
        MultilabelDataset as MultilabelDataset,
        PRESETS as PRESETS,
        read_features as read_features,
        SparseLabels as SparseLabels,
        UnsortedLabelsWarning as UnsortedLabelsWarning,
        with_extras as with_extras,
        write_dataset as write_dataset,
    )
    from longtail.samplers import (
        ClassAwareSampler as ClassAwareSampler,
        ExposureWarning as ExposureWarning,
        exposure_report as exposure_report,
        ExposureReport as ExposureReport,
        HardExampleSampler as HardExampleSampler,
        iterative_stratification as iterative_stratification,
        load_split as load_split,
        multilabel_train_test_split as multilabel_train_test_split,
        MultilabelStratifiedKFold as MultilabelStratifiedKFold,
        MultilabelStratifiedShuffleSplit as MultilabelStratifiedShuffleSplit,
        RepeatedMultilabelStratifiedKFold as RepeatedMultilabelStratifiedKFold,
        RepeatFactorSampler as RepeatFactorSampler,
        sample_weights as sample_weights,
        sampled_labels as sampled_labels,
        save_split as save_split,
        Split as Split,
        stratification_report as stratification_report,
        StratificationReport as StratificationReport,
        stratified_split as stratified_split,
        StratifiedBatchSampler as StratifiedBatchSampler,
        SumTree as SumTree,
        WeightedSampler as WeightedSampler,
        with_sampled_labels as with_sampled_labels,
    )
