#!/usr/bin/env python
"""Average precision on the scores' device: time it, and check it against the CPU path.

Generates long-tailed 0/1 targets and scores correlated with them on ``--device``
(80,000 x 7,900 by default, a validation set of an extreme multilabel task), times the
torch path (macro and micro, after a warm-up on a small slice), then compares it with
the CPU path (:func:`longtail.metrics.average_precision` on numpy copies) on the first
5,000 rows and prints the largest absolute difference (per-label APs and micro AP).

  python benchmarks/gpu_ap_check.py --device cuda
  python benchmarks/gpu_ap_check.py --device cpu --rows 2000     # the test's small run
"""
from __future__ import annotations

import argparse
import json
import time
import warnings

import numpy as np
import torch

from longtail.metrics import average_precision
from longtail.metrics._torch_ap import average_precision_torch


def make_problem(rows: int, labels: int, device: torch.device, seed: int = 0
                 ) -> tuple[torch.Tensor, torch.Tensor]:
    """Bool targets with Zipf-like label frequencies and float32 scores that rank
    positives higher (logit ~ 1.5 * target + noise, rounded to 1/256 so ties occur)."""
    g = torch.Generator(device=device).manual_seed(seed)
    rank = torch.arange(1, labels + 1, device=device, dtype=torch.float32)
    prevalence = (0.3 / rank ** 0.8).clamp(min=2.0 / rows)
    targets = torch.rand(rows, labels, generator=g, device=device) < prevalence
    scores = torch.randn(rows, labels, generator=g, device=device)
    scores.add_(targets, alpha=1.5).mul_(256).round_().div_(256)
    return targets, scores


def timed(fn, device: torch.device) -> tuple[float, object]:
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    t0 = time.perf_counter()
    out = fn()
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    return time.perf_counter() - t0, out


def main(argv: list[str] | None = None) -> dict[str, float]:
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--device", default="cuda")
    p.add_argument("--rows", type=int, default=80_000)
    p.add_argument("--labels", type=int, default=7_900)
    p.add_argument("--check-rows", type=int, default=5_000, help="rows compared with the CPU")
    args = p.parse_args(argv)
    device = torch.device(args.device)
    with warnings.catch_warnings():  # labels without positives: AP 0, as scikit-learn
        warnings.simplefilter("ignore", UserWarning)
        result = run(args, device)
    print(f"{args.rows} x {args.labels} on {device}: macro AP {result['macro']:.6f} in "
          f"{result['macro_s']:.3f} s, micro AP {result['micro']:.6f} in "
          f"{result['micro_s']:.3f} s; max |torch - CPU| on {result['check_rows']} rows: "
          f"{result['max_abs_diff']:.3g}")
    print(json.dumps(result))
    return result


def run(args: argparse.Namespace, device: torch.device) -> dict[str, float]:
    targets, scores = make_problem(args.rows, args.labels, device)
    average_precision_torch(targets[:64, :64], scores[:64, :64])  # warm-up (kernels, allocator)
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
        base = torch.cuda.memory_allocated(device)
    result: dict[str, float] = {"rows": args.rows, "labels": args.labels}
    seconds, per_label = timed(lambda: average_precision_torch(targets, scores, None), device)
    result["macro_s"], result["macro"] = round(seconds, 4), float(np.mean(per_label))
    seconds, micro = timed(lambda: average_precision_torch(targets, scores, "micro"), device)
    result["micro_s"], result["micro"] = round(seconds, 4), micro
    if device.type == "cuda":
        extra = torch.cuda.max_memory_allocated(device) - base  # beyond targets and scores
        result["extra_gib"] = round(extra / 2**30, 3)
        result["extra_over_scores"] = round(extra / (scores.numel() * 4), 3)
    k = min(args.check_rows, args.rows)
    if k < args.rows:  # the slice on the device too
        per_label = average_precision_torch(targets[:k], scores[:k], None)
        micro = average_precision_torch(targets[:k], scores[:k], "micro")
    t_cpu, s_cpu = targets[:k].cpu().numpy(), scores[:k].cpu().numpy()
    diff = max(float(np.max(np.abs(per_label - average_precision(t_cpu, s_cpu, None)))),
               abs(micro - average_precision(t_cpu, s_cpu, "micro")))
    result["check_rows"], result["max_abs_diff"] = k, diff
    return result


if __name__ == "__main__":
    main()
