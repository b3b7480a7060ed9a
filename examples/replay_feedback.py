#!/usr/bin/env python
"""Hard-example replay: every example's loss goes back to the sampler that drew it.

``HardExampleSampler`` draws part of each batch by priority (the examples' last reported
losses) and the rest uniformly. Each batch carries what was drawn with it in ``extras``:
``extras["weight"]``, the importance weight of every draw (it undoes the over-sampling of
hard examples). After the step, ``sampler.update(idx, losses)`` reports the losses; they
set the priorities of the next draws.

  python examples/replay_feedback.py [--epochs 8] [--hard-fraction 0.5]

Data, model and evaluation are those of train.py (the plain loop).
"""
import argparse

import numpy as np
import torch
from torch.utils.data import DataLoader

import longtail
from longtail import metrics as M
from longtail.datasets import ArrowDataset
from longtail.losses import asymmetric_loss, per_example_loss
from train import MLP, predict, prepare_data


def main(argv: list[str] | None = None) -> dict[str, float]:
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--preset", default="small", help="make_long_tail preset")
    p.add_argument("--n-examples", type=int, help="override the preset's size")
    p.add_argument("--workdir", default="runs", help="the data splits are written here")
    p.add_argument("--epochs", type=int, default=8)
    p.add_argument("--batch-size", type=int, default=256)
    p.add_argument("--hard-fraction", type=float, default=0.5, help="share drawn by loss")
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args(argv)

    torch.manual_seed(args.seed)
    paths = prepare_data(args.workdir, args.preset, args.n_examples)
    train, val = ArrowDataset(paths["train"]), ArrowDataset(paths["val"])
    prior = torch.from_numpy(train.labels.label_counts() / len(train))
    model = MLP(train.n_features, train.n_labels, prior=prior)
    optimizer = torch.optim.AdamW(model.parameters(), lr=2e-3, weight_decay=1e-4)
    scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=args.epochs)
    # "balanced": an example's priority is the mean loss over its positive labels and the
    # mean over its negatives, weighed equally (the plain mean is all easy negatives)
    sampler = longtail.HardExampleSampler(len(train), args.batch_size, seed=args.seed,
                                          hard_fraction=args.hard_fraction,
                                          loss_reduction="balanced")
    loader = DataLoader(train, batch_sampler=sampler, collate_fn=ArrowDataset.collate)

    for epoch in range(args.epochs):
        sampler.set_epoch(epoch)
        for x, y, idx, extras in loader:
            losses = asymmetric_loss(model(x), y, reduction="none")  # [B, C]
            per_example = per_example_loss(losses, y)                # [B], mean over labels
            loss = (extras["weight"] * per_example).mean()           # importance-weighted
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            sampler.update(idx, losses.detach(), targets=y)          # the feedback
        scheduler.step()
        ap = float(M.average_precision(val.labels, predict(model, val, torch.device("cpu"))))
        probs = np.sort(sampler.probabilities())
        top = probs[-max(1, len(probs) // 10):].sum()  # draw share of the top-priority 10%
        print(f"epoch {epoch + 1}/{args.epochs}: val macro AUPRC {ap:.4f}; the 10% "
              f"highest-priority examples get {top:.0%} of the next draws", flush=True)
    return {"ap_macro": ap, "top_share": float(top)}


if __name__ == "__main__":
    main()
