#!/usr/bin/env python
"""Reference training loop for long-tailed multilabel data, built on longtail.

Every remedy is a *recipe*: a few declarative lines (loss, sampler, calibration) that
the one loop below consumes. Run ``python examples/train_reference.py --help``.

The loop, in order:

1. data: an ``ArrowDataset`` IPC file (default: the ``small`` preset, generated on first
   use); an iterative-stratification split into train / tune / val, each written once as
   its own memory-mapped file so every sampler works on plain positions;
2. model: an MLP over the features, AdamW, cosine learning-rate schedule, output bias
   initialised to the label prior (log-odds of the training prevalence);
3. each step: ``loss(reduction="none")`` -> one loss per example
   (``per_example_loss``) -> times the importance weight that travelled with the batch
   (replay) -> mean -> backward; the replay sampler gets one loss per example with
   ``sampler.update(index, losses)``, reduced with the sampler's ``loss_reduction``
   (``"balanced"``, which easy negatives do not drown);
4. each epoch: validation metrics (macro / micro AP, P@5, predicted/true label ratio at
   the default threshold and with per-label thresholds tuned on the tune part) and the
   share of the epoch spent in the sampler.

CUDA is used when available (bf16 autocast, pinned memory, non-blocking copies);
``torchrun --nproc_per_node 2 examples/train_reference.py`` trains with DDP (gloo on
CPU): samplers shard by rank, replay feedback is gathered from all ranks, metrics are
gathered on rank 0. ``--checkpoint`` saves model, optimiser, scheduler and sampler
state every epoch; ``--resume`` continues with the identical sampler order.
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
import torch.distributed as dist
from torch import nn
from torch.utils.data import DataLoader

import longtail
from longtail import losses as L
from longtail import metrics as M
from longtail.datasets import ArrowDataset, write_dataset


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


# ----------------------------------------------------------------------------- model
class MLP(nn.Module):
    """Two hidden layers with LayerNorm and dropout; the output bias is set by the caller."""

    def __init__(self, n_features: int, n_labels: int, hidden: int, dropout: float) -> None:
        super().__init__()
        self.body = nn.Sequential(
            nn.Linear(n_features, hidden), nn.LayerNorm(hidden), nn.GELU(), nn.Dropout(dropout),
            nn.Linear(hidden, hidden), nn.LayerNorm(hidden), nn.GELU(), nn.Dropout(dropout),
        )
        self.head = nn.Linear(hidden, n_labels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.body(x))


# ----------------------------------------------------------------------------- helpers
def is_main() -> bool:
    return not (dist.is_available() and dist.is_initialized()) or dist.get_rank() == 0


def log(*args: Any) -> None:
    if is_main():
        print(*args, flush=True)


def prepare_data(args: argparse.Namespace) -> dict[str, str]:
    """Generate the dataset if needed, split it, write one file per part (rank 0 only)."""
    size = f"-n{args.n_examples}" if args.n_examples else ""
    data = args.data or os.path.join(args.workdir,
                                     f"{args.preset}{size}-seed{args.data_seed}.arrow")
    split_dir = os.path.join(args.workdir, "splits",
                             f"{os.path.basename(data)}-{args.split_seed}")
    parts = {name: os.path.join(split_dir, f"{name}.arrow") for name in ("train", "tune", "val")}
    if is_main():
        os.makedirs(args.workdir, exist_ok=True)
        if not os.path.exists(data):
            if args.data:
                raise SystemExit(f"no such file: {data}")
            log(f"generating the {args.preset!r} preset -> {data}")
            overrides = {"n_examples": args.n_examples} if args.n_examples else {}
            longtail.make_long_tail(args.preset, seed=args.data_seed, **overrides).save(data)
        if not all(os.path.exists(p) for p in parts.values()):
            os.makedirs(split_dir, exist_ok=True)
            full = ArrowDataset(data)
            fractions = [1 - 2 * args.val_fraction, args.val_fraction, args.val_fraction]
            part_of = longtail.iterative_stratification(full.labels, fractions,
                                                        seed=args.split_seed)
            for k, (name, path) in enumerate(parts.items()):
                rows = np.flatnonzero(part_of == k)
                if not os.path.exists(path):
                    write_dataset(path, full.features[rows], full.labels.take(rows))
    if dist.is_available() and dist.is_initialized():
        dist.barrier()
    return parts


def make_sampler(recipe: Recipe, train: ArrowDataset, args: argparse.Namespace) -> dict[str, Any]:
    """DataLoader arguments (sampler or batch_sampler) for the recipe."""
    params = dict(recipe.sampler_params)
    labels, n, seed = train.labels, len(train), args.seed
    if recipe.sampler == "shuffle":
        weights = np.ones(n)
        return {"sampler": longtail.WeightedSampler(weights, num_samples=n, replacement=False,
                                                    seed=seed), "batch_size": args.batch_size}
    if recipe.sampler == "repeat_factor":
        return {"sampler": longtail.RepeatFactorSampler(labels, seed=seed, **params),
                "batch_size": args.batch_size}
    if recipe.sampler == "class_aware":
        return {"sampler": longtail.ClassAwareSampler(labels, num_samples=n, seed=seed, **params),
                "batch_size": args.batch_size}
    if recipe.sampler == "replay":
        return {"batch_sampler": longtail.HardExampleSampler(n, args.batch_size, seed=seed,
                                                             **params)}
    if recipe.sampler == "stratified_batches":
        return {"batch_sampler": longtail.StratifiedBatchSampler(labels, args.batch_size,
                                                                 seed=seed, **params)}
    raise ValueError(f"unknown sampler {recipe.sampler!r}")


class TimedIterator:
    """Wraps a sampler's iterator and adds up the time spent producing indices."""

    def __init__(self, inner: Iterator, clock: list[float], digest: Any) -> None:
        self.inner, self.clock, self.digest = inner, clock, digest

    def __iter__(self) -> "TimedIterator":
        return self

    def __next__(self) -> Any:
        t0 = time.perf_counter()
        try:
            item = next(self.inner)
        finally:
            self.clock[0] += time.perf_counter() - t0
        self.digest.update(np.asarray(item, dtype=np.int64).tobytes())
        return item


