"""``longtail warmup``: compile every Numba kernel once, ahead of first use.

Example
-------
::

    longtail warmup

longtail's kernels are compiled by Numba the first time they run in an installation
(about a minute in all) and cached on disk (``cache=True``, next to the package or
in ``NUMBA_CACHE_DIR``); later processes load them in milliseconds. This command calls
every public entry point once on tiny data, so that the first real call of a training
script does not stall, and prints the time taken. It writes nothing but the Numba cache
(its few temporary files go to a temporary directory that is removed).
"""
from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from typing import Any, Callable

import numpy as np


def add_parser(sub: Any) -> None:
    """Register the ``warmup`` subcommand."""
    p = sub.add_parser(
        "warmup", help="compile every kernel once (ahead of first use), print the time",
        description="Call every public entry point once on tiny data so that every Numba "
                    "kernel compiles and lands in the Numba cache; later processes then "
                    "load them instead of compiling on first use. Prints the time taken "
                    "per area.")
    p.add_argument("--quiet", action="store_true", help="print only the total time")
    p.set_defaults(func=_cmd_warmup)


# ---------------------------------------------------------------------------- the calls
def _labels() -> Any:
    from longtail.datasets import make_long_tail

    dense = make_long_tail("small", seed=0, n_examples=120, n_labels=80).labels
    sparse = make_long_tail("sparse", seed=0, n_examples=120, n_labels=30).labels
    return dense, sparse


def _datasets(tmp: str) -> None:
    import scipy.sparse as sp

    from longtail.datasets import ArrowDataset, LabelMatrix, read_features, write_dataset

    dense, _ = _labels()
    rows = [[2, 0], [1], [], [0, 1, 2]]            # unsorted rows are accepted, sorted once
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        y = LabelMatrix.from_any(rows, n_labels=3)
        LabelMatrix.from_lists([[0, 2], [1]], n_labels=3)
        LabelMatrix.from_dense(y.multi_hot_numpy(dtype=np.uint8))
        LabelMatrix.from_dense(y.multi_hot_numpy(dtype=np.float32))
        LabelMatrix.from_scipy(sp.csr_matrix(y.multi_hot_numpy()))
        LabelMatrix.from_arrow(y.to_arrow())
    y.stats(), y.transpose(), y.take([0, 3]), y.label_counts()
    path = os.path.join(tmp, "data.arrow")
    x = np.zeros((len(dense), 4), dtype=np.float32)
    write_dataset(path, x, dense)
    LabelMatrix.open(path).label_counts()
    read_features(path)
    import pyarrow as pa
    import pyarrow.parquet as pq

    pq.write_table(pa.table({"labels": dense.to_arrow()}), os.path.join(tmp, "l.parquet"))
    LabelMatrix.read_parquet(os.path.join(tmp, "l.parquet"))
    try:
        import torch  # noqa: F401
    except ImportError:  # pragma: no cover - torch is a dependency
        return
    ds = ArrowDataset(path)
    ArrowDataset.collate([ds[0], ds[1]])
    dense.multi_hot([0, 1])


def _weights() -> None:
    from longtail.samplers.weights import exposure_report, sample_weights
    from longtail.samplers.weights.weighting import METHODS

    for y in _labels():
        for method in sorted(METHODS):
            w = sample_weights(y, method)
            exposure_report(y, w)


