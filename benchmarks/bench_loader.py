#!/usr/bin/env python
"""End-to-end loader throughput: IPC file -> sampler -> DataLoader -> collate -> tensors.

Examples per second from an ``ArrowDataset`` file (the ``seed`` preset: 80,000 x 7,900
labels, 128 float32 features, written to a temporary folder) for each sampler, with
labels ``dense`` (float32 multi-hot) and ``sparse`` (:class:`longtail.SparseLabels`, CSR),
``num_workers`` 0 and 2, batch 256 and 4,096. Each run draws ``n_examples`` examples
(the last batch may go a little over: the rate counts what was delivered).

Samplers: ``shuffle`` (``WeightedSampler`` of ones without replacement), ``weighted``
(``WeightedSampler`` with replacement, ``sample_weights(..., "inverse_frequency")``),
``repeat_factor`` (threshold 0.05), ``class_aware``, ``stratified``
(``StratifiedBatchSampler``) and ``replay`` (``HardExampleSampler``; after every batch
``update(index, random per-example losses)``, timed as sampler work).

Anchors, in the same process and the same rounds (alternating order, CONTRIBUTING's rule):

* ``tensor``: a ``TensorDataset`` over the dense float32 multi-hot + torch's
  ``WeightedRandomSampler`` (same weights as ``weighted``), ``batch_size`` and the default
  collate -- what users write by hand;
* ``hf``: a Hugging Face ``datasets.Dataset`` over the same Arrow table (label column cast
  to ``list<int64>``) with ``with_format("torch")``, ``WeightedRandomSampler`` and
  ``collate_fn=longtail.hf_collate(n_labels)`` (multi-hot built in the collate); only when
  ``datasets`` is installed.

Per configuration: examples/s (median of the rounds), bytes per example moved to the
device (``x`` + ``y`` bytes; ``SparseLabels.nbytes`` for sparse), the main process's peak
RSS above its level at the start of the run (polled every 5 ms), and the sampler's share
(time inside the sampler's iterator -- and ``update`` for replay -- / run time). Ratios
ours / anchor are medians of the per-round ratios of rates. The load average is printed at
the start and the end; ``getrusage`` peaks (self, children) at the end.

    python benchmarks/bench_loader.py                      # full grid, ~10 min on 2 cores
    python benchmarks/bench_loader.py --quick --samplers shuffle stratified --workers 0 --batch 256
"""
from __future__ import annotations

import argparse
import itertools
import os
import resource
import statistics
import sys
import tempfile
import time
import warnings
from typing import Any, Callable, Iterator

import numpy as np
import torch
from torch.utils.data import DataLoader, TensorDataset, WeightedRandomSampler

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from _util import PeakRSS, table  # noqa: E402

import longtail  # noqa: E402
from longtail import ArrowDataset  # noqa: E402

SAMPLERS = ("shuffle", "weighted", "repeat_factor", "class_aware", "stratified", "replay")


# ----------------------------------------------------------------------------- timers
class Clock:
    """Adds up seconds spent inside the sampler."""

    def __init__(self) -> None:
        self.seconds = 0.0


