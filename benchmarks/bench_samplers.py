"""Balancing samplers and sample weights against their usual anchors.

Run: ``flock /tmp/longtail-bench.lock .venv/bin/python benchmarks/bench_samplers.py``
(``--quick`` for a smaller smoke run). One process, one table; every row times the
anchor and longtail on the same data.

* **WeightedSampler vs ``torch.utils.data.WeightedRandomSampler``**: one epoch of N draws
  over N random weights (``rng.random(N)``), consumed by iterating the sampler as a
  DataLoader does. "ours" is a later epoch (``set_epoch``; the alias table is built once
  per sampler), the first epoch with the table build is in the note. torch without
  replacement at 1e7 runs once (~4 s); at 1e8 torch raises (``torch.multinomial`` allows
  at most 2**24 categories): the error is shown, ours runs once.
* **Weight methods** at seed scale (``make_long_tail("seed")``: 80,000 x 7,900, 130
  labels/example) and on the sparse preset (80,000 x 7,900, 3 labels/example): time
  (median of 5, the solver 3; label counts are cached on the LabelMatrix and timed
  separately), then the exposure report of the weights: max/min expected label exposure
  and the Kish effective sample size. For every other method the note gives the solver
  run at an ESS floor equal to that method's ESS.
* **RepeatFactorSampler vs detectron2**: repeat factors (detectron2's
  ``repeat_factors_from_category_frequency``) and the epoch (its
  ``RepeatFactorTrainingSampler._get_epoch_indices`` + ``randperm``), written here in
  plain Python/torch as detectron2 has them, vs ``sample_weights(..., "repeat_factor")``
  and one epoch of ``RepeatFactorSampler`` as a Python list.
* **ClassAwareSampler vs mmdetection**: one epoch of n draws; mmdetection's
  ``ClassAwareSampler.__iter__`` with its ``RandomCycleIter`` (per-label index lists
  built in ``__init__``, timed separately), vs ``ClassAwareSampler``; the note times the
  batch sampler that carries the sampled labels (``return_labels=True, batch_size=256``).
"""
from __future__ import annotations

import argparse
import gc
import math
import os
import platform
import statistics
import sys
import time
from collections import defaultdict
from typing import Any, Callable

import numpy as np
import torch

sys.path.insert(0, os.path.dirname(__file__))
from _util import fmt_s, table  # noqa: E402

from longtail import LabelMatrix  # noqa: E402
from longtail.datasets.synthetic import make_long_tail  # noqa: E402
from longtail.samplers.balanced.samplers import (  # noqa: E402
    ClassAwareSampler,
    RepeatFactorSampler,
    WeightedSampler,
)
from longtail.samplers.weights.weighting import exposure_report, sample_weights  # noqa: E402

ROWS: list[list[str]] = []
HEAD = ["section", "case", "anchor", "anchor time", "longtail", "speedup",
        "exposure max/min", "ESS", "note"]


def timed(fn: Callable[[], Any], repeat: int, warmup: int = 1) -> tuple[float, Any]:
    out = None
    for _ in range(warmup):
        out = fn()
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times), out


def consume(it: Any) -> int:
    k = 0
    for _ in it:
        k += 1
    return k


def row(section: str, case: str, anchor: str = "", t_anchor: float | None = None,
        t_ours: float | None = None, exposure: str = "", ess: str = "", note: str = "") -> None:
    speed = f"{t_anchor / t_ours:.1f}x" if t_anchor and t_ours else ""
    ROWS.append([section, case, anchor, fmt_s(t_anchor) if t_anchor else "",
                 fmt_s(t_ours) if t_ours else "", speed, exposure, ess, note])
    print(" | ".join(ROWS[-1]), flush=True)


