#!/usr/bin/env python
"""Remedies for long-tailed multilabel training, measured fairly on real data.

Every recipe (a loss, a sampler, a training schedule or a post-hoc step, all from
``longtail``) trains the same model family on the same data with the same tuning budget:

* **Data.** The real sets of ``../shared/data/real/`` (delicious, bibtex, Reuters-21578
  ModApte; read in place, never copied; skipped with a message when absent) with their
  official train/test split, and the generated ``medium`` preset (70/30 train/test by
  iterative stratification) whose dense generator knows the Bayes-optimal ``P(y | x)``:
  its macro AP is printed as the **ceiling** next to every recipe. The official train
  part is split once more (``longtail.stratified_split``, seed 0) into *fit* (85%) and
  *tune* (15%). Everything that is chosen -- learning rate, the recipe's key parameter,
  the number of epochs, the decision thresholds -- is chosen on *tune*; the test part is
  only measured.
* **Model.** Sparse text features (bag of words, TF-IDF): an embedding bag (``sum`` of
  the word vectors weighted by the feature values) -> LayerNorm -> GELU -> dropout ->
  linear, what a user would train on sparse text; dense features: the 512-512 MLP of
  ``examples/train.py``. The output bias starts at the label log-odds (the prior), which
  is what makes plain BCE strong. AdamW, batch 256, constant learning rate.
* **Budget.** Each recipe trains the same number of configurations on the tune part:
  learning rate {1e-3, 3e-3} x its one key parameter (two values; dropout {0.1, 0.3}
  for a recipe without one; weight decay 1e-4). The best (configuration, epoch) by tune macro
  AP wins (epochs evaluated after each of up to ``--epochs``). The winner is retrained
  with seeds 1 and 2 (seed 0 is the tuning run) and measured on test: mean +- std of
  3 seeds. A sampler whose epoch is longer than ``ceil(n_fit / 256)`` batches is capped
  to that many, so every recipe takes the same number of steps.
* **Metrics (test).** Macro AP over the labels with a test positive, and by thirds of
  labels ordered by training frequency (head / medium / tail); micro AP; P@k and the
  propensity-scored PSP@k of extreme classification (Jain et al. 2016, propensities
  from the training counts with A=0.55, B=1.5); the predicted/true label count ratio
  with per-label thresholds tuned on *tune* (``match_count``).

Run (about an hour on a 2-core CPU; ``--quick`` in a few minutes):

    python benchmarks/bench_real.py                      # all sets, all recipes, 3 seeds
    python benchmarks/bench_real.py --quick              # 1 seed, 3 epochs, subsampled
    python benchmarks/bench_real.py --sets bibtex --recipes bce asl
"""
from __future__ import annotations

import argparse
import copy
import dataclasses
import json
import math
import os
import sys
import time
import warnings
from typing import Any, Callable

import numpy as np
import scipy.sparse as sp
import torch
from torch import nn
from torch.utils.data import BatchSampler

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import longtail  # noqa: E402
from _util import table  # noqa: E402
from longtail import losses as L  # noqa: E402
from longtail import metrics as M  # noqa: E402
from longtail.datasets import LabelMatrix  # noqa: E402

REAL_SETS = ("delicious", "bibtex", "reuters21578_modapte")
GENERATED = tuple(k for k, v in longtail.datasets.PRESETS.items() if v["kind"] == "dense")
ALL_SETS = (*REAL_SETS, "medium")
DEFAULT_DATA = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "shared",
                            "data", "real")
BATCH = 256


# ============================================================================ data
@dataclasses.dataclass
class DataSet:
    """One data set, already split into fit / tune / test (features + labels)."""

    name: str
    x: dict[str, Any]                 # part -> scipy CSR (sparse) or float32 array (dense)
    y: dict[str, sp.csr_matrix]       # part -> CSR 0/1 labels
    sparse: bool
    ceiling: np.ndarray | None = None  # oracle scores of the test part (generated data)

    @property
    def n_features(self) -> int:
        return self.x["fit"].shape[1]

    @property
    def n_labels(self) -> int:
        return self.y["fit"].shape[1]

    def describe(self) -> str:
        n = {k: v.shape[0] for k, v in self.y.items()}
        card = self.y["fit"].sum() / max(n["fit"], 1)
        return (f"{self.name}: fit {n['fit']:,} / tune {n['tune']:,} / test {n['test']:,} "
                f"examples, {self.n_features:,} {'sparse' if self.sparse else 'dense'} "
                f"features, {self.n_labels:,} labels, {card:.1f} labels per example")


