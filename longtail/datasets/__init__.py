"""Label matrices, Arrow-backed datasets and the long-tail data generator.

Example
-------
>>> from longtail.datasets import LabelMatrix
>>> LabelMatrix.from_lists([[1], [0, 1]]).nnz
3
"""
from __future__ import annotations

from longtail._core.lazy import lazy_exports

__getattr__, __dir__, __all__, _LAZY = lazy_exports(__name__, globals(), {
    "label_matrix": "LabelMatrix LabelStats UnsortedLabelsWarning",
    "arrow_dataset": "ArrowDataset BatchedSamples",
    "memory_dataset": "MultilabelDataset", "hf": "HFDataset hf_collate",
    "index_batch": "IndexBatch ExtrasDataset with_extras collate_with_extras",
    "synthetic": "make_long_tail LongTailData DenseOracle PRESETS",
    "dataset_file": "write_dataset", "io": "read_features",
    "sparse_labels": "SparseLabels",
})

# The lazily exported names, for static type checkers (mypy, pyright); never imported
# at run time. tests/test_typing_exports.py checks that they match __all__.
from typing import TYPE_CHECKING  # noqa: E402

if TYPE_CHECKING:
    from longtail.datasets.arrow_dataset import (
        ArrowDataset as ArrowDataset,
        BatchedSamples as BatchedSamples,
    )
    from longtail.datasets.dataset_file import write_dataset as write_dataset
    from longtail.datasets.hf import HFDataset as HFDataset, hf_collate as hf_collate
    from longtail.datasets.index_batch import (
        collate_with_extras as collate_with_extras,
        ExtrasDataset as ExtrasDataset,
        IndexBatch as IndexBatch,
        with_extras as with_extras,
    )
    from longtail.datasets.io import read_features as read_features
    from longtail.datasets.label_matrix import (
        LabelMatrix as LabelMatrix,
        LabelStats as LabelStats,
        UnsortedLabelsWarning as UnsortedLabelsWarning,
    )
    from longtail.datasets.memory_dataset import MultilabelDataset as MultilabelDataset
    from longtail.datasets.sparse_labels import SparseLabels as SparseLabels
    from longtail.datasets.synthetic import (
        DenseOracle as DenseOracle,
        LongTailData as LongTailData,
        make_long_tail as make_long_tail,
        PRESETS as PRESETS,
    )