class TimedSampler:
    """Delegates to a sampler (or batch sampler), timing its iteration."""

    def __init__(self, sampler: Any) -> None:
        self.sampler = sampler
        self.clock = [0.0]
        self.digest = hashlib.sha1()

    def __iter__(self) -> TimedIterator:
        self.digest = hashlib.sha1()
        t0 = time.perf_counter()
        it = iter(self.sampler)
        self.clock[0] += time.perf_counter() - t0
        return TimedIterator(it, self.clock, self.digest)

    def __len__(self) -> int:
        return len(self.sampler)


def evaluate(model: nn.Module, ds: ArrowDataset, args: argparse.Namespace, device: torch.device,
             ) -> tuple[np.ndarray, Any]:
    """Logits of every example of ``ds`` (gathered on rank 0 under DDP) and its labels."""
    world = dist.get_world_size() if dist.is_available() and dist.is_initialized() else 1
    rank = dist.get_rank() if world > 1 else 0
    mine = np.arange(rank, len(ds), world)
    loader = DataLoader(ds, batch_size=1024, sampler=mine.tolist(),
                        collate_fn=ArrowDataset.collate, num_workers=0)
    model.eval()
    out = []
    with torch.no_grad(), autocast(device, args.bf16):
        for x, _, _ in loader:
            out.append(model(x.to(device, non_blocking=True)).float().cpu())
    model.train()
    scores = torch.cat(out).numpy() if out else np.zeros((0, ds.n_labels), np.float32)
    if world > 1:
        gathered: list[Any] = [None] * world
        dist.all_gather_object(gathered, (mine, scores))
        full = np.empty((len(ds), ds.n_labels), np.float32)
        for idx, sc in gathered:
            full[idx] = sc
        scores = full
    return scores, ds.labels


def autocast(device: torch.device, bf16: str = "auto") -> Any:
    """bf16 autocast for the forward pass: on CUDA by default ("auto"), on CPU only when
    asked ("on"; slower on most CPUs, but it runs the GPU code path without a GPU)."""
    enabled = bf16 == "on" or (bf16 == "auto" and device.type == "cuda")
    return torch.autocast(device.type, dtype=torch.bfloat16, enabled=enabled)


