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

__getattr__, __dir__, __all__, _LAZY = lazy_exports(
    __name__, globals(), {}, include=(_WEIGHTS, _BALANCED, _SPLIT, _REPLAY))
