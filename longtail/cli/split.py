"""``longtail split``: stratified train/val/test splits or k folds, written as Parquet.

Examples
--------
::

    longtail split data.arrow --fractions 0.8,0.1,0.1 -o split.parquet
    longtail split data.arrow --fractions 0.9,0.1 --names fit,holdout -o split.parquet
    longtail split data.arrow --folds 5 --seed 1 -o folds.parquet
    longtail split data.parquet --fractions 0.8,0.2 --groups patient -o split.parquet

The output (a ``.parquet`` path) is a split file of :func:`~longtail.save_split`, read
back with :func:`~longtail.load_split`: one row per example, ``index`` (int64) and
``part`` (the part's name, dictionary-encoded string), with the part names, fractions,
seed, method and a fingerprint of the labels in its metadata. Parts are named by
``--names``, by default ``train,test`` (2 fractions), ``train,val,test`` (3),
``part0,part1,...`` (more) or ``fold0,fold1,...`` (``--folds``). It is written to a
temporary file and renamed into place; nothing is written when the input is bad, and the
output may not be the input (symlinks and hard links included). The quality report
(:func:`~longtail.stratification_report`) is printed.
"""
from __future__ import annotations

import argparse
import json
import time
from typing import Any

import numpy as np

from longtail.cli._common import (CLIError, add_label_file_args, check_input, check_output,
                                  load_labels, one_line)

_FORMATS = (".parquet", ".pq")


def add_parser(sub: Any) -> None:
    """Register the ``split`` subcommand."""
    p = sub.add_parser(
        "split", help="stratified train/val/test split or k folds (iterative stratification)",
        description="Split a dataset by iterative stratification (every label spread over "
                    "the parts in proportion) and write a split file (Parquet: columns "
                    "index and part name; part names, fractions, seed, method and a "
                    "fingerprint of the labels in its metadata; read it with "
                    "longtail.load_split). Prints the quality report (LD, ED, FZ, FLZ, LPD, "
                    "FLZP) next to a random split of the same sizes.")
    add_label_file_args(p, output_help="output .parquet file")
    p.add_argument("--fractions", metavar="F1,F2,...",
                   help="part fractions summing to 1, e.g. 0.8,0.1,0.1")
    p.add_argument("--folds", type=int, metavar="K", help="k equal folds instead (K >= 2)")
    p.add_argument("--names", metavar="N1,N2,...",
                   help="part names, one per part (default: train,test / train,val,test "
                        "/ part0,part1,... for --fractions; fold0,fold1,... for --folds)")
    p.add_argument("--seed", type=int, default=0, help="random seed (default: 0)")
    p.add_argument("--method", default="balanced", choices=["balanced", "sechidis"],
                   help="part choice (default: balanced, exact sizes)")
    p.add_argument("--order", type=int, default=1, choices=[1, 2],
                   help="1: labels, 2: label pairs, for sparse data (default: 1)")
    p.add_argument("--groups", metavar="COLUMN",
                   help="column of group ids (patient, document...): a group is never split")
    p.set_defaults(func=_cmd_split)


def _parse_fractions(text: str) -> list[float]:
    """``--fractions`` as floats; an error names the first bad item and its position."""
    items = text.split(",")
    if items and not items[-1].strip():
        items = items[:-1]  # a trailing comma
    out = []
    for j, item in enumerate(items):
        try:
            f = float(item)
        except ValueError:
            raise CLIError(f"--fractions: item {j} ({item.strip()!r}) is not a number "
                           f"(in {text!r})") from None
        if not (np.isfinite(f) and f >= 0):
            raise CLIError(f"--fractions: item {j} is {f}, fractions must be finite and "
                           f">= 0 (in {text!r})")
        out.append(f)
    if len(out) < 2:
        raise CLIError(f"--fractions must name at least 2 parts, got {text!r}")
    return out


def _part_names(text: str | None, n_parts: int, folds: bool) -> list[str]:
    """``--names`` (checked against the number of parts) or the default names."""
    if text is None:
        if folds:
            return [f"fold{j}" for j in range(n_parts)]
        return {2: ["train", "test"], 3: ["train", "val", "test"]}.get(
            n_parts, [f"part{j}" for j in range(n_parts)])
    names = [t.strip() for t in text.split(",")]
    if len(names) != n_parts:
        raise CLIError(f"--names gives {len(names)} names ({text!r}) for {n_parts} parts")
    for j, name in enumerate(names):
        if not name:
            raise CLIError(f"--names: name {j} is empty (in {text!r})")
        if name in names[:j]:
            raise CLIError(f"--names: {name!r} is given twice (in {text!r})")
    return names


