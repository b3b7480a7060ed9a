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
    "label_matrix": "LabelMatrix LabelStats",
    "arrow_dataset": "ArrowDataset BatchedSamples",
    "index_batch": "IndexBatch ExtrasDataset with_extras collate_with_extras",
    "synthetic": "make_long_tail LongTailData DenseOracle PRESETS",
    "dataset_file": "write_dataset", "io": "read_features",
})
