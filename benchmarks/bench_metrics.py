"""Average precision (macro, micro) vs scikit-learn and torchmetrics.

Run: ``flock /tmp/longtail-bench.lock .venv/bin/python benchmarks/bench_metrics.py``
(``--sizes 5000 20000``, ``--runs 5``, ``--no-anchor-micro`` to skip the slow
anchor micro runs, ``--micro-rows 80000`` for the large exact micro-AP run, 0 to skip;
``--quick``: ours and the scikit-learn macro anchor only, about two minutes).

Data (same for everyone, in the same process): 7,900 labels, prevalence 1.1%..15%
(``0.011 + 0.139 u^20``: most labels near 1-2%, a tail of frequent ones, ~140 labels per
example), dense uint8 targets, float32 scores ``sigmoid(N(0, 1) + a_c y - 2)`` with
``a_c ~ U(0.5, 3)`` (correlated with the targets), a third of the labels rounded to 3
decimals (ties). Side by side: after a warm-up, every implementation runs once per round
for ``--runs`` rounds in alternating order; times are medians over the rounds and each
ratio is the median of the per-round ratios (its range in brackets); the load average is
printed at the start and the end. Peak memory: peak resident memory
above the level before the call, sampled every millisecond by a thread (glibc's mmap
threshold is fixed at 1 MiB so freed blocks leave the process and every call is
measured alike).
"""
from __future__ import annotations

import argparse
import gc
import os
import statistics
import sys
import time
import warnings
from typing import Any, Callable

import numpy as np

sys.path.insert(0, os.path.dirname(__file__))
from _util import PeakRSS, fmt_s, rss, run_python, table  # noqa: E402

from longtail import metrics as M  # noqa: E402
from longtail._core.checks import freeze  # noqa: E402
from longtail.metrics import _kernels as K  # noqa: E402
from longtail.metrics._inputs import as_labels, score_bits  # noqa: E402

N_LABELS = 7900


def gib(b: float) -> str:
    return f"{b / 2**30:.2f} GiB" if b >= 2**30 else f"{b / 2**20:.0f} MiB"


