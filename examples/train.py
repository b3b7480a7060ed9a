#!/usr/bin/env python
"""Train a multilabel MLP on long-tailed data with longtail: the plain loop to copy.

One sampler (StratifiedBatchSampler), one loss (asymmetric loss), AdamW with a cosine
schedule; a checkpoint (model, optimizer, scheduler, sampler, epoch) every epoch; at the
end, per-label thresholds tuned on the validation split and judged on the test split.

  python examples/train.py                               # generated `small` data, CPU
  python examples/train.py --data mine.arrow --device cuda --epochs 30
  python examples/train.py --checkpoint run.pt --resume  # continue an interrupted run
  torchrun --nproc_per_node 2 examples/train.py          # DDP (gloo on CPU, nccl on GPU)

Loss feedback to a replay sampler: replay_feedback.py; recipes compared: compare_recipes.py.
"""
import argparse
import os

import numpy as np
import torch
import torch.distributed as dist
from torch import nn
from torch.utils.data import DataLoader

import longtail
from longtail import metrics as M
from longtail.datasets import ArrowDataset, make_long_tail, write_dataset
from longtail.losses import asymmetric_loss


def is_main() -> bool:
    return not dist.is_initialized() or dist.get_rank() == 0


def prepare_data(workdir: str, preset: str = "small", n_examples: int | None = None,
                 data: str | None = None, seed: int = 0) -> dict[str, str]:
    """Split ``data`` (default: generate ``preset``) 70/15/15 into train / val / test by
    iterative stratification; each part is written once, as its own ArrowDataset file."""
    name = (os.path.basename(data) if data else preset) + (f"-n{n_examples}" if n_examples else "")
    folder = os.path.join(workdir, f"{name}-seed{seed}")
    paths = {part: os.path.join(folder, f"{part}.arrow") for part in ("train", "val", "test")}
    if is_main() and not all(os.path.exists(p) for p in paths.values()):
        size = {"n_examples": n_examples} if n_examples else {}
        source = ArrowDataset(data) if data else make_long_tail(preset, seed=seed, **size)
        part_of = longtail.iterative_stratification(source.labels, [0.7, 0.15, 0.15], seed=seed)
        os.makedirs(folder, exist_ok=True)
        for k, path in enumerate(paths.values()):
            rows = np.flatnonzero(part_of == k)
            write_dataset(path, source.features[rows], source.labels.take(rows), overwrite=True)
    if dist.is_initialized():  # the other ranks wait for rank 0's files
        dist.barrier()
    return paths


class MLP(nn.Module):
    """Two hidden layers; the output bias starts at the log-odds of the label prevalences."""

    def __init__(self, n_features: int, n_labels: int, hidden: int = 512, dropout: float = 0.1,
                 prior: torch.Tensor | None = None) -> None:
        super().__init__()
        self.body = nn.Sequential(
            nn.Linear(n_features, hidden), nn.LayerNorm(hidden), nn.GELU(), nn.Dropout(dropout),
            nn.Linear(hidden, hidden), nn.LayerNorm(hidden), nn.GELU(), nn.Dropout(dropout))
        self.head = nn.Linear(hidden, n_labels)
        if prior is not None:
            with torch.no_grad():
                self.head.bias.copy_(torch.logit(prior.clamp(1e-6, 1 - 1e-6)).float())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.body(x))


@torch.no_grad()
def predict(model: nn.Module, ds: ArrowDataset, device: torch.device) -> torch.Tensor:
    """Logits for every example of ``ds``, in order, left on ``device`` (AP runs there)."""
    model.eval()
    loader = DataLoader(ds, batch_size=1024, collate_fn=ArrowDataset.collate)
    scores = torch.cat([model(x.to(device)).float() for x, _, _, _ in loader])
    model.train()
    return scores


