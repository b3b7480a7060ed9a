"""``longtail stats``: label statistics of a file, optionally plotted."""
from __future__ import annotations

import argparse
import json
import os
from typing import Any, Sequence

import numpy as np

from longtail.cli._common import CLIError, check_output, load_labels

def add_parser(sub: Any) -> None:
    """Register ``longtail stats`` on the ``longtail`` subcommand parser."""
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


def _cmd_stats(args: argparse.Namespace) -> int:
    if args.plot is not None:
        check_output(args.plot, args.force, inputs=[args.path])
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