def make_data(n: int, c: int = N_LABELS, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    prevalence = (0.011 + 0.139 * rng.random(c) ** 20).astype(np.float32)
    strength = rng.uniform(0.5, 3.0, c).astype(np.float32)
    tied = rng.random(c) < 1 / 3
    y = np.empty((n, c), dtype=np.uint8)
    s = np.empty((n, c), dtype=np.float32)
    step = 2000
    for r0 in range(0, n, step):
        r1 = min(n, r0 + step)
        g = np.random.default_rng([seed, r0])
        yy = g.random((r1 - r0, c), dtype=np.float32) < prevalence
        z = g.standard_normal((r1 - r0, c), dtype=np.float32) + strength * yy - 2.0
        ss = 1 / (1 + np.exp(-z))
        ss[:, tied] = np.round(ss[:, tied], 3)
        y[r0:r1] = yy
        s[r0:r1] = ss
    return y, s


def interleaved(impls: dict[str, Callable[[], Any]], runs: int) -> dict[str, dict[str, Any]]:
    """Run every implementation once per round, in alternating order, ``runs`` rounds.

    Returns per implementation: the per-round seconds, their median, the last value and
    the largest peak extra RSS. Ratios are then taken round by round (:func:`ratio`).
    """
    out: dict[str, dict[str, Any]] = {k: {"times": [], "mem": 0} for k in impls}
    names = list(impls)
    for r in range(runs):
        for name in (names if r % 2 == 0 else names[::-1]):
            dt, value, mem = once(impls[name])
            out[name]["times"].append(dt)
            out[name]["value"] = value
            out[name]["mem"] = max(out[name]["mem"], mem)
    for name in names:
        out[name]["median"] = statistics.median(out[name]["times"])
    return out


def ratio(anchor: dict[str, Any], ours: dict[str, Any]) -> str:
    """Median over rounds of anchor time / our time in the same round (and the range)."""
    rs = [a / o for a, o in zip(anchor["times"], ours["times"])]
    spread = f" ({min(rs):.1f}-{max(rs):.1f}x)" if len(rs) > 1 else ""
    return f"{statistics.median(rs):.1f}x{spread}"


def once(fn: Callable[[], Any]) -> tuple[float, Any, int]:
    with PeakRSS() as mem:
        t0 = time.perf_counter()
        out = fn()
        dt = time.perf_counter() - t0
    return dt, out, mem.extra


def sklearn_ap(y: np.ndarray, s: np.ndarray, average: str | None) -> Any:
    from sklearn.metrics import average_precision_score

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return average_precision_score(y, s, average=average)


def torchmetrics_ap(y: np.ndarray, s: np.ndarray, average: str) -> Any:
    import torch
    from torchmetrics.functional.classification import multilabel_average_precision

    return multilabel_average_precision(torch.from_numpy(s), torch.from_numpy(y), y.shape[1],
                                         average=average, thresholds=None).item()


def have_torchmetrics() -> bool:
    try:
        import torchmetrics  # noqa: F401
    except ImportError:
        return False
    return True


def independent_micro(y: np.ndarray, s: np.ndarray) -> float:
    """Micro AP by another exact route: one sort of all N*C keys (memory ~4 B per
    entry) and the per-label kernel run on the flattened matrix as a single column."""
    bits = score_bits(s)
    labels = as_labels(y, *bits.shape)
    offsets, indices = labels.offsets, labels.indices
    flat = bits.reshape(-1)
    keys = np.empty(flat.shape[0], dtype=np.uint32)
    K.keys_1d(flat, keys)
    keys.sort()
    pos = np.empty(indices.shape[0], dtype=np.uint32)
    K.csr_pos_keys(bits, offsets, indices, 0, pos, 0)
    pos.sort()
    out = np.empty(1)
    K.block_ap(keys.reshape(1, -1), 0, freeze(pos.astype(np.uint64)),
               freeze(np.array([0, pos.shape[0]], dtype=np.int64)), out)
    return float(out[0])


FIRST_CALL = r"""
import json, time
t0 = time.perf_counter()
import numpy as np
from longtail.metrics import average_precision
y = np.array([[1, 0], [0, 1], [1, 1]]); s = np.array([[0.9, 0.2], [0.3, 0.8], [0.5, 0.1]])
average_precision(y, s); average_precision(y, s, "micro")
print(json.dumps(dict(first_s=time.perf_counter() - t0)))
"""


def fix_malloc_threshold() -> None:
    """Make glibc return every large block to the OS on free (no dynamic mmap
    threshold), so that the RSS sampled during a call reflects that call's memory."""
    try:
        import ctypes

        ctypes.CDLL("libc.so.6").mallopt(-3, 1 << 20)  # M_MMAP_THRESHOLD = 1 MiB
    except (OSError, AttributeError):  # pragma: no cover - not glibc
        pass


HEAD = ["data", "AP", "impl", "seconds", "peak extra RSS", "vs scores", "anchor/ours",
        "value", "max abs diff"]


def main() -> None:
    fix_malloc_threshold()
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", type=int, nargs="+", default=[5000, 20000])
    ap.add_argument("--runs", type=int, default=5,
                    help="interleaved rounds (every implementation once per round)")
    ap.add_argument("--anchor-micro-runs", type=int, default=None,
                    help="rounds for the micro comparison (default: --runs)")
    ap.add_argument("--no-anchor-micro", action="store_true")
    ap.add_argument("--micro-rows", type=int, default=80000)
    ap.add_argument("--n-jobs", type=int, default=2, help="extra row for ours with threads")
    ap.add_argument("--quick", action="store_true",
                    help="no anchor micro runs, no 80,000-row run, no torchmetrics")
    args = ap.parse_args()
    if args.quick:
        args.no_anchor_micro, args.micro_rows = True, 0
    load0 = os.getloadavg()
    print(f"load average at start: {load0[0]:.2f} {load0[1]:.2f} {load0[2]:.2f}", flush=True)
    rows: list[tuple[tuple[int, str, int], list[str]]] = []

    def add(n: int, kind: str, order: int, cells: list[Any]) -> None:
        rows.append(((n, kind, order), [f"{n:,} x {N_LABELS:,}", kind] + [str(c) for c in cells]))
        print(table(HEAD, [rows[-1][1]]).splitlines()[-1], flush=True)

    # phase 1: longtail and scikit-learn, side by side (torch not imported yet: its
    # threads and allocator settings would disturb the timings and the memory sampling).
    # Each round runs every implementation once, in alternating order, so a change of
    # load hits them alike; figures are medians over the rounds and every ratio is the
    # median of the per-round ratios (ours and the anchor of the same round).
    for n in args.sizes:
        y, s = make_data(n)
        mat = s.nbytes
        print(f"# {n:,} x {N_LABELS:,}: {y.sum() / n:.0f} labels/example, scores {gib(mat)}",
              flush=True)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            per_label = M.average_precision(y, s, None)   # warm-up (compilation)
            M.average_precision(y, s, "micro")
        impls: dict[str, Callable[[], Any]] = {
            "longtail": lambda: M.average_precision(y, s, "macro")}
        if args.n_jobs > 1:
            impls[f"longtail n_jobs={args.n_jobs}"] = lambda: M.average_precision(
                y, s, "macro", n_jobs=args.n_jobs)
        impls["scikit-learn"] = lambda: sklearn_ap(y, s, None)
        res = interleaved(impls, args.runs)
        t, v, m = res["longtail"]["median"], res["longtail"]["value"], res["longtail"]["mem"]
        add(n, "macro", 0, ["longtail", fmt_s(t), gib(m), f"{m / mat:.2f}x", "", f"{v:.6f}", ""])
        if args.n_jobs > 1:
            r = res[f"longtail n_jobs={args.n_jobs}"]
            add(n, "macro", 1, [f"longtail n_jobs={args.n_jobs}", fmt_s(r["median"]),
                                gib(r["mem"]), f"{r['mem'] / mat:.2f}x",
                                f"{ratio(res['scikit-learn'], r)} vs scikit-learn",
                                f"{r['value']:.6f}", f"{abs(r['value'] - v):.1e}"])
        r = res["scikit-learn"]
        pa = r["value"]
        add(n, "macro", 2, ["scikit-learn", fmt_s(r["median"]), gib(r["mem"]),
                            f"{r['mem'] / mat:.2f}x", ratio(r, res["longtail"]),
                            f"{float(np.mean(pa)):.6f}",
                            f"{float(np.abs(per_label - pa).max()):.1e} (per label)"])
        impls = {"longtail": lambda: M.average_precision(y, s, "micro")}
        if not args.no_anchor_micro:
            impls["scikit-learn"] = lambda: sklearn_ap(y, s, "micro")
        res = interleaved(impls, args.runs if args.anchor_micro_runs is None
                          else args.anchor_micro_runs)
        t, v, m = res["longtail"]["median"], res["longtail"]["value"], res["longtail"]["mem"]
        add(n, "micro", 0, ["longtail", fmt_s(t), gib(m), f"{m / mat:.2f}x", "", f"{v:.6f}", ""])
        if not args.no_anchor_micro:
            r = res["scikit-learn"]
            add(n, "micro", 2, ["scikit-learn", fmt_s(r["median"]), gib(r["mem"]),
                                f"{r['mem'] / mat:.2f}x", ratio(r, res["longtail"]),
                                f"{r['value']:.6f}", f"{abs(r['value'] - v):.1e}"])
        del y, s
        gc.collect()
    # phase 2: exact micro AP at 80,000 x 7,900, checked by another exact route
    if args.micro_rows:
        n = args.micro_rows
        y, s = make_data(n)
        print(f"# {n:,} x {N_LABELS:,}: scores {gib(s.nbytes)}, targets {gib(y.nbytes)}",
              flush=True)
        base = rss()
        t, v, m = once(lambda: M.average_precision(y, s, "micro"))
        add(n, "micro", 0, ["longtail", fmt_s(t), gib(m), f"{m / s.nbytes:.2f}x",
                            f"process peak {gib(base + m)}", f"{v:.9f}", ""])
        ti, vi, mi = once(lambda: independent_micro(y, s))
        add(n, "micro", 3, ["one global sort (check)", fmt_s(ti), gib(mi),
                            f"{mi / s.nbytes:.2f}x", "", f"{vi:.9f}", f"{abs(vi - v):.1e}"])
        del y, s
        gc.collect()
    # phase 3: torchmetrics, if installed
    if args.quick:
        print("--quick: torchmetrics not measured")
    elif have_torchmetrics():
        for n in args.sizes:
            y, s = make_data(n)
            mat = s.nbytes
            kinds = ["macro"] + ([] if args.no_anchor_micro else ["micro"])
            for kind in kinds:   # side by side again: torch is imported from here on
                res = interleaved({"longtail": lambda: M.average_precision(y, s, kind),
                                   "torchmetrics": lambda: torchmetrics_ap(y, s, kind)},
                                  min(args.runs, 3))
                r, v = res["torchmetrics"], res["longtail"]["value"]
                add(n, kind, 4, ["torchmetrics", fmt_s(r["median"]), gib(r["mem"]),
                                 f"{r['mem'] / mat:.2f}x", ratio(r, res["longtail"]),
                                 f"{r['value']:.6f}", f"{abs(r['value'] - v):.1e}"])
            del y, s
            gc.collect()
    else:
        print("torchmetrics not installed: not measured")
    first = run_python(FIRST_CALL)["first_s"]
    print()
    print(table(HEAD, [r for _, r in sorted(rows, key=lambda r: r[0])]))
    print(f"\nfirst call in a new process (imports + cached kernels): {fmt_s(first)}")
    load1 = os.getloadavg()
    print(f"load average at start {load0[0]:.2f} / {load0[1]:.2f} (1 / 5 min), at the end "
          f"{load1[0]:.2f} / {load1[1]:.2f}")


if __name__ == "__main__":
    main()
