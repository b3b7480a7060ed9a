#!/usr/bin/env python
"""Recipe harness: trains loss / sampler / calibration *recipes* on equal terms and
compares them (the engine of ``compare_recipes.py``, ``make demo`` and
``benchmarks/bench_recipes.py``). Not a loop to copy: that is ``train.py``.

Every recipe gets the data, split, model and optimiser of ``train.py`` (train / val /
test = 70/15/15 by iterative stratification; thresholds are tuned on val, metrics are
measured on test), the same seeds, and the same **step budget** per epoch:
``ceil(n_train / batch_size)`` steps unless ``--steps-per-epoch`` says otherwise. A sampler
whose epoch is longer than the budget (``RepeatFactorSampler`` repeats rare examples, so
its epoch has more batches) is capped, and the cap is reported, never silent: each
epoch's record holds ``steps`` and ``sampler_steps``, the log says so, and the comparison
table shows ``steps/epoch`` as "33 of 65". ``--steps-per-epoch 0`` trains every sampler's
full epoch instead (then the budgets differ).

On top of ``train.py`` the harness measures: each epoch's test-split metrics (macro /
micro AP, P@5, predicted/true label ratio at the default threshold and with tuned
thresholds, by label-frequency bucket), the share of the epoch spent in the sampler (a
timer around its iterator and, for replay, ``update``), and a sha1 digest of the indices
the sampler produced (so a resumed run can be checked against an uninterrupted one).
Numba compiles longtail's kernels the first time they run (a cold cache: the first epoch,
mostly inside the sampler); that one-time cost is kept apart, as ``compile_s`` in the
epoch's record and "(+12.3 s one-time kernel compilation)" in the log, and the sampler's
share is that of the epoch without it.

    python examples/harness.py --recipe asl+replay --epochs 4     # one recipe
    python examples/compare_recipes.py --recipes bce asl           # a comparison table
"""
from __future__ import annotations

import argparse
import dataclasses
import hashlib
import json
import math
import os
import sys
import time
from typing import Any, Iterator

import numpy as np
import torch
from torch import nn
from torch.utils.data import DataLoader

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import longtail  # noqa: E402
import train as plain  # noqa: E402  (data, split and model of the plain loop)
from longtail import losses as L  # noqa: E402
from longtail import metrics as M  # noqa: E402
from longtail.datasets import ArrowDataset  # noqa: E402


# ----------------------------------------------------------------------------- recipes
@dataclasses.dataclass(frozen=True)
class Recipe:
    """A remedy: which loss, which sampler, whether to calibrate at inference."""

    loss: str = "bce"                # bce | focal | asl
    pos_weight: bool = False         # BCE pos_weight = neg / pos per label
    calibrate: bool = False          # subtract log(pos_weight) from logits at inference
    sampler: str = "shuffle"         # shuffle | repeat_factor | class_aware | replay | stratified_batches
    sampler_params: tuple = ()       # extra keyword arguments, as (name, value) pairs
    sample_reduction: str = "mean"   # how [B, C] losses become the per-example training loss
    sampled_label_weight: float = 1.0  # class-aware: weight of the label an example was drawn for


RECIPES: dict[str, Recipe] = {
    "bce": Recipe(),
    "bce-posweight": Recipe(pos_weight=True),
    "bce-posweight-calibrated": Recipe(pos_weight=True, calibrate=True),
    "focal": Recipe(loss="focal"),
    "asl": Recipe(loss="asl"),
    "asl+repeat-factor": Recipe(loss="asl", sampler="repeat_factor",
                                sampler_params=(("threshold", 0.05),)),
    "asl+class-aware": Recipe(loss="asl", sampler="class_aware",
                              sampler_params=(("return_labels", True),),
                              sampled_label_weight=2.0),
    # train on the plain mean loss; the sampler ranks examples for replay by the balanced
    # loss, which is not drowned by thousands of easy negatives (longtail.per_example_loss)
    "asl+replay": Recipe(loss="asl", sampler="replay",
                         sampler_params=(("hard_fraction", 0.5),
                                         ("loss_reduction", "balanced"))),
    "asl+stratified-batches": Recipe(loss="asl", sampler="stratified_batches"),
}


def loss_entries(recipe: Recipe, logits: torch.Tensor, targets: torch.Tensor,
                 pos_weight: torch.Tensor | None) -> torch.Tensor:
    """The recipe's loss per (example, label) entry, [B, C]."""
    if recipe.loss == "bce":
        return L.bce_with_logits(logits, targets, pos_weight=pos_weight, reduction="none")
    if recipe.loss == "focal":
        return L.sigmoid_focal_loss(logits, targets, reduction="none")
    if recipe.loss == "asl":
        return L.asymmetric_loss(logits, targets, reduction="none")
    raise ValueError(f"unknown loss {recipe.loss!r}")


