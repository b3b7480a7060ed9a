#!/usr/bin/env python
"""End-to-end loader throughput: IPC file -> sampler -> DataLoader -> collate -> tensors.

Examples per second from an ``ArrowDataset`` file, written to a temporary folder, at one
or more presets (``--preset``):

* ``seed`` (default): ``make_long_tail("seed", seed=0)``, 80,000 x 7,900 labels
  (~130 labels/example), 128 float32 features;
* ``extreme``: ``make_long_tail("extreme", seed=0)``, 3,000,000 x 670,000 labels
  (~5 labels/example), written labels only (no features column: ``x`` is an empty
  ``[B, 0]`` tensor). A dense float32 label row is 2.7 MB there, so the ``dense`` label
  format and the anchors (which are dense) are skipped with a printed reason: sparse only.

``--n-examples`` scales the preset (the same number of labels, fewer examples). For each
sampler, labels ``dense`` (float32 multi-hot) and ``sparse`` (:class:`longtail.SparseLabels`,
CSR), ``num_workers`` 0 and 2, batch 256 and 4,096. The time to generate and write each
file is printed.

Samplers: ``shuffle`` (``WeightedSampler`` of ones without replacement), ``weighted``
(``WeightedSampler`` with replacement, ``sample_weights(..., "inverse_frequency")``),
``repeat_factor`` (threshold 0.05 at ``seed``; ``30 / n_examples`` at ``extreme``, where
labels are far rarer: labels in fewer than 30 examples are oversampled and an epoch is
~1.9x as long, while 0.05 would make it 123x as long), ``class_aware``, ``stratified``
(``StratifiedBatchSampler``) and ``replay`` (``HardExampleSampler``; after every batch
``update(index, random per-example losses)``, timed as sampler work).

One run is ``--epochs-per-run`` (default 2) consecutive epochs of ``n_examples`` examples
each, back to back (the batch sampler stops after the batch that reaches them, so a longer
``repeat_factor`` epoch is cut there and leaves no batch in flight; the rate counts what
was delivered). Every epoch calls ``set_epoch(previous + 1)``, warm-up runs included, and
checks that the sampler iterated that epoch. The epoch-start wait is taken at the
boundaries inside a run: the first epoch of a run follows the other loaders' runs, which
would give a sampler's background prefetch time that a training loop does not have. With ``num_workers > 0`` the DataLoader has ``persistent_workers=True``
(the batch sampler stays in the main process for a map-style dataset, so ``set_epoch``
reaches it), so the timed rounds measure the steady state; the worker start-up is paid by
the first (warm-up) run and reported on its own (``start-up``: time to the first batch of
the first epoch).

``--steps-ms T`` emulates a training step: after every batch the loop sleeps ``T`` ms (a
sleep releases the GIL, like a step that waits for the GPU), giving the workers and the
samplers' background epoch prefetch (``StratifiedBatchSampler`` builds epoch ``e + 1`` in a
thread while epoch ``e`` is consumed) time to work. The wait for an epoch's first batch is
measured as ``iter(loader)`` + the first ``next``, at a boundary inside a run (see above).
Examples/s then count the steps too (ceiling: batch / T).

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
RSS above its level at the start of the run (polled every 5 ms), the sampler's share
(time inside the sampler's iterator -- and ``update`` for replay -- / run time), the
start-up, the longest epoch-start wait and the longest wait for any batch (``next``) in
the timed runs. Ratios ours / anchor are medians of the per-round ratios of rates. The
load average is printed at the start and the end; ``getrusage`` peaks (self, children)
at the end.

    python benchmarks/bench_loader.py                      # seed grid, ~10 min on 2 cores
    python benchmarks/bench_loader.py --preset seed extreme --steps-ms 5
    python benchmarks/bench_loader.py --quick --samplers shuffle stratified --workers 0 --batch 256
"""
from __future__ import annotations

import argparse
import gc
import itertools
import os
import resource
import statistics
import sys
import tempfile
import time
import warnings
from typing import Any, Iterator

import numpy as np
import torch
from torch.utils.data import DataLoader, TensorDataset, WeightedRandomSampler

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from _util import PeakRSS, fmt_s, table  # noqa: E402

import longtail  # noqa: E402
from longtail import ArrowDataset  # noqa: E402
from longtail.datasets.dataset_file import write_dataset  # noqa: E402