def validation_metrics(recipe: Recipe, model: nn.Module, parts: dict[str, ArrowDataset],
                       pos_weight: torch.Tensor | None, args: argparse.Namespace,
                       device: torch.device) -> dict[str, Any]:
    val_scores, val_labels = evaluate(model, parts["val"], args, device)
    tune_scores, tune_labels = evaluate(model, parts["tune"], args, device)
    if not is_main():
        return {}
    shift = pos_weight.cpu().numpy() if (recipe.calibrate and pos_weight is not None) else None
    if shift is not None:
        val_scores = M.remove_pos_weight_shift(val_scores, shift)
        tune_scores = M.remove_pos_weight_shift(tune_scores, shift)
    train_counts = parts["train"].labels.label_counts()
    ap = M.average_precision(val_labels, val_scores, average=None)
    at_half = M.prediction_ratio(val_labels, M.apply_thresholds(val_scores, 0.0),
                                 bucket_counts=train_counts)
    thresholds = M.tune_thresholds(tune_labels, tune_scores, objective=args.threshold_objective)
    tuned = M.prediction_ratio(val_labels, M.apply_thresholds(val_scores, thresholds),
                               bucket_counts=train_counts)
    p_at_k = M.precision_at_k(val_labels, val_scores, k=[5])
    return {
        "ap_macro": float(np.mean(ap)),
        "ap_micro": float(M.average_precision(val_labels, val_scores, average="micro")),
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
    """Train one recipe; returns the history of validation metrics (rank 0)."""
    recipe = RECIPES[args.recipe]
    distributed = int(os.environ.get("WORLD_SIZE", "1")) > 1
    if distributed and not dist.is_initialized():
        dist.init_process_group("nccl" if torch.cuda.is_available() else "gloo")
    device = torch.device(args.device or ("cuda" if torch.cuda.is_available() else "cpu"))
    if device.type == "cuda" and distributed:
        device = torch.device("cuda", int(os.environ.get("LOCAL_RANK", 0)))
        torch.cuda.set_device(device)
    torch.manual_seed(args.seed)
    files = prepare_data(args)
    parts = {name: ArrowDataset(path) for name, path in files.items()}
    train_ds = parts["train"]
    counts = torch.from_numpy(train_ds.labels.label_counts().astype(np.float64))
    n_train = len(train_ds)
    prior = (counts / n_train).clamp(1e-6, 1 - 1e-6)
    pos_weight = None
    if recipe.pos_weight:
        pos_weight = ((n_train - counts) / counts.clamp(min=1)).float().to(device)

    model = MLP(train_ds.n_features, train_ds.n_labels, args.hidden, args.dropout)
    with torch.no_grad():
        model.head.bias.copy_(torch.logit(prior).float())
    model.to(device)
    if distributed:
        model = nn.parallel.DistributedDataParallel(model)
    optimizer = torch.optim.AdamW(model.parameters(), lr=args.lr, weight_decay=args.weight_decay)
    scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=args.epochs)

    loader_args = make_sampler(recipe, train_ds, args)
    sampler = loader_args.get("sampler") or loader_args.get("batch_sampler")
    timed = TimedSampler(sampler)
    key = "sampler" if "sampler" in loader_args else "batch_sampler"
    loader_args[key] = timed
    loader = DataLoader(train_ds, collate_fn=ArrowDataset.collate, num_workers=args.num_workers,
                        pin_memory=device.type == "cuda",
                        persistent_workers=False, **loader_args)
    world = dist.get_world_size() if distributed else 1
    steps_per_epoch = math.ceil(n_train / (args.batch_size * world))

    start_epoch, history = 0, []
    if args.resume and os.path.exists(args.resume):
        state = torch.load(args.resume, map_location="cpu", weights_only=False)
        (model.module if distributed else model).load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        scheduler.load_state_dict(state["scheduler"])
        sampler.load_state_dict(state["sampler"])
        start_epoch, history = state["epoch"], state["history"]
        torch.set_rng_state(state["torch_rng"])  # dropout continues as if never stopped
        log(f"resumed from {args.resume} at epoch {start_epoch}")

    stop = args.epochs if args.stop_after is None else min(args.epochs, start_epoch + args.stop_after)
    for epoch in range(start_epoch, stop):
        sampler.set_epoch(epoch)
        timed.clock[0] = 0.0
        t_epoch = time.perf_counter()
        running, seen = 0.0, 0
        progress = _progress(steps_per_epoch, f"{args.recipe} epoch {epoch + 1}/{args.epochs}")
        for step, batch in zip(range(steps_per_epoch), loader):
            x, y, index = batch[0], batch[1], batch[2]
            extras = batch[3] if len(batch) > 3 else {}
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
            if "weight" in extras:
                weighted = per_example * extras["weight"].to(device, per_example.dtype)
            else:
                weighted = per_example
            loss = weighted.mean()
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            if recipe.sampler == "replay":
                # the per-example priority loss, with the sampler's own loss_reduction:
                # loss work, done here so that the sampler's timer does not count it
                priority = L.per_example_loss(entries.detach(), y,
                                              reduction=sampler.loss_reduction)
                t0 = time.perf_counter()
                sampler.update(index, priority)
                timed.clock[0] += time.perf_counter() - t0
            running += float(loss.detach()) * len(index)
            seen += len(index)
            progress(1)
        progress(None)
        scheduler.step()
        epoch_s = time.perf_counter() - t_epoch
        metrics = validation_metrics(recipe, model.module if distributed else model, parts,
                                     pos_weight, args, device)
        if is_main():
            record = {"epoch": epoch + 1, "train_loss": running / max(seen, 1),
                      "epoch_s": epoch_s, "sampler_share": timed.clock[0] / epoch_s,
                      "sampler_digest": timed.digest.hexdigest(), **metrics}
            history.append(record)
            log(f"[{args.recipe}] epoch {epoch + 1}: loss {record['train_loss']:.4f}  "
                f"macro AP {record['ap_macro']:.4f}  micro AP {record['ap_micro']:.4f}  "
                f"P@5 {record['p_at_5']:.4f}  pred/true {record['ratio_at_0.5']:.2f} "
                f"(tuned {record['ratio_tuned']:.2f})  sampler {record['sampler_share']:.2%}")
        if args.checkpoint and is_main():
            state = {"model": (model.module if distributed else model).state_dict(),
                     "optimizer": optimizer.state_dict(), "scheduler": scheduler.state_dict(),
                     "sampler": sampler.state_dict(), "epoch": epoch + 1, "history": history,
                     "recipe": args.recipe, "torch_rng": torch.get_rng_state()}
            tmp = args.checkpoint + ".tmp"
            torch.save(state, tmp)
            os.replace(tmp, args.checkpoint)
    if distributed:
        dist.barrier()
    return {"recipe": args.recipe, "history": history,
            "label_counts": train_ds.labels.label_counts().tolist()}


