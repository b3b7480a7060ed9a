"""A map-style torch Dataset over a longtail Arrow IPC file.

``ArrowDataset`` memory-maps the file (features and labels are never loaded whole),
returns ``(features, multi_hot_labels, index)`` per example and fetches a whole batch in
one call through ``__getitems__`` (the DataLoader uses it automatically). A batch has one
layout, whatever the sampler: ``(x, y, index, extras)``, where ``extras`` is a dict of
tensors with one row per example -- empty unless the batch sampler yields
:class:`~longtail.datasets.IndexBatch` lists that carry values drawn with the batch
(``HardExampleSampler``: ``{"index", "weight", "prob"}``; ``ClassAwareSampler(...,
return_labels=True, batch_size=B)``: ``{"sampled_label"}``, the label each example was
drawn for). The extras travel with their batch even when workers prefetch batches ahead
of training. Pass ``collate_fn=ArrowDataset.collate``: it takes the ready batch (no
per-sample split and re-stack) and gives the same 4-tuple for a list of single samples.

Example
-------
>>> # loader = DataLoader(ArrowDataset("train.arrow"), batch_sampler=sampler,
>>> #                     collate_fn=ArrowDataset.collate, num_workers=4)
>>> # for x, y, idx, extras in loader: ...   # extras == {} for a plain sampler
"""
from __future__ import annotations

import os
from typing import Any

import numpy as np
import torch

from longtail.datasets._batch import (
    Batch,
    BatchedSamples,
    LabelledRows,
    check_label_format,
    collate_batch,
)
from longtail.datasets.io import file_fingerprint, read_features
from longtail.datasets.label_matrix import LabelMatrix

__all__ = ["ArrowDataset", "BatchedSamples"]


class ArrowDataset(LabelledRows):
    """Map-style dataset over an uncompressed Arrow IPC file written by ``write_dataset``.

    Parameters
    ----------
    path : str or PathLike
        The IPC file (``longtail generate`` / ``write_dataset`` / ``longtail convert``).
    features : str or None
        Column of ``fixed_size_list<float32>[d]`` features; ``None`` for labels only
        (the features element is then an empty tensor of shape ``[0]``).
    labels : str
        Column of label ids (``list`` / ``large_list`` of integers).
    label_dtype : torch.dtype
        dtype of the multi-hot label tensor.
    label_format : {"dense", "sparse"}
        ``y`` of a batch (``__getitems__``): the dense ``[B, n_labels]`` multi-hot, or a
        :class:`~longtail.datasets.SparseLabels` (CSR: int64 offsets + int32 ids, a few
        bytes per label instead of ``4 * n_labels`` per example) to expand on the device
        with ``y.to(device, non_blocking=True).dense()`` -- exactly the dense ``y``.
        ``DataLoader(pin_memory=True)`` pins it.

    Example
    -------
    >>> # ds = ArrowDataset("data.arrow")
    >>> # loader = DataLoader(ds, batch_size=256, shuffle=True, collate_fn=ArrowDataset.collate)
    >>> # for x, y, idx, extras in loader: ...        # extras == {} here
    >>> # sparse labels, expanded on the GPU:
    >>> # ds = ArrowDataset("data.arrow", label_format="sparse")
    >>> # for x, y, idx, extras in DataLoader(ds, ..., collate_fn=ArrowDataset.collate,
    >>> #                                     pin_memory=True):
    >>> #     y = y.to("cuda", non_blocking=True).dense()
    """

    def __init__(self, path: str | os.PathLike, features: str | None = "features",
                 labels: str = "labels", *, label_dtype: torch.dtype = torch.float32,
                 label_format: str = "dense") -> None:
        self.label_format = check_label_format("label_format", label_format)
        self.path = os.path.abspath(os.fspath(path))
        self.features_column = features
        self.labels_column = labels
        self.label_dtype = label_dtype
        self._open()

    def _open(self) -> None:
        self._fingerprint = file_fingerprint(self.path) if os.path.isfile(self.path) else None
        self._labels = LabelMatrix.open(self.path, self.labels_column)
        self._features = (read_features(self.path, self.features_column)
                          if self.features_column is not None else None)
        if self._features is not None and self._features.shape[0] != len(self._labels):
            raise ValueError(f"{self.path!r}: features have {self._features.shape[0]} rows, "
                             f"labels {len(self._labels)}")

    def __getstate__(self) -> dict[str, Any]:
        # pickle the path, not the mapped data (re-mapped and re-checked in the worker)
        return {"path": self.path, "features_column": self.features_column,
                "labels_column": self.labels_column, "label_dtype": self.label_dtype,
                "label_format": self.label_format,
                "fingerprint": self._fingerprint}

    def __setstate__(self, state: dict[str, Any]) -> None:
        state = dict(state)
        fingerprint = state.pop("fingerprint", None)
        state.setdefault("label_format", "dense")  # pickled before label_format existed
        self.__dict__.update(state)
        if fingerprint is not None:
            now = file_fingerprint(self.path) if os.path.exists(self.path) else None
            if now != tuple(fingerprint):
                raise ValueError(
                    f"{self.path!r} changed since this ArrowDataset was opened (size/mtime "
                    f"{tuple(fingerprint)} -> {now}); a worker would read other data than "
                    "the main process: re-create the dataset")
        self._open()

    @property
    def labels(self) -> LabelMatrix:
        """The label matrix (memory-mapped)."""
        return self._labels

    @property
    def features(self) -> np.ndarray | None:
        """The (n, d) float32 features (memory-mapped, read-only)."""
        return self._features

    def __repr__(self) -> str:
        return (f"ArrowDataset({self.path!r}, n={len(self):,}, n_features={self.n_features}, "
                f"n_labels={self.n_labels:,})")

    @staticmethod
    def collate(samples: Any, labels: str | None = None) -> Batch:
        """Collate function: always ``(x, y, index, extras)``.

        The ready batch of ``__getitems__`` is returned as it is; a list of single
        samples (``dataset[i]`` results) goes through ``default_collate`` and gets
        ``extras`` (the samples' ``extras`` as tensors when they carry some, else ``{}``).
        ``labels="sparse"`` / ``"dense"`` converts ``y`` when it is in the other format
        (``functools.partial(ArrowDataset.collate, labels="dense")``); building the
        batch sparse in the first place (``label_format="sparse"``) is cheaper.

        Example
        -------
        >>> # x, y, idx, extras = ArrowDataset.collate([ds[3], ds[1]])   # extras == {}
        >>> # x, y, idx, extras = ArrowDataset.collate([ds[3], ds[1]], labels="sparse")
        """
        return collate_batch(samples, labels)
