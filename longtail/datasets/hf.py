"""Hugging Face ``datasets`` with longtail samplers: a batch dataset and a collate.

Why torch's ``default_collate`` fails on a Hugging Face multilabel dataset: it stacks
each column across the examples of a batch, and a label column holds one list of label
ids per example, of different lengths (an example with 3 labels, the next with 130).
With ``with_format("torch")`` the rows are 1-D tensors of different sizes and
``torch.stack`` raises "stack expects each tensor to be equal size"; with plain lists
``default_collate`` raises "each element in list of batch should be of equal size".
Multi-hot targets need the number of labels, which a row does not carry. Two ways out:

* :class:`HFDataset` (recommended): wraps the dataset; the labels are read once from its
  Arrow table (:meth:`LabelMatrix.from_hf <longtail.datasets.LabelMatrix.from_hf>`), a
  batch is fetched with one ``dataset[indices]`` call, and batches have the layout of
  :class:`~longtail.datasets.ArrowDataset`: ``(x, y, index, extras)`` -- the index of
  each example (which Hugging Face rows do not carry) and the values a batch sampler
  drew with the batch (``HardExampleSampler``'s weights, ``ClassAwareSampler``'s
  ``sampled_label``);
* :func:`hf_collate`: a ``collate_fn`` for a DataLoader straight over the Hugging Face
  dataset; it turns the label lists into multi-hot rows and collates the other columns
  as ``default_collate`` would, keeping Hugging Face's dict batch.

Example
-------
>>> from datasets import Dataset
>>> from torch.utils.data import DataLoader
>>> hf = Dataset.from_dict({"x": [[0.5, 1.0], [2.0, 0.0], [1.0, 1.0]],
...                         "labels": [[0, 2], [1], []]})
>>> ds = HFDataset(hf, "labels", ["x"])
>>> loader = DataLoader(ds, batch_size=2, collate_fn=HFDataset.collate)
>>> x, y, index, extras = next(iter(loader))
>>> x.tolist(), y.tolist(), index.tolist()
([[0.5, 1.0], [2.0, 0.0]], [[1.0, 0.0, 1.0], [0.0, 1.0, 0.0]], [0, 1])
>>> batch = next(iter(DataLoader(hf, batch_size=2, collate_fn=hf_collate(3))))
>>> batch["labels"].tolist()
[[1.0, 0.0, 1.0], [0.0, 1.0, 0.0]]
"""
from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Callable

import numpy as np
import torch
from torch.utils.data import Dataset, default_collate

from longtail._core.checks import check_int
from longtail.datasets._batch import (
    Batch,
    BatchedSamples,
    batch_extras,
    batch_indices,
    collate_batch,
    one_index,
)
from longtail.datasets.label_matrix import LabelMatrix

__all__ = ["HFDataset", "hf_collate"]


def _column_names(names: Any, what: str) -> list[str]:
    """A column name or a sequence of them, as a list of str."""
    if isinstance(names, str):
        return [names]
    if not isinstance(names, Sequence) or not all(isinstance(n, str) for n in names):
        raise TypeError(f"{what} must be a column name or a sequence of them, got {names!r}")
    return list(names)


