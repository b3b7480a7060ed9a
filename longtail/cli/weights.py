"""``longtail weights``: compute per-example sample weights and report label exposure.

Example
-------
::

    longtail weights data.arrow --method repeat_factor --threshold 0.05 -o weights.npy
    longtail weights data.arrow --method exposure --min-ess 0.7 -o weights.parquet

The weights are written as a float64 ``.npy`` array (one per example, in row order) or a
Parquet file with columns ``index`` (int64) and ``weight`` (float64); the exposure report
(:func:`longtail.exposure_report`) is printed. Input and parameters are validated before
anything is written; the output appears atomically and an existing file is replaced
only with ``--force``.
"""
from __future__ import annotations

import argparse
import json
import time
from typing import Any

import numpy as np

from longtail.cli._common import CLIError, add_label_file_args, check_output, load_labels

# CLI option -> sample_weights parameter (only the options given are passed on)
_PARAMS = {
    "power": "power", "agg": "agg", "beta": "beta", "threshold": "threshold",
    "sqrt": "sqrt", "min_weight": "min_weight", "max_weight": "max_weight",
    "min_ess": "min_ess", "max_iter": "max_iter", "empty_weight": "empty_weight",
}
_FORMATS = (".npy", ".parquet", ".pq")


def add_parser(sub: Any) -> None:
    """Register ``longtail weights`` on the ``longtail`` subcommand parser."""
    from longtail.samplers.weights.weighting import METHODS

    description = """Compute one sample weight per example (for WeightedSampler or a weighted
        loss), write it as .npy or Parquet and print the exposure report: expected draws
        per label, max/min label exposure against uniform sampling, effective sample size."""
    p = sub.add_parser("weights", help="per-example sample weights and their label exposure",
                       description=" ".join(description.split()))
    add_label_file_args(
        p, output_help="output .npy (float64 array) or .parquet (columns index, weight)")
    p.add_argument("--method", required=True, choices=sorted(METHODS),
                   help="weighting method")
    g = p.add_argument_group("method parameters (defaults: see longtail.sample_weights)")
    g.add_argument("--power", type=float,
                   help="inverse_frequency: label weight n_c^-power; exposure: target "
                        "share prevalence^(1-power) (default 1)")
    g.add_argument("--agg", choices=["mean", "max", "sum", "rarest"],
                   help="inverse_frequency / effective_number: aggregation over an "
                        "example's labels (default mean)")
    g.add_argument("--beta", type=float, help="effective_number: beta in [0, 1) (default 0.999)")
    g.add_argument("--threshold", type=float,
                   help="repeat_factor: threshold t in (0, 1] (default 0.001)")
    g.add_argument("--no-sqrt", dest="sqrt", action="store_false", default=None,
                   help="repeat_factor: t / f_c instead of sqrt(t / f_c)")
    g.add_argument("--min-weight", type=float,
                   help="exposure: lower bound of the weights at mean 1 (default 0.01)")
    g.add_argument("--max-weight", type=float,
                   help="exposure: upper bound of the weights at mean 1 (default 100)")
    g.add_argument("--min-ess", type=float,
                   help="exposure: effective sample size floor, fraction of n (default 0.5)")
    g.add_argument("--max-iter", type=int, help="exposure: solver iterations")
    g.add_argument("--empty-weight", type=float,
                   help="weight of examples without labels (default 1)")
    p.set_defaults(func=_cmd_weights)


def _cmd_weights(args: argparse.Namespace) -> int:
    from longtail.samplers.weights.weighting import exposure_report, sample_weights

    out = args.output
    if not out.lower().endswith(_FORMATS):
        raise CLIError(f"output {out!r} must end with .npy or .parquet")
    check_output(out, args.force, inputs=[args.path])
    params = {_PARAMS[k]: v for k, v in vars(args).items() if k in _PARAMS and v is not None}
    labels = load_labels(args.path, args.column)
    t0 = time.perf_counter()
    try:
        weights = sample_weights(labels, args.method, **params)
    except TypeError as exc:
        # a parameter of another method: name the option
        msg = str(exc)
        for key in params:
            if repr(key) in msg:
                raise CLIError(f"--{key.replace('_', '-')} does not apply to "
                               f"--method {args.method}") from None
        raise
    except ValueError as exc:  # name the option, not only the parameter
        msg = str(exc)
        for key in params:
            if msg.startswith(key):
                raise CLIError(f"--{key.replace('_', '-')}: {msg}") from None
        raise
    elapsed = time.perf_counter() - t0
    report = exposure_report(labels, weights)
    _write(out, weights, args.force, inputs=[args.path])
    if args.json:
        print(json.dumps({"method": args.method, "params": params, "output": out,
                          "seconds": elapsed, **report.to_dict()}, indent=2))
    else:
        shown = ", ".join(f"{k}={v}" for k, v in params.items())
        print(f"{args.path} [{args.column}]: method {args.method}"
              f"{f' ({shown})' if shown else ''}, {elapsed:.2f} s")
        print(report)
        print(f"wrote {out}: {weights.size:,} weights (mean {weights.mean():.4g}, "
              f"min {weights.min():.4g}, max {weights.max():.4g})")
    return 0


def _write(path: str, weights: np.ndarray, overwrite: bool,
           inputs: tuple[str, ...] | list[str] = ()) -> None:
    from longtail.datasets.io import atomic_output

    with atomic_output(path, overwrite, inputs=inputs) as tmp:
        if path.lower().endswith(".npy"):
            with open(tmp, "wb") as f:
                np.save(f, weights)
        else:
            import pyarrow as pa
            import pyarrow.parquet as pq

            table = pa.table({"index": pa.array(np.arange(weights.size, dtype=np.int64)),
                              "weight": pa.array(weights)})
            pq.write_table(table, tmp)
