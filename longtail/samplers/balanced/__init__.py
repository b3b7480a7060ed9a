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

__getattr__, __dir__, __all__, _LAZY = lazy_exports(__name__, globals(), {
    "samplers": "WeightedSampler RepeatFactorSampler ClassAwareSampler "
                "with_sampled_labels sampled_labels",
})

# The lazily exported names, for static type checkers (mypy, pyright); never imported
# at run time. tests/test_typing_exports.py checks that they match __all__.
from typing import TYPE_CHECKING  # noqa: E402

if TYPE_CHECKING:
    from longtail.samplers.balanced.samplers import (
        ClassAwareSampler as ClassAwareSampler,
        RepeatFactorSampler as RepeatFactorSampler,
        sampled_labels as sampled_labels,
        WeightedSampler as WeightedSampler,
        with_sampled_labels as with_sampled_labels,
    )
