#!/usr/bin/env python
"""GPU check: does the loader keep the GPU busy? (at most ~5 minutes, installs nothing)

Trains the reference loop of ``examples/train.py`` (its ``MLP``, AdamW, asymmetric loss,
``StratifiedBatchSampler``) on the ``seed`` preset (80,000 x 7,900 labels, 128 features,
written to a temporary folder) with the sparse-label path: ``ArrowDataset(...,
label_format="sparse")``, pinned CSR batches copied with ``non_blocking=True`` and expanded
on the device by ``SparseLabels.dense()``; bf16 autocast on CUDA. Prints, over the steps
after the warm-up:

* ``samples/s`` -- examples trained per second;
* ``gpu_util`` -- mean (and median) of ``nvidia-smi --query-gpu=utilization.gpu`` sampled
  every 0.5 s in a background thread during the timed steps, ``n/a`` without CUDA or
  ``nvidia-smi``;
* ``stall`` -- time the loop waited for the next batch / total, and per step;
* ``sampler_share`` -- time inside the sampler's iterator / total.

The last line is the same figures as one JSON object.

    python benchmarks/gpu_check.py                        # CUDA, batch 4,096, 2 workers
    python benchmarks/gpu_check.py --batch-size 256       # the per-batch Python floor
    python benchmarks/gpu_check.py --device cpu --n-examples 3000 --steps 20
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from typing import Any, Iterator

import numpy as np
import torch
from torch.utils.data import DataLoader

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "examples"))
import longtail  # noqa: E402
import train as reference  # noqa: E402  (the MLP of the plain loop, as harness.py does)
from longtail import ArrowDataset  # noqa: E402
from longtail.losses import asymmetric_loss  # noqa: E402


class TimedBatchSampler:
    """Delegates to a batch sampler, adding up the seconds spent in its iterator."""

    def __init__(self, sampler: Any) -> None:
        self.sampler = sampler
        self.seconds = 0.0

    def __iter__(self) -> Iterator[Any]:
        t0 = time.perf_counter()
        it = iter(self.sampler)
        self.seconds += time.perf_counter() - t0
        while True:
            t0 = time.perf_counter()
            item = next(it, None)
            self.seconds += time.perf_counter() - t0
            if item is None:
                return
            yield item

    def __len__(self) -> int:
        return len(self.sampler)


class GpuUtil:
    """Samples ``nvidia-smi``'s GPU utilisation every ``period`` seconds in a thread."""

    def __init__(self, device: torch.device, period: float = 0.5) -> None:
        self.samples: list[float] = []
        self.period = period
        self.cmd = None
        if device.type == "cuda" and shutil.which("nvidia-smi"):
            index = device.index if device.index is not None else torch.cuda.current_device()
            self.cmd = ["nvidia-smi", "--query-gpu=utilization.gpu", "--format=csv,noheader,nounits",
                        f"--id={index}"]
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._poll, daemon=True)

    def _poll(self) -> None:
        while not self._stop.is_set():
            try:
                out = subprocess.run(self.cmd, capture_output=True, text=True, timeout=5)
                self.samples.append(float(out.stdout.strip().splitlines()[0]))
            except (OSError, ValueError, IndexError, subprocess.SubprocessError):
                pass
            self._stop.wait(self.period)

    def start(self) -> None:
        if self.cmd is not None:
            self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join()

    def summary(self) -> str:
        if not self.samples:
            return "n/a"
        return (f"{statistics.fmean(self.samples):.0f}% mean, "
                f"{statistics.median(self.samples):.0f}% median ({len(self.samples)} samples)")