def make_sampler(recipe: Recipe, train: ArrowDataset, args: argparse.Namespace) -> dict[str, Any]:
    """DataLoader arguments for the recipe: ``sampler`` + ``batch_size``, or ``batch_sampler``."""
    params = dict(recipe.sampler_params)
    labels, n, seed, b = train.labels, len(train), args.seed, args.batch_size
    if recipe.sampler == "shuffle":
        return {"sampler": longtail.WeightedSampler(np.ones(n), num_samples=n, replacement=False,
                                                    seed=seed), "batch_size": b}
    if recipe.sampler == "repeat_factor":
        return {"sampler": longtail.RepeatFactorSampler(labels, seed=seed, **params),
                "batch_size": b}
    if recipe.sampler == "class_aware":  # a batch sampler: batches carry extras["sampled_label"]
        return {"batch_sampler": longtail.ClassAwareSampler(labels, num_samples=n, batch_size=b,
                                                            seed=seed, **params)}
    if recipe.sampler == "replay":
        return {"batch_sampler": longtail.HardExampleSampler(n, b, seed=seed, **params)}
    if recipe.sampler == "stratified_batches":
        return {"batch_sampler": longtail.StratifiedBatchSampler(labels, b, seed=seed, **params)}
    raise ValueError(f"unknown sampler {recipe.sampler!r}")


# ----------------------------------------------------------------------------- timers
class CompileClock:
    """Seconds Numba has spent compiling kernels in this process so far (``seconds``).

    A cold cache compiles longtail's kernels the first time they run -- inside the first
    epoch, mostly inside the sampler -- and that one-time cost (seconds) would swamp the
    sampler's share of the epoch (milliseconds). The timers read this clock before and
    after each timed section and keep the compilation apart (``compile_s`` in the
    records). Only the outermost of nested compilations counts (a kernel compiles the
    kernels it calls); loading a kernel from the cache is not a compilation.
    """

    _shared: "CompileClock | None" = None

    def __init__(self) -> None:
        self.seconds = 0.0
        self._depth = 0
        self._start = 0.0

    @classmethod
    def shared(cls) -> "CompileClock":
        """The process's clock, listening to Numba's ``numba:compile`` events from now on."""
        if cls._shared is None:
            from numba.core import event

            clock = cls()

            class _Listener(event.Listener):
                def on_start(self, ev: Any) -> None:
                    if clock._depth == 0:
                        clock._start = time.perf_counter()
                    clock._depth += 1

                def on_end(self, ev: Any) -> None:
                    clock._depth -= 1
                    if clock._depth == 0:
                        clock.seconds += time.perf_counter() - clock._start

            event.register("numba:compile", _Listener())
            cls._shared = clock
        return cls._shared


class SamplerClock:
    """Time spent in the sampler (``seconds``), Numba compilation inside it taken out."""

    def __init__(self, compile_clock: CompileClock) -> None:
        self.compile = compile_clock
        self.seconds = 0.0

    def reset(self) -> None:
        self.seconds = 0.0

    def section(self) -> "_Section":
        """``with clock.section(): ...`` adds the block's time, less compilation."""
        return _Section(self)


class _Section:
    def __init__(self, clock: SamplerClock) -> None:
        self.clock = clock

    def __enter__(self) -> None:
        self.t0, self.c0 = time.perf_counter(), self.clock.compile.seconds

    def __exit__(self, *exc: Any) -> None:
        compiled = self.clock.compile.seconds - self.c0
        self.clock.seconds += time.perf_counter() - self.t0 - compiled


class TimedIterator:
    """Wraps a sampler's iterator: adds up the time spent producing indices, digests them."""

    def __init__(self, inner: Iterator, clock: SamplerClock, digest: Any) -> None:
        self.inner, self.clock, self.digest = inner, clock, digest

    def __iter__(self) -> "TimedIterator":
        return self

    def __next__(self) -> Any:
        with self.clock.section():
            item = next(self.inner)
        self.digest.update(np.asarray(item, dtype=np.int64).tobytes())
        return item


