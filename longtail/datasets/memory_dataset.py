"""An in-memory map-style Dataset: a features array and label-id lists (or any labels).

``MultilabelDataset(features, labels)`` is :class:`~longtail.datasets.ArrowDataset` for
data that is already in memory (NumPy features + the label lists of a DataFrame, a
Hugging Face column, ...): the same ``(x, y, index, extras)`` batch from one
``__getitems__`` call, the same :meth:`MultilabelDataset.collate`, so every longtail
sampler and batch sampler works with it unchanged.

Example
-------
>>> import numpy as np
>>> from torch.utils.data import DataLoader
>>> ds = MultilabelDataset(np.eye(3, 2, dtype=np.float32), [[0, 2], [1], []])
>>> loader = DataLoader(ds, batch_size=2, collate_fn=MultilabelDataset.collate)
>>> x, y, index, extras = next(iter(loader))
>>> tuple(x.shape), y.tolist(), index.tolist(), extras
((2, 2), [[1.0, 0.0, 1.0], [0.0, 1.0, 0.0]], [0, 1], {})
"""
from __future__ import annotations

from typing import Any

import numpy as np
import torch

from longtail._core.checks import check_bool
from longtail.datasets._batch import (
    Batch,
    LabelledRows,
    check_label_format,
    collate_batch,
)
from longtail.datasets.label_matrix import LabelMatrix

__all__ = ["MultilabelDataset"]

#: rows per chunk of the finiteness check (bounds its temporary memory)
_CHECK_ROWS = 1 << 14


def _as_features(features: Any, check_finite: bool) -> np.ndarray | None:
    """``features`` as a 2-D float32 NumPy array (the same memory when it already is one)."""
    if features is None:
        return None
    if hasattr(features, "detach"):  # torch tensor: share its memory when on the CPU
        features = features.detach().cpu().numpy()
    if isinstance(features, (str, bytes)) or not hasattr(features, "__len__"):
        raise TypeError(f"features must be a 2-D array or tensor, got "
                        f"{type(features).__name__}")
    a = np.asarray(features)
    if a.ndim != 2:
        raise ValueError(f"features must be 2-D (n_examples, n_features), got shape "
                         f"{a.shape}")
    if a.dtype == object or not (np.issubdtype(a.dtype, np.number) or a.dtype == bool) \
            or np.issubdtype(a.dtype, np.complexfloating):
        raise TypeError(f"features must be real numbers, got dtype {a.dtype}")
    if a.dtype != np.float32:
        with np.errstate(over="ignore"):  # float64 beyond float32: inf, caught below
            a = a.astype(np.float32)
    if check_finite and a.size:
        for r0 in range(0, a.shape[0], _CHECK_ROWS):
            chunk = a[r0:r0 + _CHECK_ROWS]
            bad = ~np.isfinite(chunk)
            if bad.any():
                r, c = (int(v[0]) for v in np.nonzero(bad))
                raise ValueError(f"features[{r0 + r}, {c}] is {chunk[r, c]} (not finite; "
                                 "pass check_finite=False to keep such values)")
    return a