def _split_tune(x: Any, y: sp.csr_matrix, fraction: float = 0.15) -> tuple[np.ndarray, np.ndarray]:
    parts = longtail.stratified_split(y, {"fit": 1 - fraction, "tune": fraction}, seed=0)
    return np.sort(parts["fit"]), np.sort(parts["tune"])


def _subsample(rows: np.ndarray, limit: int | None, seed: int) -> np.ndarray:
    if limit is None or len(rows) <= limit:
        return rows
    return np.sort(np.random.default_rng(seed).choice(rows, limit, replace=False))


def load_real(folder: str, name: str, limit: int | None = None) -> DataSet:
    """A real set from ``folder/name/`` (X.npz, Y.npz, split.npy), official split."""
    path = os.path.join(folder, name)
    x = sp.load_npz(os.path.join(path, "X.npz")).tocsr().astype(np.float32)
    y = sp.load_npz(os.path.join(path, "Y.npz")).tocsr().astype(np.int8)
    split = np.load(os.path.join(path, "split.npy"))
    if not (x.shape[0] == y.shape[0] == split.shape[0]):
        raise ValueError(f"{path}: X has {x.shape[0]} rows, Y {y.shape[0]}, split "
                         f"{split.shape[0]}")
    train = _subsample(np.flatnonzero(split == 0), limit, 0)
    test = _subsample(np.flatnonzero(split == 1), limit, 1)
    fit, tune = _split_tune(x[train], y[train])
    rows = {"fit": train[fit], "tune": train[tune], "test": test}
    # scale each feature by 1 / its standard deviation on the fit part: what standardising
    # does, without densifying (the centring is a constant the first layer's bias absorbs);
    # unscaled bag-of-words loses ~18% macro AP on bibtex with this model
    xf = x[rows["fit"]]
    mean = np.asarray(xf.mean(0)).ravel()
    std = np.sqrt(np.maximum(np.asarray(xf.multiply(xf).mean(0)).ravel() - mean ** 2, 0))
    x = (x @ sp.diags((1.0 / (std + 1e-6)).astype(np.float32))).tocsr().astype(np.float32)
    return DataSet(name, {k: x[v] for k, v in rows.items()}, {k: y[v] for k, v in rows.items()},
                   sparse=True)


def load_generated(preset: str = "medium", limit: int | None = None) -> DataSet:
    """The generated preset, 70/30 train/test by iterative stratification, with its
    oracle's test scores (the ceiling)."""
    over = {} if limit is None else {"n_examples": limit}
    data = longtail.make_long_tail(preset, seed=0, **over)
    y = sp.csr_matrix((np.ones(data.labels.nnz, np.int8), data.labels.indices,
                       data.labels.offsets), shape=(len(data.labels), data.labels.n_labels))
    parts = longtail.stratified_split(y, {"train": 0.7, "test": 0.3}, seed=0)
    train, test = np.sort(parts["train"]), np.sort(parts["test"])
    fit, tune = _split_tune(data.features[train], y[train])
    rows = {"fit": train[fit], "tune": train[tune], "test": test}
    oracle = getattr(data, "oracle", None)
    ceiling = None if oracle is None else oracle.logits(data.features[test])
    return DataSet(preset, {k: data.features[v] for k, v in rows.items()},
                   {k: y[v] for k, v in rows.items()}, sparse=False, ceiling=ceiling)


def inputs(ds: DataSet, part: str, rows: np.ndarray | None = None) -> tuple[torch.Tensor, ...]:
    """Model inputs for ``rows`` of a part: (ids, offsets, weights) or (dense,)."""
    x = ds.x[part] if rows is None else ds.x[part][rows]
    if ds.sparse:
        return (torch.from_numpy(x.indices.astype(np.int64)),
                torch.from_numpy(x.indptr[:-1].astype(np.int64)), torch.from_numpy(x.data))
    return (torch.from_numpy(np.ascontiguousarray(x)),)