def _samplers() -> None:
    from longtail.samplers.balanced import (ClassAwareSampler, RepeatFactorSampler,
                                            WeightedSampler)

    for y in _labels():
        w = np.linspace(0.5, 2.0, len(y))
        samplers = [
            WeightedSampler(w, seed=1), WeightedSampler(w, len(y) // 2, replacement=False),
            RepeatFactorSampler(y, threshold=0.3, warn=False),
            RepeatFactorSampler.from_factors(w),
            ClassAwareSampler(y, warn=False),
            ClassAwareSampler(y, class_weights=np.ones(y.n_labels), warn=False),
            ClassAwareSampler(y, batch_size=8, return_labels=True, warn=False),
        ]
        for s in samplers:
            list(s)
            s.set_epoch(1)
            it = iter(s)
            next(it)
            state = s.state_dict()
            s.load_state_dict(state)
            list(s)


def _splits() -> None:
    from longtail.samplers.split import (MultilabelStratifiedKFold,
                                         MultilabelStratifiedShuffleSplit,
                                         StratifiedBatchSampler, iterative_stratification,
                                         stratification_report, stratified_split)

    for y in _labels():
        groups = np.arange(len(y)) // 2
        for method in ("balanced", "sechidis"):
            for order in (1, 2):
                parts = iterative_stratification(y, [0.6, 0.2, 0.2], order=order,
                                                 method=method, seed=1)
            iterative_stratification(y, [0.5, 0.5], method=method, groups=groups)
        iterative_stratification(y, [0.5, 0.5], method="sechidis", compat="iterstrat",
                                 seed=0)
        iterative_stratification(y, [0.5, 0.5], refine=2)
        stratification_report(y, parts, fractions=[0.6, 0.2, 0.2])
        # the sampled label pairs of large data (uniform, then frequency-weighted)
        stratification_report(y, parts, max_pair_occurrences=1)
        stratification_report(y, parts, max_pairs=4 * y.n_labels ** 2,
                              max_pair_occurrences=1)
        stratified_split(y, {"train": 0.8, "test": 0.2})
        x = np.zeros((len(y), 1))
        dense = y.multi_hot_numpy(dtype=np.int64)
        for splitter in (MultilabelStratifiedKFold(3, random_state=0),
                         MultilabelStratifiedKFold(3, random_state=0, method="sechidis",
                                                   compat="iterstrat"),
                         MultilabelStratifiedShuffleSplit(2, test_size=0.25,
                                                          random_state=0)):
            list(splitter.split(x, dense))
        s = StratifiedBatchSampler(y, batch_size=8)
        list(s)
        s.state_dict()
        # more batches than one group holds: the grouped build
        list(StratifiedBatchSampler(y, batch_size=1, num_threads=1))


def _replay() -> None:
    from longtail.samplers.replay import HardExampleSampler, SumTree

    tree = SumTree(16, np.linspace(0.1, 1.6, 16), seed=0)
    tree.sample(4)
    tree.update([1, 2], [0.5, 0.0])
    tree.find([0.3, 1.2])
    for priority in ("loss", "rank", "percentile"):
        s = HardExampleSampler(64, 8, priority=priority, base_weights=np.ones(64),
                               base_fraction=0.25, in_flight_factor=0.5, seed=0)
        for _ in range(3):
            b = s.sample()
            s.update(b.extras["index"], np.linspace(0.0, 1.0, len(b), dtype=np.float32))
        s.load_state_dict(s.state_dict())
        s.probabilities()
    # [B, C] per-entry losses: reduced by the sampler's own fused kernel
    s = HardExampleSampler(64, 8, loss_reduction="balanced", seed=0)
    b = s.sample()
    entries = np.linspace(0.0, 1.0, 3 * len(b), dtype=np.float32).reshape(len(b), 3)
    s.update(b.extras["index"], entries, targets=(entries > 0.5).astype(np.float32))


def _metrics() -> None:
    from longtail.metrics import (MetricAccumulator, apply_thresholds, average_precision,
                                  label_propensities, precision_at_k, prediction_ratio,
                                  propensity_scored_precision_at_k, tune_thresholds)

    y = _labels()[0]
    dense = y.multi_hot_numpy(dtype=np.float32)
    rng = np.random.default_rng(0)
    for dtype in (np.float32, np.float64):
        scores = (rng.random(dense.shape) + dense).astype(dtype)
        for target in (y, dense):
            average_precision(target, scores)
            average_precision(target, scores, average="micro")
            average_precision(target, scores, average=None)
            precision_at_k(target, scores)
            prop = label_propensities(y.label_counts(), len(y))
            propensity_scored_precision_at_k(target, scores, propensities=prop)
            thresholds = tune_thresholds(target, scores)
            tune_thresholds(target, scores, objective="match_count")
            predictions = apply_thresholds(scores, thresholds)
            prediction_ratio(target, predictions)
        acc = MetricAccumulator()
        acc.update(scores, dense)
        acc.compute()
        acc.tune_thresholds()


def _generate() -> None:
    from longtail.datasets import make_long_tail

    for preset in ("small", "sparse"):
        d = make_long_tail(preset, seed=1, n_examples=60, n_labels=80)
        if d.oracle is not None:
            d.oracle.predict_proba(d.features[:4])


#: what warmup calls, in order: (area, function of a temporary directory or of nothing)
STEPS: list[tuple[str, Callable[..., None]]] = [
    ("synthetic data", _generate), ("label matrices and datasets", _datasets),
    ("sample weights", _weights), ("samplers", _samplers), ("splits", _splits),
    ("hard-example replay", _replay), ("metrics", _metrics),
]


def warmup(report: Callable[[str, float], None] | None = None) -> float:
    """Call every public entry point once on tiny data; return the seconds taken.

    Every kernel then lies compiled in the Numba cache, for this process and for the
    next ones. ``report(area, seconds)`` is called after each area.

    Example
    -------
    >>> [area for area, _ in STEPS][:3]       # what it calls, area by area
    ['synthetic data', 'label matrices and datasets', 'sample weights']
    >>> # warmup(lambda area, seconds: print(area, round(seconds, 1)))
    """
    t0 = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="longtail-warmup-") as tmp:
        for area, step in STEPS:
            t = time.perf_counter()
            step(tmp) if step is _datasets else step()
            if report is not None:
                report(area, time.perf_counter() - t)
    return time.perf_counter() - t0


def _cmd_warmup(args: argparse.Namespace) -> int:
    from longtail._core.compile_notice import silence

    silence()   # this command says what it does itself
    def report(area: str, seconds: float) -> None:
        if not args.quiet:
            print(f"  {area:<28} {seconds:7.2f} s", flush=True)

    if not args.quiet:
        print("longtail warmup: compiling (or loading from the cache) every kernel ...",
              flush=True)
    seconds = warmup(report)
    cache = os.environ.get("NUMBA_CACHE_DIR") or "next to the package (__pycache__)"
    print(f"longtail warmup: done in {seconds:.1f} s; kernels cached {cache}")
    sys.stdout.flush()
    return 0