def _read_column(path: str, column: str) -> np.ndarray:
    import pyarrow as pa
    import pyarrow.parquet as pq

    from longtail.datasets.io import column_of, open_ipc

    check_input(path)
    with open(path, "rb") as f:
        parquet = f.read(4) == b"PAR1"
    try:
        if parquet:
            names = pq.read_schema(path).names
            if column not in names:
                raise CLIError(f"{path!r} has no column {column!r} (columns: {names})")
            col = pq.read_table(path, columns=[column]).column(0)
        else:
            p, data, _, _ = open_ipc(path)
            col = column_of(data, column, p)
        if isinstance(col, pa.ChunkedArray):
            col = col.combine_chunks()
        col.validate(full=True)
    except CLIError:
        raise
    except (pa.ArrowException, OSError, ValueError) as exc:
        msg = one_line(exc)
        raise CLIError(msg if repr(path) in msg else
                       f"--groups: cannot read column {column!r} of {path!r}: {msg}") from None
    t = col.type
    if pa.types.is_dictionary(t):
        col, t = col.dictionary_decode(), t.value_type
    if not (pa.types.is_integer(t) or pa.types.is_floating(t) or pa.types.is_string(t)
            or pa.types.is_large_string(t) or pa.types.is_boolean(t)):
        raise CLIError(f"--groups: {path!r} column {column!r} must hold one group id per "
                       f"row (integers or strings), got {t}")
    if col.null_count:
        row = int(np.flatnonzero(np.asarray(col.is_null()))[0])
        raise CLIError(f"--groups: {path!r} column {column!r}: row {row} is null")
    return col.to_numpy(zero_copy_only=False)


def _cmd_split(args: argparse.Namespace) -> int:
    from longtail.samplers.split import (iterative_stratification, save_split,
                                         stratification_report)
    from longtail.samplers.split.stratification import check_fractions

    if (args.fractions is None) == (args.folds is None):
        raise CLIError("give one of --fractions or --folds (not both)" if args.fractions
                       else "give one of --fractions or --folds")
    if not args.output.lower().endswith(_FORMATS):
        raise CLIError(f"output {args.output!r} must end with .parquet (split writes "
                       "Parquet)")
    check_output(args.output, args.force, inputs=[args.path])
    # the parts' count is checked before anything of that size is built (--folds 10**9)
    if args.folds is not None:
        if args.folds < 2:
            raise CLIError(f"--folds must be >= 2, got {args.folds}")
        n_parts = args.folds
    else:
        fractions = _parse_fractions(args.fractions)
        try:
            check_fractions(fractions)
        except ValueError as exc:
            raise CLIError(f"--fractions: {exc}") from None
        n_parts = len(fractions)
    labels = load_labels(args.path, args.column)
    if n_parts > len(labels):
        what = f"--folds {args.folds}" if args.folds is not None else \
            f"--fractions {args.fractions!r} ({n_parts} parts)"
        raise CLIError(f"{what} is more than the number of examples in {args.path!r} "
                       f"({len(labels):,} rows): every part needs at least one")
    names = _part_names(args.names, n_parts, args.folds is not None)
    if args.folds is not None:
        fractions = [1.0 / args.folds] * args.folds
    groups = _read_column(args.path, args.groups) if args.groups else None
    t0 = time.perf_counter()
    parts = iterative_stratification(labels, fractions, order=args.order, seed=args.seed,
                                     method=args.method, groups=groups)
    seconds = time.perf_counter() - t0
    report = stratification_report(labels, parts, fractions=fractions, seed=args.seed)
    # argsort once (no pass per part over all examples): part j's indices, sorted
    order = np.argsort(parts, kind="stable")
    bounds = np.cumsum(np.bincount(parts, minlength=n_parts))[:-1]
    save_split(args.output, dict(zip(names, np.split(order, bounds))), labels=labels,
               fractions=fractions, seed=args.seed, method=args.method,
               overwrite=args.force)
    if args.json:
        print(json.dumps(report.to_dict(), indent=2))
    else:
        print(report)
        print(f"wrote {args.output}: {len(parts):,} rows (part name per index: "
              f"{', '.join(names)}), stratified in {seconds:.2f} s")
    return 0
