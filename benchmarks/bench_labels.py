"""LabelMatrix at seed scale: open, label_counts, stats, multi_hot vs pyarrow/torch.

Run: ``python benchmarks/bench_labels.py [--skip-extreme]``

Every figure is a median; open time (full checks of the file) and memory are measured in a fresh process (warm
Numba cache, cold page cache is not forced). The baseline for multi_hot is what users
write without longtail: ``column.take(rows).to_pylist()`` and a torch scatter.
"""
from __future__ import annotations

import argparse
import os
import sys
import tempfile

import numpy as np
import torch

sys.path.insert(0, os.path.dirname(__file__))
from _util import fmt_s, median_time, run_python, table  # noqa: E402

from longtail import LabelMatrix  # noqa: E402
from longtail.datasets import make_long_tail  # noqa: E402

OPEN_CODE = r"""
import json, os, time, psutil, pyarrow as pa
import longtail
from longtail import LabelMatrix
# warm up in this process: imports, Numba's first dispatch, one open of another file
LabelMatrix.open({warm!r}).label_counts()
proc = psutil.Process()
rss0 = proc.memory_info().rss
arrow0 = pa.total_allocated_bytes()
t0 = time.perf_counter()
y = LabelMatrix.open({path!r})
t1 = time.perf_counter()
rss1 = proc.memory_info().rss
print(json.dumps(dict(open_s=t1 - t0, rss_growth=rss1 - rss0,
                      arrow_alloc=pa.total_allocated_bytes() - arrow0, n=len(y))))
"""

IMPORT_CODE = r"""
import json, time
t0 = time.perf_counter()
import longtail
t1 = time.perf_counter()
y = longtail.LabelMatrix.from_lists([[0, 1], [1]])
y.label_counts(); y.stats(); y.multi_hot_numpy([0]); y.transpose()
t2 = time.perf_counter()
import torch
t3 = time.perf_counter()
print(json.dumps(dict(import_s=t1 - t0, first_calls_s=t2 - t1, torch_s=t3 - t2)))
"""

EXTREME_CODE = r"""
import json, resource, time
from longtail.datasets import make_long_tail
t0 = time.perf_counter()
d = make_long_tail("extreme", seed=0)
t1 = time.perf_counter()
s = d.labels.stats()
counts = d.labels.label_counts()
print(json.dumps(dict(gen_s=t1 - t0, peak_rss=resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024,
                      n=s.n_examples, L=s.n_labels, card=s.cardinality,
                      under10=float((counts < 10).mean()))))
"""