# ---------------------------------------------------------------------------- weighted
def bench_weighted(sizes: list[int], big: int | None) -> None:
    rng = np.random.default_rng(0)
    for n in sizes:
        w = rng.random(n)
        reps = 3 if n >= 10**7 else 5
        for replacement in (True, False):
            tag = "with" if replacement else "without"
            s = WeightedSampler(w, replacement=replacement, seed=0)
            consume(s)                                          # compile, build the table
            epoch = [0]

            def ours() -> int:
                epoch[0] += 1
                s.set_epoch(epoch[0])
                return consume(s)

            t_ours, k = timed(ours, reps, warmup=0)
            assert k == n
            t_first, _ = timed(lambda: consume(WeightedSampler(w, replacement=replacement,
                                                               seed=1)), 1, warmup=0)
            tw = torch.as_tensor(w)
            torch_reps = 1 if (n >= 10**7 and not replacement) else reps
            t_torch, _ = timed(lambda: consume(torch.utils.data.WeightedRandomSampler(
                tw, n, replacement=replacement)), torch_reps, warmup=0)
            note = f"first epoch incl. table: {fmt_s(t_first)}" if replacement else \
                f"first epoch: {fmt_s(t_first)}"
            if torch_reps == 1:
                note += "; torch run once"
            row("WeightedSampler", f"{n:.0e} draws, {tag} replacement",
                "torch WeightedRandomSampler", t_torch, t_ours, note=note)
            del s
            gc.collect()
    if big:
        w = np.random.default_rng(1).random(big)
        try:
            consume(torch.utils.data.WeightedRandomSampler(torch.as_tensor(w), big))
            err = "ran"
        except RuntimeError as exc:
            err = f"torch raises: {str(exc).splitlines()[0][:70]}"
        t0 = time.perf_counter()
        s = WeightedSampler(w, seed=0)
        k = consume(s)
        t_first = time.perf_counter() - t0
        s.set_epoch(1)
        t0 = time.perf_counter()
        k2 = consume(s)
        t_ours = time.perf_counter() - t0
        assert k == k2 == big
        row("WeightedSampler", f"{big:.0e} draws, with replacement",
            "torch WeightedRandomSampler", None, t_ours,
            note=f"{err}; ours first epoch incl. table {fmt_s(t_first)}, run once")
        del s, w
        gc.collect()


# ---------------------------------------------------------------------------- weights
def bench_weights(name: str, y: LabelMatrix) -> None:
    section = f"weights, {name}"
    t_counts, _ = timed(lambda: LabelMatrix._trusted(y.offsets, y.indices, y.n_labels)
                        .label_counts(), 5)
    y.label_counts()
    base = exposure_report(y, np.ones(len(y)))
    row(section, f"{len(y):,} x {y.n_labels:,}, {y.nnz / len(y):.1f} labels/example",
        exposure=f"{base.uniform_ratio:,.1f}", ess="100%",
        note=f"no reweighting; label counts (once per LabelMatrix, cached): "
             f"{fmt_s(t_counts)}")
    methods: list[tuple[str, Callable[[], np.ndarray], int]] = [
        ("inverse_frequency (mean)", lambda: sample_weights(y, "inverse_frequency"), 5),
        ("inverse_frequency agg=max", lambda: sample_weights(y, "inverse_frequency", agg="max"), 5),
        ("inverse_frequency agg=sum", lambda: sample_weights(y, "inverse_frequency", agg="sum"), 5),
        ("inverse_frequency q=0.5", lambda: sample_weights(y, "inverse_frequency", power=0.5), 5),
        ("effective_number beta=0.999", lambda: sample_weights(y, "effective_number"), 5),
        ("repeat_factor t=0.001", lambda: sample_weights(y, "repeat_factor"), 5),
        ("repeat_factor t=0.05", lambda: sample_weights(y, "repeat_factor", threshold=0.05), 5),
        ("ClassAwareSampler (implied)",
         lambda: ClassAwareSampler(y).expected_weights(), 5),
    ]
    results = []
    for label, fn, reps in methods:
        t, w = timed(fn, reps)
        r = exposure_report(y, w)
        results.append((label, t, r))
    t_solver, w = timed(lambda: sample_weights(y, "exposure"), 3)
    solver = exposure_report(y, w)
    for label, t, r in results:
        ws = sample_weights(y, "exposure", min_ess=r.ess_fraction)
        rs = exposure_report(y, ws)
        better = r.exposure_ratio / rs.exposure_ratio
        row(section, label, t_ours=t, exposure=f"{r.exposure_ratio:,.1f}",
            ess=f"{r.ess_fraction:.1%}",
            note=f"exposure solver at ESS >= {r.ess_fraction:.1%}: {rs.exposure_ratio:,.1f} "
                 f"({better:.1f}x lower)")
    row(section, "exposure solver (defaults: min_ess=0.5)", t_ours=t_solver,
        exposure=f"{solver.exposure_ratio:,.1f}", ess=f"{solver.ess_fraction:.1%}",
        note=f"{solver.improvement:.1f}x flatter than uniform; largest weight "
             f"{solver.max_weight_ratio:.1f}x mean")
    t08, w08 = timed(lambda: sample_weights(y, "exposure", min_ess=0.8), 1)
    r08 = exposure_report(y, w08)
    row(section, "exposure solver min_ess=0.8", t_ours=t08,
        exposure=f"{r08.exposure_ratio:,.1f}", ess=f"{r08.ess_fraction:.1%}")


