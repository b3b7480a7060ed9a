"""Iterative stratification: longtail vs iterative-stratification vs scikit-multilearn.

Run: ``flock /tmp/longtail-bench.lock .venv/bin/python benchmarks/bench_stratify.py``
(``--skip-anchors`` leaves out the two packages, ``--anchors-max-n N`` runs them only up
to N examples, ``--skip-extreme`` leaves out the 3M x 670k preset).

Data: ``make_long_tail("seed", n_examples=n, n_labels=L, mean_labels=L * 130 / 7900)``
for (5k, 300), (20k, 2,000), (40k, 4,000) (the seed shape's density, 1.65%), the seed
preset itself (80,000 x 7,900) and the extreme preset (3,000,000 x 670,000, ours only).
Splits: 5 folds (``MultilabelStratifiedKFold(5, shuffle=True)`` /
``IterativeStratification(n_splits=5, order=1)``) and 80/20
(``MultilabelStratifiedShuffleSplit(test_size=0.2)`` /
``IterativeStratification(n_splits=2, order=1, sample_distribution_per_fold=[0.2, 0.8])``).

* seconds: ours, median of 5 calls, each on a fresh LabelMatrix (so the CSC it needs is
  built inside the timed call), after compilation (the note gives the median with the
  LabelMatrix's CSC already cached, as in any later call); the anchors: one run each, in a fresh
  process, converting the labels to what they take (a dense bool array for
  iterative-stratification, a scipy CSR matrix for scikit-multilearn) inside the timing.
* memory: peak resident memory of the call above what the process held before it
  (Linux VmHWM reset through /proc/self/clear_refs), in a fresh process per method, with
  the label file's pages touched before the baseline.
* LD / ED / FZ: :func:`longtail.stratification_report` (Sechidis et al. 2011) of the
  parts, mean over seeds 0, 1, 2. iterative-stratification's parts for the three seeds
  come from ``compat="iterstrat"``, which reproduces them exactly: this script checks it
  against the package's own run (seed 0) wherever the package runs. scikit-multilearn:
  its one run (seed 0; it draws from NumPy's global state). random: a random
  permutation of the balanced parts (same sizes).
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time

import numpy as np

sys.path.insert(0, os.path.dirname(__file__))
from _util import fmt_s, table  # noqa: E402

from longtail import LabelMatrix, iterative_stratification, stratification_report  # noqa: E402
from longtail.datasets import make_long_tail  # noqa: E402
from longtail.samplers import StratifiedBatchSampler  # noqa: E402

SIZES = [(5_000, 300), (20_000, 2_000), (40_000, 4_000), (80_000, 7_900)]
SPLITS = {"5-fold": [0.2] * 5, "80/20": [0.8, 0.2]}
SEEDS = (0, 1, 2)

RUNNER = r"""
import json, sys, time
import numpy as np
from longtail import LabelMatrix

path, method, split, out = sys.argv[1:5]
y = LabelMatrix.open(path)
y.label_counts()                      # touch the label file's pages before the baseline
n = len(y)

def hwm_reset():
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
        return True
    except OSError:
        return False

def status(key):
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(key):
                return int(line.split()[1]) * 1024
    return 0

if method == "ours":
    from longtail import iterative_stratification
    fr = [0.2] * 5 if split == "5-fold" else [0.8, 0.2]
    iterative_stratification(LabelMatrix.from_lists([[0], [1], [0, 1], [1]] * 5), fr)
    def run():
        return iterative_stratification(y, fr, seed=0)
elif method == "iterstrat":
    from iterstrat.ml_stratifiers import (MultilabelStratifiedKFold,
                                          MultilabelStratifiedShuffleSplit)
    def run():
        dense = y.multi_hot_numpy(dtype=np.uint8).astype(bool)
        X = np.zeros((n, 1))
        parts = np.empty(n, dtype=np.int64)
        if split == "5-fold":
            cv = MultilabelStratifiedKFold(n_splits=5, shuffle=True, random_state=0)
            for i, (_, test) in enumerate(cv.split(X, dense)):
                parts[test] = i
        else:
            cv = MultilabelStratifiedShuffleSplit(n_splits=1, test_size=0.2, random_state=0)
            train, test = next(cv.split(X, dense))
            parts[train], parts[test] = 0, 1
        return parts