def baseline_multi_hot(column, rows: np.ndarray, n_labels: int) -> torch.Tensor:
    """What users write without longtail: to_pylist + a torch scatter."""
    lists = column.take(rows).to_pylist()
    out = torch.zeros((len(lists), n_labels))
    for i, labs in enumerate(lists):
        out[i, labs] = 1.0
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--skip-extreme", action="store_true")
    args = parser.parse_args()
    torch.set_num_threads(1)

    data = make_long_tail("seed", seed=0)
    tmp = tempfile.mkdtemp()
    path = os.path.join(tmp, "seed_labels.arrow")
    data.labels.save(path)
    size = os.path.getsize(path)
    warm = os.path.join(tmp, "warm.arrow")
    LabelMatrix.from_lists([[0, 1], [2]]).save(warm)
    ds_path = os.path.join(tmp, "seed.arrow")
    data.save(ds_path)

    rows_out = []
    opens = [run_python(OPEN_CODE.format(path=path, warm=warm)) for _ in range(5)]
    open_s = float(np.median([o["open_s"] for o in opens]))
    growth = float(np.median([o["rss_growth"] for o in opens]))
    rows_out.append(["open IPC label file (%.1f MB), full checks" % (size / 1e6), fmt_s(open_s),
                     f"RSS +{growth / 1e6:.2f} MB ({growth / size:.1%} of file, mapped pages), "
                     f"Arrow alloc {opens[0]['arrow_alloc']} B", "< 50 ms"])
    opens_ds = [run_python(OPEN_CODE.format(path=ds_path, warm=warm)) for _ in range(3)]
    rows_out.append(["open dataset file (%.0f MB, labels column)" % (os.path.getsize(ds_path) / 1e6),
                     fmt_s(float(np.median([o["open_s"] for o in opens_ds]))),
                     f"RSS +{np.median([o['rss_growth'] for o in opens_ds]) / 1e6:.2f} MB", ""])

    # a 1 GiB label file (2.1M rows x 128 labels): opening must stay O(1)
    big = os.path.join(tmp, "big_labels.arrow")
    n_big, k = 2_097_152, 128
    row = np.arange(0, 2 * k, 2, dtype=np.int32)
    big_indices = np.tile(row, n_big)
    LabelMatrix._trusted(np.arange(n_big + 1, dtype=np.int64) * k, big_indices, 2 * k).save(big)
    del big_indices
    big_size = os.path.getsize(big)
    opens_big = [run_python(OPEN_CODE.format(path=big, warm=warm)) for _ in range(5)]
    g = float(np.median([o["rss_growth"] for o in opens_big]))
    rows_out.append(["open IPC label file (%.2f GiB), full checks" % (big_size / 2**30),
                     fmt_s(float(np.median([o["open_s"] for o in opens_big]))),
                     f"RSS +{g / 1e6:.2f} MB ({g / big_size:.2%} of file, mapped pages)", "O(nnz)"])
    os.unlink(big)

    y = LabelMatrix.open(path)
    t_counts = median_time(lambda: LabelMatrix.open(path).label_counts(), repeat=9)
    t_open_only = median_time(lambda: LabelMatrix.open(path), repeat=9)
    rows_out.append(["label_counts (fresh matrix, no cache)", fmt_s(t_counts - t_open_only),
                     f"np.bincount: {fmt_s(median_time(lambda: np.bincount(y.indices, minlength=y.n_labels)))}",
                     "<= 30 ms"])
    t_stats = median_time(lambda: LabelMatrix.open(path).stats(), repeat=5)
    rows_out.append(["stats (IRLbl, MeanIR, CVIR, SCUMBLE, quantiles)", fmt_s(t_stats - t_open_only), "",
                     "<= 200 ms"])
    t_T = median_time(lambda: LabelMatrix.open(path).transpose(), repeat=5)
    rows_out.append(["transpose (CSC)", fmt_s(t_T - t_open_only), "", ""])

    import pyarrow as pa
    with pa.memory_map(path) as src:
        column = pa.ipc.open_file(src).read_all().column("labels")
    rng = np.random.default_rng(0)
    batches = [rng.choice(len(y), 256, replace=False) for _ in range(20)]
    it = iter(range(10**9))
    t_ours = median_time(lambda: y.multi_hot(batches[next(it) % 20]), repeat=21)
    t_base = median_time(lambda: baseline_multi_hot(column, batches[next(it) % 20], y.n_labels),
                         repeat=9)
    rows_out.append(["multi_hot 256 x 7,900 (samples/s)", f"{256 / t_ours:,.0f}/s ({fmt_s(t_ours)})",
                     f"to_pylist+torch: {256 / t_base:,.0f}/s ({fmt_s(t_base)}); "
                     f"ratio {t_base / t_ours:.1f}x", ">= 10x"])
    try:
        import datasets  # noqa: F401
        rows_out.append(["HF datasets with_format('torch')", "installed but not measured", "", ""])
    except ImportError:
        rows_out.append(["HF datasets with_format('torch')", "not installed: not measured", "", ""])

    imports = [run_python(IMPORT_CODE) for _ in range(5)]
    rows_out.append(["import longtail (lazy)", fmt_s(float(np.median([i["import_s"] for i in imports]))),
                     "then first LabelMatrix calls (cached kernels; imports pyarrow+numba, "
                     "Numba's first dispatch): "
                     + fmt_s(float(np.median([i["first_calls_s"] for i in imports])))
                     + "; then import torch: "
                     + fmt_s(float(np.median([i["torch_s"] for i in imports]))), "< 1 s"])
    if not args.skip_extreme:
        ex = run_python(EXTREME_CODE)
        rows_out.append([f"make_long_tail('extreme') {ex['n']:,} x {ex['L']:,}", fmt_s(ex["gen_s"]),
                         f"peak RSS {ex['peak_rss'] / 2**30:.2f} GiB, {ex['card']:.2f} labels/ex, "
                         f"{ex['under10']:.0%} of labels < 10 examples", "< 2 min, < 8 GiB"])
    print(f"seed preset: {len(y):,} x {y.n_labels:,}, nnz {y.nnz:,}; torch threads 1")
    print(table(["what", "longtail", "reference / anchor", "target"], rows_out))


if __name__ == "__main__":
    main()
