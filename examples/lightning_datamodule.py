#!/usr/bin/env python
"""Lightning: a LightningDataModule whose training batches come from a longtail sampler.

  python examples/lightning_datamodule.py [--sampler replay] [--devices 2] [--epochs 3]

**The switch: ``Trainer(use_distributed_sampler=False)``** (Lightning >= 2.0; before 2.0
it was ``Trainer(replace_sampler_ddp=False)``). Without it, under DDP (``devices > 1``)
Lightning rebuilds every DataLoader: a sampler is wrapped in a
``DistributedSamplerWrapper`` (each rank keeps every R-th index of what our sampler
yields, on top of the sharding our sampler already does, and our ``set_epoch`` and
``state_dict`` are no longer reached), and a batch sampler is re-created by calling its
class with a ``DistributedSampler`` in place of its first argument
(``StratifiedBatchSampler`` then fails with "row 0 is not a sequence of label ids"). The
balancing, the sharding and the resume are lost. :meth:`LongtailDataModule.setup` and
:class:`SamplerEpoch` refuse to train without the switch under DDP. longtail samplers shard themselves:
:class:`LongtailDataModule` builds them in ``setup`` with
``num_replicas=trainer.world_size, rank=trainer.global_rank``. The switch applies to
every loader of the Trainer, so the validation loader is not sharded either: each rank
scores the whole validation set (the same macro AP on every rank).

**Epochs: the :class:`SamplerEpoch` callback.** Lightning calls ``set_epoch`` on
``loader.sampler`` and on ``loader.batch_sampler.sampler``, never on
``loader.batch_sampler`` itself: a longtail batch sampler (``StratifiedBatchSampler``,
``HardExampleSampler``, ``ClassAwareSampler(batch_size=...)``) would replay epoch 0's
order every epoch. The callback calls ``sampler.set_epoch(trainer.current_epoch)`` in
``on_train_epoch_start`` (before the epoch's ``iter(loader)``), for every kind of sampler,
and fails loudly if the loader no longer uses our sampler (the switch was forgotten). It
is cleaner than ``set_epoch`` in ``train_dataloader`` with
``Trainer(reload_dataloaders_every_n_epochs=1)``: that rebuilds the DataLoader (and
restarts its workers) every epoch, and ties the epochs' order to a Trainer flag whose
absence goes unnoticed. ``setup`` refuses a Trainer without the callback.

**Resume.** Lightning stores :meth:`LongtailDataModule.state_dict` in every checkpoint
(under the class name) and hands it back to :meth:`LongtailDataModule.load_state_dict`
on ``trainer.fit(..., ckpt_path=...)``, after ``setup``: the sampler continues where the
checkpoint was taken. The position saved is the batches *trained*, counted in
``on_before_batch_transfer``, not the batches the DataLoader drew from the sampler (its
workers run ``num_workers * prefetch_factor`` batches ahead), so a mid-epoch checkpoint
resumes at the first batch not trained. (Lightning then warns that "your dataloader is
not resumable": the sampler is, the warning does not apply.) NumPy arrays of a state
travel as tensors, so the checkpoint loads with ``torch.load(weights_only=True)``
(Lightning's default under torch >= 2.6, which refuses NumPy arrays).
``HardExampleSampler`` is exact at epoch ends, and mid-epoch without workers; with
workers, a mid-epoch resume continues after the batches already drawn (its random stream
is its step count, which the draws ahead advanced): those batches are skipped.

**Replay feedback.** With ``sampler="replay"``, :meth:`LongtailModule.training_step` hands
the element-wise losses to ``HardExampleSampler.update(index, entries.detach(),
targets=y)``; under DDP ``update`` all-gathers every rank's losses through the process
group Lightning initialised (gloo on CPU), so every rank keeps the same priorities.
"""
from __future__ import annotations

import argparse
import os
import warnings
from typing import Any

import lightning as L
import numpy as np
import torch
from torch import nn
from torch.utils.data import DataLoader

import longtail
from longtail.datasets import ArrowDataset, MultilabelDataset
from longtail.losses import bce_with_logits
from longtail.metrics import average_precision

#: the samplers this DataModule builds (see LongtailDataModule.build_sampler)
SAMPLERS = ("shuffle", "class_aware", "stratified", "replay")