class TimedSampler:
    """Delegates to a sampler (or batch sampler), timing its iteration."""

    def __init__(self, sampler: Any, clock: SamplerClock) -> None:
        self.sampler = sampler
        self.clock = clock
        self.digest = hashlib.sha1()

    def __iter__(self) -> TimedIterator:
        self.digest = hashlib.sha1()
        with self.clock.section():
            it = iter(self.sampler)
        return TimedIterator(it, self.clock, self.digest)

    def __len__(self) -> int:
        return len(self.sampler)


# ----------------------------------------------------------------------------- evaluation
def autocast(device: torch.device, bf16: str = "auto") -> Any:
    """bf16 autocast for the forward pass: on CUDA by default ("auto"), on CPU only when
    asked ("on"; slower on most CPUs, but it runs the GPU code path without a GPU)."""
    enabled = bf16 == "on" or (bf16 == "auto" and device.type == "cuda")
    return torch.autocast(device.type, dtype=torch.bfloat16, enabled=enabled)


def evaluate(model: nn.Module, ds: ArrowDataset, args: argparse.Namespace,
             device: torch.device) -> np.ndarray:
    """Logits of every example of ``ds``, in order."""
    loader = DataLoader(ds, batch_size=1024, collate_fn=ArrowDataset.collate, num_workers=0)
    model.eval()
    out = []
    with torch.no_grad(), autocast(device, args.bf16):
        for x, _, _, _ in loader:
            out.append(model(x.to(device, non_blocking=True)).float().cpu())
    model.train()
    return torch.cat(out).numpy() if out else np.zeros((0, ds.n_labels), np.float32)


def validation_metrics(recipe: Recipe, model: nn.Module, parts: dict[str, ArrowDataset],
                       pos_weight: torch.Tensor | None, args: argparse.Namespace,
                       device: torch.device) -> dict[str, Any]:
    """Metrics on the test part; per-label thresholds tuned on the val part."""
    test_scores, test_labels = evaluate(model, parts["test"], args, device), parts["test"].labels
    tune_scores, tune_labels = evaluate(model, parts["val"], args, device), parts["val"].labels
    if recipe.calibrate and pos_weight is not None:
        shift = pos_weight.cpu().numpy()
        test_scores = M.remove_pos_weight_shift(test_scores, shift)
        tune_scores = M.remove_pos_weight_shift(tune_scores, shift)
    train_counts = parts["train"].labels.label_counts()
    ap = M.average_precision(test_labels, test_scores, average=None)
    at_half = M.prediction_ratio(test_labels, M.apply_thresholds(test_scores, 0.0),
                                 bucket_counts=train_counts)
    thresholds = M.tune_thresholds(tune_labels, tune_scores, objective=args.threshold_objective)
    tuned = M.prediction_ratio(test_labels, M.apply_thresholds(test_scores, thresholds),
                               bucket_counts=train_counts)
    p_at_k = M.precision_at_k(test_labels, test_scores, k=[5])
    return {
        "ap_macro": float(np.mean(ap)),
        "ap_micro": float(M.average_precision(test_labels, test_scores, average="micro")),
        "p_at_5": float(p_at_k[5]),
        "ratio_at_0.5": float(at_half.overall),
        "ratio_tuned": float(tuned.overall),
        "ap_per_label": ap,
        "ratio_by_bucket_0.5": {k: float(v) for k, v in at_half.buckets.items()},
        "ratio_by_bucket_tuned": {k: float(v) for k, v in tuned.buckets.items()},
        "label_bucket": at_half.bucket,  # 0 head, 1 medium, 2 tail (training counts)
    }