# ============================================================================ model
class Net(nn.Module):
    """Sparse: embedding bag -> LayerNorm -> GELU -> dropout -> head. Dense: the MLP of
    ``examples/train.py`` (two such blocks of 512 with linear layers)."""

    def __init__(self, n_features: int, n_labels: int, sparse: bool, prior: torch.Tensor | None,
                 hidden: int = 512, dropout: float = 0.1) -> None:
        super().__init__()
        self.sparse = sparse
        self.embed = (nn.EmbeddingBag(n_features, hidden, mode="sum") if sparse
                      else nn.Linear(n_features, hidden))
        self.bias = nn.Parameter(torch.zeros(hidden)) if sparse else None  # bags have none
        if sparse:  # as nn.Linear would start (EmbeddingBag's N(0, 1) learns far slower)
            bound = 1 / math.sqrt(n_features)
            nn.init.uniform_(self.embed.weight, -bound, bound)
        block = [nn.LayerNorm(hidden), nn.GELU(), nn.Dropout(dropout)]
        # dense: the 512-512 MLP of examples/train.py; sparse: one layer over the bag
        deeper = [] if sparse else [nn.Linear(hidden, hidden), *copy.deepcopy(block)]
        self.body = nn.Sequential(*block, *deeper)
        self.head = nn.Linear(hidden, n_labels)
        with torch.no_grad():
            if prior is None:
                self.head.bias.zero_()
            else:
                self.head.bias.copy_(torch.logit(prior.clamp(1e-6, 1 - 1e-6)).float())

    def features(self, *x: torch.Tensor) -> torch.Tensor:
        h = (self.embed(x[0], x[1], per_sample_weights=x[2]) + self.bias if self.sparse
             else self.embed(x[0]))
        return self.body(h)

    def forward(self, *x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(*x))


@torch.no_grad()
def scores_of(model: nn.Module, ds: DataSet, part: str, chunk: int = 4096) -> np.ndarray:
    model.eval()
    n = ds.y[part].shape[0]
    out = [model(*inputs(ds, part, np.arange(i, min(n, i + chunk)))).float().numpy()
           for i in range(0, n, chunk)]
    model.train()
    return np.concatenate(out) if out else np.zeros((0, ds.n_labels), np.float32)


# ============================================================================ recipes
@dataclasses.dataclass(frozen=True)
class Recipe:
    """A remedy: its loss, sampler, training phases and the one parameter it tunes."""

    name: str
    loss: str = "bce"          # bce | posweight | focal | asl | cb-focal | db | la | hard-negatives
    sampler: str = "shuffle"   # shuffle | repeat_factor | class_aware | sqrt | replay | stratified
    key: str = "dropout"       # the tuned parameter (dropout when the recipe has none)
    values: tuple = (0.1, 0.3)
    fixed: tuple = ()          # other parameters, (name, value) pairs
    decoupled: str | None = None  # re-train the classifier on frozen features with this sampler
    posthoc: bool = False      # logit adjustment after training (no training of its own)
    prior_bias: bool = True    # output bias starts at the label log-odds (False: at 0)
    note: str = ""


RECIPES: dict[str, Recipe] = {r.name: r for r in [
    Recipe("bce", note="plain BCE, output bias at the label log-odds"),
    Recipe("bce-zero-bias", prior_bias=False, note="ablation: plain BCE with the output "
           "bias at 0, the baseline of most papers"),
    Recipe("asl-zero-bias", loss="asl", key="gamma_neg", values=(2.0, 4.0), prior_bias=False,
           note="ablation: ASL with the output bias at 0, as its paper trains it"),
    Recipe("bce-posweight", loss="posweight", note="BCE pos_weight = neg / pos (the users' "
           "starting point)"),
    Recipe("focal", loss="focal", key="gamma", values=(1.0, 2.0),
           note="sigmoid focal loss, alpha=None"),
    Recipe("asl", loss="asl", key="gamma_neg", values=(2.0, 4.0),
           note="asymmetric loss, gamma_pos 0, clip 0.05"),
    Recipe("cb-focal", loss="cb-focal", key="beta", values=(0.99, 0.999),
           note="focal (gamma 2) x class-balanced weights (Cui et al. 2019)"),
    Recipe("db+class-aware", loss="db", sampler="class_aware", key="neg_scale",
           values=(2.0, 5.0), note="distribution-balanced loss with class-aware sampling "
           "(Wu et al. 2020)"),
    Recipe("db", loss="db", key="neg_scale", values=(2.0, 5.0),
           note="distribution-balanced loss, uniform sampling (ablation)"),
    Recipe("la-loss", loss="la", key="tau", values=(0.5, 1.0),
           note="logit-adjusted BCE (Menon et al. 2021)"),
    Recipe("bce+la-posthoc", posthoc=True, key="tau", values=(0.5, 1.0),
           note="bce's models, logits - tau * logit(prior) at inference"),
    Recipe("bce+crt-class-aware", decoupled="class_aware", key="reinit", values=(False, True),
           note="decoupled (Kang et al. 2020): bce's body, classifier re-trained with "
           "class-aware draws"),
    Recipe("bce+crt-sqrt", decoupled="sqrt", key="reinit", values=(False, True),
           note="decoupled, classifier re-trained with square-root draws"),
    Recipe("bce+hard-negatives", loss="hard-negatives", key="negative_ratio",
           values=(5.0, 20.0), fixed=(("mode", "topk"),),
           note="per label: all positives + the hardest negatives of the batch"),
    Recipe("bce+sampled-negatives", loss="hard-negatives", key="negative_ratio",
           values=(5.0, 20.0), fixed=(("mode", "sample"),),
           note="per label: all positives + negatives drawn with probability by loss"),
    Recipe("bce+repeat-factor", sampler="repeat_factor", key="threshold", values=(0.01, 0.05)),
    Recipe("bce+class-aware", sampler="class_aware"),
    Recipe("bce+replay", sampler="replay", key="hard_fraction", values=(0.25, 0.5),
           note="HardExampleSampler fed the balanced per-example loss"),
    Recipe("bce+stratified-batches", sampler="stratified"),
]}
BASELINES = ("bce", "bce-posweight", "bce-zero-bias")  # not remedies
LRS = (1e-3, 3e-3)