def main(argv: list[str] | None = None) -> dict[str, Any]:
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    p.add_argument("--n-examples", type=int, help="override the seed preset's 80,000")
    p.add_argument("--batch-size", type=int,
                   help="default 4,096 on CUDA, 256 elsewhere (a CPU step at 4,096 takes seconds)")
    p.add_argument("--workers", type=int, default=2, help="DataLoader num_workers")
    p.add_argument("--steps", type=int, default=600, help="timed steps (after the warm-up)")
    p.add_argument("--warmup-steps", type=int, default=5)
    p.add_argument("--max-seconds", type=float, default=180.0,
                   help="stop the timed steps after this long")
    p.add_argument("--sampler", choices=("stratified", "shuffle"), default="stratified")
    p.add_argument("--data", help="an ArrowDataset file (default: generate the seed preset)")
    args = p.parse_args(argv)
    device = torch.device(args.device)
    if device.type == "cuda":
        if not torch.cuda.is_available():
            raise SystemExit("--device cuda: no CUDA device (use --device cpu)")
        torch.cuda.set_device(device)
    torch.manual_seed(0)
    if args.batch_size is None:
        args.batch_size = 4096 if device.type == "cuda" else 256

    with tempfile.TemporaryDirectory() as tmp:
        t0 = time.perf_counter()
        path = args.data
        if path is None:
            path = os.path.join(tmp, "seed.arrow")
            size = {"n_examples": args.n_examples} if args.n_examples else {}
            longtail.make_long_tail("seed", seed=0, **size).save(path)
        ds = ArrowDataset(path, label_format="sparse")
        print(f"data: {len(ds):,} examples x {ds.n_labels:,} labels, {ds.n_features} features "
              f"({time.perf_counter() - t0:.1f} s to prepare); device {device}; batch "
              f"{args.batch_size}; workers {args.workers}; sampler {args.sampler}", flush=True)

        prior = torch.from_numpy(ds.labels.label_counts() / len(ds))
        model = reference.MLP(ds.n_features, ds.n_labels, prior=prior).to(device)
        optimizer = torch.optim.AdamW(model.parameters(), lr=2e-3, weight_decay=1e-4)
        if args.sampler == "stratified":
            inner: Any = longtail.StratifiedBatchSampler(ds.labels, args.batch_size, seed=0)
        else:
            w = longtail.WeightedSampler(np.ones(len(ds)), num_samples=len(ds),
                                         replacement=False, seed=0)
            inner = torch.utils.data.BatchSampler(w, args.batch_size, drop_last=False)
        timed = TimedBatchSampler(inner)
        loader = DataLoader(ds, batch_sampler=timed, collate_fn=ArrowDataset.collate,
                            num_workers=args.workers, pin_memory=device.type == "cuda",
                            persistent_workers=args.workers > 0)
        util = GpuUtil(device)
        use_bf16 = device.type == "cuda"

        def batches() -> Iterator[Any]:
            epoch = 0
            while True:
                if hasattr(inner, "set_epoch"):
                    inner.set_epoch(epoch)
                yield from loader
                epoch += 1

        stream = batches()
        total_steps = args.warmup_steps + args.steps
        wait = 0.0
        seen = steps = 0
        loss_sum = torch.zeros((), device=device)
        t_start = None
        sampler_at_start = 0.0
        for step in range(total_steps):
            if step == args.warmup_steps:  # the timed part starts here
                if device.type == "cuda":
                    torch.cuda.synchronize(device)
                util.start()
                t_start = time.perf_counter()
                sampler_at_start = timed.seconds
                wait = 0.0
                seen = steps = 0
            t0 = time.perf_counter()
            x, y, _idx, _extras = next(stream)
            wait += time.perf_counter() - t0
            x = x.to(device, non_blocking=True)
            y = y.to(device, non_blocking=True).dense()  # CSR -> multi-hot on the device
            with torch.autocast(device.type, torch.bfloat16, enabled=use_bf16):
                logits = model(x)
            loss = asymmetric_loss(logits.float(), y)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            loss_sum += loss.detach()
            seen += len(x)
            steps += 1
            if t_start is not None and time.perf_counter() - t_start > args.max_seconds:
                break
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        t_end = time.perf_counter()
        util.stop()
        if t_start is None:
            raise SystemExit("no timed steps: raise --steps")
        total = t_end - t_start
        sampler_s = timed.seconds - sampler_at_start
        result = {
            "device": str(device), "batch_size": args.batch_size, "workers": args.workers,
            "steps": steps, "samples_per_s": seen / total,
            "gpu_util": util.summary(),
            "gpu_util_mean": statistics.fmean(util.samples) if util.samples else None,
            "stall_share": wait / total, "stall_ms_per_step": 1e3 * wait / max(steps, 1),
            "sampler_share": sampler_s / total, "loss": float(loss_sum) / max(steps, 1),
        }
    print(f"steps: {steps} timed ({args.warmup_steps} warm-up) in {total:.2f} s")
    print(f"samples/s: {result['samples_per_s']:,.0f}")
    print(f"gpu_util: {result['gpu_util']}")
    print(f"stall: {result['stall_share']:.1%} of the time waiting for the next batch "
          f"({result['stall_ms_per_step']:.2f} ms per step)")
    print(f"sampler_share: {result['sampler_share']:.1%}")
    print(json.dumps(result), flush=True)
    return result


if __name__ == "__main__":
    main()
