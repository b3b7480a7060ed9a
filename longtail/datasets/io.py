"""Atomic file output and the Arrow IPC dataset format of longtail.

A longtail dataset file is an *uncompressed* Arrow IPC file (random-access "file"
format) with one record batch and columns

* ``labels``: ``large_list<int32>``, sorted unique label ids per example (field metadata
  ``longtail.n_labels`` and ``longtail.canonical``);
* ``features`` (optional): ``fixed_size_list<float32>[d]``.

Uncompressed IPC memory-maps with zero allocation, so opening a file is O(1) in memory.

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

import contextlib
import os
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, Any, Iterator

import numpy as np

if TYPE_CHECKING:  # pragma: no cover
    import pyarrow as pa

    from longtail.datasets.label_matrix import LabelMatrix

PathLike = str | os.PathLike


class LabelFileError(FileNotFoundError, ValueError):
    """A label or dataset file that does not exist (both FileNotFoundError and ValueError)."""


def check_input_file(path: PathLike) -> str:
    """Return ``path`` as a string, or raise :class:`LabelFileError` naming it."""
    p = os.fspath(path)
    if not os.path.exists(p):
        raise LabelFileError(f"no such file: {p!r}")
    if os.path.isdir(p):
        raise ValueError(f"expected a file, got a directory: {p!r}")
    return p


def check_output_file(path: PathLike, overwrite: bool) -> str:
    """Validate an output path before any work starts: parent exists, no clobbering."""
    p = os.fspath(path)
    parent = os.path.dirname(os.path.abspath(p))
    if not os.path.isdir(parent):
        raise ValueError(f"output directory does not exist: {parent!r} (for {p!r})")
    if os.path.exists(p) and not overwrite:
        raise FileExistsError(f"{p!r} exists; pass overwrite=True (CLI: --force) to replace it")
    return p


@contextlib.contextmanager
def atomic_output(path: PathLike, overwrite: bool = False) -> Iterator[str]:
    """Yield a temporary path next to ``path``; rename it into place on success.

    Nothing is left behind on failure, and an existing file is only replaced when
    ``overwrite`` is true (checked before any work starts).

    Example
    -------
    >>> import os, tempfile
    >>> target = os.path.join(tempfile.mkdtemp(), "out.txt")
    >>> with atomic_output(target) as tmp:
    ...     _ = open(tmp, "w").write("done")
    >>> open(target).read()
    'done'
    """
    final = check_output_file(path, overwrite)
    directory = os.path.dirname(os.path.abspath(final))
    fd, tmp = tempfile.mkstemp(prefix="." + os.path.basename(final) + ".", suffix=".tmp",
                               dir=directory)
    os.close(fd)
    try:
        yield tmp
        if os.path.exists(final) and not overwrite:
            raise FileExistsError(f"{final!r} appeared while writing; not replaced")
        os.replace(tmp, final)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


def labels_field_array(labels: "LabelMatrix") -> tuple["pa.Field", "pa.Array"]:
    """The Arrow field and ``large_list<int32>`` array of a LabelMatrix (zero-copy)."""
    import pyarrow as pa

    arr = pa.LargeListArray.from_arrays(pa.array(labels.offsets), pa.array(labels.indices))
    field = pa.field("labels", arr.type, nullable=False, metadata={
        "longtail.n_labels": str(labels.n_labels), "longtail.canonical": "1"})
    return field, arr


def features_array(features: np.ndarray) -> "pa.Array":
    """A ``fixed_size_list<float32>[d]`` array over a float32 (n, d) matrix (zero-copy)."""
    import pyarrow as pa

    features = np.ascontiguousarray(features, dtype=np.float32)
    return pa.FixedSizeListArray.from_arrays(pa.array(features.reshape(-1)), features.shape[1])


def write_table(path: PathLike, table: "pa.Table", overwrite: bool = False) -> None:
    """Write ``table`` as one uncompressed IPC record batch, atomically."""
    import pyarrow as pa

    with atomic_output(path, overwrite) as tmp:
        with pa.OSFile(tmp, "wb") as sink:
            with pa.ipc.new_file(sink, table.schema) as writer:
                writer.write_table(table, max_chunksize=max(table.num_rows, 1))


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

    from longtail.datasets.label_matrix import LabelMatrix

    check_output_file(path, overwrite)
    lm = labels if isinstance(labels, LabelMatrix) else LabelMatrix.from_any(labels, n_labels)
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


def open_ipc(path: PathLike) -> tuple[str, "pa.RecordBatch | pa.Table", int, int]:
    """Memory-map an IPC file: ``(path, batch_or_table, map_address, map_size)``.

    A single-batch file gives its RecordBatch (zero-copy); a multi-batch file gives a
    Table. Raises ValueError for a file that is not Arrow IPC or has no rows.
    """
    import pyarrow as pa

    p = check_input_file(path)
    source = pa.memory_map(p, "r")
    size = source.size()
    base = source.read_buffer(size).address if size else 0  # zero-copy view of the map
    source.seek(0)
    try:
        reader = pa.ipc.open_file(source)
    except (pa.ArrowInvalid, OSError) as exc:
        hint = " (Parquet? use LabelMatrix.read_parquet or `longtail convert`)" \
            if Path(p).suffix.lower() in {".parquet", ".pq"} else ""
        raise ValueError(f"{p!r} is not an Arrow IPC file{hint}: {exc}") from None
    try:
        if reader.num_record_batches == 1:
            data = reader.get_batch(0)
        else:
            data = reader.read_all()
        data.validate()  # buffer sizes against lengths (cheap; ids are checked later)
    except (pa.ArrowException, OSError) as exc:
        raise ValueError(f"{p!r} is a damaged Arrow IPC file (truncated?): {exc}") from None
    if data.num_rows == 0:
        raise ValueError(f"{p!r} has zero rows")
    return p, data, base, size


def column_of(data: "pa.RecordBatch | pa.Table", column: str, path: str) -> Any:
    """Column ``column`` of an IPC batch/table, with an error naming what is there."""
    names = data.schema.names
    if column not in names:
        raise ValueError(f"{path!r} has no column {column!r} (columns: {names})")
    return data.column(names.index(column))


def check_mapped(array: "pa.Array", base: int, size: int, path: str) -> None:
    """Raise if ``array``'s buffers are not inside the memory map (a compressed file)."""
    for buf in array.buffers():
        if buf is None or buf.size == 0:
            continue
        if not (base <= buf.address and buf.address + buf.size <= base + size):
            raise ValueError(
                f"{path!r} is a compressed (or otherwise non-mappable) Arrow IPC file: "
                "longtail memory-maps uncompressed IPC only; convert it once with "
                "`longtail convert IN OUT`"
            )