def _tensors(state: dict[str, Any]) -> dict[str, Any]:
    """A sampler state with its NumPy arrays as tensors (``weights_only`` checkpoints)."""
    return {k: torch.from_numpy(np.array(v)) if isinstance(v, np.ndarray) else v
            for k, v in state.items()}


def _arrays(state: dict[str, Any]) -> dict[str, Any]:
    """The inverse of :func:`_tensors`."""
    return {k: v.numpy() if isinstance(v, torch.Tensor) else v for k, v in state.items()}


class LongtailDataModule(L.LightningDataModule):
    """Training batches drawn by a longtail sampler, sharded across DDP ranks, resumable.

    Parameters
    ----------
    train, val : ArrowDataset, MultilabelDataset or path of an ArrowDataset file
        Datasets with ``labels`` (a LabelMatrix) and batches ``(x, y, index, extras)``;
        ``val`` is optional.
    sampler : {"shuffle", "class_aware", "stratified", "replay"}
        ``"shuffle"``: ``WeightedSampler`` with equal weights, without replacement (every
        example once per epoch); ``"class_aware"``: ``ClassAwareSampler``;
        ``"stratified"``: ``StratifiedBatchSampler`` (a batch sampler); ``"replay"``:
        ``HardExampleSampler`` (a batch sampler fed by the training losses).
    batch_size : int
        Examples per batch on each rank.
    seed : int
        The sampler's seed.
    hard_fraction : float
        Share of each ``"replay"`` batch drawn by loss.
    num_workers : int
        DataLoader worker processes.

    Notes
    -----
    Needs ``Trainer(use_distributed_sampler=False, callbacks=[SamplerEpoch()])``: see the
    module docstring.
    """

    def __init__(self, train: Any, val: Any = None, *, sampler: str = "shuffle",
                 batch_size: int = 64, seed: int = 0, hard_fraction: float = 0.5,
                 num_workers: int = 0) -> None:
        super().__init__()
        if sampler not in SAMPLERS:
            raise ValueError(f"sampler must be one of {SAMPLERS}, got {sampler!r}")
        self.train_set = self._dataset(train, "train")
        self.val_set = None if val is None else self._dataset(val, "val")
        self.sampler_kind = sampler
        # checked where they are used (the samplers, the DataLoader): no silent coercion
        self.batch_size = batch_size
        self.seed = seed
        self.hard_fraction = hard_fraction
        self.num_workers = num_workers
        self.sampler: Any = None
        self._pending: dict[str, Any] | None = None  # a state loaded before setup
        self._trained_epoch, self._trained = -1, 0   # batches trained in that epoch

    @staticmethod
    def _dataset(ds: Any, name: str) -> Any:
        if isinstance(ds, (str, os.PathLike)):
            return ArrowDataset(ds)
        if not isinstance(ds, (ArrowDataset, MultilabelDataset)):
            raise TypeError(f"{name} must be an ArrowDataset, a MultilabelDataset or the "
                            f"path of an ArrowDataset file, got {type(ds).__name__}")
        return ds

    @property
    def is_batch_sampler(self) -> bool:
        """Whether the sampler yields whole batches (``DataLoader(batch_sampler=...)``)."""
        return self.sampler_kind in ("stratified", "replay")

    @property
    def replay(self) -> longtail.HardExampleSampler | None:
        """The sampler when it wants loss feedback (``"replay"``), else None."""
        return self.sampler if isinstance(self.sampler, longtail.HardExampleSampler) else None

    def build_sampler(self, num_replicas: int, rank: int) -> Any:
        """A fresh sampler of this module's kind for the layout ``(num_replicas, rank)``."""
        labels = self.train_set.labels
        layout = dict(seed=self.seed, num_replicas=num_replicas, rank=rank)
        if self.sampler_kind == "shuffle":
            return longtail.WeightedSampler(np.ones(len(labels)), replacement=False, **layout)
        if self.sampler_kind == "class_aware":
            return longtail.ClassAwareSampler(labels, **layout)
        if self.sampler_kind == "stratified":
            return longtail.StratifiedBatchSampler(labels, self.batch_size, **layout)
        # "balanced": an example's priority weighs its positives as much as its negatives
        return longtail.HardExampleSampler(len(labels), self.batch_size,
                                           hard_fraction=self.hard_fraction,
                                           loss_reduction="balanced", **layout)

    # -- Lightning hooks ---------------------------------------------------------------
    def setup(self, stage: str) -> None:
        if stage != "fit":
            return
        trainer = self.trainer
        if not any(isinstance(c, SamplerEpoch) for c in trainer.callbacks):
            raise ValueError(
                "LongtailDataModule needs Trainer(callbacks=[SamplerEpoch()], "
                "use_distributed_sampler=False): Lightning never calls set_epoch on a batch "
                "sampler, and replaces samplers under DDP")
        # Lightning keeps the flag privately: read it when it is there (SamplerEpoch checks
        # the loader itself in any case)
        replaces = getattr(getattr(trainer, "_accelerator_connector", None),
                           "use_distributed_sampler", None)
        if replaces and trainer.world_size > 1:
            raise ValueError(
                "LongtailDataModule under DDP needs Trainer(use_distributed_sampler=False): "
                "otherwise Lightning replaces the longtail sampler (which shards itself) with "
                "a DistributedSampler")
        # the sampler shards itself: rank r of world_size gets its own part of each epoch
        self.sampler = self.build_sampler(trainer.world_size, trainer.global_rank)
        self._trained_epoch, self._trained = -1, 0
        if self._pending is not None:
            state, self._pending = self._pending, None
            self._load(state)

    def train_dataloader(self) -> DataLoader:
        collate = type(self.train_set).collate
        if self.is_batch_sampler:
            return DataLoader(self.train_set, batch_sampler=self.sampler, collate_fn=collate,
                              num_workers=self.num_workers)
        return DataLoader(self.train_set, batch_size=self.batch_size, sampler=self.sampler,
                          collate_fn=collate, num_workers=self.num_workers)

    def val_dataloader(self) -> DataLoader | list:
        if self.val_set is None:
            return []   # no validation
        return DataLoader(self.val_set, batch_size=1024, collate_fn=type(self.val_set).collate,
                          num_workers=self.num_workers)

    def on_before_batch_transfer(self, batch: Any, dataloader_idx: int) -> Any:
        # called for the batch about to be trained (not for the one fetched ahead)
        if self.trainer is not None and self.trainer.training and self.sampler is not None:
            if self._trained_epoch != self.sampler.epoch:
                self._trained_epoch, self._trained = self.sampler.epoch, 0
            self._trained += 1
        return batch

    def state_dict(self) -> dict[str, Any]:
        """The sampler's state at the batches trained so far (stored in checkpoints)."""
        if self.sampler is None:
            return {}
        state = self.sampler.state_dict()
        if self.replay is None:   # an epoch sampler: rewind to what was trained
            trained = self._trained if self._trained_epoch == self.sampler.epoch else 0
            per_batch = 1 if self.is_batch_sampler else self.batch_size
            state["yielded"] = min(trained * per_batch, state["yielded"])
        return {"sampler": _tensors(state)}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        """Continue the sampler of a checkpoint (now, or in ``setup`` if not built yet)."""
        if "sampler" not in state_dict:
            raise ValueError("not a LongtailDataModule state: it has no 'sampler'")
        state = _arrays(state_dict["sampler"])
        if self.sampler is None:
            self._pending = state
        else:
            self._load(state)

    def _load(self, state: dict[str, Any]) -> None:
        self.sampler.load_state_dict(state)   # checks the state fits this sampler
        per_batch = 1 if self.is_batch_sampler else self.batch_size
        self._trained_epoch = self.sampler.epoch
        self._trained = -(-int(state["yielded"]) // per_batch)


class SamplerEpoch(L.Callback):
    """Call ``set_epoch(trainer.current_epoch)`` on the DataModule's sampler as each training
    epoch starts, after checking that the training DataLoader still uses it."""

    def on_train_epoch_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        dm = trainer.datamodule
        sampler = dm.sampler if isinstance(dm, LongtailDataModule) else None
        if sampler is None:
            raise RuntimeError("SamplerEpoch needs trainer.fit(..., datamodule=dm) with a "
                               "LongtailDataModule")
        where = "batch_sampler" if dm.is_batch_sampler else "sampler"
        used = getattr(trainer.train_dataloader, where, None)
        if used is not sampler:
            raise RuntimeError(
                f"the training DataLoader's {where} is a {type(used).__name__}, not the "
                f"DataModule's {type(sampler).__name__}: Lightning replaced it; pass "
                "Trainer(use_distributed_sampler=False)")
        sampler.set_epoch(trainer.current_epoch)


class LongtailModule(L.LightningModule):
    """A two-layer MLP trained with BCE; the output bias starts at the labels' log-odds.

    Parameters
    ----------
    n_features, n_labels : int
    prior : tensor of float, shape (n_labels,)
        Training prevalence of each label (``labels.prevalence()``).
    hidden : int
    lr : float
    """

    def __init__(self, n_features: int, n_labels: int, prior: torch.Tensor, *,
                 hidden: int = 64, lr: float = 2e-3) -> None:
        super().__init__()
        self.body = nn.Sequential(nn.Linear(n_features, hidden), nn.LayerNorm(hidden),
                                  nn.GELU())
        self.head = nn.Linear(hidden, n_labels)
        with torch.no_grad():   # start at the prior: no early flood of positives
            self.head.bias.copy_(torch.logit(torch.as_tensor(prior).clamp(1e-6, 1 - 1e-6)))
        self.lr = lr
        self._scores: list[torch.Tensor] = []
        self._targets: list[torch.Tensor] = []

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.body(x))

    def training_step(self, batch: Any, batch_idx: int) -> torch.Tensor:
        x, y, index, extras = batch
        entries = bce_with_logits(self(x), y, reduction="none")   # [B, C]
        per_example = entries.mean(dim=1)
        if "weight" in extras:   # replay: importance weights undo the over-sampling
            per_example = extras["weight"] * per_example
        replay = getattr(self.trainer.datamodule, "replay", None)
        if replay is not None:   # the feedback: these losses set the next priorities
            replay.update(index, entries.detach(), targets=y)
        loss = per_example.mean()
        self.log("train_loss", loss, prog_bar=True)
        return loss

    def on_validation_epoch_start(self) -> None:
        self._scores, self._targets = [], []

    def validation_step(self, batch: Any, batch_idx: int) -> None:
        x, y, _, _ = batch
        self._scores.append(self(x).detach())
        self._targets.append(y)

    def on_validation_epoch_end(self) -> None:
        if self.trainer.sanity_checking or not self._scores:
            return
        with warnings.catch_warnings():   # labels without validation positives: AP 0
            warnings.simplefilter("ignore", UserWarning)
            ap = average_precision(torch.cat(self._targets), torch.cat(self._scores))
        # every rank scored the whole validation set: the same value everywhere
        self.log("val_ap_macro", float(ap), prog_bar=True, sync_dist=True)

    def configure_optimizers(self) -> torch.optim.Optimizer:
        return torch.optim.AdamW(self.parameters(), lr=self.lr, weight_decay=1e-4)