# ---------------------------------------------------------------------------- detectron2
def d2_repeat_factors(dataset_dicts: list[dict], repeat_thresh: float) -> torch.Tensor:
    """detectron2 ``RepeatFactorTrainingSampler.repeat_factors_from_category_frequency``."""
    category_freq: dict[int, float] = defaultdict(int)
    for dataset_dict in dataset_dicts:
        cat_ids = {ann["category_id"] for ann in dataset_dict["annotations"]}
        for cat_id in cat_ids:
            category_freq[cat_id] += 1
    num_images = len(dataset_dicts)
    for k, v in category_freq.items():
        category_freq[k] = v / num_images
    category_rep = {cat_id: max(1.0, math.sqrt(repeat_thresh / cat_freq))
                    for cat_id, cat_freq in category_freq.items()}
    rep_factors = []
    for dataset_dict in dataset_dicts:
        cat_ids = {ann["category_id"] for ann in dataset_dict["annotations"]}
        rep_factor = max({category_rep[cat_id] for cat_id in cat_ids}, default=1.0)
        rep_factors.append(rep_factor)
    return torch.tensor(rep_factors, dtype=torch.float32)


class D2RepeatFactor:
    """detectron2's ``_get_epoch_indices`` and the shuffle of ``_infinite_indices``."""

    def __init__(self, repeat_factors: torch.Tensor, seed: int = 0) -> None:
        self._int_part = torch.trunc(repeat_factors)
        self._frac_part = repeat_factors - self._int_part
        self.g = torch.Generator()
        self.g.manual_seed(seed)

    def _get_epoch_indices(self, generator: torch.Generator) -> torch.Tensor:
        rands = torch.rand(len(self._frac_part), generator=generator)
        rep_factors = self._int_part + (rands < self._frac_part).float()
        indices = []
        for dataset_index, rep_factor in enumerate(rep_factors):
            indices.extend([dataset_index] * int(rep_factor.item()))
        return torch.tensor(indices, dtype=torch.int64)

    def epoch(self) -> list[int]:
        indices = self._get_epoch_indices(self.g)
        randperm = torch.randperm(len(indices), generator=self.g)
        return indices[randperm].tolist()


def bench_repeat(name: str, y: LabelMatrix, t: float, factor_anchor: bool) -> None:
    section = f"repeat factor, {name}"
    if factor_anchor:
        dicts = [{"annotations": [{"category_id": c} for c in y[i].tolist()]}
                 for i in range(len(y))]
        t_a, fa = timed(lambda: d2_repeat_factors(dicts, t), 1, warmup=0)
        t_o, fo = timed(lambda: sample_weights(y, "repeat_factor", threshold=t), 5)
        assert np.allclose(fa.numpy(), fo, rtol=1e-6)
        row(section, f"repeat factors, t={t}", "detectron2 (Python loop)", t_a, t_o,
            note="same factors (float32 vs float64); anchor run once")
    factors = sample_weights(y, "repeat_factor", threshold=t)
    d2 = D2RepeatFactor(torch.as_tensor(factors, dtype=torch.float32))
    t_a, ea = timed(d2.epoch, 3)
    s = RepeatFactorSampler.from_factors(factors, seed=0)
    e = [0]

    def ours() -> list:
        e[0] += 1
        s.set_epoch(e[0])
        return list(s)

    t_o, eo = timed(ours, 5)
    row(section, f"one epoch ({len(eo):,} indices, mean factor {factors.mean():.3f}), t={t}",
        "detectron2 _get_epoch_indices + randperm", t_a, t_o,
        note=f"anchor epoch {len(ea):,} indices")


# ---------------------------------------------------------------------------- mmdetection
class RandomCycleIter:
    """mmdetection's ``RandomCycleIter`` (mmdet/datasets/samplers/class_aware_sampler.py)."""

    def __init__(self, data: Any, generator: torch.Generator | None = None) -> None:
        self.data = data
        self.length = len(data)
        self.index = torch.randperm(self.length, generator=generator).numpy()
        self.i = 0
        self.generator = generator

    def __iter__(self) -> "RandomCycleIter":
        return self

    def __len__(self) -> int:
        return len(self.data)

    def __next__(self) -> Any:
        if self.i == self.length:
            self.index = torch.randperm(self.length, generator=self.generator).numpy()
            self.i = 0
        idx = self.data[self.index[self.i]]
        self.i += 1
        return idx