# ----------------------------------------------------------------------------- training
def train(args: argparse.Namespace) -> dict[str, Any]:
    """Train one recipe; returns the history of per-epoch records."""
    recipe = RECIPES[args.recipe]
    compile_clock = CompileClock.shared()  # before the first kernel can compile
    device = torch.device(args.device or ("cuda" if torch.cuda.is_available() else "cpu"))
    torch.manual_seed(args.seed)
    files = plain.prepare_data(args.workdir, args.preset, args.n_examples, args.data,
                               args.data_seed)
    parts = {name: ArrowDataset(path) for name, path in files.items()}
    train_ds = parts["train"]
    n_train = len(train_ds)
    counts = torch.from_numpy(train_ds.labels.label_counts().astype(np.float64))
    pos_weight = None
    if recipe.pos_weight:
        pos_weight = ((n_train - counts) / counts.clamp(min=1)).float().to(device)
    model = plain.MLP(train_ds.n_features, train_ds.n_labels, args.hidden, args.dropout,
                      prior=counts / n_train).to(device)
    optimizer = torch.optim.AdamW(model.parameters(), lr=args.lr, weight_decay=args.weight_decay)
    scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=args.epochs)

    loader_args = make_sampler(recipe, train_ds, args)
    key = "sampler" if "sampler" in loader_args else "batch_sampler"
    sampler = loader_args[key]
    clock = SamplerClock(compile_clock)
    timed = loader_args[key] = TimedSampler(sampler, clock)
    loader = DataLoader(train_ds, collate_fn=ArrowDataset.collate, num_workers=args.num_workers,
                        pin_memory=device.type == "cuda", **loader_args)
    # the equal step budget (0: every sampler's own full epoch)
    budget = (math.ceil(n_train / args.batch_size) if args.steps_per_epoch is None
              else args.steps_per_epoch)

    start_epoch, history = 0, []
    if args.resume and os.path.exists(args.resume):
        state = torch.load(args.resume, map_location="cpu", weights_only=False)
        model.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        scheduler.load_state_dict(state["scheduler"])
        sampler.load_state_dict(state["sampler"])
        start_epoch, history = state["epoch"], state["history"]
        torch.set_rng_state(state["torch_rng"])  # dropout continues as if never stopped
        print(f"resumed from {args.resume} at epoch {start_epoch}", flush=True)

    stop = args.epochs if args.stop_after is None else min(args.epochs, start_epoch + args.stop_after)
    for epoch in range(start_epoch, stop):
        sampler.set_epoch(epoch)
        sampler_steps = len(loader)  # batches in this epoch of the sampler
        steps = sampler_steps if budget == 0 else min(budget, sampler_steps)
        if steps < sampler_steps:
            print(f"[{args.recipe}] epoch {epoch + 1}: the step budget trains {steps} of the "
                  f"sampler's {sampler_steps} batches (--steps-per-epoch)", flush=True)
        clock.reset()
        t_epoch, compiled_before = time.perf_counter(), compile_clock.seconds
        running, seen = 0.0, 0
        progress = _progress(steps, f"{args.recipe} epoch {epoch + 1}/{args.epochs}")
        for _, (x, y, index, extras) in zip(range(steps), loader):
            x = x.to(device, non_blocking=True)
            y = y.to(device, non_blocking=True)
            with autocast(device, args.bf16):
                logits = model(x)
            entries = loss_entries(recipe, logits.float(), y, pos_weight)
            if "sampled_label" in extras and recipe.sampled_label_weight != 1.0:
                # label-level balancing: up-weight the label the example was drawn for
                rows = torch.arange(entries.shape[0], device=device)
                cols = extras["sampled_label"].to(device)
                boost = torch.ones_like(entries)
                boost[rows, cols] = recipe.sampled_label_weight
                entries = entries * boost
            per_example = L.per_example_loss(entries, y, reduction=recipe.sample_reduction)
            if "weight" in extras:  # importance weights drawn with the batch (replay)
                per_example = per_example * extras["weight"].to(device, per_example.dtype)
            loss = per_example.mean()
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            if recipe.sampler == "replay":
                # the per-example priority loss, with the sampler's own loss_reduction:
                # loss work, done here so that the sampler's timer does not count it
                priority = L.per_example_loss(entries.detach(), y,
                                              reduction=sampler.loss_reduction)
                with clock.section():
                    sampler.update(index, priority)
            running += float(loss.detach()) * len(index)
            seen += len(index)
            progress(1)
        progress(None)
        scheduler.step()
        epoch_s = time.perf_counter() - t_epoch
        # one-time Numba compilation (a cold cache: the first epoch) is reported apart;
        # the sampler's share is that of the epoch without it
        compile_s = compile_clock.seconds - compiled_before
        metrics = validation_metrics(recipe, model, parts, pos_weight, args, device)
        record = {"epoch": epoch + 1, "train_loss": running / max(seen, 1), "steps": steps,
                  "sampler_steps": sampler_steps, "epoch_s": epoch_s, "compile_s": compile_s,
                  "sampler_s": clock.seconds,
                  "sampler_share": clock.seconds / max(epoch_s - compile_s, 1e-9),
                  "sampler_digest": timed.digest.hexdigest(), **metrics}
        history.append(record)
        print(f"[{args.recipe}] epoch {epoch + 1}: loss {record['train_loss']:.4f}  "
              f"macro AP {record['ap_macro']:.4f}  micro AP {record['ap_micro']:.4f}  "
              f"P@5 {record['p_at_5']:.4f}  pred/true {record['ratio_at_0.5']:.2f} "
              f"(tuned {record['ratio_tuned']:.2f})  sampler {record['sampler_share']:.2%}"
              + _compile_note(compile_s), flush=True)
        if args.checkpoint:
            state = {"model": model.state_dict(), "optimizer": optimizer.state_dict(),
                     "scheduler": scheduler.state_dict(), "sampler": sampler.state_dict(),
                     "epoch": epoch + 1, "history": history, "recipe": args.recipe,
                     "torch_rng": torch.get_rng_state()}
            torch.save(state, args.checkpoint + ".tmp")
            os.replace(args.checkpoint + ".tmp", args.checkpoint)
    return {"recipe": args.recipe, "history": history,
            "label_counts": train_ds.labels.label_counts().tolist()}