class HFDataset(Dataset):
    """A Hugging Face ``datasets.Dataset`` as a batch dataset with the layout of
    :class:`~longtail.datasets.ArrowDataset`: ``(x, y, index, extras)``.

    Parameters
    ----------
    dataset : datasets.Dataset
        Any non-streaming dataset, also after ``select`` / ``shuffle`` / splits (its
        row order is followed).
    label_column : str
        The list column of label ids (``Sequence(ClassLabel)`` or of integers).
    feature_columns : str or sequence of str, optional
        Numeric columns concatenated into ``x`` (each a scalar or a fixed-length list
        per row), in this order, as float32. ``None``: ``x`` is an empty ``[B, 0]``
        tensor (compute the inputs yourself from ``index``, e.g. for text or images).
    n_labels : int, optional
        Width of ``y``; default the ``ClassLabel``'s size, else the largest id + 1.
    label_dtype : torch.dtype
        dtype of the multi-hot labels.

    Attributes
    ----------
    dataset : datasets.Dataset
    labels : LabelMatrix
        Built once from the dataset's Arrow table: pass it to a sampler.

    Example
    -------
    >>> from datasets import Dataset
    >>> hf = Dataset.from_dict({"a": [1.0, 2.0], "b": [[3.0], [4.0]], "y": [[1], [0]]})
    >>> ds = HFDataset(hf.select([1, 0]), "y", ["a", "b"])
    >>> x, y, index, extras = HFDataset.collate(ds.__getitems__([0]))
    >>> x.tolist(), y.tolist(), index.tolist(), extras
    ([[2.0, 4.0]], [[1.0, 0.0]], [0], {})
    """

    def __init__(self, dataset: Any, label_column: str = "labels",
                 feature_columns: str | Sequence[str] | None = None, *,
                 n_labels: int | None = None,
                 label_dtype: torch.dtype = torch.float32) -> None:
        if not isinstance(label_column, str):
            raise TypeError(f"label_column must be a str, got {label_column!r}")
        if not isinstance(label_dtype, torch.dtype):
            raise TypeError(f"label_dtype must be a torch.dtype, got {label_dtype!r}")
        self._labels = LabelMatrix.from_hf(dataset, label_column, n_labels=n_labels)
        self.dataset = dataset
        self.label_column = label_column
        self.label_dtype = label_dtype
        cols = [] if feature_columns is None else _column_names(feature_columns,
                                                                "feature_columns")
        missing = [c for c in cols if c not in dataset.column_names]
        if missing:
            raise ValueError(f"feature_columns: no column {missing[0]!r} in the dataset "
                             f"(columns: {dataset.column_names})")
        if label_column in cols:
            raise ValueError(f"feature_columns includes the label column {label_column!r}")
        self.feature_columns = cols
        self._view = dataset.with_format("numpy", columns=cols) if cols else None
        self._n_features = int(self._fetch_x(np.zeros(1, np.int64)).shape[1]) if cols else 0

    def _fetch_x(self, idx: np.ndarray) -> torch.Tensor:
        """The features of rows ``idx``: one ``dataset[indices]`` call, float32 [B, d]."""
        if self._view is None:
            return torch.empty((idx.size, 0))
        got = self._view[idx.tolist()]
        parts = []
        for name in self.feature_columns:
            a = np.asarray(got[name])
            if a.dtype == object or not (np.issubdtype(a.dtype, np.number)
                                         or a.dtype == bool):
                raise TypeError(f"feature column {name!r} is not numeric with one fixed "
                                f"length per row (got dtype {a.dtype}): leave it out of "
                                "feature_columns and build x from the batch index")
            parts.append(a.reshape(idx.size, -1).astype(np.float32, copy=False))
        x = parts[0] if len(parts) == 1 else np.concatenate(parts, axis=1)
        return torch.from_numpy(np.ascontiguousarray(x))

    @property
    def labels(self) -> LabelMatrix:
        """The label matrix, in the dataset's row order."""
        return self._labels

    @property
    def n_labels(self) -> int:
        return self._labels.n_labels

    @property
    def n_features(self) -> int:
        return self._n_features

    def __len__(self) -> int:
        return len(self._labels)

    def __repr__(self) -> str:
        return (f"HFDataset(n={len(self):,}, label_column={self.label_column!r}, "
                f"feature_columns={self.feature_columns}, n_labels={self.n_labels:,})")

    def __getitem__(self, index: int) -> tuple[torch.Tensor, torch.Tensor, int]:
        """``(x, y, index)`` of one example."""
        i = one_index(index, len(self))
        x = self._fetch_x(np.array([i], dtype=np.int64))[0]
        return x, self._labels.multi_hot([i], dtype=self.label_dtype)[0], i

    def __getitems__(self, indices: Sequence[int]) -> BatchedSamples:
        """Fetch a whole batch: ``(x, y, index, extras)`` in a :class:`BatchedSamples`."""
        idx = batch_indices(indices, len(self))
        y = self._labels.multi_hot(idx, dtype=self.label_dtype)
        return BatchedSamples((self._fetch_x(idx), y, torch.from_numpy(idx),
                               batch_extras(indices, idx.size)))

    @staticmethod
    def collate(samples: Any) -> Batch:
        """Collate function: always ``(x, y, index, extras)`` (as ``ArrowDataset.collate``)."""
        return collate_batch(samples)


