"""The ``(x, y, index, extras)`` batch shared by the map-style datasets of this package.

:class:`~longtail.datasets.ArrowDataset`, :class:`~longtail.datasets.MultilabelDataset`
and :class:`~longtail.datasets.HFDataset` fetch a whole batch in ``__getitems__`` with
the helpers below and return it in a :class:`BatchedSamples`; :func:`collate_batch` is
their ``collate`` (one layout whatever the sampler).
"""
from __future__ import annotations

import operator
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
from torch.utils.data import default_collate

Batch = tuple[torch.Tensor, torch.Tensor, torch.Tensor, dict[str, torch.Tensor]]


class BatchedSamples(Sequence):
    """What the datasets' ``__getitems__`` return: a batch that is also a sequence.

    :attr:`batch` is the ready ``(x, y, index, extras)`` tuple, which the datasets'
    ``collate`` returns as it is. Indexing gives per-example ``(x, y, index, extras)``
    tuples (views, ``extras`` a dict of 0-d tensors), which is what ``default_collate``
    expects: it rebuilds the same four elements.

    Example
    -------
    >>> b = BatchedSamples((torch.zeros(2, 3), torch.ones(2, 4), torch.tensor([5, 7]), {}))
    >>> len(b), int(b[1][2]), collate_batch(b) is b.batch
    (2, 7, True)
    """

    __slots__ = ("batch",)

    def __init__(self, batch: tuple) -> None:
        self.batch = batch

    def __len__(self) -> int:
        return int(self.batch[2].shape[0])

    def __getitem__(self, i: int) -> tuple:  # type: ignore[override]
        if isinstance(i, slice):
            return [self[j] for j in range(*i.indices(len(self)))]
        x, y, index, extras = self.batch
        return x[i], y[i], index[i], {k: v[i] for k, v in extras.items()}


def one_index(index: Any, n: int) -> int:
    """A single example index (negatives wrap), as ``dataset[i]`` takes it.

    Example
    -------
    >>> one_index(-1, 10)
    9
    """
    i = operator.index(index)
    if i < 0:
        i += n
    if not 0 <= i < n:
        raise IndexError(f"index {index} is out of range for {n} examples")
    return i


def batch_indices(indices: Sequence[int], n: int) -> np.ndarray:
    """The indices of one batch as int64 (negatives wrap), each checked against ``n``.

    Example
    -------
    >>> batch_indices([3, -1], 5).tolist()
    [3, 4]
    """
    try:
        idx = np.fromiter((operator.index(i) for i in indices), dtype=np.int64,
                          count=len(indices))
    except OverflowError:
        big = next(i for i in indices if not -(1 << 63) <= operator.index(i) < (1 << 63))
        raise IndexError(f"index {operator.index(big)} is out of range for {n} "
                         "examples") from None
    idx[idx < 0] += n
    if idx.size and (idx.min() < 0 or idx.max() >= n):
        bad = int(np.flatnonzero((idx < 0) | (idx >= n))[0])
        raise IndexError(f"index {list(indices)[bad]} is out of range for {n} examples")
    return idx


def batch_extras(indices: Sequence[int], size: int) -> dict[str, torch.Tensor]:
    """``indices.extras`` (an :class:`~longtail.datasets.IndexBatch`'s per-index arrays)
    as tensors with one row per index; ``{}`` for a plain list.

    Example
    -------
    >>> from longtail.datasets import IndexBatch
    >>> batch_extras(IndexBatch([1, 2], {"w": np.array([0.5, 1.0])}), 2)["w"].tolist()
    [0.5, 1.0]
    """
    extras: dict[str, torch.Tensor] = {}
    for key, value in (getattr(indices, "extras", None) or {}).items():
        t = torch.as_tensor(np.asarray(value))
        if t.ndim == 0 or t.shape[0] != size:
            raise ValueError(f"extras[{key!r}] has shape {tuple(t.shape)}: expected one "
                             f"row per index of the batch ({size})")
        extras[key] = t
    return extras


def collate_batch(samples: Any) -> Batch:
    """Collate function: always ``(x, y, index, extras)``.

    The ready batch of ``__getitems__`` (a :class:`BatchedSamples`) is returned as it
    is; a list of single samples (``dataset[i]`` results) goes through
    ``default_collate`` and gets ``extras`` (the samples' ``extras`` as tensors when
    they carry some, else ``{}``).

    Example
    -------
    >>> x, y, idx, extras = collate_batch([(torch.zeros(2), torch.ones(3), 4)])
    >>> tuple(x.shape), tuple(y.shape), idx.tolist(), extras
    ((1, 2), (1, 3), [4], {})
    """
    if isinstance(samples, BatchedSamples):
        return samples.batch
    out = tuple(default_collate(list(samples)))
    if len(out) == 3:
        extras = getattr(samples, "extras", None) or {}
        out += ({k: torch.as_tensor(np.asarray(v)) for k, v in extras.items()},)
    return out  # type: ignore[return-value]
