"""``longtail convert``: Parquet/Arrow/CSV tables to the longtail Arrow layout."""
from __future__ import annotations

import argparse
import os
from typing import Any

import numpy as np

from longtail.cli._common import (IPC_FILE, IPC_STREAM, PARQUET, CLIError, check_input,
                                  check_output, magic, one_line)

def add_parser(sub: Any) -> None:
    """Register ``longtail convert`` on the ``longtail`` subcommand parser."""
    p = sub.add_parser("convert", help="convert Parquet / compressed IPC to mappable IPC",
                       description="Convert a Parquet file or an Arrow IPC file or stream "
                                   "(compressed or not) into an uncompressed Arrow IPC file "
                                   "that longtail memory-maps (labels as large_list<int32>, "
                                   "features as fixed_size_list<float32>).")
    p.add_argument("input", help="input .parquet or .arrow file")
    p.add_argument("output", help="output .arrow file")
    p.add_argument("--labels", default="labels", help="label column (default: labels)")
    p.add_argument("--features", default=None,
                   help="feature column: lists of numbers, one length, finite (default: "
                        "the column 'features' if there is one)")
    p.add_argument("--canonicalize", action="store_true",
                   help="sort and deduplicate label ids instead of rejecting such rows")
    p.add_argument("--force", action="store_true", help="overwrite an existing output")
    p.set_defaults(func=_cmd_convert)


def _read_any_table(path: str) -> Any:
    """Read a Parquet file or an Arrow IPC file or stream whole, told by its first bytes.

    A truncated, corrupt or unknown file is a :class:`CLIError` naming it; the table is
    fully validated (offsets in bounds) before anything reads it.
    """
    import pyarrow as pa
    import pyarrow.parquet as pq

    p = check_input(path)
    if os.path.getsize(p) == 0:
        raise CLIError(f"{p!r} is empty")
    head = magic(p)
    if head.startswith(PARQUET):
        kind = "Parquet file"
    elif head.startswith(IPC_FILE):
        kind = "Arrow IPC file"
    elif head.startswith(IPC_STREAM):
        kind = "Arrow IPC stream"
    else:
        raise CLIError(f"{p!r} is neither a Parquet file nor an Arrow IPC file or stream "
                       f"(it starts with {head!r})")
    try:
        if kind == "Parquet file":
            table = pq.read_table(p)
        else:
            with pa.memory_map(p, "r") as source:
                reader = (pa.ipc.open_file(source) if kind == "Arrow IPC file"
                          else pa.ipc.open_stream(source))
                table = reader.read_all()
        table.validate(full=True)
    except (pa.ArrowException, OSError, ValueError, MemoryError) as exc:
        raise CLIError(f"{p!r} is a damaged {kind} (truncated or corrupt?): "
                       f"{one_line(exc)}") from None
    return table


def _cmd_convert(args: argparse.Namespace) -> int:
    import pyarrow as pa

    from longtail.datasets.io import labels_field_array, write_table
    from longtail.datasets.label_matrix import LabelMatrix

    check_output(args.output, args.force, inputs=[args.input])
    table = _read_any_table(args.input)
    names = table.column_names
    dup = sorted({n for n in names if names.count(n) > 1})
    if dup:
        raise CLIError(f"{args.input!r} has duplicate column names {dup}")
    if args.labels not in names:
        raise CLIError(f"{args.input!r} has no column {args.labels!r} (columns: {names})")
    feature_col = "features" if args.features is None else args.features
    if args.features is not None and args.features not in names:
        raise CLIError(f"--features: {args.input!r} has no column {args.features!r} "
                       f"(columns: {names})")
    if feature_col == args.labels and feature_col in names:
        raise CLIError(f"--features and --labels name the same column {feature_col!r}")
    try:
        labels = LabelMatrix.from_arrow(table.column(args.labels),
                                        canonicalize=args.canonicalize)
    except (ValueError, TypeError) as exc:
        raise CLIError(f"{args.input!r} column {args.labels!r}: {exc}") from None
    fields, columns = [], []
    for i, name in enumerate(names):
        col = table.column(i)
        if name == args.labels:
            field, arr = labels_field_array(labels)
            fields.append(field.with_name(name))
            columns.append(arr)
            continue
        arr = col.combine_chunks() if isinstance(col, pa.ChunkedArray) else col
        if name == feature_col:
            arr = _features_to_fixed(arr, args.input, name)
        fields.append(pa.field(name, arr.type))
        columns.append(arr)
    out = pa.Table.from_arrays(columns, schema=pa.schema(fields))
    write_table(args.output, out, overwrite=args.force, inputs=[args.input])
    print(f"wrote {args.output}: {len(labels):,} rows, {labels.n_labels:,} labels, "
          f"columns {out.column_names}")
    return 0


def _features_to_fixed(arr: Any, path: str, name: str) -> Any:
    """A ``fixed_size_list<float32>`` feature column: one length, no nulls, finite."""
    import pyarrow as pa

    from longtail.datasets.io import features_array

    where = f"{path!r} column {name!r}"
    t = arr.type
    if not (pa.types.is_list(t) or pa.types.is_large_list(t) or pa.types.is_fixed_size_list(t)):
        raise CLIError(f"{where}: features must be lists of numbers, got {t} (name another "
                       "column with --features)")
    vt = t.value_type
    if not (pa.types.is_integer(vt) or pa.types.is_floating(vt)):
        raise CLIError(f"{where}: features must be lists of numbers, got {t}")
    if arr.null_count:
        row = int(np.flatnonzero(np.asarray(arr.is_null()))[0])
        raise CLIError(f"{where}: row {row} is null")
    if pa.types.is_fixed_size_list(t):
        d = t.list_size
        starts = np.arange(len(arr) + 1, dtype=np.int64) * d
    else:
        offsets = np.asarray(arr.offsets, dtype=np.int64)
        starts = offsets - offsets[0]
        lengths = np.diff(offsets)
        if lengths.size and (lengths != lengths[0]).any():
            row = int(np.flatnonzero(lengths != lengths[0])[0])
            raise CLIError(f"{where}: row {row} has {lengths[row]} values, "
                           f"row 0 has {lengths[0]} (features need one length)")
        d = int(lengths[0]) if lengths.size else 0
    if d == 0:
        raise CLIError(f"{where}: rows have no values (features need at least one)")
    flat = arr.flatten()  # the values of the rows, slice offset applied
    if flat.null_count:
        i = int(np.flatnonzero(np.asarray(flat.is_null()))[0])
        row = int(np.searchsorted(starts, i, side="right") - 1)
        raise CLIError(f"{where}: row {row} has a null at position {i - starts[row]}")
    raw = flat.to_numpy(zero_copy_only=False)
    with np.errstate(over="ignore", invalid="ignore"):  # checked just below
        values = np.asarray(raw, dtype=np.float32)
    bad = ~np.isfinite(values)
    if bad.any():
        i = int(np.flatnonzero(bad)[0])
        row = int(np.searchsorted(starts, i, side="right") - 1)
        pos = int(i - starts[row])
        why = "beyond the float32 range" if np.isfinite(raw[i]) else "not finite"
        raise CLIError(f"{where}: row {row} has {float(raw[i])!r} at position {pos} "
                       f"({why}; features must be finite)")
    return features_array(values.reshape(len(arr), d))