@dataclasses.dataclass
class Stats:
    """Training statistics the losses and samplers need."""

    counts: np.ndarray        # positives per label in the fit part
    n: int
    labels: LabelMatrix       # fit labels
    y: torch.Tensor           # fit labels, dense float32 [n, C]

    @property
    def prior(self) -> torch.Tensor:
        return torch.from_numpy(np.clip(self.counts / self.n, 1e-6, 1 - 1e-6))


def make_loss(recipe: Recipe, params: dict[str, Any], stats: Stats
              ) -> Callable[[torch.Tensor, torch.Tensor], torch.Tensor]:
    """The recipe's loss per (example, label) entry, ``[B, C]`` (hard negatives: masked)."""
    counts = torch.from_numpy(stats.counts.astype(np.float64))
    if recipe.loss == "bce":
        return lambda z, y: L.bce_with_logits(z, y, reduction="none", validate=False)
    if recipe.loss == "posweight":
        pw = ((stats.n - counts) / counts.clamp(min=1)).float()
        return lambda z, y: L.bce_with_logits(z, y, pos_weight=pw, reduction="none",
                                              validate=False)
    if recipe.loss == "focal":
        return lambda z, y: L.sigmoid_focal_loss(z, y, alpha=None, gamma=params["gamma"],
                                                 reduction="none", validate=False)
    if recipe.loss == "asl":
        return lambda z, y: L.asymmetric_loss(z, y, gamma_neg=params["gamma_neg"],
                                              reduction="none", validate=False)
    if recipe.loss == "cb-focal":
        w = L.class_balanced_weights(counts, beta=params["beta"])
        return lambda z, y: L.sigmoid_focal_loss(z, y, alpha=None, gamma=2.0, weight=w,
                                                 reduction="none", validate=False)
    if recipe.loss == "db":
        db = L.DistributionBalancedLoss(counts, stats.n, neg_scale=params["neg_scale"],
                                        reduction="none", validate=False)
        return lambda z, y: db(z, y)
    if recipe.loss == "la":
        la = L.LogitAdjustedBCE(stats.prior, tau=params["tau"], reduction="none",
                                validate=False)
        return lambda z, y: la(z, y)
    if recipe.loss == "hard-negatives":
        gen = torch.Generator().manual_seed(params["seed"])
        return lambda z, y: L.hard_negative_loss(
            z, y, negative_ratio=params["negative_ratio"], mode=params["mode"],
            generator=gen, normalize="all", reduction="none", validate=False)
    raise ValueError(f"unknown loss {recipe.loss!r}")


def make_batches(kind: str, params: dict[str, Any], stats: Stats, seed: int) -> Any:
    """An epoch-aware iterable of index batches (``set_epoch`` + ``__iter__``)."""
    n, labels = stats.n, stats.labels
    if kind == "shuffle":
        s = longtail.WeightedSampler(np.ones(n), num_samples=n, replacement=False, seed=seed)
    elif kind == "repeat_factor":
        s = longtail.RepeatFactorSampler(labels, params["threshold"], seed=seed)
    elif kind == "class_aware":
        s = longtail.ClassAwareSampler(labels, num_samples=n, seed=seed)
    elif kind == "sqrt":
        # square-root sampling (Kang et al. 2020): label c drawn ~ sqrt(n_c), i.e. an
        # example weighs n_c ** -0.5 of its rarest label
        w = longtail.sample_weights(labels, "inverse_frequency", power=0.5, agg="max")
        s = longtail.WeightedSampler(w, num_samples=n, replacement=True, seed=seed)
    elif kind == "replay":
        return longtail.HardExampleSampler(n, BATCH, seed=seed,
                                           hard_fraction=params["hard_fraction"],
                                           loss_reduction="balanced")
    elif kind == "stratified":
        return longtail.StratifiedBatchSampler(labels, BATCH, seed=seed)
    else:
        raise ValueError(f"unknown sampler {kind!r}")
    return _Batched(s)


