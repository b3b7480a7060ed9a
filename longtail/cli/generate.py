"""``longtail generate``: write a generated long-tailed data set."""
from __future__ import annotations

import argparse
import time
from typing import Any

from longtail.cli._common import CLIError, check_output, progress

def add_parser(sub: Any) -> None:
    """Register ``longtail generate`` on the ``longtail`` subcommand parser."""
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

    check_output(args.output, args.force)
    overrides = {} if args.n_examples is None else {"n_examples": args.n_examples}
    t0 = time.perf_counter()
    step, close = progress(100.0, f"generating {args.preset}")
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
