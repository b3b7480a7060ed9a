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

from longtail._core.lazy import lazy_exports
from longtail.datasets import _LAZY as _DATASETS  # noqa: E402  (no heavy imports)
from longtail.samplers import _LAZY as _SAMPLERS  # noqa: E402

# public name -> module that defines it: everything the subpackages export, plus modules
_LAZY: dict[str, str] = {
    **_DATASETS,
    **_SAMPLERS,
    "losses": "longtail.losses",
    "metrics": "longtail.metrics",
    "datasets": "longtail.datasets",
    "samplers": "longtail.samplers",
}

__all__ = sorted(_LAZY)

__getattr__, __dir__ = lazy_exports(__name__, globals(), _LAZY)