class _Batched:
    """A flat sampler in batches of ``BATCH``, forwarding ``set_epoch``."""

    def __init__(self, sampler: Any) -> None:
        self.sampler = sampler
        self.batches = BatchSampler(sampler, BATCH, drop_last=False)

    def set_epoch(self, epoch: int) -> None:
        self.sampler.set_epoch(epoch)

    def __iter__(self) -> Any:
        return iter(self.batches)


# ============================================================================ training
def tune_macro_ap(ds: DataSet, scores: np.ndarray, part: str = "tune") -> float:
    """Macro AP over the labels with a positive in ``part``."""
    y = ds.y[part]
    with warnings.catch_warnings():  # labels without positives are left out here
        warnings.simplefilter("ignore", UserWarning)
        ap = M.average_precision(y, scores, average=None)
    present = np.asarray(y.sum(0)).ravel() > 0
    return float(ap[present].mean())


def fit(ds: DataSet, recipe: Recipe, params: dict[str, Any], stats: Stats, seed: int,
        epochs: int, *, select: bool) -> tuple[nn.Module, list[float], int]:
    """Train; with ``select`` evaluate tune macro AP after every epoch and keep the best.

    Returns (model at the best epoch or the last one, tune AP per epoch, best epoch).
    """
    torch.manual_seed(seed)
    model = Net(ds.n_features, ds.n_labels, ds.sparse,
                stats.prior if recipe.prior_bias else None, dropout=params.get("dropout", 0.1))
    opt = torch.optim.AdamW(model.parameters(), lr=params["lr"], weight_decay=1e-4)
    loss_fn = make_loss(recipe, dict(params, seed=seed), stats)
    batches = make_batches(recipe.sampler, params, stats, seed)
    replay = isinstance(batches, longtail.HardExampleSampler)
    budget = math.ceil(stats.n / BATCH)
    curve, best, best_state = [], -1.0, None
    for epoch in range(epochs):
        batches.set_epoch(epoch)
        for _, batch in zip(range(budget), batches):
            idx = np.asarray(batch, dtype=np.int64)
            y = stats.y[idx]
            entries = loss_fn(model(*inputs(ds, "fit", idx)), y)
            per_example = entries.mean(1)
            if replay:
                per_example = per_example * torch.from_numpy(batch.extras["weight"]).float()
            loss = per_example.mean()
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            if replay:
                batches.update(idx, L.per_example_loss(entries.detach(), y,
                                                       reduction="balanced"))
        if select:
            curve.append(tune_macro_ap(ds, scores_of(model, ds, "tune")))
            if curve[-1] > best:
                best, best_state = curve[-1], copy.deepcopy(model.state_dict())
    if select:
        model.load_state_dict(best_state)
        return model, curve, int(np.argmax(curve)) + 1
    return model, curve, epochs


def retrain_head(ds: DataSet, body: nn.Module, kind: str, params: dict[str, Any],
                 stats: Stats, seed: int, epochs: int, *, select: bool
                 ) -> tuple[nn.Module, list[float], int]:
    """Decoupled training (Kang et al. 2020): freeze everything but the classifier and
    re-train it with ``kind`` draws (class-aware or square-root sampling)."""
    model = copy.deepcopy(body)
    model.eval()  # frozen features: no dropout
    with torch.no_grad():
        h = torch.cat([model.features(*inputs(ds, "fit", np.arange(i, min(stats.n, i + 4096))))
                       for i in range(0, stats.n, 4096)])
    torch.manual_seed(seed + 1000)
    head = model.head
    if params["reinit"]:
        nn.init.normal_(head.weight, std=0.01)
        with torch.no_grad():
            head.bias.copy_(torch.logit(stats.prior).float())
    opt = torch.optim.AdamW(head.parameters(), lr=params["lr"], weight_decay=1e-4)
    batches = make_batches(kind, params, stats, seed + 1000)
    budget = math.ceil(stats.n / BATCH)
    curve, best, best_state = [], -1.0, None
    for epoch in range(epochs):
        batches.set_epoch(epoch)
        for _, batch in zip(range(budget), batches):
            idx = np.asarray(batch, dtype=np.int64)
            loss = L.bce_with_logits(head(h[idx]), stats.y[idx], validate=False)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
        if select:
            curve.append(tune_macro_ap(ds, scores_of(model, ds, "tune")))
            if curve[-1] > best:
                best, best_state = curve[-1], copy.deepcopy(model.state_dict())
    if select:
        model.load_state_dict(best_state)
        return model, curve, int(np.argmax(curve)) + 1
    return model, curve, epochs