COMPILE_SHOWN_S = 0.05  # compilation shorter than this is not worth a remark


def _compile_note(compile_s: float) -> str:
    """" (+12.3 s one-time kernel compilation)", or "" when there was (almost) none."""
    if compile_s < COMPILE_SHOWN_S:
        return ""
    return f" (+{compile_s:.1f} s one-time kernel compilation)"


def _progress(total: int, desc: str) -> Any:
    from tqdm import tqdm

    bar = tqdm(total=total, desc=desc, leave=False, disable=None, file=sys.stderr)

    def step(k: int | None) -> None:
        if k is None:
            bar.close()
        else:
            bar.update(k)

    return step


class HelpFormatter(argparse.ArgumentDefaultsHelpFormatter,
                    argparse.RawDescriptionHelpFormatter):
    """Defaults in the option help (unless it says its own, or there is none: ``None``,
    a flag's ``False``), the description as written."""

    def _get_help_string(self, action: argparse.Action) -> str:
        text = action.help or ""
        if action.default is None or action.default is False or "default:" in text:
            return text
        return super()._get_help_string(action)


def run_options() -> argparse.ArgumentParser:
    """The options of every run, as a parent parser (``argparse``'s ``parents=``): those
    of ``build_parser`` (one run) and of the comparison's parser (every run of it)."""
    p = argparse.ArgumentParser(add_help=False)
    g = p.add_argument_group("data, model and training (the same for every run)")
    g.add_argument("--data", default=None,
                   help="ArrowDataset IPC file; default: generate --preset into --workdir")
    g.add_argument("--preset", default="small", help="make_long_tail preset when --data is unset")
    g.add_argument("--n-examples", type=int, default=None,
                   help="override the preset's number of examples (generated data only)")
    g.add_argument("--data-seed", type=int, default=0,
                   help="seed of the generated data and of the stratified split")
    g.add_argument("--workdir", default="runs", help="where data and splits go")
    g.add_argument("--epochs", type=int, default=8, help="training epochs")
    g.add_argument("--batch-size", type=int, default=256, help="examples per step")
    g.add_argument("--steps-per-epoch", type=int, default=None,
                   help="step budget per epoch, the same for every recipe (default: "
                        "ceil(n_train / batch_size)); a longer sampler epoch is capped and "
                        "the cap reported; 0: every sampler's full epoch")
    g.add_argument("--lr", type=float, default=2e-3, help="AdamW peak learning rate")
    g.add_argument("--weight-decay", type=float, default=1e-4, help="AdamW weight decay")
    g.add_argument("--hidden", type=int, default=512, help="MLP hidden width")
    g.add_argument("--dropout", type=float, default=0.1, help="dropout after each hidden layer")
    g.add_argument("--num-workers", type=int, default=0, help="DataLoader worker processes")
    g.add_argument("--device", default=None, help="cpu or cuda (default: cuda if available)")
    g.add_argument("--bf16", default="auto", choices=["auto", "on", "off"],
                   help="bf16 autocast of the forward pass (auto: on CUDA only); the loss "
                        "is computed in float32 either way")
    g.add_argument("--threshold-objective", default="match_count", choices=["f1", "match_count"],
                   help="per-label threshold tuning objective on the val part")
    return p


def build_parser() -> argparse.ArgumentParser:
    """Options of one run: ``run_options`` plus the recipe, the seed, checkpoints, output."""
    p = argparse.ArgumentParser(
        description="Train an MLP on a long-tailed multilabel Arrow dataset with one recipe.",
        formatter_class=HelpFormatter, parents=[run_options()])
    p.add_argument("--recipe", default="asl", choices=sorted(RECIPES),
                   help="loss + sampler + calibration bundle (see RECIPES in this file)")
    p.add_argument("--seed", type=int, default=0, help="model and sampler seed")
    p.add_argument("--checkpoint", default=None, help="save a checkpoint here after each epoch")
    p.add_argument("--resume", default=None, help="resume from this checkpoint if it exists")
    p.add_argument("--stop-after", type=int, default=None,
                   help="train at most this many epochs in this run (e.g. a job time limit); "
                        "the schedule still spans --epochs, continue with --resume")
    p.add_argument("--output", default=None, help="write the metric history as JSON here")
    return p


