"""A batch of multilabel targets in CSR form, expanded to a dense multi-hot on the device.

A dense float32 multi-hot row costs ``4 * n_labels`` bytes whatever the example holds; a
:class:`SparseLabels` batch costs 8 bytes per example (int64 offsets) plus 4 per label id
(int32). At 130 labels of 7,900 that is ~530 bytes instead of 31.6 KB: send the CSR to the
device and call :meth:`SparseLabels.dense` there (one ``index_fill_``), from any training
loop.

Example
-------
>>> import torch
>>> y = SparseLabels(torch.tensor([0, 2, 2, 3]), torch.tensor([0, 3, 1], dtype=torch.int32), 4)
>>> y.dense().tolist()                       # on y's device: y.to("cuda").dense()
[[1.0, 0.0, 0.0, 1.0], [0.0, 0.0, 0.0, 0.0], [0.0, 1.0, 0.0, 0.0]]
>>> len(y), y.nbytes
(3, 44)
"""
from __future__ import annotations

from typing import Any

import torch

from longtail._core.checks import check_int

__all__ = ["SparseLabels"]


class SparseLabels:
    """Labels of a batch as CSR: row ``i`` holds ``ids[offsets[i]:offsets[i + 1]]``.

    Parameters
    ----------
    offsets : torch.Tensor of int64, shape (B + 1,)
        Row pointers; ``offsets[0] == 0``, non-decreasing, ``offsets[-1] == len(ids)``.
    ids : torch.Tensor of int32, shape (nnz,)
        Label ids, each in ``[0, n_labels)``, on the same device as ``offsets``.
    n_labels : int
        Width of the dense multi-hot (:meth:`dense`).
    dtype : torch.dtype
        Default dtype of :meth:`dense` (the dataset's ``label_dtype``).

    Notes
    -----
    The constructor checks types, shapes and devices; the values (offsets, id range) are
    checked too when the tensors are on the CPU (a device tensor is not read back).
    ``DataLoader(pin_memory=True)`` calls :meth:`pin_memory` on the batch, so the copy of
    :meth:`to` with ``non_blocking=True`` is asynchronous.

    Example
    -------
    >>> y = SparseLabels.from_dense(torch.tensor([[0, 1, 1], [0, 0, 0]]))
    >>> y.offsets.tolist(), y.ids.tolist(), y.n_labels
    ([0, 2, 2], [1, 2], 3)
    >>> y.to("cpu").dense(torch.bool).tolist()
    [[False, True, True], [False, False, False]]
    """

    __slots__ = ("offsets", "ids", "n_labels", "dtype")

    def __init__(self, offsets: torch.Tensor, ids: torch.Tensor, n_labels: int, *,
                 dtype: torch.dtype = torch.float32) -> None:
        for name, t, want in (("offsets", offsets, torch.int64), ("ids", ids, torch.int32)):
            if not isinstance(t, torch.Tensor):
                raise TypeError(f"{name} must be a torch.Tensor, got {type(t).__name__}")
            if t.dtype != want or t.ndim != 1:
                raise TypeError(f"{name} must be a 1-D {want} tensor, got {t.dtype} of shape "
                                f"{tuple(t.shape)}")
        if offsets.numel() == 0:
            raise ValueError("offsets must have B + 1 >= 1 elements, got 0")
        if offsets.device != ids.device:
            raise ValueError(f"offsets and ids must be on one device, got {offsets.device} "
                             f"and {ids.device}")
        n_labels = check_int("n_labels", n_labels, 0)
        if not isinstance(dtype, torch.dtype):
            raise TypeError(f"dtype must be a torch.dtype, got {dtype!r}")
        if offsets.device.type == "cpu":
            _check_values(offsets, ids, n_labels)
        self._set(offsets, ids, n_labels, dtype)

    def _set(self, offsets: torch.Tensor, ids: torch.Tensor, n_labels: int,
             dtype: torch.dtype) -> None:
        self.offsets = offsets
        self.ids = ids
        self.n_labels = n_labels
        self.dtype = dtype

    @classmethod
    def _trusted(cls, offsets: torch.Tensor, ids: torch.Tensor, n_labels: int,
                 dtype: torch.dtype = torch.float32) -> "SparseLabels":
        """Built from arrays already known to be valid (no checks: the collate path)."""
        self = cls.__new__(cls)
        self._set(offsets, ids, n_labels, dtype)
        return self

    @classmethod
    def from_dense(cls, y: torch.Tensor, *, dtype: torch.dtype | None = None
                   ) -> "SparseLabels":
        """The CSR of a dense ``[B, n_labels]`` batch (nonzero entries are labels).

        ``dtype`` (default ``y.dtype``) is what :meth:`dense` gives back.

        Example
        -------
        >>> SparseLabels.from_dense(torch.eye(2)).ids.tolist()
        [0, 1]
        """
        if not isinstance(y, torch.Tensor) or y.ndim != 2:
            raise TypeError(f"y must be a 2-D tensor, got {getattr(y, 'shape', type(y))}")
        rows, cols = torch.nonzero(y, as_tuple=True)  # row-major: rows ascending
        offsets = torch.zeros(y.shape[0] + 1, dtype=torch.int64, device=y.device)
        torch.cumsum(torch.bincount(rows, minlength=y.shape[0]), 0, out=offsets[1:])
        return cls._trusted(offsets, cols.to(torch.int32), int(y.shape[1]),
                            y.dtype if dtype is None else dtype)

    @property
    def device(self) -> torch.device:
        return self.offsets.device

    @property
    def nnz(self) -> int:
        """Number of label ids in the batch."""
        return int(self.ids.numel())

    @property
    def nbytes(self) -> int:
        """Bytes of the two tensors (what a copy to the device moves)."""
        return (self.offsets.numel() * self.offsets.element_size()
                + self.ids.numel() * self.ids.element_size())

    def __len__(self) -> int:
        return int(self.offsets.numel() - 1)

    @property
    def shape(self) -> tuple[int, int]:
        """``(B, n_labels)``: the shape of :meth:`dense`."""
        return len(self), self.n_labels

    def __repr__(self) -> str:
        return (f"SparseLabels(B={len(self)}, n_labels={self.n_labels}, nnz={self.nnz}, "
                f"device={self.device})")

    def to(self, device: torch.device | str, non_blocking: bool = False) -> "SparseLabels":
        """Both tensors on ``device`` (asynchronous from pinned memory with
        ``non_blocking=True``)."""
        return SparseLabels._trusted(self.offsets.to(device, non_blocking=non_blocking),
                                     self.ids.to(device, non_blocking=non_blocking),
                                     self.n_labels, self.dtype)

    def pin_memory(self, *args: Any) -> "SparseLabels":
        """Both tensors in page-locked memory (called by ``DataLoader(pin_memory=True)``)."""
        return SparseLabels._trusted(self.offsets.pin_memory(*args),
                                     self.ids.pin_memory(*args), self.n_labels, self.dtype)

    def is_pinned(self) -> bool:
        return bool(self.offsets.is_pinned() and self.ids.is_pinned())

    def dense(self, dtype: torch.dtype | None = None) -> torch.Tensor:
        """The ``[B, n_labels]`` multi-hot on the tensors' device, by one ``index_fill_``.

        ``dtype`` defaults to :attr:`dtype`. On CUDA nothing is read back to the host
        (the row ids are expanded with a known ``output_size``).

        Example
        -------
        >>> y = SparseLabels(torch.tensor([0, 1]), torch.tensor([2], dtype=torch.int32), 3)
        >>> y.dense(torch.uint8).tolist()
        [[0, 0, 1]]
        """
        dtype = self.dtype if dtype is None else dtype
        if not isinstance(dtype, torch.dtype):
            raise TypeError(f"dtype must be a torch.dtype, got {dtype!r}")
        b, c, dev = len(self), self.n_labels, self.offsets.device
        out = torch.zeros(b * c, dtype=dtype, device=dev)
        nnz = self.ids.numel()
        if nnz:
            lengths = self.offsets[1:] - self.offsets[:-1]
            rows = torch.repeat_interleave(lengths, output_size=nnz)  # row of each id
            flat = rows.mul_(c).add_(self.ids)
            out.index_fill_(0, flat, 1)
        return out.view(b, c)


def _check_values(offsets: torch.Tensor, ids: torch.Tensor, n_labels: int) -> None:
    """Offsets start at 0, never decrease and end at ``len(ids)``; ids in range."""
    if int(offsets[0]) != 0 or int(offsets[-1]) != ids.numel():
        raise ValueError(f"offsets must start at 0 and end at len(ids) = {ids.numel()}, got "
                         f"{int(offsets[0])} ... {int(offsets[-1])}")
    if offsets.numel() > 1 and bool((offsets[1:] < offsets[:-1]).any()):
        raise ValueError("offsets must be non-decreasing")
    if ids.numel() and (int(ids.min()) < 0 or int(ids.max()) >= n_labels):
        raise ValueError(f"ids must be in [0, {n_labels}), got values in "
                         f"[{int(ids.min())}, {int(ids.max())}]")