def main(argv: list[str] | None = None) -> dict[str, float]:
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data", help="an ArrowDataset file (default: generate --preset)")
    p.add_argument("--preset", default="small", help="make_long_tail preset")
    p.add_argument("--n-examples", type=int, help="override the preset's size")
    p.add_argument("--workdir", default="runs", help="the data splits are written here")
    p.add_argument("--epochs", type=int, default=8)
    p.add_argument("--batch-size", type=int, default=256, help="per process")
    p.add_argument("--lr", type=float, default=2e-3)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--device", default="cpu", help="cpu or cuda")
    p.add_argument("--labels", choices=("auto", "dense", "sparse"), default="auto",
                   help="how a batch's labels travel to the device: sparse = CSR label ids, "
                        "expanded to multi-hot on the device (1/60 of the bytes at ~130 "
                        "labels of 7,900); auto = sparse on CUDA, dense on the CPU")
    p.add_argument("--checkpoint", help="write model, optimizer, sampler, epoch here each epoch")
    p.add_argument("--resume", action="store_true", help="continue from --checkpoint if present")
    p.add_argument("--stop-after", type=int, help="stop after this many epochs (job time limit)")
    args = p.parse_args(argv)

    device = torch.device(args.device)
    if device.type == "cuda":  # under torchrun: one process per GPU
        device = torch.device("cuda", int(os.environ.get("LOCAL_RANK", 0)))
        torch.cuda.set_device(device)
    if "WORLD_SIZE" in os.environ:  # launched by torchrun
        dist.init_process_group("nccl" if device.type == "cuda" else "gloo")
    torch.manual_seed(args.seed)
    paths = prepare_data(args.workdir, args.preset, args.n_examples, args.data)
    labels = args.labels if args.labels != "auto" else (
        "sparse" if device.type == "cuda" else "dense")
    train = ArrowDataset(paths["train"], label_format=labels)
    val, test = (ArrowDataset(paths[part]) for part in ("val", "test"))

    prior = torch.from_numpy(train.labels.label_counts() / len(train))
    model = MLP(train.n_features, train.n_labels, prior=prior).to(device)
    optimizer = torch.optim.AdamW(model.parameters(), lr=args.lr, weight_decay=1e-4)
    scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=args.epochs)
    # under torchrun the sampler shards its batches across the ranks by itself
    sampler = longtail.StratifiedBatchSampler(train.labels, args.batch_size, seed=args.seed)
    loader = DataLoader(train, batch_sampler=sampler, collate_fn=ArrowDataset.collate,
                        pin_memory=device.type == "cuda")
    stateful = {"model": model, "optimizer": optimizer, "scheduler": scheduler, "sampler": sampler}
    start = 0
    if args.resume and args.checkpoint and os.path.exists(args.checkpoint):
        state = torch.load(args.checkpoint, map_location="cpu")
        for name, part in stateful.items():
            part.load_state_dict(state[name])
        start = state["epoch"]
    ddp = nn.parallel.DistributedDataParallel(model) if dist.is_initialized() else model

    stop = min(args.epochs, start + (args.stop_after or args.epochs))
    for epoch in range(start, stop):
        sampler.set_epoch(epoch)
        torch.manual_seed(args.seed * 100_000 + epoch)  # dropout too: resumable by epoch
        total = 0.0
        for x, y, idx, extras in loader:  # extras: values drawn with the batch (none here)
            x = x.to(device, non_blocking=True)
            y = y.to(device, non_blocking=True)
            if isinstance(y, longtail.SparseLabels):  # CSR ids -> multi-hot, on the device
                y = y.dense()
            with torch.autocast(device.type, torch.bfloat16, enabled=device.type == "cuda"):
                logits = ddp(x)
            loss = asymmetric_loss(logits.float(), y)  # mean over examples and labels
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            total += loss.item()
        scheduler.step()
        if is_main():
            ap = M.average_precision(val.labels, predict(model, val, device))
            print(f"epoch {epoch + 1}/{args.epochs}: train loss {total / len(loader):.4f}  "
                  f"val macro AUPRC {ap:.4f}", flush=True)
        if is_main() and args.checkpoint:
            state = {name: part.state_dict() for name, part in stateful.items()}
            torch.save({**state, "epoch": epoch + 1}, args.checkpoint + ".tmp")
            os.replace(args.checkpoint + ".tmp", args.checkpoint)  # never half-written

    result: dict[str, float] = {}
    if is_main():  # per-label thresholds tuned on val, judged on test
        val_scores, test_scores = predict(model, val, device), predict(model, test, device)
        thresholds = M.tune_thresholds(val.labels, val_scores, objective="match_count")
        at_half = M.apply_thresholds(test_scores, 0.0)  # logit 0 = probability 0.5
        tuned = M.apply_thresholds(test_scores, thresholds)
        result = {"ap_macro": float(M.average_precision(test.labels, test_scores)),
                  "ratio_at_0.5": float(M.prediction_ratio(test.labels, at_half).overall),
                  "ratio_tuned": float(M.prediction_ratio(test.labels, tuned).overall)}
        print(f"test macro AUPRC {result['ap_macro']:.4f}; predicted / true label count "
              f"{result['ratio_at_0.5']:.2f} at p = 0.5, {result['ratio_tuned']:.2f} with "
              "the tuned thresholds", flush=True)
    if dist.is_initialized():
        dist.barrier()
        dist.destroy_process_group()
    return result


if __name__ == "__main__":
    main()
