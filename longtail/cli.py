"""The ``longtail`` command line: generate, inspect and convert label data.

Examples
--------
::

    longtail generate --preset seed -o data.arrow
    longtail stats data.arrow --plot stats.png
    longtail convert train.parquet train.arrow

Every command validates its input before writing anything, writes outputs to a temporary
file renamed into place, and refuses to overwrite an existing file without ``--force``.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time
from typing import Any, Callable, Sequence

import numpy as np

# subcommand name -> (module, function adding its parser); further capabilities register
# here (weights, split) so that `longtail --help` lists everything.
_COMMANDS: list[tuple[str, str]] = [
    ("longtail.cli", "_add_generate"),
    ("longtail.cli", "_add_stats"),
    ("longtail.cli", "_add_convert"),
    ("longtail.samplers.weights_cli", "add_parser"),
    ("longtail.samplers.split_cli", "add_parser"),
]


class CLIError(Exception):
    """A user error: printed as ``longtail: error: ...`` with exit status 2."""


def _progress(total: float, desc: str) -> tuple[Callable[[float], None], Callable[[], None]]:
    """A tqdm bar on stderr (silent when stderr is not a terminal and CI is set)."""
    from tqdm import tqdm

    bar = tqdm(total=total, desc=desc, unit="%", file=sys.stderr, leave=False,
               bar_format="{desc}: {percentage:3.0f}%|{bar}| {elapsed}<{remaining}",
               disable=None)
    return (lambda k: bar.update(k)), bar.close


def _check_output(path: str, force: bool) -> None:
    from longtail.datasets.io import check_output_file

    try:
        check_output_file(path, force)
    except FileExistsError as exc:
        raise CLIError(f"{exc}") from None
    except ValueError as exc:
        raise CLIError(str(exc)) from None


# ---------------------------------------------------------------------------- generate
def _add_generate(sub: Any) -> None:
    from longtail.datasets.synthetic import PRESETS

    p = sub.add_parser("generate", help="generate a long-tailed multilabel dataset file",
                       description="Generate a seeded long-tailed multilabel dataset and "
                                   "write it as an uncompressed Arrow IPC file.")
    p.add_argument("--preset", default="small", choices=sorted(PRESETS),
                   help="dataset shape (default: small)")
    p.add_argument("--seed", type=int, default=0, help="random seed (default: 0)")
    p.add_argument("--n-examples", type=int, default=None, help="override the preset's size")
    p.add_argument("-o", "--output", required=True, help="output .arrow file")
    p.add_argument("--force", action="store_true", help="overwrite an existing output")
    p.set_defaults(func=_cmd_generate)


def _cmd_generate(args: argparse.Namespace) -> int:
    from longtail.datasets.synthetic import make_long_tail

    _check_output(args.output, args.force)
    overrides = {} if args.n_examples is None else {"n_examples": args.n_examples}
    t0 = time.perf_counter()
    step, close = _progress(100.0, f"generating {args.preset}")
    try:
        data = make_long_tail(args.preset, seed=args.seed,
                              progress=lambda f: step(100.0 * f), **overrides)
    except ValueError as exc:
        raise CLIError(str(exc)) from None
    finally:
        close()
    data.save(args.output, overwrite=args.force)
    s = data.labels.stats()
    print(f"wrote {args.output}: {s.n_examples:,} examples x {s.n_labels:,} labels, "
          f"{data.features.shape[1]} features, {s.cardinality:.1f} labels/example "
          f"({time.perf_counter() - t0:.1f} s)")
    return 0


# ---------------------------------------------------------------------------- stats
def _add_stats(sub: Any) -> None:
    p = sub.add_parser("stats", help="label statistics of a dataset file",
                       description="Print label statistics (cardinality, prevalence, "
                                   "IRLbl, MeanIR, CVIR, SCUMBLE) of an Arrow IPC or "
                                   "Parquet file.")
    p.add_argument("path", help="Arrow IPC (.arrow) or Parquet file")
    p.add_argument("--column", default="labels", help="label column (default: labels)")
    p.add_argument("--json", action="store_true", help="print JSON instead of a table")
    p.add_argument("--plot", metavar="PNG", help="write a label-frequency plot")
    p.add_argument("--force", action="store_true", help="overwrite an existing plot file")
    p.set_defaults(func=_cmd_stats)


def load_labels(path: str, column: str = "labels") -> Any:
    """Open a label column from an Arrow IPC file (memory-mapped) or a Parquet file."""
    from longtail.datasets.label_matrix import LabelMatrix

    if path.lower().endswith((".parquet", ".pq")):
        return LabelMatrix.read_parquet(path, column)
    return LabelMatrix.open(path, column)


def _cmd_stats(args: argparse.Namespace) -> int:
    if args.plot:
        _check_output(args.plot, args.force)
        try:
            import matplotlib  # noqa: F401
        except ImportError:
            raise CLIError("--plot needs matplotlib: pip install 'longtail[plot]'") from None
    labels = load_labels(args.path, args.column)
    stats = labels.stats()
    if args.json:
        print(json.dumps(stats.to_dict(), indent=2))
    else:
        print(f"{args.path} [{args.column}]")
        print(stats)
        counts = np.sort(labels.label_counts())[::-1]
        L = counts.size
        if L:
            head = counts[: max(1, L // 10)].sum() / max(counts.sum(), 1)
            print(f"{'share of positives in top 10% labels':<28}  {head:.1%}")
    if args.plot:
        _plot_stats(labels, args.plot, args.force, title=os.path.basename(args.path))
        print(f"wrote {args.plot}")
    return 0


def _plot_stats(labels: Any, path: str, overwrite: bool, title: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from longtail.datasets.io import atomic_output

    counts = np.sort(labels.label_counts())[::-1]
    fig, axes = plt.subplots(1, 2, figsize=(11, 4))
    ax = axes[0]
    ax.plot(np.arange(1, counts.size + 1), np.maximum(counts, 0.5) / len(labels))
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("label rank")
    ax.set_ylabel("prevalence")
    ax.set_title("label frequency (rank plot)")
    ax.grid(True, which="both", alpha=0.3)
    ax = axes[1]
    lengths = labels.row_lengths()
    ax.hist(lengths, bins=min(60, int(lengths.max()) + 1 if lengths.size else 1))
    ax.set_xlabel("labels per example")
    ax.set_ylabel("examples")
    ax.set_title("cardinality")
    fig.suptitle(title)
    fig.tight_layout()
    with atomic_output(path, overwrite) as tmp:
        fig.savefig(tmp, format="png", dpi=100)
    plt.close(fig)


# ---------------------------------------------------------------------------- convert
def _add_convert(sub: Any) -> None:
    p = sub.add_parser("convert", help="convert Parquet / compressed IPC to mappable IPC",
                       description="Convert a Parquet or compressed Arrow IPC file into an "
                                   "uncompressed Arrow IPC file that longtail memory-maps "
                                   "(labels as large_list<int32>, features as "
                                   "fixed_size_list<float32>).")
    p.add_argument("input", help="input .parquet or .arrow file")
    p.add_argument("output", help="output .arrow file")
    p.add_argument("--labels", default="labels", help="label column (default: labels)")
    p.add_argument("--features", default="features",
                   help="feature column, if present (default: features)")
    p.add_argument("--canonicalize", action="store_true",
                   help="sort and deduplicate label ids instead of rejecting such rows")
    p.add_argument("--force", action="store_true", help="overwrite an existing output")
    p.set_defaults(func=_cmd_convert)


def _read_any_table(path: str) -> Any:
    import pyarrow as pa
    import pyarrow.parquet as pq

    from longtail.datasets.io import check_input_file

    check_input_file(path)
    if path.lower().endswith((".parquet", ".pq")):
        return pq.read_table(path)
    try:
        with pa.memory_map(path, "r") as source:
            return pa.ipc.open_file(source).read_all()
    except pa.ArrowInvalid:
        pass
    try:
        with pa.memory_map(path, "r") as source:
            return pa.ipc.open_stream(source).read_all()
    except pa.ArrowInvalid:
        pass
    try:
        return pq.read_table(path)
    except Exception as exc:
        raise CLIError(f"{path!r} is neither an Arrow IPC nor a Parquet file: {exc}") from None


def _cmd_convert(args: argparse.Namespace) -> int:
    import pyarrow as pa

    from longtail.datasets.io import features_array, labels_field_array, write_table
    from longtail.datasets.label_matrix import LabelMatrix

    _check_output(args.output, args.force)
    if os.path.abspath(args.input) == os.path.abspath(args.output):
        raise CLIError("input and output are the same file")
    table = _read_any_table(args.input)
    if args.labels not in table.column_names:
        raise CLIError(f"{args.input!r} has no column {args.labels!r} "
                       f"(columns: {table.column_names})")
    try:
        labels = LabelMatrix.from_arrow(table.column(args.labels),
                                        canonicalize=args.canonicalize)
    except (ValueError, TypeError) as exc:
        raise CLIError(f"{args.input!r} column {args.labels!r}: {exc}") from None
    fields, columns = [], []
    for name in table.column_names:
        col = table.column(name)
        if name == args.labels:
            field, arr = labels_field_array(labels)
            fields.append(field.with_name(name))
            columns.append(arr)
            continue
        arr = col.combine_chunks() if isinstance(col, pa.ChunkedArray) else col
        if name == args.features and (pa.types.is_list(arr.type)
                                      or pa.types.is_large_list(arr.type)
                                      or pa.types.is_fixed_size_list(arr.type)):
            arr = _features_to_fixed(arr, args.input, name, features_array)
        fields.append(pa.field(name, arr.type))
        columns.append(arr)
    out = pa.Table.from_arrays(columns, schema=pa.schema(fields))
    write_table(args.output, out, overwrite=args.force)
    print(f"wrote {args.output}: {len(labels):,} rows, {labels.n_labels:,} labels, "
          f"columns {out.column_names}")
    return 0


def _features_to_fixed(arr: Any, path: str, name: str, features_array: Any) -> Any:
    import pyarrow as pa

    if arr.null_count:
        row = int(np.flatnonzero(np.asarray(arr.is_null()))[0])
        raise CLIError(f"{path!r} column {name!r}: row {row} is null")
    if pa.types.is_fixed_size_list(arr.type):
        d = arr.type.list_size
    else:
        lengths = np.diff(np.asarray(arr.offsets))
        if lengths.size and (lengths != lengths[0]).any():
            row = int(np.flatnonzero(lengths != lengths[0])[0])
            raise CLIError(f"{path!r} column {name!r}: row {row} has {lengths[row]} values, "
                           f"row 0 has {lengths[0]} (features need one length)")
        d = int(lengths[0]) if lengths.size else 0
    values = np.asarray(arr.flatten().to_numpy(zero_copy_only=False), dtype=np.float32)
    return features_array(values.reshape(len(arr), d))


# ---------------------------------------------------------------------------- main
def build_parser() -> argparse.ArgumentParser:
    """The ``longtail`` argument parser with every registered subcommand."""
    import importlib

    parser = argparse.ArgumentParser(
        prog="longtail",
        description="Tools for long-tailed multilabel data: generate, inspect, convert, "
                    "weight and split.")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True
    for module_name, func in _COMMANDS:
        try:
            module = importlib.import_module(module_name)
        except ModuleNotFoundError as exc:
            if exc.name == module_name:
                continue  # capability not installed in this build
            raise
        getattr(module, func)(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``longtail`` console script."""
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except CLIError as exc:
        parser.exit(2, f"longtail: error: {exc}\n")
    except (ValueError, TypeError, FileExistsError, FileNotFoundError) as exc:
        parser.exit(2, f"longtail: error: {exc}\n")
    return 0  # pragma: no cover


if __name__ == "__main__":
    # `python -m longtail.cli`: run the imported module's main, so that subcommand modules
    # (which import longtail.cli) share one CLIError class with it
    from longtail.cli import main as _main

    sys.exit(_main())