elif method == "skmultilearn":
    from skmultilearn.model_selection import IterativeStratification
    def run():
        csr = y.to_scipy(dtype=np.int64)
        X = np.zeros((n, 1))
        np.random.seed(0)
        parts = np.empty(n, dtype=np.int64)
        if split == "5-fold":
            cv = IterativeStratification(n_splits=5, order=1)
            for i, (_, test) in enumerate(cv.split(X, csr)):
                parts[test] = i
        else:
            cv = IterativeStratification(n_splits=2, order=1,
                                         sample_distribution_per_fold=[0.2, 0.8])
            train, test = next(cv.split(X, csr))
            parts[train], parts[test] = 0, 1
        return parts
base = status("VmRSS:")
exact = hwm_reset()
t0 = time.perf_counter()
parts = run()
seconds = time.perf_counter() - t0
peak = status("VmHWM:") if exact else status("VmRSS:")
np.save(out, np.asarray(parts))
print(json.dumps(dict(seconds=seconds, extra=max(0, peak - base), exact=exact)))
"""


def subprocess_run(path: str, method: str, split: str, tmp: str) -> tuple[dict, np.ndarray]:
    out = os.path.join(tmp, f"{method}-{split.replace('/', '_')}.npy")
    proc = subprocess.run([sys.executable, "-c", RUNNER, path, method, split, out],
                          capture_output=True, text=True)
    if proc.returncode:
        raise RuntimeError(f"{method} {split} failed:\n{proc.stderr[-3000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1]), np.load(out)


def labels_for(n: int, L: int) -> LabelMatrix:
    if (n, L) == (80_000, 7_900):
        return make_long_tail("seed", seed=0).labels
    return make_long_tail("seed", seed=0, n_examples=n, n_labels=L,
                          mean_labels=L * 130 / 7_900).labels


def fresh(y: LabelMatrix) -> LabelMatrix:
    """The same arrays in a new LabelMatrix (no cached transpose)."""
    return LabelMatrix._trusted(y.offsets, y.indices, y.n_labels)


def median_fresh(y: LabelMatrix, fn, repeat: int) -> float:
    fn(fresh(y))
    times = []
    for _ in range(repeat):
        z = fresh(y)
        t0 = time.perf_counter()
        fn(z)
        times.append(time.perf_counter() - t0)
    return float(np.median(times))


def _timed(fn) -> float:
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0


def quality(y: LabelMatrix, parts_list: list[np.ndarray], fr: list[float]) -> dict:
    reps = [stratification_report(y, p, fractions=fr, max_pairs=2_000) for p in parts_list]
    return dict(ld=float(np.mean([r.split.ld for r in reps])),
                ed=float(np.mean([r.split.ed for r in reps])),
                fz=float(np.mean([r.split.fz for r in reps])),
                flz=float(np.mean([r.split.flz for r in reps])),
                rand_ld=float(np.mean([r.random.ld for r in reps])),
                rand_fz=float(np.mean([r.random.fz for r in reps])),
                rand_flz=float(np.mean([r.random.flz for r in reps])))


def mb(x: float) -> str:
    return f"{x / 2**20:,.0f} MB"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--skip-anchors", action="store_true", help="no package runs")
    ap.add_argument("--anchors-max-n", type=int, default=10**9,
                    help="run the packages only up to this many examples")
    ap.add_argument("--skip-extreme", action="store_true", help="leave out 3M x 670k")
    ap.add_argument("--repeat", type=int, default=5, help="timed calls of ours (median)")
    ap.add_argument("--max-n", type=int, default=10**9, help="only sizes up to this n")
    ap.add_argument("--json", help="also write the figures to this JSON file")
    args = ap.parse_args()

    rows, records = [], []
    tmp = tempfile.mkdtemp(prefix="bench_stratify_")
    for n, L in SIZES:
        if n > args.max_n:
            continue
        y = labels_for(n, L)
        path = os.path.join(tmp, f"y{n}.arrow")
        y.save(path)
        lm_bytes = y.offsets.nbytes + y.indices.nbytes
        shape = f"{n // 1000}k x {L:,}" if n != 80_000 else "seed 80k x 7,900"
        run_anchors = not args.skip_anchors and n <= args.anchors_max_n
        for split, fr in SPLITS.items():
            print(f"[{shape} {split}] ours", file=sys.stderr, flush=True)
            t_ours = median_fresh(y, lambda z: iterative_stratification(z, fr, seed=0),
                                  args.repeat)
            y.transpose()
            t_cached = float(np.median([_timed(lambda: iterative_stratification(y, fr, seed=0))
                                        for _ in range(args.repeat)]))
            m_ours, _ = subprocess_run(path, "ours", split, tmp)
            q_ours = quality(y, [iterative_stratification(y, fr, seed=s) for s in SEEDS], fr)
            t_compat = median_fresh(y, lambda z: iterative_stratification(
                z, fr, method="sechidis", compat="iterstrat", seed=0), 3)
            # the package's 80/20 is a shuffle split: its parts for seed s
            if split == "80/20":
                from longtail.samplers import MultilabelStratifiedShuffleSplit

                compat = []
                for s in SEEDS:
                    tr, te = next(MultilabelStratifiedShuffleSplit(
                        1, test_size=0.2, random_state=s, method="sechidis",
                        compat="iterstrat").split(None, y))
                    p = np.zeros(n, dtype=np.int64)
                    p[te] = 1
                    compat.append(p)
            else:
                from longtail.samplers import MultilabelStratifiedKFold

                compat = []
                for s in SEEDS:
                    p = np.zeros(n, dtype=np.int64)
                    cv = MultilabelStratifiedKFold(5, shuffle=True, random_state=s,
                                                   method="sechidis", compat="iterstrat")
                    for i, (_, te) in enumerate(cv.split(None, y)):
                        p[te] = i
                    compat.append(p)
            q_pkg = quality(y, compat, fr)
            rec = dict(shape=shape, n=n, n_labels=L, nnz=y.nnz, split=split,
                       label_matrix_bytes=lm_bytes,
                       ours=dict(q_ours, seconds=t_ours, cached_seconds=t_cached,
                                 extra=m_ours["extra"],
                                 fresh_process_seconds=m_ours["seconds"]),
                       compat_seconds=t_compat, iterstrat_quality=q_pkg)
            pkg = skml = None
            if run_anchors:
                print(f"[{shape} {split}] iterative-stratification", file=sys.stderr,
                      flush=True)
                pkg, parts_pkg = subprocess_run(path, "iterstrat", split, tmp)
                pkg["identical"] = bool(np.array_equal(parts_pkg, compat[0]))
                print(f"[{shape} {split}] scikit-multilearn", file=sys.stderr, flush=True)
                skml, parts_skml = subprocess_run(path, "skmultilearn", split, tmp)
                skml.update(quality(y, [parts_skml], fr))
                rec.update(iterstrat=pkg, skmultilearn=skml)
            records.append(rec)

            def row(method, seconds, extra, q, note=""):
                ratio = f"{seconds / t_ours:,.0f}x" if seconds and method != "longtail" \
                    else ""
                mem = "" if extra is None else f"{mb(extra)} ({extra / lm_bytes:.1f}x)"
                return [shape, split, method, fmt_s(seconds) if seconds else "-", ratio, mem,
                        f"{q['ld']:.2e}", f"{q['ld'] / q_ours['ld']:.2f}" if method !=
                        "longtail" else "1", f"{q['ed']:.1f}", f"{q['fz']:.1f}", note]

            rows.append(row("longtail", t_ours, m_ours["extra"], q_ours,
                            f"CSC cached: {fmt_s(t_cached)}"))
            rows.append(row("iterative-stratification", pkg["seconds"] if pkg else None,
                            pkg["extra"] if pkg else None, q_pkg,
                            ("compat identical" if pkg["identical"] else "COMPAT DIFFERS")
                            if pkg else "quality via compat mode"))
            if skml:
                rows.append(row("scikit-multilearn", skml["seconds"], skml["extra"], skml,
                                "1 run"))
            rows.append(row("random", None, None, dict(ld=q_ours["rand_ld"], ed=0.0,
                                                       fz=q_ours["rand_fz"])))
            rows.append(row("longtail compat=iterstrat", t_compat, None, q_pkg,
                            "same parts as the package"))
            print(table(["data", "split", "method", "seconds", "vs ours", "extra memory",
                         "LD", "LD / ours", "ED", "FZ", "note"], rows[-5:]), flush=True)

    extreme = None
    if not args.skip_extreme:
        print("[extreme] generating 3M x 670k", file=sys.stderr, flush=True)
        y = make_long_tail("extreme", seed=0).labels
        path = os.path.join(tmp, "extreme.arrow")
        y.save(path)
        lm_bytes = y.offsets.nbytes + y.indices.nbytes
        extreme = {}
        for split, fr in SPLITS.items():
            t = median_fresh(y, lambda z: iterative_stratification(z, fr, seed=0), 3)
            m, _ = subprocess_run(path, "ours", split, tmp)
            q = quality(y, [iterative_stratification(y, fr, seed=0)], fr)
            extreme[split] = dict(q, seconds=t, extra=m["extra"],
                                  fresh_process_seconds=m["seconds"])
            rows.append(["extreme 3M x 670k", split, "longtail", fmt_s(t), "",
                         f"{mb(m['extra'])} ({m['extra'] / lm_bytes:.1f}x)",
                         f"{q['ld']:.2e}", f"random {q['rand_ld']:.2e}", f"{q['ed']:.1f}",
                         f"{q['fz']:.1f}", f"FLZ {q['flz']:,.0f} vs random "
                                           f"{q['rand_flz']:,.0f}"])
        del y

    # stratified batches, seed scale, batch 256
    y = labels_for(80_000, 7_900)
    sampler = StratifiedBatchSampler(y, batch_size=256, seed=0)
    sampler.set_epoch(0)
    first = list(sampler)
    times = []
    for epoch in range(1, 6):
        sampler.set_epoch(epoch)
        t0 = time.perf_counter()
        batches = list(sampler)
        times.append(time.perf_counter() - t0)
    parts = np.empty(len(y), dtype=np.int64)
    for i, b in enumerate(batches):
        parts[b] = i
    sizes = np.bincount(parts) / len(y)
    rep = stratification_report(y, parts, fractions=sizes, max_pairs=200)
    rows.append(["seed 80k x 7,900", "313 batches of 256", "StratifiedBatchSampler",
                 fmt_s(float(np.median(times))) + " / epoch", "", "", f"{rep.split.ld:.2e}",
                 f"random {rep.random.ld:.2e}", f"{rep.split.ed:.1f}", f"{rep.split.fz}",
                 f"FLZ {rep.split.flz:,} vs random {rep.random.flz:,}"])
    del first

    print()
    print(table(["data", "split", "method", "seconds", "vs ours", "extra memory", "LD",
                 "LD / ours", "ED", "FZ", "note"], rows))
    if args.json:
        with open(args.json, "w") as f:
            json.dump(dict(records=records, extreme=extreme,
                           batches=dict(seconds_per_epoch=float(np.median(times)),
                                        ld=rep.split.ld, random_ld=rep.random.ld,
                                        flz=rep.split.flz, random_flz=rep.random.flz)),
                      f, indent=2)


if __name__ == "__main__":
    main()