SAMPLERS = ("shuffle", "weighted", "repeat_factor", "class_aware", "stratified", "replay")

#: Per benchmark preset: whether the file has features, the ``--quick`` size.
PRESETS: dict[str, dict[str, Any]] = {
    "seed": {"features": True, "quick": 20_000},
    "extreme": {"features": False, "quick": 300_000},
}

#: Largest dense label batch of 256 rows that is benchmarked (above: sparse only).
DENSE_BATCH_LIMIT = 256 * 2**20
#: Largest dense float32 multi-hot matrix the ``tensor`` anchor may hold.
DENSE_MATRIX_LIMIT = 8 * 2**30


def rf_threshold(preset: str, n: int) -> float:
    """``RepeatFactorSampler`` threshold: 0.05 (``seed``); ``30 / n`` (``extreme``)."""
    return 0.05 if preset == "seed" else min(1.0, 30.0 / n)


def fmt_bytes(n: float) -> str:
    """Decimal bytes: ``686 MB``, ``11.0 GB``, ``8.0 TB``."""
    for unit, size in (("TB", 1e12), ("GB", 1e9), ("MB", 1e6), ("kB", 1e3)):
        if n >= size:
            v = n / size
            return f"{v:.1f} {unit}" if v < 100 else f"{v:,.0f} {unit}"
    return f"{n:.0f} B"


def dense_skips(n: int, c: int, batches: list[int]) -> tuple[str | None, str | None]:
    """Why dense labels / the tensor anchor are skipped (``None``: they are not)."""
    row = 4 * c
    big = max(batches)
    why_dense = None
    if 256 * row > DENSE_BATCH_LIMIT:
        why_dense = (f"one dense float32 batch of 256 rows is 256 x {c:,} x 4 B = "
                     f"{fmt_bytes(256 * row)}"
                     + (f" ({big:,} rows: {fmt_bytes(big * row)})" if big > 256 else ""))
    why_tensor = why_dense
    if n * row > DENSE_MATRIX_LIMIT:
        why_tensor = (f"the dense float32 multi-hot would be {n:,} x {c:,} x 4 B = "
                      f"{fmt_bytes(n * row)}")
    return why_dense, why_tensor


# ----------------------------------------------------------------------------- timers
class Clock:
    """Adds up seconds spent inside the sampler; records the epochs it iterated and the
    seconds to its first batch of the latest epoch (``iter`` + first batch)."""

    def __init__(self) -> None:
        self.seconds = 0.0
        self.first = 0.0
        self.epochs: list[int | None] = []