def read_features(path: PathLike, column: str = "features") -> np.ndarray:
    """The (n, d) float32 feature matrix of a dataset file, memory-mapped (read-only).

    Example
    -------
    >>> # read_features("data.arrow").shape -> (n, d)
    """
    import pyarrow as pa

    p, data, base, size = open_ipc(path)
    col = column_of(data, column, p)
    if isinstance(col, pa.ChunkedArray):
        col = col.combine_chunks() if col.num_chunks != 1 else col.chunk(0)
    if not pa.types.is_fixed_size_list(col.type):
        raise TypeError(f"{p!r} column {column!r} must be fixed_size_list<float>, got {col.type}")
    if col.null_count:
        row = int(np.flatnonzero(np.asarray(col.is_null()))[0])
        raise ValueError(f"{p!r} column {column!r} has a null at row {row}")
    d = col.type.list_size
    values = col.values.to_numpy(zero_copy_only=False)
    values = values[col.offset * d:(col.offset + len(col)) * d]
    if values.dtype != np.float32:
        values = values.astype(np.float32)
    return values.reshape(len(col), d)


def file_fingerprint(path: PathLike) -> tuple[int, int, int]:
    """``(size, mtime_ns, inode)`` of a file: what tells a re-opened file from the one mapped.

    Example
    -------
    >>> import tempfile
    >>> with tempfile.NamedTemporaryFile() as f:
    ...     file_fingerprint(f.name)[0]
    0
    """
    st = os.stat(path)
    return int(st.st_size), int(st.st_mtime_ns), int(st.st_ino)