# ============================================================================ metrics
def buckets_of(counts: np.ndarray) -> np.ndarray:
    """0 head, 1 medium, 2 tail: thirds of the labels ordered by training count."""
    order = np.argsort(-counts, kind="stable")
    bucket = np.empty(len(counts), np.int64)
    bucket[order] = np.arange(len(counts)) * 3 // len(counts)
    return bucket


def test_metrics(ds: DataSet, test: np.ndarray, tune: np.ndarray, counts: np.ndarray
                 ) -> dict[str, float]:
    """Test-part metrics of one trained model (thresholds tuned on the tune part)."""
    y = ds.y["test"]
    present = np.asarray(y.sum(0)).ravel() > 0
    with warnings.catch_warnings():  # labels without test positives are left out
        warnings.simplefilter("ignore", UserWarning)
        ap = M.average_precision(y, test, average=None)
    bucket = buckets_of(counts)
    out = {"macro": float(ap[present].mean()),
           **{name: float(ap[present & (bucket == b)].mean())
              for b, name in enumerate(("head", "medium", "tail"))},
           "micro": float(M.average_precision(y, test, average="micro"))}
    ks = (1, 3, 5)
    out.update({f"p@{k}": v for k, v in M.precision_at_k(y, test, k=ks).items()})
    psp = getattr(M, "propensity_scored_precision_at_k", None)
    if psp is not None:
        prop = M.label_propensities(counts, int(ds.y["fit"].shape[0] + ds.y["tune"].shape[0]))
        out.update({f"psp@{k}": v for k, v in psp(y, test, k=ks, propensities=prop).items()})
    thresholds = M.tune_thresholds(ds.y["tune"], tune, objective="match_count")
    out["ratio"] = float(M.prediction_ratio(y, M.apply_thresholds(test, thresholds)).overall)
    return out


# ============================================================================ runner
def grid(recipe: Recipe) -> list[dict[str, Any]]:
    """The configurations tuned: learning rate x the key parameter (post hoc: the key)."""
    fixed = dict(recipe.fixed)
    if recipe.posthoc:
        return [dict(fixed, **{recipe.key: v}) for v in recipe.values]
    return [dict(fixed, lr=lr, **{recipe.key: v}) for lr in LRS for v in recipe.values]


def _stats(ds: DataSet) -> Stats:
    y = ds.y["fit"]
    return Stats(np.asarray(y.sum(0)).ravel().astype(np.float64), y.shape[0],
                 LabelMatrix.from_scipy(y), torch.from_numpy(y.toarray().astype(np.float32)))