def run(argv: list[str] | None = None) -> dict[str, Any]:
    """Train one recipe from command-line arguments (see ``build_parser``)."""
    args = build_parser().parse_args(argv)
    result = train(args)
    if args.output:
        with open(args.output + ".tmp", "w") as f:
            json.dump(_jsonable(result), f, indent=1)
        os.replace(args.output + ".tmp", args.output)
    return result


def _jsonable(obj: Any) -> Any:
    if isinstance(obj, dict):
        return {str(k): _jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_jsonable(v) for v in obj]
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    if isinstance(obj, (np.floating, np.integer)):
        return obj.item()
    return obj


# ----------------------------------------------------------------------------- comparison
METRICS = [("ap_macro", "macro AP"), ("ap_micro", "micro AP"), ("p_at_5", "P@5"),
           ("ratio_at_0.5", "pred/true @0.5"), ("ratio_tuned", "pred/true tuned"),
           ("sampler_share", "sampler share")]


def _steps_cell(last: list[dict[str, Any]]) -> str:
    """The last epoch's steps: "33", or "33 of 65" when the budget capped the sampler."""
    pairs = sorted({(int(r["steps"]), int(r["sampler_steps"])) for r in last})
    return ", ".join(str(s) if s == full else f"{s} of {full}" for s, full in pairs)


def summarise(runs: dict[str, list[dict[str, Any]]], baseline: str) -> tuple[str, dict]:
    """The comparison table (text) and its numbers: mean +- std over seeds of the last
    epoch's metrics, and macro AP relative to ``baseline``. A sampler share marked "*"
    comes from an epoch that also compiled Numba kernels (a cold cache): the share is
    that of the epoch without the compilation, whose seconds the footnote gives."""
    rows, summary = [], {}
    base = None
    if baseline in runs:
        base = float(np.mean([r["history"][-1]["ap_macro"] for r in runs[baseline]]))
    capped, compiled = False, 0.0
    for recipe, results in runs.items():
        last = [r["history"][-1] for r in results]
        entry: dict[str, Any] = {}
        cells = [recipe]
        for key, _ in METRICS:
            vals = np.array([float(x[key]) for x in last])
            entry[key] = {"mean": float(vals.mean()), "std": float(vals.std())}
            if key == "sampler_share":
                compile_s = max(float(x.get("compile_s", 0.0)) for x in last)
                compiled = max(compiled, compile_s)
                mark = "*" if compile_s >= COMPILE_SHOWN_S else ""
                cells.append(f"{vals.mean():.2%}{mark}")
            else:
                cells.append(f"{vals.mean():.4f} +- {vals.std():.4f}" if len(vals) > 1
                             else f"{vals.mean():.4f}")
        entry["compile_s"] = [float(x.get("compile_s", 0.0)) for x in last]
        entry["steps"] = [int(x["steps"]) for x in last]
        entry["sampler_steps"] = [int(x["sampler_steps"]) for x in last]
        capped |= any(s < f for s, f in zip(entry["steps"], entry["sampler_steps"]))
        cells.append(_steps_cell(last))
        rel = (entry["ap_macro"]["mean"] / base - 1) if base else float("nan")
        entry["ap_macro_vs_baseline"] = rel
        cells.append(f"{rel:+.1%}" if base else "n/a")
        summary[recipe] = entry
        rows.append(cells)
    headers = ["recipe", *[name for _, name in METRICS], "steps/epoch",
               f"macro AP vs {baseline}"]
    widths = [max(len(h), *(len(r[i]) for r in rows)) for i, h in enumerate(headers)]
    line = lambda r: "| " + " | ".join(c.ljust(w) for c, w in zip(r, widths)) + " |"  # noqa
    text = "\n".join([line(headers), "|" + "|".join("-" * (w + 2) for w in widths) + "|",
                      *(line(r) for r in rows)])
    if capped:
        text += ("\nsteps/epoch \"a of b\": the sampler's epoch has b batches, the equal step "
                 "budget trained a of them (--steps-per-epoch 0: full sampler epochs)")
    if compiled >= COMPILE_SHOWN_S:
        text += (f"\nsampler share \"*\": that epoch also compiled Numba kernels (up to "
                 f"{compiled:.1f} s, once per install: a cold cache; `longtail warmup` does it "
                 "ahead); the share is that of the epoch without the compilation")
    return text, summary