class MMDetClassAware:
    """mmdetection 2.x ``ClassAwareSampler`` (single replica), epoch of ``total`` draws."""

    def __init__(self, rows: list[list[int]], total: int, seed: int = 0,
                 num_sample_class: int = 1) -> None:
        cat_dict: dict[int, list[int]] = defaultdict(list)
        for i, labels in enumerate(rows):        # dataset.get_cat2imgs()
            for c in labels:
                cat_dict[c].append(i)
        self.cat_dict = cat_dict
        self.valid_cat_inds = [c for c, v in cat_dict.items() if len(v) != 0]
        self.total_size = total
        self.num_sample_class = num_sample_class
        self.seed, self.epoch = seed, 0

    def __iter__(self) -> Any:
        g = torch.Generator()
        g.manual_seed(self.epoch + self.seed)
        label_iter_list = RandomCycleIter(self.valid_cat_inds, generator=g)
        data_iter_dict = {i: RandomCycleIter(self.cat_dict[i], generator=g)
                          for i in self.valid_cat_inds}

        def gen_cat_img_inds(cls_list, data_dict, num_sample_cls):
            id_indices = []
            for _ in range(len(cls_list)):
                cls_idx = next(cls_list)
                for _ in range(num_sample_cls):
                    id_indices.append(next(data_dict[cls_idx]))
            return id_indices

        num_bins = int(math.ceil(self.total_size / len(self.valid_cat_inds)
                                 / self.num_sample_class))
        indices: list[int] = []
        for _ in range(num_bins):
            indices += gen_cat_img_inds(label_iter_list, data_iter_dict,
                                        self.num_sample_class)
        return iter(indices[: self.total_size])


def bench_class_aware(name: str, y: LabelMatrix) -> None:
    section = f"class aware, {name}"
    rows = [y[i].tolist() for i in range(len(y))]
    t_ai, mm = timed(lambda: MMDetClassAware(rows, len(y)), 1, warmup=0)
    def setup() -> ClassAwareSampler:
        fresh = LabelMatrix._trusted(y.offsets, y.indices, y.n_labels)   # no cached CSC
        sampler = ClassAwareSampler(fresh)
        sampler.labels.transpose()
        return sampler

    t_oi, s = timed(setup, 3)
    row(section, "set-up (label -> examples lists)", "mmdetection get_cat2imgs loop", t_ai,
        t_oi, note="ours: the transpose (CSC), built once per LabelMatrix; anchor run once")

    def anchor() -> list:
        mm.epoch += 1
        return list(mm)

    e = [0]

    def ours() -> list:
        e[0] += 1
        s.set_epoch(e[0])
        return list(s)

    t_a, _ = timed(anchor, 1, warmup=0)
    t_o, _ = timed(ours, 5)
    s2 = ClassAwareSampler(y, return_labels=True, batch_size=256)

    def ours_batches() -> list:
        e[0] += 1
        s2.set_epoch(e[0])
        return list(s2)

    t_l, _ = timed(ours_batches, 3)
    row(section, f"one epoch, {len(y):,} draws", "mmdetection ClassAwareSampler.__iter__",
        t_a, t_o, note=f"return_labels=True, batch_size=256 (IndexBatch with "
                       f"extras['sampled_label']): {fmt_s(t_l)}; anchor run once")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="small sizes (smoke run)")
    args = ap.parse_args()
    torch.set_num_threads(max(1, torch.get_num_threads()))
    print(f"# bench_samplers  ({platform.processor() or platform.machine()}, "
          f"{os.cpu_count()} cpus, torch {torch.__version__} with "
          f"{torch.get_num_threads()} threads, numpy {np.__version__})", flush=True)
    t0 = time.perf_counter()
    if args.quick:
        bench_weighted([10**5], None)
        sparse = make_long_tail("sparse", seed=0, n_examples=8000).labels
        dense = make_long_tail("small", seed=0).labels
        bench_weights("small preset", dense)
        bench_weights("sparse preset (8,000)", sparse)
        bench_repeat("sparse (8,000)", sparse, 0.001, True)
        bench_class_aware("sparse (8,000)", sparse)
    else:
        bench_weighted([10**5, 10**6, 10**7], 10**8)
        seed = make_long_tail("seed", seed=0).labels
        sparse = make_long_tail("sparse", seed=0).labels
        bench_weights("seed preset", seed)
        bench_weights("sparse preset", sparse)
        bench_repeat("seed preset", seed, 0.05, False)  # 10.4M annotation dicts: too big
        bench_repeat("sparse preset", sparse, 0.001, True)
        bench_class_aware("seed preset", seed)
        bench_class_aware("sparse preset", sparse)
    print()
    print(table(HEAD, ROWS))
    print(f"\n(total {time.perf_counter() - t0:.0f} s)")


if __name__ == "__main__":
    main()