class TimedBatches:
    """A batch sampler over ``sampler`` that times every step of its iterator.

    A per-example sampler is cut into batches of ``batch_size`` here (as torch's
    ``BatchSampler`` does), so the timer runs once per batch, not once per index. The
    iteration stops after the batch that reaches ``limit`` examples (``None``: the
    sampler's whole epoch).
    """

    def __init__(self, sampler: Any, clock: Clock, batch_size: int | None = None,
                 limit: int | None = None) -> None:
        self.sampler, self.clock, self.batch_size = sampler, clock, batch_size
        self.limit = limit

    def __iter__(self) -> Iterator[Any]:
        self.clock.epochs.append(getattr(self.sampler, "epoch", None))
        t0 = time.perf_counter()
        it = iter(self.sampler)
        self.clock.first = time.perf_counter() - t0
        self.clock.seconds += self.clock.first
        b, left, first = self.batch_size, self.limit, True
        while left is None or left > 0:
            t0 = time.perf_counter()
            item = list(itertools.islice(it, b)) if b else next(it, None)
            dt = time.perf_counter() - t0
            self.clock.seconds += dt
            if first:
                self.clock.first += dt
                first = False
            if not item:
                return
            if left is not None:
                left -= len(item)
            yield item

    def __len__(self) -> int:
        n = len(self.sampler) if self.limit is None else min(len(self.sampler), self.limit)
        return -(-n // self.batch_size) if self.batch_size else n


# ----------------------------------------------------------------------------- runs
def y_nbytes(y: Any) -> int:
    return int(y.nbytes) if isinstance(y, longtail.SparseLabels) else y.numel() * y.element_size()


class Run:
    """One loader; each call is one timed epoch (the next one) of ``n`` examples.

    Returns the figures of the run: ``n`` (examples delivered), ``s`` (seconds),
    ``bytes`` (per example), ``sampler`` (seconds in the sampler), ``first`` (wait for the
    first batch: ``iter(loader)`` + ``next``), ``longest`` (longest wait for a batch) and
    ``sampler_first`` (seconds of the sampler to its first batch of the epoch) and
    ``epoch`` (the epoch run). :attr:`startup` is ``first`` of the first call.
    """

    def __init__(self, loader: DataLoader, clock: Clock, n: int, device: torch.device,
                 step_s: float = 0.0, sampler: Any = None, replay: bool = False,
                 expand: bool = True) -> None:
        self.loader, self.clock, self.n, self.device = loader, clock, n, device
        self.step_s, self.sampler, self.replay, self.expand = step_s, sampler, replay, expand
        self.epoch = 0
        self.startup: float | None = None
        self.gen = torch.Generator().manual_seed(0)
        #: epochs per call, back to back (see :meth:`__call__`)
        self.epochs_per_run = 1

    def unpack(self, batch: Any) -> tuple[torch.Tensor, Any, Any]:
        return batch[0], batch[1], batch[2]

    def __call__(self) -> dict[str, float]:
        """:attr:`epochs_per_run` consecutive epochs, back to back; their figures summed,
        ``first`` / ``sampler_first`` the largest over the epochs after the first one
        (epoch boundaries with no other loader's run in between, the ones a training
        loop sees; with one epoch per run, that epoch's)."""
        recs = [self._epoch() for _ in range(self.epochs_per_run)]
        inner = recs[1:] or recs
        n = sum(r["n"] for r in recs)
        return {"n": n, "s": sum(r["s"] for r in recs),
                "bytes": sum(r["bytes"] * r["n"] for r in recs) / max(n, 1),
                "sampler": sum(r["sampler"] for r in recs),
                "first": max(r["first"] for r in inner),
                "sampler_first": max(r["sampler_first"] for r in inner),
                "longest": max(r["longest"] for r in recs), "epoch": recs[-1]["epoch"]}

    def _epoch(self) -> dict[str, float]:
        epoch = self.epoch
        if hasattr(self.sampler, "set_epoch"):
            self.sampler.set_epoch(epoch)
        self.epoch += 1
        clock, dev = self.clock, self.device
        clock.seconds, clock.first, clock.epochs = 0.0, 0.0, []
        seen = moved = 0
        first = longest = 0.0
        t0 = t_prev = time.perf_counter()
        it = iter(self.loader)
        while True:
            batch = next(it, None)
            wait = time.perf_counter() - t_prev
            if batch is None:
                break
            if seen == 0:
                first = wait
            longest = max(longest, wait)
            x, y, idx = self.unpack(batch)
            moved += x.numel() * x.element_size() + y_nbytes(y)
            if dev.type != "cpu":
                x = x.to(dev, non_blocking=True)
                y = y.to(dev, non_blocking=True)
                if isinstance(y, longtail.SparseLabels) and self.expand:
                    y = y.dense()
            if self.replay:
                t1 = time.perf_counter()
                self.sampler.update(idx, torch.rand(len(idx), generator=self.gen))
                clock.seconds += time.perf_counter() - t1
            seen += len(x)
            if self.step_s:
                time.sleep(self.step_s)
            if seen >= self.n:
                break
            t_prev = time.perf_counter()
        if dev.type == "cuda":
            torch.cuda.synchronize(dev)
        dt = time.perf_counter() - t0
        if self.sampler is not None and any(e != epoch for e in clock.epochs
                                            if e is not None):
            raise RuntimeError(f"set_epoch({epoch}) did not reach the sampler: it iterated "
                               f"epochs {clock.epochs}")
        if self.startup is None:
            self.startup = first
        return {"n": seen, "s": dt, "bytes": moved / max(seen, 1), "sampler": clock.seconds,
                "first": first, "longest": longest, "sampler_first": clock.first,
                "epoch": epoch}

    def close(self) -> None:
        """Drop the loader (shuts its persistent workers down)."""
        self.loader = None  # type: ignore[assignment]


class AnchorRun(Run):
    """An anchor's batch is ``(x, y)`` (tensor) or Hugging Face's dict (hf)."""

    def unpack(self, batch: Any) -> tuple[torch.Tensor, Any, Any]:
        if isinstance(batch, dict):
            return batch["features"], batch["labels"], None
        return batch[0], batch[1], None


def loader_kwargs(workers: int, device: torch.device) -> dict[str, Any]:
    return {"num_workers": workers, "persistent_workers": workers > 0,
            "pin_memory": device.type == "cuda"}


def make_ours(path: str, features: str | None, name: str, labels: str, workers: int,
              batch: int, n: int, device: torch.device, *, rf: float = 0.05,
              step_s: float = 0.0, expand: bool = True) -> Run:
    """Ours: ``n`` examples per run through ``name``'s sampler over the file at ``path``."""
    ds = ArrowDataset(path, features, label_format=labels)
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
            sampler = longtail.RepeatFactorSampler(lab, rf, seed=0, warn=False)
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
    timed = TimedBatches(sampler, clock, batch if per_example else None, limit=n)
    loader = DataLoader(ds, batch_sampler=timed, collate_fn=ArrowDataset.collate,
                        **loader_kwargs(workers, device))
    return Run(loader, clock, n, device, step_s, sampler, replay=name == "replay",
               expand=expand)


def make_anchor(kind: str, data: Any, weights: np.ndarray, workers: int, batch: int, n: int,
                device: torch.device, *, step_s: float = 0.0) -> Run:
    """An anchor (``tensor`` or ``hf``): ``n`` examples per run."""
    clock = Clock()
    gen = torch.Generator().manual_seed(0)
    sampler = WeightedRandomSampler(torch.from_numpy(weights), num_samples=len(weights),
                                    generator=gen)
    timed = TimedBatches(sampler, clock, batch, limit=n)
    if kind == "tensor":
        loader = DataLoader(data, batch_sampler=timed, **loader_kwargs(workers, device))
    else:
        loader = DataLoader(data["ds"], batch_sampler=timed,
                            collate_fn=longtail.hf_collate(data["n_labels"]),
                            **loader_kwargs(workers, device))
    return AnchorRun(loader, clock, n, device, step_s)


def interleaved(impls: dict[str, Run], rounds: int,
                warmup: int = 1) -> dict[str, list[dict[str, float]]]:
    """Every implementation once per round, in alternating order; figures per round.

    ``warmup`` untimed runs of each first (Numba compilation, page cache, worker
    start-up, first epoch).
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


def ratio(ours: list[dict[str, float]], anchor: list[dict[str, float]],
          digits: int = 1) -> str:
    """Median over rounds of our rate / the anchor's rate in the same round (and range)."""
    rs = [o["rate"] / a["rate"] for o, a in zip(ours, anchor)]
    spread = f" ({min(rs):.{digits}f}-{max(rs):.{digits}f}x)" if len(rs) > 1 else ""
    return f"{statistics.median(rs):.{digits}f}x{spread}"


HEADS = ["loader", "examples/s", "bytes/example", "peak RSS +", "sampler share",
         "start-up", "epoch-start wait", "sampler at epoch start", "longest wait"]


def summary(recs: list[dict[str, float]], startup: float | None) -> list[str]:
    rate = statistics.median(r["rate"] for r in recs)
    share = statistics.median(r["sampler"] / r["s"] for r in recs)
    peak = max(r["rss"] for r in recs)
    first = max(r["first"] for r in recs)
    longest = max(r["longest"] for r in recs)
    sampler_first = max(r["sampler_first"] for r in recs)
    return [f"{rate:,.0f}", f"{recs[0]['bytes']:,.0f}", f"{peak / 2**20:,.0f} MiB",
            f"{share:.1%}", fmt_s(startup or 0.0), f"{first * 1e3:,.2f} ms",
            f"{sampler_first * 1e3:,.2f} ms", f"{longest * 1e3:,.2f} ms"]


def loadavg() -> str:
    return " ".join(f"{v:.2f}" for v in os.getloadavg())


# ----------------------------------------------------------------------------- main
def write_preset(preset: str, n_examples: int | None, tmp: str) -> tuple[str, str | None]:
    """Generate ``preset`` (``n_examples`` rows if given) into ``tmp``; print the time.

    Returns the path and the features column (``None``: labels only).
    """
    path = os.path.join(tmp, f"{preset}.arrow")
    size = {"n_examples": n_examples} if n_examples else {}
    t0 = time.perf_counter()
    data = longtail.make_long_tail(preset, seed=0, **size)
    t1 = time.perf_counter()
    features = "features" if PRESETS[preset]["features"] else None
    write_dataset(path, data.features if features else None, data.labels)
    t2 = time.perf_counter()
    del data
    lab = ArrowDataset(path, features).labels
    what = "" if features else ", labels only"
    print(f"# {preset}: file generated in {t1 - t0:.1f} s, written in {t2 - t1:.1f} s "
          f"({os.path.getsize(path) / 2**20:,.1f} MiB{what}); {len(lab):,} examples x "
          f"{lab.n_labels:,} labels, {lab.nnz / len(lab):.1f} labels/example", flush=True)
    return path, features


def hf_anchor(path: str, features: str | None, c: int) -> dict[str, Any] | None:
    try:
        import datasets
        import pyarrow as pa
    except ImportError:
        print("# hf anchor skipped: `datasets` is not installed")
        return None
    with pa.memory_map(path) as src:
        tab = pa.ipc.open_file(src).read_all()
    fields = [("features", tab.schema.field("features").type)] if features else []
    fields.append(("labels", pa.list_(pa.int64())))
    tab = tab.select([f for f, _ in fields]).cast(pa.schema(fields))
    return {"ds": datasets.Dataset(tab).with_format("torch"), "n_labels": c}


def bench_preset(preset: str, n_examples: int | None, args: argparse.Namespace,
                 device: torch.device, tmp: str) -> None:
    path, features = write_preset(preset, n_examples, tmp)
    probe = ArrowDataset(path, features)
    n, c = len(probe), probe.n_labels
    step_s = args.steps_ms / 1e3
    print(f"# {preset}: {probe.n_features} features; device {device}; rounds {args.rounds} "
          f"(+{args.warmup} warm-up); step {args.steps_ms:g} ms"
          + (" (examples/s count it: ceiling batch / step)" if step_s else ""), flush=True)
    why_dense, why_tensor = dense_skips(n, c, args.batch)
    labels = list(args.labels)
    if why_dense and "dense" in labels:
        labels.remove("dense")
        print(f"# {preset}: dense labels skipped: {why_dense}; sparse only", flush=True)
    expand = why_dense is None
    if device.type != "cpu" and not expand:
        print(f"# {preset}: sparse labels moved to {device} as they are (not expanded: "
              f"{why_dense})")

    anchors: dict[str, Any] = {}
    weights = longtail.sample_weights(probe.labels, "inverse_frequency")
    if args.no_anchors:
        pass
    elif why_tensor:
        print(f"# {preset}: tensor anchor skipped: {why_tensor}")
        print(f"# {preset}: hf anchor skipped: hf_collate builds the dense multi-hot, "
              f"{why_dense or why_tensor}", flush=True)
    else:
        dense = probe.labels.multi_hot(np.arange(n), dtype=torch.float32)
        x = (torch.from_numpy(np.array(probe.features)) if features
             else torch.empty(n, 0))
        anchors["tensor"] = TensorDataset(x, dense)
        hf = hf_anchor(path, features, c)
        if hf is not None:
            anchors["hf"] = hf
    del probe
    rf = rf_threshold(preset, n)

    for workers, batch in itertools.product(args.workers, args.batch):
        impls: dict[str, Run] = {}
        for name, lab in itertools.product(args.samplers, labels):
            impls[f"{name}/{lab}"] = make_ours(path, features, name, lab, workers, batch, n,
                                               device, rf=rf, step_s=step_s, expand=expand)
        for kind, data in anchors.items():
            impls[f"anchor:{kind}"] = make_anchor(kind, data, weights, workers, batch, n,
                                                  device, step_s=step_s)
        if not impls:
            print(f"\n## {preset}: nothing to run (labels {args.labels})")
            return
        for run in impls.values():
            run.epochs_per_run = args.epochs_per_run
        res = interleaved(impls, args.rounds, args.warmup)
        shuffled = any(k.startswith("shuffle/") for k in res)
        heads = HEADS + (["vs shuffle"] if shuffled else []) + [f"vs {k}" for k in anchors]
        rows = []
        for key, recs in res.items():
            row = [key, *summary(recs, impls[key].startup)]
            if shuffled:   # ours against plain shuffling with the same label format
                base = "shuffle/" + key.split("/")[-1]
                row.append(ratio(recs, res[base], 2) if base in res and key != base
                           and not key.startswith("anchor:") else "")
            for kind in anchors:
                row.append("" if key.startswith("anchor:") else
                           ratio(recs, res[f"anchor:{kind}"]))
            rows.append(row)
        for run in impls.values():
            run.close()
        del impls
        gc.collect()
        print(f"\n## {preset}: num_workers={workers}"
              f"{' (persistent)' if workers else ''}, batch={batch} "
              f"(load average now {loadavg()})\n")
        print(table(heads, rows), flush=True)
    if "hf" in anchors:
        print("\nhf anchor: datasets.Dataset(table).with_format('torch') + "
              "WeightedRandomSampler + collate_fn=longtail.hf_collate(n_labels)")
    if "tensor" in anchors:
        print("tensor anchor: TensorDataset(x, dense float32 multi-hot) + "
              "WeightedRandomSampler + default collate")
    print("start-up: wait for the first batch of the first epoch (warm-up; workers start "
          "there); epoch-start wait: longest wait for the first batch of a timed epoch "
          "that follows the previous epoch back to back (iter(loader) + next); sampler at epoch start: the longest time of the sampler "
          "to its first batch of a timed epoch (iter + first batch, part of the wait); "
          "longest wait: longest wait for any batch of the timed epochs\n", flush=True)


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--preset", nargs="+", choices=tuple(PRESETS), default=["seed"],
                   help="benchmark presets, in order (default: seed)")
    p.add_argument("--n-examples", nargs="+", type=int,
                   help="examples in the file: one value for every preset or one per preset "
                   "(default: the preset's; --quick: seed 20,000, extreme 300,000)")
    p.add_argument("--quick", action="store_true", help="smaller files (see --n-examples)")
    p.add_argument("--samplers", nargs="+", choices=SAMPLERS, default=list(SAMPLERS))
    p.add_argument("--labels", nargs="+", choices=("dense", "sparse"),
                   default=["dense", "sparse"])
    p.add_argument("--workers", nargs="+", type=int, default=[0, 2])
    p.add_argument("--batch", nargs="+", type=int, default=[256, 4096])
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--warmup", type=int, default=1, help="untimed runs of each first")
    p.add_argument("--steps-ms", type=float, default=0.0,
                   help="sleep this many ms after every batch (an emulated training step)")
    p.add_argument("--epochs-per-run", type=int, default=2,
                   help="consecutive epochs per timed run (default 2: the boundary between "
                   "them is back to back, as in training; the first epoch of a run follows "
                   "the other loaders' runs, which gives a background prefetch extra time)")
    p.add_argument("--no-anchors", action="store_true", help="ours only (no ratios)")
    p.add_argument("--device", default="cpu", help="copy batches there (cuda: dense() there)")
    args = p.parse_args(argv)
    if args.n_examples and len(args.n_examples) not in (1, len(args.preset)):
        p.error(f"--n-examples takes 1 value or one per preset ({len(args.preset)}), "
                f"got {len(args.n_examples)}")
    if args.n_examples and min(args.n_examples) < 1:
        p.error(f"--n-examples must be >= 1, got {args.n_examples}")
    if args.steps_ms < 0:
        p.error(f"--steps-ms must be >= 0, got {args.steps_ms}")
    if (min(args.workers) < 0 or min(args.batch) < 1 or args.rounds < 1 or args.warmup < 0
            or args.epochs_per_run < 1):
        p.error("need --workers >= 0, --batch >= 1, --rounds >= 1, --warmup >= 0, "
                "--epochs-per-run >= 1")
    device = torch.device(args.device)

    print(f"# bench_loader: presets {' '.join(args.preset)}; load average at start: "
          f"{loadavg()}", flush=True)
    with tempfile.TemporaryDirectory() as tmp:
        for i, preset in enumerate(args.preset):
            if args.n_examples:
                n_examples = args.n_examples[i if len(args.n_examples) > 1 else 0]
            else:
                n_examples = PRESETS[preset]["quick"] if args.quick else None
            bench_preset(preset, n_examples, args, device, tmp)
    print(f"# load average at end: {loadavg()}")
    me = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**10
    kids = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 2**10
    print(f"# getrusage peak RSS: this process {me:,.0f} MiB, largest worker "
          f"{kids:,.0f} MiB")


if __name__ == "__main__":
    main()
