"""The ``(x, y, index, extras)`` batch shared by the map-style datasets of this package.

:class:`~longtail.datasets.ArrowDataset`, :class:`~longtail.datasets.MultilabelDataset`
and :class:`~longtail.datasets.HFDataset` fetch a whole batch in ``__getitems__`` with
the helpers below and return it in a :class:`BatchedSamples`; :func:`collate_batch` is
their ``collate`` (one layout whatever the sampler). :func:`batch_labels` builds ``y``
(dense multi-hot, or a :class:`~longtail.datasets.SparseLabels` CSR for
``label_format="sparse"``) and :func:`collate_batch` can convert it (``labels=``).
"""
from __future__ import annotations

import operator
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
from torch.utils.data import Dataset, default_collate

from longtail._core.checks import check_choice
from longtail.datasets import _kernels as K
from longtail.datasets.sparse_labels import SparseLabels

Batch = tuple[torch.Tensor, "torch.Tensor | SparseLabels", torch.Tensor,
              dict[str, torch.Tensor]]

#: the values of ``label_format=`` (datasets) and ``labels=`` (collate)
LABEL_FORMATS = ("dense", "sparse")


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
        if isinstance(y, SparseLabels):
            raise TypeError("a batch with sparse labels (label_format='sparse') is not split "
                            "into examples: pass collate_fn=<the dataset class>.collate to "
                            "the DataLoader")
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


def _fast_int64(indices: Any) -> np.ndarray | None:
    """``indices`` as a fresh int64 array in one C-level conversion when they are a list
    (or an integer array) of plain integers -- what samplers yield -- else ``None`` (the
    caller then converts item by item with ``operator.index``, which also rejects floats,
    bools given as numpy bools, and other non-integers with their own error)."""
    if isinstance(indices, np.ndarray):
        arr = indices
    elif isinstance(indices, list):
        if indices and type(indices[0]) is not int:
            return None     # numpy scalars, tensors...: the general path
        try:
            arr = np.array(indices)
        except (ValueError, TypeError, OverflowError):
            return None
    else:
        return None
    if arr.ndim != 1 or arr.dtype.kind not in "iu" or (
            arr.dtype.kind == "u" and arr.size and int(arr.max()) >= 1 << 63):
        return None
    return arr.astype(np.int64, copy=True)


def _each_int64(indices: Sequence[int], n: int) -> np.ndarray:
    """``indices`` as int64, item by item with ``operator.index`` (TypeError for a
    non-integer, IndexError naming an integer beyond int64)."""
    try:
        return np.fromiter((operator.index(i) for i in indices), dtype=np.int64,
                           count=len(indices))
    except OverflowError:
        big = next(i for i in indices if not -(1 << 63) <= operator.index(i) < (1 << 63))
        raise IndexError(f"index {operator.index(big)} is out of range for {n} "
                         "examples") from None


def batch_indices(indices: Sequence[int], n: int) -> np.ndarray:
    """The indices of one batch as int64 (negatives wrap), each checked against ``n``.

    Example
    -------
    >>> batch_indices([3, -1], 5).tolist()
    [3, 4]
    """
    idx = _fast_int64(indices)
    if idx is None:
        idx = _each_int64(indices, n)
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


def check_label_format(name: str, value: Any) -> str:
    """``"dense"`` or ``"sparse"`` (TypeError / ValueError naming ``name`` otherwise)."""
    return check_choice(name, value, LABEL_FORMATS)


def batch_labels(labels: Any, idx: np.ndarray, label_format: str,
                 dtype: torch.dtype) -> "torch.Tensor | SparseLabels":
    """``y`` of a batch: the dense ``[B, n_labels]`` multi-hot of rows ``idx`` of the
    :class:`~longtail.datasets.LabelMatrix` ``labels``, or (``"sparse"``) their CSR
    slice, gathered by one kernel call (``dtype`` is then what ``y.dense()`` gives).

    Example
    -------
    >>> from longtail.datasets import LabelMatrix
    >>> m = LabelMatrix.from_lists([[0, 2], [], [1]])
    >>> y = batch_labels(m, np.array([2, 0, 2]), "sparse", torch.float32)
    >>> y.offsets.tolist(), y.ids.tolist()
    ([0, 1, 3, 4], [1, 0, 2, 1])
    >>> torch.equal(y.dense(), batch_labels(m, np.array([2, 0, 2]), "dense", torch.float32))
    True
    """
    if label_format == "dense":
        return labels.multi_hot(idx, dtype=dtype)
    offsets, ids = K.take_rows(labels.offsets, labels.indices, idx)
    return SparseLabels._trusted(torch.from_numpy(offsets), torch.from_numpy(ids),
                                 labels.n_labels, dtype)


