"""``longtail split``: stratified train/val/test splits or k folds, written as Parquet.

Examples
--------
::

    longtail split data.arrow --fractions 0.8,0.1,0.1 -o split.parquet
    longtail split data.arrow --folds 5 --seed 1 -o folds.parquet
    longtail split data.parquet --fractions 0.8,0.2 --groups patient -o split.parquet

The output has one row per example: ``index`` (int64) and ``part`` (``--fractions``, in
the order given) or ``fold`` (``--folds``), int32. It is written to a temporary file and
renamed into place; nothing is written when the input is bad. The quality report
(:func:`~longtail.stratification_report`) is printed.
"""
from __future__ import annotations

import argparse
import json
import time
from typing import Any

import numpy as np

from longtail.cli import CLIError, _check_output, load_labels


def add_parser(sub: Any) -> None:
    """Register the ``split`` subcommand."""
    p = sub.add_parser(
        "split", help="stratified train/val/test split or k folds (iterative stratification)",
        description="Split a dataset by iterative stratification (every label spread over "
                    "the parts in proportion) and write a Parquet file with columns index "
                    "and part (or fold). Prints the quality report (LD, ED, FZ, FLZ, LPD, "
                    "FLZP) next to a random split of the same sizes.")
    p.add_argument("path", help="Arrow IPC (.arrow) or Parquet file with a label column")
    p.add_argument("--column", default="labels", help="label column (default: labels)")
    p.add_argument("--fractions", metavar="F1,F2,...",
                   help="part fractions summing to 1, e.g. 0.8,0.1,0.1")
    p.add_argument("--folds", type=int, metavar="K", help="k equal folds instead (K >= 2)")
    p.add_argument("--seed", type=int, default=0, help="random seed (default: 0)")
    p.add_argument("--method", default="balanced", choices=["balanced", "sechidis"],
                   help="part choice (default: balanced, exact sizes)")
    p.add_argument("--order", type=int, default=1, choices=[1, 2],
                   help="1: labels, 2: label pairs, for sparse data (default: 1)")
    p.add_argument("--groups", metavar="COLUMN",
                   help="column of group ids (patient, document...): a group is never split")
    p.add_argument("-o", "--output", required=True, help="output .parquet file")
    p.add_argument("--force", action="store_true", help="overwrite an existing output")
    p.add_argument("--json", action="store_true", help="print the report as JSON")
    p.set_defaults(func=_cmd_split)


def _parse_fractions(text: str) -> list[float]:
    try:
        return [float(x) for x in text.split(",") if x.strip()]
    except ValueError:
        raise CLIError(f"--fractions must be comma-separated numbers, got {text!r}") from None


def _read_column(path: str, column: str) -> np.ndarray:
    import pyarrow as pa
    import pyarrow.parquet as pq

    from longtail.datasets.io import check_input_file, column_of, open_ipc

    if path.lower().endswith((".parquet", ".pq")):
        check_input_file(path)
        names = pq.read_schema(path).names
        if column not in names:
            raise CLIError(f"{path!r} has no column {column!r} (columns: {names})")
        col = pq.read_table(path, columns=[column]).column(0)
    else:
        p, data, _, _ = open_ipc(path)
        try:
            col = column_of(data, column, p)
        except ValueError as exc:
            raise CLIError(str(exc)) from None
    if isinstance(col, pa.ChunkedArray):
        col = col.combine_chunks()
    if col.null_count:
        row = int(np.flatnonzero(np.asarray(col.is_null()))[0])
        raise CLIError(f"{path!r} column {column!r}: row {row} is null")
    return col.to_numpy(zero_copy_only=False)


def _cmd_split(args: argparse.Namespace) -> int:
    import pyarrow as pa
    import pyarrow.parquet as pq

    from longtail.datasets.io import atomic_output
    from longtail.samplers.stratification import (
        check_fractions,
        iterative_stratification,
        stratification_report,
    )

    _check_output(args.output, args.force)
    if (args.fractions is None) == (args.folds is None):
        raise CLIError("give one of --fractions or --folds (not both)" if args.fractions
                       else "give one of --fractions or --folds")
    if args.folds is not None:
        if args.folds < 2:
            raise CLIError(f"--folds must be >= 2, got {args.folds}")
        fractions = [1.0 / args.folds] * args.folds
        column = "fold"
    else:
        fractions = _parse_fractions(args.fractions)
        try:
            check_fractions(fractions)
        except ValueError as exc:
            raise CLIError(f"--fractions: {exc}") from None
        column = "part"
    labels = load_labels(args.path, args.column)
    groups = _read_column(args.path, args.groups) if args.groups else None
    t0 = time.perf_counter()
    parts = iterative_stratification(labels, fractions, order=args.order, seed=args.seed,
                                     method=args.method, groups=groups)
    seconds = time.perf_counter() - t0
    report = stratification_report(labels, parts, fractions=fractions, seed=args.seed)
    table = pa.table({"index": pa.array(np.arange(len(parts), dtype=np.int64)),
                      column: pa.array(parts.astype(np.int32))})
    with atomic_output(args.output, args.force) as tmp:
        pq.write_table(table, tmp)
    if args.json:
        print(json.dumps(report.to_dict(), indent=2))
    else:
        print(report)
        print(f"wrote {args.output}: {len(parts):,} rows ({column} per index), "
              f"stratified in {seconds:.2f} s")
    return 0