def main(argv: list[str] | None = None) -> dict[str, float]:
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--sampler", choices=SAMPLERS, default="stratified")
    p.add_argument("--n-examples", type=int, default=4000)
    p.add_argument("--epochs", type=int, default=3)
    p.add_argument("--batch-size", type=int, default=128)
    p.add_argument("--hidden", type=int, default=128)
    p.add_argument("--devices", type=int, default=1, help="CPU processes (DDP over gloo)")
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args(argv)

    L.seed_everything(args.seed, verbose=False)
    data = longtail.make_long_tail("small", seed=args.seed, n_examples=args.n_examples)
    parts = longtail.stratified_split(data.labels, {"train": 0.8, "val": 0.2}, seed=args.seed)
    train, val = (MultilabelDataset(data.features[parts[k]], data.labels.take(parts[k]))
                  for k in ("train", "val"))
    dm = LongtailDataModule(train, val, sampler=args.sampler, batch_size=args.batch_size,
                            seed=args.seed)
    model = LongtailModule(train.n_features, train.n_labels,
                           torch.from_numpy(train.labels.prevalence()), hidden=args.hidden)
    trainer = L.Trainer(
        accelerator="cpu", devices=args.devices, max_epochs=args.epochs,
        strategy="ddp_spawn" if args.devices > 1 else "auto",
        use_distributed_sampler=False,   # THE SWITCH: keep our (self-sharding) sampler
        callbacks=[SamplerEpoch()],      # set_epoch every epoch, batch samplers included
        logger=False, enable_checkpointing=False, enable_model_summary=False)
    trainer.fit(model, datamodule=dm)
    ap = float(trainer.callback_metrics["val_ap_macro"])
    print(f"sampler {args.sampler}: val macro AUPRC {ap:.4f} after {args.epochs} epochs")
    return {"ap_macro": ap}


if __name__ == "__main__":
    main()