def _progress(total: int, desc: str) -> Any:
    from tqdm import tqdm

    bar = tqdm(total=total, desc=desc, leave=False, disable=None if is_main() else True,
               file=sys.stderr)

    def step(k: int | None) -> None:
        if k is None:
            bar.close()
        else:
            bar.update(k)

    return step


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        description="Train an MLP on a long-tailed multilabel Arrow dataset with one recipe.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--recipe", default="asl", choices=sorted(RECIPES),
                   help="loss + sampler + calibration bundle (see RECIPES in this file)")
    p.add_argument("--data", default=None,
                   help="ArrowDataset IPC file; default: generate --preset into --workdir")
    p.add_argument("--preset", default="small", help="make_long_tail preset when --data is unset")
    p.add_argument("--n-examples", type=int, default=None,
                   help="override the preset's number of examples (generated data only)")
    p.add_argument("--data-seed", type=int, default=0, help="seed of the generated data")
    p.add_argument("--split-seed", type=int, default=0, help="seed of the stratified split")
    p.add_argument("--val-fraction", type=float, default=0.15,
                   help="fraction for validation and again for threshold tuning")
    p.add_argument("--workdir", default="runs", help="where data, splits and outputs go")
    p.add_argument("--epochs", type=int, default=8, help="training epochs")
    p.add_argument("--batch-size", type=int, default=256, help="examples per step (per rank)")
    p.add_argument("--lr", type=float, default=2e-3, help="AdamW peak learning rate")
    p.add_argument("--weight-decay", type=float, default=1e-4, help="AdamW weight decay")
    p.add_argument("--hidden", type=int, default=512, help="MLP hidden width")
    p.add_argument("--dropout", type=float, default=0.1, help="dropout after each hidden layer")
    p.add_argument("--seed", type=int, default=0, help="model and sampler seed")
    p.add_argument("--num-workers", type=int, default=0, help="DataLoader worker processes")
    p.add_argument("--device", default=None, help="cpu or cuda (default: cuda if available)")
    p.add_argument("--bf16", default="auto", choices=["auto", "on", "off"],
                   help="bf16 autocast of the forward pass (auto: on CUDA only); the loss "
                        "is computed in float32 either way")
    p.add_argument("--threshold-objective", default="match_count", choices=["f1", "match_count"],
                   help="per-label threshold tuning objective on the tune part")
    p.add_argument("--checkpoint", default=None, help="save a checkpoint here after each epoch")
    p.add_argument("--resume", default=None, help="resume from this checkpoint if it exists")
    p.add_argument("--stop-after", type=int, default=None,
                   help="train at most this many epochs in this run (e.g. a job time limit); "
                        "the schedule still spans --epochs, continue with --resume")
    p.add_argument("--output", default=None, help="write the metric history as JSON here")
    return p


def main(argv: list[str] | None = None) -> dict[str, Any]:
    args = build_parser().parse_args(argv)
    torch.set_num_threads(max(1, torch.get_num_threads()))
    result = train(args)
    if args.output and is_main():
        with open(args.output + ".tmp", "w") as f:
            json.dump(_jsonable(result), f, indent=1)
        os.replace(args.output + ".tmp", args.output)
    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()
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


if __name__ == "__main__":
    main()
