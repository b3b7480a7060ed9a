"""Samplers that rebalance multilabel data: weighted, repeat-factor and class-aware.

Example
-------
>>> from longtail.samplers.balanced import RepeatFactorSampler
>>> sampler = RepeatFactorSampler([[0], [0], [0], [1]], threshold=0.5, seed=0)
>>> sorted(sampler)  # the rare example 3 is repeated
[0, 1, 2, 3, 3]
"""
from __future__ import annotations

from longtail._core.lazy import lazy_exports

_LAZY = {
    "WeightedSampler": "longtail.samplers.balanced.samplers",
    "RepeatFactorSampler": "longtail.samplers.balanced.samplers",
    "ClassAwareSampler": "longtail.samplers.balanced.samplers",
    "LabelledIndex": "longtail.samplers.balanced.samplers",
    "with_sampled_labels": "longtail.samplers.balanced.samplers",
    "sampled_labels": "longtail.samplers.balanced.samplers",
}
__all__ = sorted(_LAZY)
__getattr__, __dir__ = lazy_exports(__name__, globals(), _LAZY)