def _convert_labels(y: Any, labels: str | None) -> Any:
    """``y`` in the format ``labels`` asks for (``None``: as it is)."""
    if labels is None:
        return y
    check_label_format("labels", labels)
    if labels == "sparse" and isinstance(y, torch.Tensor):
        return SparseLabels.from_dense(y)
    if labels == "dense" and isinstance(y, SparseLabels):
        return y.dense()
    return y


def collate_batch(samples: Any, labels: str | None = None) -> Batch:
    """Collate function: always ``(x, y, index, extras)``.

    The ready batch of ``__getitems__`` (a :class:`BatchedSamples`) is returned as it
    is; a list of single samples (``dataset[i]`` results) goes through
    ``default_collate`` and gets ``extras`` (the samples' ``extras`` as tensors when
    they carry some, else ``{}``). ``labels`` (``"dense"`` or ``"sparse"``) converts
    ``y`` when it is in the other format; ``None`` keeps it as it is.

    Example
    -------
    >>> x, y, idx, extras = collate_batch([(torch.zeros(2), torch.ones(3), 4)])
    >>> tuple(x.shape), tuple(y.shape), idx.tolist(), extras
    ((1, 2), (1, 3), [4], {})
    >>> collate_batch([(torch.zeros(2), torch.tensor([0., 1., 1.]), 4)], "sparse")[1].ids
    tensor([1, 2], dtype=torch.int32)
    """
    if isinstance(samples, BatchedSamples):
        out = samples.batch
    else:
        out = tuple(default_collate(list(samples)))
        if len(out) == 3:
            extras = getattr(samples, "extras", None) or {}
            out += ({k: torch.as_tensor(np.asarray(v)) for k, v in extras.items()},)
    if labels is not None:
        y = _convert_labels(out[1], labels)
        if y is not out[1]:
            out = (out[0], y) + tuple(out[2:])
    return out  # type: ignore[return-value]


class LabelledRows(Dataset):
    """What :class:`~longtail.datasets.ArrowDataset` and
    :class:`~longtail.datasets.MultilabelDataset` share: rows of ``_features`` ((n, d)
    float32 or None) and ``_labels`` (a LabelMatrix), fetched one by one or a batch at a
    time in the ``(x, y, index, extras)`` layout (``label_format``, ``label_dtype``)."""

    _features: np.ndarray | None
    _labels: Any
    label_format: str
    label_dtype: torch.dtype

    @property
    def n_labels(self) -> int:
        return self._labels.n_labels

    @property
    def n_features(self) -> int:
        return 0 if self._features is None else int(self._features.shape[1])

    def __len__(self) -> int:
        return len(self._labels)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, torch.Tensor, int]:
        """``(x, y, index)`` of one example (``x`` a copy, ``y`` multi-hot)."""
        i = one_index(index, len(self))
        x = (torch.from_numpy(np.array(self._features[i])) if self._features is not None
             else torch.empty(0))
        y = self._labels.multi_hot([i], dtype=self.label_dtype)[0]
        return x, y, i

    def __getitems__(self, indices: Sequence[int]) -> BatchedSamples:
        """Fetch a whole batch: ``(x, y, index, extras)`` in a :class:`BatchedSamples`.

        ``extras`` holds ``indices.extras`` (an :class:`~longtail.datasets.IndexBatch`'s
        per-index arrays) as tensors, ``{}`` for a plain list of indices.
        """
        idx = batch_indices(indices, len(self))
        if self._features is not None:
            x = torch.from_numpy(self._features[idx])
        else:
            x = torch.empty((idx.size, 0))
        y = batch_labels(self._labels, idx, self.label_format, self.label_dtype)
        return BatchedSamples((x, y, torch.from_numpy(idx), batch_extras(indices, idx.size)))