class HFCollate:
    """The collate function made by :func:`hf_collate` (a class, so that it pickles to
    DataLoader worker processes)."""

    def __init__(self, n_labels: int, label_column: str = "labels",
                 collate_fn: Callable[[list], Any] | None = None,
                 label_dtype: torch.dtype = torch.float32) -> None:
        self.n_labels = check_int("n_labels", n_labels, 1)
        if not isinstance(label_column, str):
            raise TypeError(f"label_column must be a str, got {label_column!r}")
        if collate_fn is not None and not callable(collate_fn):
            raise TypeError(f"collate_fn must be callable, got {collate_fn!r}")
        if not isinstance(label_dtype, torch.dtype):
            raise TypeError(f"label_dtype must be a torch.dtype, got {label_dtype!r}")
        self.label_column = label_column
        self.collate_fn = collate_fn
        self.label_dtype = label_dtype

    def __repr__(self) -> str:
        return f"hf_collate(n_labels={self.n_labels}, label_column={self.label_column!r})"

    def multi_hot(self, rows: Sequence[Any]) -> torch.Tensor:
        """``[len(rows), n_labels]`` multi-hot rows from label-id lists, arrays or tensors
        (in any order, repeats allowed)."""
        chunks = [np.asarray(r).reshape(-1) for r in rows]
        lengths = np.fromiter(map(len, chunks), dtype=np.int64, count=len(chunks))
        filled = [c for c in chunks if c.size]  # an empty row reads as float64: skip it
        ids = np.concatenate(filled) if filled else np.empty(0, dtype=np.int64)
        if not np.issubdtype(ids.dtype, np.integer):
            raise TypeError(f"{self.label_column!r}: label ids must be integers, got dtype "
                            f"{ids.dtype}")
        bad = (ids < 0) | (ids >= self.n_labels)
        if bad.any():
            p = int(np.flatnonzero(bad)[0])
            row = int(np.searchsorted(np.cumsum(lengths), p, side="right"))
            raise ValueError(f"{self.label_column!r}: label id {int(ids[p])} of row {row} of "
                             f"the batch is outside [0, n_labels={self.n_labels})")
        out = torch.zeros((len(chunks), self.n_labels), dtype=self.label_dtype)
        rows_of = np.repeat(np.arange(len(chunks)), lengths)
        out[torch.from_numpy(rows_of), torch.from_numpy(ids.astype(np.int64))] = 1
        return out

    def __call__(self, samples: Any) -> dict[str, Any]:
        extras = getattr(samples, "extras", None) or {}
        col = self.label_column
        if isinstance(samples, Mapping):  # one dict of columns (a batched fetch)
            if col not in samples:
                raise KeyError(f"the batch has no column {col!r} (columns: {list(samples)})")
            rest = {k: v for k, v in samples.items() if k != col}
            rows = samples[col]
            out = dict(rest)
        else:
            samples = list(samples)
            if samples and not isinstance(samples[0], Mapping):
                raise TypeError(f"hf_collate expects the dict rows of a Hugging Face "
                                f"dataset, got {type(samples[0]).__name__}")
            if any(col not in s for s in samples):
                raise KeyError(f"a row has no column {col!r} (columns: {list(samples[0])})")
            rows = [s[col] for s in samples]
            rest_rows = [{k: v for k, v in s.items() if k != col} for s in samples]
            has_rest = bool(rest_rows and rest_rows[0])
            out = dict((self.collate_fn or default_collate)(rest_rows)) if has_rest else {}
        out[col] = self.multi_hot(rows)
        if "extras" in out:
            raise ValueError("the batch already has a column 'extras'")
        out["extras"] = {k: torch.as_tensor(np.asarray(v)) for k, v in extras.items()}
        return out


def hf_collate(n_labels: int, label_column: str = "labels", *,
               collate_fn: Callable[[list], Any] | None = None,
               label_dtype: torch.dtype = torch.float32) -> HFCollate:
    """A DataLoader ``collate_fn`` for a Hugging Face dataset with label-id lists.

    The label column becomes a ``[B, n_labels]`` multi-hot tensor (rows may be lists,
    NumPy arrays or tensors -- any ``with_format`` -- in any order); the other columns
    are collated by ``collate_fn`` (default ``default_collate``, which needs them to be
    stackable: see the module notes for why the ragged label lists are not). The batch
    is Hugging Face's dict, plus ``"extras"``: the values a batch sampler drew with the
    batch, as tensors (``{}`` unless the dataset is wrapped with
    :func:`~longtail.datasets.with_extras`, since a Hugging Face dataset's own fetch
    drops them). For the ``(x, y, index, extras)`` layout use :class:`HFDataset`.

    Parameters
    ----------
    n_labels : int
        Width of the multi-hot rows (e.g. ``LabelMatrix.from_hf(ds).n_labels``).
    label_column : str
        The label-id list column.
    collate_fn : callable, optional
        Collates the rows without their label column.
    label_dtype : torch.dtype
        dtype of the multi-hot labels.

    Example
    -------
    >>> collate = hf_collate(4)
    >>> batch = collate([{"labels": [3, 1], "w": 0.5}, {"labels": [], "w": 1.0}])
    >>> batch["labels"].tolist(), batch["w"].tolist(), batch["extras"]
    ([[0.0, 1.0, 0.0, 1.0], [0.0, 0.0, 0.0, 0.0]], [0.5, 1.0], {})
    """
    return HFCollate(n_labels, label_column, collate_fn, label_dtype)