# ----------------------------------------------------------------------------- plot
PLOT_MISSING = ("matplotlib is not installed, so no plot will be drawn (the table and "
                "results.json will be); install it with `pip install 'longtail[plot]'` (from "
                "a checkout: `pip install -e '.[plot]'`), or pass --no-plot")

# one style per recipe, so that recipes whose lines coincide stay visible: colour, marker
# and line style all change from one recipe to the next, markers are hollow, and each
# recipe's points are shifted a little sideways within their bucket
_MARKERS = ["o", "s", "^", "D", "v", "P", "X", "<", ">", "h"]
_LINES = ["-", "--", "-.", ":"]
_DODGE = 0.035  # sideways shift between neighbouring recipes, in buckets


def plot_available() -> bool:
    """Whether matplotlib can be imported (the plot's one extra dependency)."""
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        return False
    return True


def data_ylim(values: Any, log: bool = False, include: tuple[float, ...] = (),
              margin: float = 0.08) -> tuple[float, float]:
    """Y-axis limits that fit ``values`` (and the ``include`` reference values) with a
    ``margin`` (a fraction of their range, in log10 on a ``log`` axis) on each side.
    Non-finite values are ignored, and on a log axis so are values <= 0."""
    v = np.concatenate([np.ravel(np.asarray(values, dtype=np.float64)),
                        np.asarray(include, dtype=np.float64)])
    v = v[np.isfinite(v) & ((v > 0) if log else True)]
    if v.size == 0:
        return (0.1, 10.0) if log else (0.0, 1.0)
    if log:
        v = np.log10(v)
    lo, hi = float(v.min()), float(v.max())
    pad = margin * (hi - lo) if hi > lo else (0.1 if log else max(0.05 * abs(hi), 0.01))
    lo, hi = lo - pad, hi + pad
    return (10.0 ** lo, 10.0 ** hi) if log else (lo, hi)


def plot(runs: dict[str, list[dict[str, Any]]], path: str) -> dict[str, tuple[float, float]]:
    """Per-label AP and predicted/true ratio by label-frequency bucket, one line per recipe
    (mean over seeds). Returns each panel's y-limits ("ap", "ratio"): they fit the data."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = ("tail", "medium", "head")
    ap_lines, ratio_lines = {}, {}
    for recipe, results in runs.items():
        buckets = np.asarray(results[0]["history"][-1]["label_bucket"])  # 0 head .. 2 tail
        ap = np.mean([np.asarray(r["history"][-1]["ap_per_label"]) for r in results], axis=0)
        ap_lines[recipe] = np.array([ap[buckets == b].mean() if np.any(buckets == b)
                                     else np.nan for b in (2, 1, 0)])
        ratio_lines[recipe] = np.array([
            np.mean([r["history"][-1]["ratio_by_bucket_0.5"].get(name, np.nan)
                     for r in results]) for name in names])
    ap_lim = data_ylim(list(ap_lines.values()))
    ratio_lim = data_ylim(list(ratio_lines.values()), log=True, include=(1.0,))
    # a ratio of 0 (no label predicted in a bucket) has no place on a log axis: drawn
    # on the bottom edge, and said so
    zero = any(np.any(r == 0) for r in ratio_lines.values())

    fig, axes = plt.subplots(1, 2, figsize=(11, 4.6))
    x = np.arange(3)
    colours = plt.get_cmap("tab10").colors
    n = len(runs)
    for i, recipe in enumerate(runs):
        style = {"color": colours[i % len(colours)], "marker": _MARKERS[i % len(_MARKERS)],
                 "linestyle": _LINES[i % len(_LINES)], "markerfacecolor": "none",
                 "markeredgewidth": 1.4, "markersize": 7, "linewidth": 1.4, "alpha": 0.9,
                 "label": recipe}
        shift = x + (i - (n - 1) / 2) * _DODGE
        axes[0].plot(shift, ap_lines[recipe], **style)
        ratios = np.where(ratio_lines[recipe] == 0, ratio_lim[0], ratio_lines[recipe])
        axes[1].plot(shift, ratios, **style)
    titles = ["mean AP per label", "predicted / true labels at 0.5"
              + (" (0: on the bottom edge)" if zero else "")]
    for ax, title in zip(axes, titles):
        ax.set_xticks(x, list(names))
        ax.set_xlabel("label-frequency bucket (training counts, tertiles)")
        ax.set_title(title)
        ax.grid(alpha=0.3)
    axes[1].axhline(1.0, color="black", lw=0.8)
    axes[1].set_yscale("log")
    axes[0].set_ylim(*ap_lim)
    axes[1].set_ylim(*ratio_lim)
    handles, labels = axes[0].get_legend_handles_labels()
    ncol = min(n, 3)
    rows = math.ceil(n / ncol) if n else 0
    fig.legend(handles, labels, loc="lower center", ncol=ncol, fontsize=8, frameon=False)
    fig.tight_layout(rect=(0, 0.045 * rows + 0.01, 1, 1))
    limits = {"ap": tuple(map(float, axes[0].get_ylim())),
              "ratio": tuple(map(float, axes[1].get_ylim()))}
    tmp = path + ".tmp.png"
    fig.savefig(tmp, dpi=100)
    plt.close(fig)
    os.replace(tmp, path)
    return limits


# ----------------------------------------------------------------------------- compare
COMPARE_DOC = """Compare training recipes on the same data, split and step budget.

