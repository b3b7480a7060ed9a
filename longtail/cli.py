"""The ``longtail`` command line: generate, inspect and convert label data.

Examples
--------
::

    longtail generate --preset seed -o data.arrow
    longtail stats data.arrow --plot stats.png
    longtail convert train.parquet train.arrow

Every command validates its input and its output path before any work (an output may
never be one of its inputs, whatever symlinks or hard links say), writes outputs to a
temporary file renamed into place, and refuses to overwrite an existing file without
``--force``. An error is one line ``longtail COMMAND: error: ...`` on stderr naming the
argument or file, never a traceback: exit status 2 when nothing was done because of the
arguments or inputs, 1 when the work failed (see :func:`main`).
"""
from __future__ import annotations

import argparse
import json
import os
import re
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
    """A user error: printed as ``longtail COMMAND: error: ...`` with exit status 2."""


def _progress(total: float, desc: str) -> tuple[Callable[[float], None], Callable[[], None]]:
    """A tqdm bar on stderr (silent when stderr is not a terminal and CI is set)."""
    from tqdm import tqdm

    bar = tqdm(total=total, desc=desc, unit="%", file=sys.stderr, leave=False,
               bar_format="{desc}: {percentage:3.0f}%|{bar}| {elapsed}<{remaining}",
               disable=None)
    return (lambda k: bar.update(k)), bar.close


def _check_output(path: str, force: bool, inputs: Sequence[str] = ()) -> None:
    """Refuse a bad output before any work: missing or unwritable directory, a directory
    or device, an existing file without ``--force``, or the same file as an input
    (symlinks, hard links and relative paths included)."""
    from longtail.datasets.io import check_output_file

    if path == "-":
        raise CLIError("output '-': writing to standard output is not supported (outputs "
                       "are renamed into place); give a file path")
    try:
        check_output_file(path, force, inputs)
    except (FileExistsError, ValueError, TypeError) as exc:
        raise CLIError(str(exc)) from None


def check_input(path: str) -> str:
    """Refuse an input that is missing, a directory, not a regular file (a FIFO or a
    device would block or be read endlessly) or unreadable; return it."""
    from longtail.datasets.io import check_input_file

    try:
        p = check_input_file(path)
    except ValueError as exc:  # LabelFileError is one too
        raise CLIError(str(exc)) from None
    if not os.path.isfile(p):
        raise CLIError(f"input {p!r} is not a regular file (a FIFO, device or socket)")
    if not os.access(p, os.R_OK):
        raise CLIError(f"input {p!r} is not readable (permission denied)")
    return p


def _magic(path: str) -> bytes:
    """The first 8 bytes of a file (``b""`` if it cannot be read)."""
    try:
        with open(path, "rb") as f:
            return f.read(8)
    except OSError:
        return b""


_IPC_FILE, _PARQUET, _IPC_STREAM = b"ARROW1", b"PAR1", b"\xff\xff\xff\xff"


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
    """Open a label column from an Arrow IPC file (memory-mapped) or a Parquet file.

    The format is told by the file's first bytes (then by its suffix); every error is a
    :class:`CLIError` naming the file.
    """
    from longtail.datasets.label_matrix import LabelMatrix

    p = check_input(path)
    head = _magic(p)
    if head.startswith(_IPC_STREAM):
        raise CLIError(f"{p!r} is an Arrow IPC stream, not an IPC file: convert it once "
                       "with `longtail convert IN OUT`")
    parquet = head.startswith(_PARQUET) or (
        not head.startswith(_IPC_FILE) and p.lower().endswith((".parquet", ".pq")))
    try:
        if parquet:
            return LabelMatrix.read_parquet(p, column)
        return LabelMatrix.open(p, column)
    except (ValueError, TypeError) as exc:
        msg = str(exc)
        raise CLIError(msg if p in msg else f"{p!r} column {column!r}: {msg}") from None
    except OSError as exc:  # an I/O error reading the file
        raise CLIError(f"cannot read {p!r}: {exc}") from None


def _cmd_stats(args: argparse.Namespace) -> int:
    if args.plot is not None:
        _check_output(args.plot, args.force, inputs=[args.path])
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
    if args.plot is not None:
        _plot_stats(labels, args.plot, args.force, title=os.path.basename(args.path),
                    inputs=[args.path])
        print(f"wrote {args.plot}")
    return 0


def _plot_stats(labels: Any, path: str, overwrite: bool, title: str,
                inputs: Sequence[str] = ()) -> None:
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
    try:
        with atomic_output(path, overwrite, inputs=inputs) as tmp:
            fig.savefig(tmp, format="png", dpi=100)
    finally:
        plt.close(fig)


# ---------------------------------------------------------------------------- convert
def _add_convert(sub: Any) -> None:
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
    head = _magic(p)
    if head.startswith(_PARQUET):
        kind = "Parquet file"
    elif head.startswith(_IPC_FILE):
        kind = "Arrow IPC file"
    elif head.startswith(_IPC_STREAM):
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
                       f"{_one_line(exc)}") from None
    return table


def _cmd_convert(args: argparse.Namespace) -> int:
    import pyarrow as pa

    from longtail.datasets.io import labels_field_array, write_table
    from longtail.datasets.label_matrix import LabelMatrix

    _check_output(args.output, args.force, inputs=[args.input])
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


def _one_line(exc: BaseException) -> str:
    """An exception's message on one line (pyarrow's can span several)."""
    return re.sub(r"\s*\n\s*", " ", str(exc)).strip() or type(exc).__name__


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``longtail`` console script.

    Errors end the process with one line ``longtail COMMAND: error: ...`` on stderr and
    no traceback: exit status 2 when the arguments or input files are refused (nothing
    was written), 1 when the work failed (an I/O error while writing, out of memory, an
    internal error), 130 on Ctrl-C. Set ``LONGTAIL_DEBUG=1`` to see tracebacks.
    """
    parser = build_parser()
    args = parser.parse_args(argv)
    prog = f"{parser.prog} {args.command}"

    def fail(status: int, msg: str) -> None:
        parser.exit(status, f"{prog}: error: {msg}\n")

    try:
        return int(args.func(args) or 0)
    except KeyboardInterrupt:
        fail(130, "interrupted (no output written)")
    except Exception as exc:
        if os.environ.get("LONGTAIL_DEBUG"):
            raise
        if isinstance(exc, (CLIError, ValueError, TypeError, FileExistsError,
                            FileNotFoundError, IsADirectoryError, NotADirectoryError)):
            fail(2, _one_line(exc))
        elif isinstance(exc, MemoryError):
            fail(1, f"out of memory ({_one_line(exc)})")
        elif isinstance(exc, OSError):
            fail(1, _one_line(exc))
        else:  # a bug: still one line, with what is needed to report it
            fail(1, f"internal error, please report it (LONGTAIL_DEBUG=1 shows the "
                    f"traceback): {type(exc).__name__}: {_one_line(exc)}")
    return 0  # pragma: no cover


if __name__ == "__main__":
    # `python -m longtail.cli`: run the imported module's main, so that subcommand modules
    # (which import longtail.cli) share one CLIError class with it
    from longtail.cli import main as _main

    sys.exit(_main())