class MultilabelDataset(LabelledRows):
    """Map-style dataset over in-memory features and labels; batches ``(x, y, index,
    extras)`` like :class:`~longtail.datasets.ArrowDataset`.

    Parameters
    ----------
    features : 2-D array or tensor of numbers, or None
        ``(n_examples, n_features)``. A float32 NumPy array (or CPU tensor) is used
        as it is, without a copy; other dtypes are converted to float32
        once. ``None``: labels only (``x`` is an empty ``[B, 0]`` tensor).
    labels : LabelMatrix or anything :meth:`LabelMatrix.from_any` accepts
        Label-id lists (in any order: they are sorted once), an Arrow / pandas / Hugging
        Face label column, or a dense 0/1 matrix; one row per example.
    n_labels : int, optional
        Number of labels (width of ``y``); default from the labels.
    label_dtype : torch.dtype
        dtype of the multi-hot label tensor (default float32).
    label_format : {"dense", "sparse"}
        ``y`` of a batch: the dense multi-hot, or a
        :class:`~longtail.datasets.SparseLabels` (CSR: int64 offsets + int32 ids) to
        send to the device and expand there with ``y.dense()`` (exactly the dense ``y``).
    check_finite : bool
        Refuse NaN or infinite features (one vectorised pass at construction, in row
        chunks; the error names the first one).

    Attributes
    ----------
    features : ndarray of float32, shape (n, d), or None
    labels : LabelMatrix

    Notes
    -----
    ``__getitems__`` fetches a whole batch at once (features by one fancy index, labels
    by one Numba multi-hot fill) and returns it ready; pass
    ``collate_fn=MultilabelDataset.collate``. ``extras`` holds what a batch sampler
    drew with the batch (``IndexBatch.extras``: ``HardExampleSampler``'s weights,
    ``ClassAwareSampler(return_labels=True)``'s ``sampled_label``), ``{}`` otherwise.
    Worker processes get a pickled copy of the arrays (with the default ``fork`` start
    method on Linux they share the parent's memory until it is written).

    Example
    -------
    >>> from longtail.datasets import IndexBatch
    >>> ds = MultilabelDataset(np.zeros((4, 3)), [[0, 1], [1], [2], [0]])
    >>> batch = IndexBatch([2, 0], {"sampled_label": np.array([2, 1])})  # as samplers yield
    >>> x, y, index, extras = MultilabelDataset.collate(ds.__getitems__(batch))
    >>> y.tolist(), index.tolist(), extras["sampled_label"].tolist()
    ([[0.0, 0.0, 1.0], [1.0, 1.0, 0.0]], [2, 0], [2, 1])

    Sparse labels: ``y`` is CSR on the host, dense multi-hot where ``.dense()`` runs

    >>> sds = MultilabelDataset(None, [[0, 1], [1], [2], [0]], label_format="sparse")
    >>> y = MultilabelDataset.collate(sds.__getitems__([2, 0]))[1]
    >>> y.offsets.tolist(), y.ids.tolist(), y.dense().tolist()  # y.to("cuda").dense()
    ([0, 1, 3], [2, 0, 1], [[0.0, 0.0, 1.0], [1.0, 1.0, 0.0]])
    """

    def __init__(self, features: Any, labels: Any, n_labels: int | None = None, *,
                 label_dtype: torch.dtype = torch.float32, check_finite: bool = True,
                 label_format: str = "dense") -> None:
        check_bool("check_finite", check_finite)
        self.label_format = check_label_format("label_format", label_format)
        if not isinstance(label_dtype, torch.dtype):
            raise TypeError(f"label_dtype must be a torch.dtype, got {label_dtype!r}")
        self._features = _as_features(features, check_finite)
        self._labels = LabelMatrix.from_any(labels, n_labels)
        if self._features is not None and self._features.shape[0] != len(self._labels):
            raise ValueError(f"features have {self._features.shape[0]:,} rows but labels "
                             f"have {len(self._labels):,}: one label row per example")
        self.label_dtype = label_dtype

    @property
    def labels(self) -> LabelMatrix:
        """The label matrix (pass it to a sampler)."""
        return self._labels

    @property
    def features(self) -> np.ndarray | None:
        """The (n, d) float32 features, or None."""
        return self._features

    def __repr__(self) -> str:
        return (f"MultilabelDataset(n={len(self):,}, n_features={self.n_features}, "
                f"n_labels={self.n_labels:,})")

    @staticmethod
    def collate(samples: Any, labels: str | None = None) -> Batch:
        """Collate function: always ``(x, y, index, extras)`` (as ``ArrowDataset.collate``;
        ``labels="sparse"`` / ``"dense"`` converts ``y`` when it is in the other format).

        Example
        -------
        >>> ds = MultilabelDataset(np.ones((2, 1)), [[0], [1]])
        >>> [t.tolist() for t in MultilabelDataset.collate([ds[1], ds[0]])[1:3]]
        [[[0.0, 1.0], [1.0, 0.0]], [1, 0]]
        >>> MultilabelDataset.collate([ds[1], ds[0]], labels="sparse")[1].ids.tolist()
        [1, 0]
        """
        return collate_batch(samples, labels)