Trains each recipe (same generated data, same stratified split, same number of steps per
epoch), over one or more seeds, then prints one table (mean +- std of the last epoch's
metrics, the steps per epoch, and the relative change of macro AP vs ``bce-posweight``,
the users' current setup), writes ``results.json`` and a PNG plot (per-label AP and
predicted/true label ratio by label-frequency bucket, one line per recipe; it needs
matplotlib: ``pip install 'longtail[plot]'``; without it the table and results.json are
still written). The options of every run are those of ``examples/harness.py`` (below).

Example::

    python examples/compare_recipes.py --preset small --epochs 6 \\
        --recipes bce bce-posweight bce-posweight-calibrated asl asl+replay
"""


def compare_parser() -> argparse.ArgumentParser:
    """Options of a comparison: recipes, seeds, baseline, output, plus ``run_options``."""
    p = argparse.ArgumentParser(description=COMPARE_DOC, formatter_class=HelpFormatter,
                                parents=[run_options()])
    p.add_argument("--recipes", nargs="+", default=list(RECIPES), choices=list(RECIPES),
                   metavar="RECIPE",
                   help=f"recipes to train (default: all): {', '.join(RECIPES)}")
    p.add_argument("--seeds", type=int, nargs="+", default=[0],
                   help="model/sampler seeds (one run per recipe and seed)")
    p.add_argument("--baseline", default="bce-posweight", help="recipe the others are compared to")
    p.add_argument("--out", default="runs/compare", help="folder for results.json and the plot")
    p.add_argument("--no-plot", action="store_true",
                   help="draw no plot (drawing one needs matplotlib)")
    return p


def compare(argv: list[str] | None = None) -> dict[str, Any]:
    """Train every recipe x seed, print the table, write results.json and recipes.png."""
    args = compare_parser().parse_args(argv)
    draw = not args.no_plot
    if draw and not plot_available():  # said now, not after all the training
        print(f"warning: {PLOT_MISSING}", file=sys.stderr, flush=True)
        draw = False
    os.makedirs(args.out, exist_ok=True)
    # every run: the comparison's run options, the one-run defaults for the rest
    single = vars(build_parser().parse_args([]))
    shared = {k: v for k, v in vars(args).items() if k in single}
    runs: dict[str, list[dict[str, Any]]] = {}
    t0 = time.perf_counter()
    for recipe in args.recipes:
        for seed in args.seeds:
            one = argparse.Namespace(**{**single, **shared, "recipe": recipe, "seed": seed})
            runs.setdefault(recipe, []).append(train(one))
    text, summary = summarise(runs, args.baseline)
    print()
    print(f"test metrics after the last epoch ({len(args.seeds)} seed(s); "
          f"{time.perf_counter() - t0:.0f} s in all)")
    print(text)
    results_path = os.path.join(args.out, "results.json")
    with open(results_path + ".tmp", "w") as f:
        json.dump({"summary": summary, "runs": _jsonable(runs),
                   "argv": list(argv) if argv is not None else sys.argv[1:],
                   "options": vars(args)}, f, indent=1)
    os.replace(results_path + ".tmp", results_path)
    if draw:
        plot_path = os.path.join(args.out, "recipes.png")
        plot(runs, plot_path)
        print(f"wrote {results_path} and {plot_path}")
    else:
        print(f"wrote {results_path}" + ("" if args.no_plot else
                                         " (no plot: matplotlib is not installed)"))
    return {"summary": summary, "runs": runs, "table": text}


if __name__ == "__main__":
    run()
