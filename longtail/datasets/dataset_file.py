"""Write a longtail dataset file: labels (and features) as one uncompressed Arrow IPC file.

The file has one record batch and columns

* ``labels``: ``large_list<int32>``, sorted unique label ids per example (field metadata
  ``longtail.n_labels`` and ``longtail.canonical``);
* ``features`` (optional): ``fixed_size_list<float32>[d]``.

Uncompressed IPC memory-maps with zero allocation, so opening a file is O(1) in memory:
:meth:`LabelMatrix.open <longtail.datasets.LabelMatrix.open>`,
:func:`~longtail.datasets.read_features` and :class:`~longtail.datasets.ArrowDataset` read it.

Example
-------
>>> import numpy as np, tempfile, os
>>> from longtail.datasets import write_dataset, read_features
>>> path = os.path.join(tempfile.mkdtemp(), "toy.arrow")
>>> write_dataset(path, np.ones((2, 3), np.float32), [[0], [1, 2]])
>>> read_features(path).shape
(2, 3)
"""
from __future__ import annotations

from typing import Any

import numpy as np

from longtail.datasets.io import (PathLike, check_output_file, features_array,
                                  labels_field_array, write_table)
from longtail.datasets.label_matrix import LabelMatrix


def write_dataset(
    path: PathLike,
    features: np.ndarray | None,
    labels: Any,
    *,
    n_labels: int | None = None,
    overwrite: bool = False,
) -> None:
    """Write features and labels as a longtail dataset file (uncompressed Arrow IPC).

    Parameters
    ----------
    path : str or PathLike
        Output file; written to a temporary file and renamed into place.
    features : ndarray of shape (n, d) or None
        Converted to float32. ``None`` writes the labels alone.
    labels : LabelMatrix or anything :meth:`LabelMatrix.from_any` accepts
        Label ids per example.
    n_labels : int, optional
        Number of labels when ``labels`` is not a LabelMatrix.
    overwrite : bool
        Replace an existing file.

    Example
    -------
    >>> import numpy as np, tempfile, os
    >>> p = os.path.join(tempfile.mkdtemp(), "d.arrow")
    >>> write_dataset(p, np.zeros((1, 4)), [[3]], n_labels=5)
    """
    import pyarrow as pa

    check_output_file(path, overwrite)
    lm = LabelMatrix.from_any(labels, n_labels)
    fields, columns = [], []
    if features is not None:
        features = np.asarray(features)
        if features.ndim != 2:
            raise ValueError(f"features must be 2-D (n, d), got shape {features.shape}")
        if features.shape[0] != len(lm):
            raise ValueError(f"features have {features.shape[0]} rows but labels have {len(lm)}")
        if features.dtype.kind not in "biuf":
            raise TypeError(f"features must be real numbers, got dtype {features.dtype}")
        with np.errstate(over="ignore"):  # 1e39 becomes inf in float32: checked below
            features = np.ascontiguousarray(features, dtype=np.float32)
        finite = np.isfinite(features)
        if not finite.all():
            row, col = (int(v[0]) for v in np.nonzero(~finite))
            raise ValueError(f"features contain NaN or inf (or a value beyond the float32 "
                             f"range) at row {row}, column {col}: {features[row, col]}")
        arr = features_array(features)
        fields.append(pa.field("features", arr.type, nullable=False))
        columns.append(arr)
    field, arr = labels_field_array(lm)
    fields.append(field)
    columns.append(arr)
    table = pa.Table.from_arrays(columns, schema=pa.schema(fields))
    write_table(path, table, overwrite)
