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

from longtail._core.lazy import lazy_exports  # noqa: E402  (no heavy imports)
from longtail.datasets import _LAZY as _DATASETS  # noqa: E402
from longtail.samplers import _LAZY as _SAMPLERS  # noqa: E402

# everything the subpackages export, plus the modules themselves
__getattr__, __dir__, __all__, _LAZY = lazy_exports(
    __name__, globals(), {"losses": "losses", "metrics": "metrics", "datasets": "datasets",
                          "samplers": "samplers"}, include=(_DATASETS, _SAMPLERS))
