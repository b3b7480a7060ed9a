"""The ``longtail`` command line: generate, inspect and convert label data.

Examples
--------
::

    longtail generate --preset seed -o data.arrow
    longtail stats data.arrow --plot stats.png
    longtail convert train.parquet train.arrow
    longtail warmup

Every command validates its input and its output path before any work (an output may
never be one of its inputs, whatever symlinks or hard links say), writes outputs to a
temporary file renamed into place, and refuses to overwrite an existing file without
``--force``. An error is one line ``longtail COMMAND: error: ...`` on stderr naming the
argument or file, never a traceback: exit status 2 when nothing was done because of the
arguments or inputs, 1 when the work failed (see :func:`main`).
"""
from __future__ import annotations

import argparse
import importlib
import os
from typing import Sequence

from longtail.cli._common import CLIError, one_line

# one module per command, each with ``add_parser(sub)``; a command registers here so that
# ``longtail --help`` lists it
_COMMANDS = ("generate", "stats", "convert", "weights", "split", "warmup")

def build_parser() -> argparse.ArgumentParser:
    """The ``longtail`` argument parser with every registered subcommand."""
    parser = argparse.ArgumentParser(
        prog="longtail",
        description="Tools for long-tailed multilabel data: generate, inspect, convert, "
                    "weight and split; warmup compiles every kernel ahead of first use.")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True
    for command in _COMMANDS:
        importlib.import_module(f"longtail.cli.{command}").add_parser(sub)
    return parser



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
            fail(2, one_line(exc))
        elif isinstance(exc, MemoryError):
            fail(1, f"out of memory ({one_line(exc)})")
        elif isinstance(exc, OSError):
            fail(1, one_line(exc))
        else:  # a bug: still one line, with what is needed to report it
            fail(1, f"internal error, please report it (LONGTAIL_DEBUG=1 shows the "
                    f"traceback): {type(exc).__name__}: {one_line(exc)}")
    return 0  # pragma: no cover


