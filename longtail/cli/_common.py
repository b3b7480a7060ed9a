"""What every ``longtail`` command shares: the user-error type, input and output checks,
label loading and progress bars (private to :mod:`longtail.cli`)."""
from __future__ import annotations

import os
import re
import sys
from typing import Any, Callable, Sequence


class CLIError(Exception):
    """A user error: printed as ``longtail COMMAND: error: ...`` with exit status 2."""


def progress(total: float, desc: str) -> tuple[Callable[[float], None], Callable[[], None]]:
    """A tqdm bar on stderr (silent when stderr is not a terminal and CI is set)."""
    from tqdm import tqdm

    bar = tqdm(total=total, desc=desc, unit="%", file=sys.stderr, leave=False,
               bar_format="{desc}: {percentage:3.0f}%|{bar}| {elapsed}<{remaining}",
               disable=None)
    return (lambda k: bar.update(k)), bar.close


def check_output(path: str, force: bool, inputs: Sequence[str] = ()) -> None:
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


def magic(path: str) -> bytes:
    """The first 8 bytes of a file (``b""`` if it cannot be read)."""
    try:
        with open(path, "rb") as f:
            return f.read(8)
    except OSError:
        return b""


IPC_FILE, PARQUET, IPC_STREAM = b"ARROW1", b"PAR1", b"\xff\xff\xff\xff"



def load_labels(path: str, column: str = "labels") -> Any:
    """Open a label column from an Arrow IPC file (memory-mapped) or a Parquet file.

    The format is told by the file's first bytes (then by its suffix); every error is a
    :class:`CLIError` naming the file.
    """
    from longtail.datasets.label_matrix import LabelMatrix

    p = check_input(path)
    head = magic(p)
    if head.startswith(IPC_STREAM):
        raise CLIError(f"{p!r} is an Arrow IPC stream, not an IPC file: convert it once "
                       "with `longtail convert IN OUT`")
    parquet = head.startswith(PARQUET) or (
        not head.startswith(IPC_FILE) and p.lower().endswith((".parquet", ".pq")))
    try:
        if parquet:
            return LabelMatrix.read_parquet(p, column)
        return LabelMatrix.open(p, column)
    except (ValueError, TypeError) as exc:
        msg = str(exc)
        raise CLIError(msg if p in msg else f"{p!r} column {column!r}: {msg}") from None
    except OSError as exc:  # an I/O error reading the file
        raise CLIError(f"cannot read {p!r}: {exc}") from None



def one_line(exc: BaseException) -> str:
    """An exception's message on one line (pyarrow's can span several)."""
    return re.sub(r"\s*\n\s*", " ", str(exc)).strip() or type(exc).__name__


def add_label_file_args(p: Any, *, output_help: str | None = None,
                        json_help: str = "print the report as JSON") -> None:
    """The arguments every label-file command shares: ``path``, ``--column`` and, with
    ``output_help``, ``-o/--output``, ``--force`` and ``--json``."""
    p.add_argument("path", help="Arrow IPC (.arrow) or Parquet file with a label column")
    p.add_argument("--column", default="labels", help="label column (default: labels)")
    if output_help is not None:
        p.add_argument("-o", "--output", required=True, help=output_help)
        p.add_argument("--force", action="store_true", help="overwrite an existing output")
        p.add_argument("--json", action="store_true", help=json_help)
