"""Label matrices, Arrow-backed datasets and the long-tail data generator.

Example
-------
>>> from longtail.datasets import LabelMatrix
>>> LabelMatrix.from_lists([[1], [0, 1]]).nnz
3
"""
from __future__ import annotations

from longtail._core.lazy import lazy_exports

_LAZY = {
    "LabelMatrix": "longtail.datasets.label_matrix",
    "LabelStats": "longtail.datasets.label_matrix",
    "ArrowDataset": "longtail.datasets.arrow_dataset",
    "BatchedSamples": "longtail.datasets.arrow_dataset",
    "IndexBatch": "longtail.datasets.index_batch",
    "ExtrasDataset": "longtail.datasets.index_batch",
    "with_extras": "longtail.datasets.index_batch",
    "collate_with_extras": "longtail.datasets.index_batch",
    "make_long_tail": "longtail.datasets.synthetic",
    "LongTailData": "longtail.datasets.synthetic",
    "PRESETS": "longtail.datasets.synthetic",
    "write_dataset": "longtail.datasets.io",
    "read_features": "longtail.datasets.io",
}
__all__ = sorted(_LAZY)
__getattr__, __dir__ = lazy_exports(__name__, globals(), _LAZY)