def run_set(ds: DataSet, names: list[str], seeds: int, epochs: int, log: Callable[[str], None]
            ) -> dict[str, Any]:
    """Tune, retrain and measure every recipe on one data set."""
    stats = _stats(ds)
    results: dict[str, Any] = {}
    models: dict[str, list[nn.Module]] = {}  # bce's final models: bodies for decoupled / post hoc
    order = sorted(names, key=lambda r: (RECIPES[r].decoupled is not None or RECIPES[r].posthoc,
                                         r != "bce"))
    if any(RECIPES[r].decoupled or RECIPES[r].posthoc for r in order) and "bce" not in order:
        order.insert(0, "bce")
    for name in order:
        recipe = RECIPES[name]
        t0 = time.perf_counter()
        trials = []
        if recipe.posthoc:
            base = models["bce"][0]
            tune_raw = scores_of(base, ds, "tune")
            for p in grid(recipe):
                shift = (p["tau"] * torch.logit(stats.prior)).numpy().astype(np.float32)
                s = tune_raw - shift
                trials.append((M.precision_at_k(ds.y["tune"], s, k=5), p, base,
                               [tune_macro_ap(ds, s)], results["bce"]["epochs"]))
            best = max(trials, key=lambda t: t[0])
        else:
            for p in grid(recipe):
                if recipe.decoupled:
                    model, curve, ep = retrain_head(ds, models["bce"][0], recipe.decoupled, p,
                                                    stats, 0, max(1, epochs // 2), select=True)
                else:
                    model, curve, ep = fit(ds, recipe, p, stats, 0, epochs, select=True)
                trials.append((max(curve), p, model, curve, ep))
                log(f"  [{ds.name}] {name} {p} -> tune macro AP {max(curve):.4f} at epoch {ep}")
            best = max(trials, key=lambda t: t[0])
        _, params, model0, _, best_epoch = best
        finals = [model0]
        for seed in range(1, seeds):
            if recipe.posthoc:
                finals.append(models["bce"][seed])
            elif recipe.decoupled:
                finals.append(retrain_head(ds, models["bce"][seed], recipe.decoupled, params,
                                           stats, seed, best_epoch, select=False)[0])
            else:
                finals.append(fit(ds, recipe, params, stats, seed, best_epoch, select=False)[0])
        models[name] = finals
        per_seed = []
        for model in finals:
            test, tune = scores_of(model, ds, "test"), scores_of(model, ds, "tune")
            if recipe.posthoc:
                shift = (params["tau"] * torch.logit(stats.prior)).numpy().astype(np.float32)
                test, tune = test - shift, tune - shift
            per_seed.append(test_metrics(ds, test, tune, stats.counts))
        keys = per_seed[0].keys()
        results[name] = {
            "params": {k: v for k, v in params.items() if k != "seed"}, "epochs": best_epoch,
            "tune_ap": float(best[0]) if not recipe.posthoc else float(best[3][0]),
            "mean": {k: float(np.mean([r[k] for r in per_seed])) for k in keys},
            "std": {k: float(np.std([r[k] for r in per_seed])) for k in keys},
            "seeds": per_seed, "seconds": time.perf_counter() - t0}
        r = results[name]
        log(f"[{ds.name}] {name}: test macro AP {r['mean']['macro']:.4f} +- "
            f"{r['std']['macro']:.4f}, tail {r['mean']['tail']:.4f}, {params}, "
            f"{best_epoch} epochs ({r['seconds']:.0f} s)")
    out: dict[str, Any] = {"describe": ds.describe(), "recipes": results}
    if ds.ceiling is not None:  # the oracle: AP needs no thresholds of its own
        y = ds.y["test"]
        present = np.asarray(y.sum(0)).ravel() > 0
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)
            ap = M.average_precision(y, ds.ceiling, average=None)
        bucket = buckets_of(stats.counts)
        out["ceiling"] = {"macro": float(ap[present].mean()),
                          **{nm: float(ap[present & (bucket == b)].mean())
                             for b, nm in enumerate(("head", "medium", "tail"))},
                          "micro": float(M.average_precision(y, ds.ceiling, average="micro"))}
    return out


# ============================================================================ report
def _pm(mean: float, std: float) -> str:
    return f"{mean:.4f} ± {std:.4f}"


def _rel(value: float, ref: float) -> str:
    return f"{100 * (value / ref - 1):+.1f}%" if ref else "-"


def report(name: str, res: dict[str, Any]) -> str:
    """One table per data set: every recipe, mean ± std of the seeds, vs bce."""
    recipes = res["recipes"]
    ref = recipes.get("bce")
    rows = []
    for rn, r in sorted(recipes.items(), key=lambda kv: -kv[1]["mean"]["macro"]):
        m, s = r["mean"], r["std"]
        rows.append([rn, _pm(m["macro"], s["macro"]),
                     _rel(m["macro"], ref["mean"]["macro"]) if ref else "-",
                     f"{m['head']:.4f}", f"{m['medium']:.4f}", _pm(m["tail"], s["tail"]),
                     _rel(m["tail"], ref["mean"]["tail"]) if ref else "-",
                     f"{m['micro']:.4f}", f"{m['p@5']:.4f}",
                     f"{m['psp@5']:.4f}" if "psp@5" in m else "-", f"{m['ratio']:.2f}",
                     _params(r), f"{r['seconds']:.0f}"])
    if "ceiling" in res:
        c = res["ceiling"]
        rows.append(["(oracle ceiling)", f"{c['macro']:.4f}", _rel(c["macro"], ref["mean"]["macro"])
                     if ref else "-", f"{c['head']:.4f}", f"{c['medium']:.4f}",
                     f"{c['tail']:.4f}", "", f"{c['micro']:.4f}", "", "", "", "", ""])
    head = ["recipe", "macro AP", "vs bce", "head", "medium", "tail AP", "tail vs bce",
            "micro AP", "P@5", "PSP@5", "pred/true", "chosen on tune", "s"]
    return f"### {name}\n{res['describe']}\n\n" + table(head, rows)


def _params(r: dict[str, Any]) -> str:
    p = {k: v for k, v in r["params"].items() if k not in ("mode",)}
    return ", ".join(f"{k}={v:g}" if isinstance(v, float) else f"{k}={v}"
                     for k, v in p.items()) + f", {r['epochs']} ep"


def summary(all_res: dict[str, Any]) -> str:
    """Best remedy per set against the targets (+5% macro, +10% tail vs bce; +15% vs
    bce-posweight), and the distance to the oracle ceiling where there is one."""
    rows = []
    for name, res in all_res.items():
        rec = res["recipes"]
        if "bce" not in rec:
            continue
        remedies = {k: v for k, v in rec.items() if k not in BASELINES}
        if not remedies:
            continue
        best = max(remedies, key=lambda k: remedies[k]["mean"]["macro"])
        b, m = rec["bce"], remedies[best]
        bm, bs = b["mean"]["macro"], b["std"]["macro"]
        gain = m["mean"]["macro"] / bm - 1
        tail = m["mean"]["tail"] / b["mean"]["tail"] - 1
        outside = m["mean"]["macro"] - m["std"]["macro"] > bm + bs
        pw = rec.get("bce-posweight")
        over_pw = (m["mean"]["macro"] / pw["mean"]["macro"] - 1) if pw else float("nan")
        ratios = [v["mean"]["ratio"] for v in rec.values()]
        ceiling = res.get("ceiling", {}).get("macro")
        rows.append([name, best, f"{m['mean']['macro']:.4f}", f"{bm:.4f}",
                     f"{100 * gain:+.1f}% {'✓' if gain >= 0.05 and outside else '✗'}",
                     f"{100 * tail:+.1f}% {'✓' if tail >= 0.10 else '✗'}",
                     f"{100 * over_pw:+.1f}% {'✓' if over_pw >= 0.15 else '✗'}",
                     f"{min(ratios):.2f}-{max(ratios):.2f}",
                     "-" if ceiling is None else f"{ceiling:.4f} (best at "
                     f"{100 * m['mean']['macro'] / ceiling:.0f}%)"])
    head = ["data set", "best remedy", "its macro AP", "bce", "vs bce (>= +5%)",
            "tail vs bce (>= +10%)", "vs bce-posweight (>= +15%)", "pred/true range",
            "oracle ceiling"]
    return "### Summary\n\n" + table(head, rows)


def main(argv: list[str] | None = None) -> dict[str, Any]:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data-dir", default=DEFAULT_DATA, help="folder of the real sets")
    ap.add_argument("--sets", nargs="+", default=list(ALL_SETS),
                    help=f"real sets (folders of --data-dir) and/or generated dense presets "
                         f"({', '.join(GENERATED)}); default: {' '.join(ALL_SETS)}")
    ap.add_argument("--recipes", nargs="+", default=list(RECIPES), choices=list(RECIPES))
    ap.add_argument("--seeds", type=int, default=3)
    ap.add_argument("--epochs", type=int, default=10, help="most epochs per configuration")
    ap.add_argument("--limit", type=int, default=None,
                    help="subsample each part to at most this many examples")
    ap.add_argument("--quick", action="store_true",
                    help="1 seed, 3 epochs, parts of at most 3,000 examples (a smoke run)")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--json", default=None, help="write all results here")
    args = ap.parse_args(argv)
    if args.quick:
        args.seeds, args.epochs, args.limit = 1, min(args.epochs, 3), args.limit or 3000
    torch.set_num_threads(args.threads)
    log = lambda msg: print(msg, flush=True)  # noqa: E731
    all_res, t0 = {}, time.perf_counter()
    for name in args.sets:
        if name not in GENERATED:
            if not os.path.isdir(os.path.join(args.data_dir, name)):
                log(f"skipping {name}: {os.path.join(args.data_dir, name)} is absent (the real "
                    f"sets live outside the repository, see benchmarks/README.md)")
                continue
            ds = load_real(args.data_dir, name, args.limit)
        else:
            ds = load_generated(name, None if args.limit is None else 2 * args.limit)
        log(ds.describe())
        all_res[name] = run_set(ds, args.recipes, args.seeds, args.epochs, log)
        print("\n" + report(name, all_res[name]) + "\n", flush=True)
        if args.json:  # after every set, so a long run leaves what it finished
            _write_json(args.json, {"args": vars(args), "results": all_res})
    if all_res:
        print(summary(all_res))
    print(f"\n{len(all_res)} data sets, {args.seeds} seed(s), up to {args.epochs} epochs per "
          f"configuration, {args.threads} threads: {time.perf_counter() - t0:.0f} s")
    return all_res


def _write_json(path: str, obj: Any) -> None:
    tmp = path + ".tmp"
    with open(tmp, "w") as f:
        json.dump(obj, f, indent=1, default=float)
    os.replace(tmp, path)


if __name__ == "__main__":
    main()