class TimedBatches:
    """A batch sampler over ``sampler`` that times every step of its iterator.

    A per-example sampler is cut into batches of ``batch_size`` here (as torch's
    ``BatchSampler`` does), so the timer runs once per batch, not once per index.
    """

    def __init__(self, sampler: Any, clock: Clock, batch_size: int | None = None) -> None:
        self.sampler, self.clock, self.batch_size = sampler, clock, batch_size

    def __iter__(self) -> Iterator[Any]:
        t0 = time.perf_counter()
        it = iter(self.sampler)
        self.clock.seconds += time.perf_counter() - t0
        b = self.batch_size
        while True:
            t0 = time.perf_counter()
            item = list(itertools.islice(it, b)) if b else next(it, None)
            self.clock.seconds += time.perf_counter() - t0
            if not item:
                return
            yield item

    def __len__(self) -> int:
        n = len(self.sampler)
        return -(-n // self.batch_size) if self.batch_size else n


# ----------------------------------------------------------------------------- runs
def y_nbytes(y: Any) -> int:
    return int(y.nbytes) if isinstance(y, longtail.SparseLabels) else y.numel() * y.element_size()


def make_ours(path: str, name: str, labels: str, workers: int, batch: int, n: int,
              device: torch.device) -> Callable[[int], dict[str, float]]:
    """One run of ours: ``n`` examples through ``name``'s sampler; returns the figures."""
    ds = ArrowDataset(path, label_format=labels)
    lab, total = ds.labels, len(ds)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        if name == "shuffle":
            sampler: Any = longtail.WeightedSampler(np.ones(total), num_samples=total,
                                                    replacement=False, seed=0)
        elif name == "weighted":
            sampler = longtail.WeightedSampler(longtail.sample_weights(lab, "inverse_frequency"),
                                               num_samples=total, seed=0)
        elif name == "repeat_factor":
            sampler = longtail.RepeatFactorSampler(lab, 0.05, seed=0, warn=False)
        elif name == "class_aware":
            sampler = longtail.ClassAwareSampler(lab, num_samples=total, batch_size=batch,
                                                 seed=0, warn=False)
        elif name == "stratified":
            sampler = longtail.StratifiedBatchSampler(lab, batch, seed=0)
        elif name == "replay":
            sampler = longtail.HardExampleSampler(total, batch, seed=0)
        else:
            raise ValueError(f"unknown sampler {name!r}")
    per_example = name in ("shuffle", "weighted", "repeat_factor")
    clock = Clock()
    timed = TimedBatches(sampler, clock, batch if per_example else None)
    loader = DataLoader(ds, batch_sampler=timed, collate_fn=ArrowDataset.collate,
                        num_workers=workers, pin_memory=device.type == "cuda")
    gen = torch.Generator().manual_seed(0)
    state = {"epoch": 0}

    def run() -> dict[str, float]:
        if hasattr(sampler, "set_epoch"):
            sampler.set_epoch(state["epoch"])
        state["epoch"] += 1
        clock.seconds = 0.0
        seen = moved = 0
        t0 = time.perf_counter()
        for x, y, idx, _extras in loader:
            moved += x.numel() * x.element_size() + y_nbytes(y)
            if device.type != "cpu":
                x = x.to(device, non_blocking=True)
                y = y.to(device, non_blocking=True)
                if isinstance(y, longtail.SparseLabels):
                    y = y.dense()
            if name == "replay":
                t1 = time.perf_counter()
                sampler.update(idx, torch.rand(len(idx), generator=gen))
                clock.seconds += time.perf_counter() - t1
            seen += len(idx)
            if seen >= n:
                break
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        dt = time.perf_counter() - t0
        return {"n": seen, "s": dt, "bytes": moved / max(seen, 1), "sampler": clock.seconds}

    return run


def make_anchor(kind: str, data: Any, weights: np.ndarray, workers: int, batch: int, n: int,
                device: torch.device) -> Callable[[], dict[str, float]]:
    """One run of an anchor (``tensor`` or ``hf``) over ``n`` examples."""
    clock = Clock()
    gen = torch.Generator().manual_seed(0)
    sampler = WeightedRandomSampler(torch.from_numpy(weights), num_samples=len(weights),
                                    generator=gen)
    timed = TimedBatches(sampler, clock, batch)
    if kind == "tensor":
        loader = DataLoader(data, batch_sampler=timed, num_workers=workers,
                            pin_memory=device.type == "cuda")
    else:
        loader = DataLoader(data["ds"], batch_sampler=timed, num_workers=workers,
                            collate_fn=longtail.hf_collate(data["n_labels"]),
                            pin_memory=device.type == "cuda")

    def run() -> dict[str, float]:
        clock.seconds = 0.0
        seen = moved = 0
        t0 = time.perf_counter()
        for batch_ in loader:
            x, y = (batch_[0], batch_[1]) if kind == "tensor" else (batch_["features"],
                                                                    batch_["labels"])
            moved += x.numel() * x.element_size() + y_nbytes(y)
            if device.type != "cpu":
                x, y = x.to(device, non_blocking=True), y.to(device, non_blocking=True)
            seen += len(x)
            if seen >= n:
                break
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        dt = time.perf_counter() - t0
        return {"n": seen, "s": dt, "bytes": moved / max(seen, 1), "sampler": clock.seconds}

    return run


def interleaved(impls: dict[str, Callable[[], dict[str, float]]], rounds: int,
                warmup: int = 1) -> dict[str, list[dict[str, float]]]:
    """Every implementation once per round, in alternating order; figures per round.

    ``warmup`` untimed runs of each first (Numba compilation, page cache, first epoch).
    """
    out: dict[str, list[dict[str, float]]] = {k: [] for k in impls}
    names = list(impls)
    for _ in range(warmup):
        for name in names:
            impls[name]()
    for r in range(rounds):
        for name in (names if r % 2 == 0 else names[::-1]):
            with PeakRSS(poll=0.005, collect=False) as mem:
                rec = impls[name]()
            rec["rate"] = rec["n"] / rec["s"]
            rec["rss"] = mem.extra
            out[name].append(rec)
    return out


def ratio(ours: list[dict[str, float]], anchor: list[dict[str, float]]) -> str:
    """Median over rounds of our rate / the anchor's rate in the same round (and range)."""
    rs = [o["rate"] / a["rate"] for o, a in zip(ours, anchor)]
    spread = f" ({min(rs):.1f}-{max(rs):.1f}x)" if len(rs) > 1 else ""
    return f"{statistics.median(rs):.1f}x{spread}"


def summary(recs: list[dict[str, float]]) -> list[str]:
    rate = statistics.median(r["rate"] for r in recs)
    share = statistics.median(r["sampler"] / r["s"] for r in recs)
    peak = max(r["rss"] for r in recs)
    return [f"{rate:,.0f}", f"{recs[0]['bytes']:,.0f}", f"{peak / 2**20:,.0f} MiB",
            f"{share:.1%}"]


def loadavg() -> str:
    return " ".join(f"{v:.2f}" for v in os.getloadavg())


# ----------------------------------------------------------------------------- main
def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--n-examples", type=int, help="examples in the file (default: the seed "
                   "preset's 80,000; --quick: 20,000)")
    p.add_argument("--quick", action="store_true", help="20,000 examples")
    p.add_argument("--samplers", nargs="+", choices=SAMPLERS, default=list(SAMPLERS))
    p.add_argument("--labels", nargs="+", choices=("dense", "sparse"),
                   default=["dense", "sparse"])
    p.add_argument("--workers", nargs="+", type=int, default=[0, 2])
    p.add_argument("--batch", nargs="+", type=int, default=[256, 4096])
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--warmup", type=int, default=1, help="untimed runs of each first")
    p.add_argument("--no-anchors", action="store_true", help="ours only (no ratios)")
    p.add_argument("--device", default="cpu", help="copy batches there (cuda: dense() there)")
    args = p.parse_args(argv)
    n_examples = args.n_examples or (20_000 if args.quick else None)
    device = torch.device(args.device)

    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "seed.arrow")
        t0 = time.perf_counter()
        size = {"n_examples": n_examples} if n_examples else {}
        longtail.make_long_tail("seed", seed=0, **size).save(path)
        probe = ArrowDataset(path)
        n, c, d = len(probe), probe.n_labels, probe.n_features
        print(f"# bench_loader: {n:,} examples x {c:,} labels, {d} features, "
              f"{probe.labels.nnz / n:.1f} labels/example; file written in "
              f"{time.perf_counter() - t0:.1f} s; device {device}; rounds {args.rounds} "
              f"(+{args.warmup} warm-up)",
              flush=True)

        anchors: dict[str, Any] = {}
        weights = longtail.sample_weights(probe.labels, "inverse_frequency")
        if not args.no_anchors:
            dense = probe.labels.multi_hot(np.arange(n), dtype=torch.float32)
            anchors["tensor"] = TensorDataset(torch.from_numpy(np.array(probe.features)), dense)
            try:
                import datasets
                import pyarrow as pa
            except ImportError:
                print("# hf anchor skipped: `datasets` is not installed")
            else:
                with pa.memory_map(path) as src:
                    tab = pa.ipc.open_file(src).read_all()
                tab = tab.select(["features", "labels"]).cast(pa.schema([
                    ("features", tab.schema.field("features").type),
                    ("labels", pa.list_(pa.int64()))]))
                hf = datasets.Dataset(tab).with_format("torch")
                anchors["hf"] = {"ds": hf, "n_labels": c}
        del probe

        print(f"# load average at start: {loadavg()}", flush=True)
        for workers, batch in itertools.product(args.workers, args.batch):
            impls: dict[str, Callable[[], dict[str, float]]] = {}
            for name, labels in itertools.product(args.samplers, args.labels):
                impls[f"{name}/{labels}"] = make_ours(path, name, labels, workers, batch, n,
                                                     device)
            for kind, data in anchors.items():
                impls[f"anchor:{kind}"] = make_anchor(kind, data, weights, workers, batch, n,
                                                      device)
            res = interleaved(impls, args.rounds, args.warmup)
            heads = ["loader", "examples/s", "bytes/example", "peak RSS +", "sampler share"]
            heads += [f"vs {k}" for k in anchors]
            rows = []
            for key, recs in res.items():
                row = [key, *summary(recs)]
                for kind in anchors:
                    row.append("" if key.startswith("anchor:") else
                               ratio(recs, res[f"anchor:{kind}"]))
                rows.append(row)
            print(f"\n## num_workers={workers}, batch={batch} (load average now {loadavg()})\n")
            print(table(heads, rows), flush=True)
        if "hf" in anchors:
            print("\nhf anchor: datasets.Dataset(table).with_format('torch') + "
                  "WeightedRandomSampler + collate_fn=longtail.hf_collate(n_labels)")
        if "tensor" in anchors:
            print("tensor anchor: TensorDataset(x, dense float32 multi-hot) + "
                  "WeightedRandomSampler + default collate")
        print(f"\n# load average at end: {loadavg()}")
        me = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**10
        kids = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 2**10
        print(f"# getrusage peak RSS: this process {me:,.0f} MiB, largest worker "
              f"{kids:,.0f} MiB")


if __name__ == "__main__":
    main()
