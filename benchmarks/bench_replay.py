"""Hard-example replay: longtail's HardExampleSampler / SumTree against TorchRL's
PrioritizedSampler and a vectorised NumPy sum tree, plus a small training run showing
where the sampler spends its draws.

    flock /tmp/longtail-bench.lock .venv/bin/python benchmarks/bench_replay.py

Per-call medians, batch 256, capacities 8e4 and 1e6, every implementation in this
process on the same priorities. The loop is a training loop's: draw a batch (indices and
importance weights), and report the losses of the batch drawn ``--lag`` steps earlier
(DataLoader prefetch), losses as a CPU float32 torch tensor.

TorchRL: the wheels of torchrl 0.13/0.14 were built against other torch versions than
the pinned 2.13 (one unrelated autograd symbol differs), so its C++ extension is loaded
with lazy symbol binding (``RTLD_LAZY``); the segment-tree code never calls that symbol,
and the script checks the draws against the priorities before timing.
"""
from __future__ import annotations

import argparse
import collections
import os
import sys
import time

import numpy as np
import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from _util import table  # noqa: E402

from longtail.samplers.replay import HardExampleSampler  # noqa: E402
from longtail.samplers.sumtree import SumTree  # noqa: E402

BATCH = 256
ALPHA, BETA, EPS = 0.6, 0.4, 1e-6


# --------------------------------------------------------------------------------------
# anchors
# --------------------------------------------------------------------------------------
def load_torchrl():
    """TorchRL's PrioritizedSampler class and a note (None and why when unavailable)."""
    try:
        flags = sys.getdlopenflags()
        sys.setdlopenflags(os.RTLD_LAZY)
        try:
            import torchrl._torchrl  # noqa: F401
        finally:
            sys.setdlopenflags(flags)
        import torchrl
        from torchrl.data.replay_buffers.samplers import PrioritizedSampler

        PrioritizedSampler(16, alpha=ALPHA, beta=BETA)  # raises if the tree is missing
        return PrioritizedSampler, f"torchrl {torchrl.__version__}"
    except Exception as err:  # noqa: BLE001
        return None, f"torchrl not usable here ({type(err).__name__}: {err})"


class _Storage:
    """The two things PrioritizedSampler.sample reads from a storage."""

    ndim = 1

    def __init__(self, n: int) -> None:
        self.n = n

    def __len__(self) -> int:
        return self.n


class NumpySumTree:
    """A vectorised NumPy sum tree: batched update (np.unique per level) and batched
    descent, PER priorities and weights -- the straightforward NumPy reimplementation."""

    def __init__(self, n: int, seed: int = 0) -> None:
        self.n = n
        self.size = 1 << max(1, (n - 1).bit_length())
        self.tree = np.zeros(2 * self.size)
        self.rng = np.random.default_rng(seed)

    def update(self, idx: np.ndarray, loss: np.ndarray) -> None:
        p = (loss.astype(np.float64) + EPS) ** ALPHA
        self.tree[self.size + idx] = p
        nodes = np.unique((idx + self.size) >> 1)
        while True:
            self.tree[nodes] = self.tree[2 * nodes] + self.tree[2 * nodes + 1]
            if nodes[0] == 1:
                break
            nodes = np.unique(nodes >> 1)

    def sample(self, k: int) -> tuple[np.ndarray, np.ndarray]:
        total = self.tree[1]
        mass = self.rng.random(k) * total
        node = np.ones(k, dtype=np.int64)
        while node[0] < self.size:
            left = self.tree[2 * node]
            go = (mass >= left) & (self.tree[2 * node + 1] > 0)
            mass -= np.where(go, left, 0.0)
            node = 2 * node + go
        idx = node - self.size
        q = self.tree[node] / total
        w = (self.n * q) ** -BETA
        return idx, (w / w.max()).astype(np.float32)


# --------------------------------------------------------------------------------------
# timing loops
# --------------------------------------------------------------------------------------
def _loop(sample, update, reps: int, lag: int, warmup: int, seed: int):
    """Median seconds per sample() and per update(); update gets the batch drawn
    ``lag`` steps earlier and float32 CPU torch losses."""
    rng = np.random.default_rng(seed)
    losses = [torch.from_numpy(rng.gamma(1.0, 0.5, BATCH).astype(np.float32))
              for _ in range(64)]
    pending: collections.deque = collections.deque()
    ts, tu = [], []
    for r in range(warmup + reps):
        t0 = time.perf_counter()
        idx = sample()
        t1 = time.perf_counter()
        pending.append(idx)
        if len(pending) > lag:
            old = pending.popleft()
            t2 = time.perf_counter()
            update(old, losses[r % 64])
            t3 = time.perf_counter()
            if r >= warmup:
                tu.append(t3 - t2)
        if r >= warmup:
            ts.append(t1 - t0)
    return float(np.median(ts)), float(np.median(tu))


def _initial_losses(n: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).gamma(1.0, 0.5, n).astype(np.float32)


def bench_ours(n: int, reps: int, lag: int, **kw):
    s = HardExampleSampler(n, BATCH, alpha=ALPHA, beta=BETA, eps=EPS, seed=0, **kw)
    s.update(np.arange(n), _initial_losses(n))

    def sample():
        b = s.sample()
        return torch.from_numpy(b.extras["index"])  # what collation hands the loop

    return _loop(sample, s.update, reps, lag, warmup=300, seed=1)


def bench_sumtree(n: int, reps: int):
    tree = SumTree(n, values=(_initial_losses(n).astype(np.float64) + EPS) ** ALPHA)
    rng = np.random.default_rng(2)
    idxs = [rng.integers(0, n, BATCH) for _ in range(64)]
    vals = [rng.random(BATCH) for _ in range(64)]
    ts, tu = [], []
    for r in range(300 + reps):
        t0 = time.perf_counter()
        tree.sample(BATCH)
        t1 = time.perf_counter()
        tree.update(idxs[r % 64], vals[r % 64])
        t2 = time.perf_counter()
        if r >= 300:
            ts.append(t1 - t0)
            tu.append(t2 - t1)
    return float(np.median(ts)), float(np.median(tu))


def bench_torchrl(cls, n: int, reps: int, lag: int):
    ps = cls(n, alpha=ALPHA, beta=BETA, eps=EPS)
    ps.update_priority(torch.arange(n), torch.from_numpy(_initial_losses(n)))
    storage = _Storage(n)

    def sample():
        idx, info = ps.sample(storage, BATCH)
        return idx

    return _loop(sample, ps.update_priority, reps, lag, warmup=300, seed=1)


def bench_numpy(n: int, reps: int, lag: int):
    t = NumpySumTree(n)
    t.update(np.arange(n), _initial_losses(n))

    def sample():
        idx, w = t.sample(BATCH)
        return idx

    return _loop(sample, lambda i, l: t.update(np.asarray(i), l.numpy()), reps, lag,
                 warmup=300, seed=1)


def check_torchrl(cls) -> float:
    """Chi-square p-value of TorchRL's draw frequencies against its priorities."""
    n = 64
    ps = cls(n, alpha=1.0, beta=BETA, eps=0.0)
    p = torch.arange(1, n + 1, dtype=torch.float32)
    ps.update_priority(torch.arange(n), p)
    counts = np.zeros(n)
    for _ in range(400):
        idx, _ = ps.sample(_Storage(n), 1000)
        counts += np.bincount(np.asarray(idx), minlength=n)
    from scipy import stats

    expected = p.numpy().astype(np.float64) / float(p.sum()) * counts.sum()
    return float(stats.chisquare(counts, expected).pvalue)


# --------------------------------------------------------------------------------------
# where the draws go: a small training run
# --------------------------------------------------------------------------------------
def training_run(epochs: int, seed: int = 0, **sampler_kw):
    """Logistic regression on make_long_tail('small'); per-draw loss quantiles."""
    from longtail.datasets import make_long_tail

    torch.manual_seed(seed)
    data = make_long_tail("small", seed=0)
    x = torch.from_numpy(data.features)
    y = data.labels.multi_hot(dtype=torch.float32)
    n_train = int(0.8 * x.shape[0])
    xtr, ytr, xte, yte = x[:n_train], y[:n_train], x[n_train:], y[n_train:]
    model = torch.nn.Linear(x.shape[1], y.shape[1])
    opt = torch.optim.Adam(model.parameters(), lr=0.03)
    sampler = HardExampleSampler(n_train, BATCH, seed=seed, **sampler_kw)
    bce = torch.nn.functional.binary_cross_entropy_with_logits
    quantiles = []
    snapshot = None
    step = 0
    for epoch in range(epochs):
        sampler.set_epoch(epoch)
        for batch in sampler:
            if step % 10 == 0:  # current loss of every training example
                with torch.no_grad():
                    full = bce(model(xtr), ytr, reduction="none").mean(1).numpy()
                snapshot = np.argsort(np.argsort(full)) / (n_train - 1)  # loss quantile
            idx = torch.from_numpy(batch.extras["index"])
            w = torch.from_numpy(batch.extras["weight"])
            quantiles.append(snapshot[batch.extras["index"]])
            per = bce(model(xtr[idx]), ytr[idx], reduction="none")  # [B, C]
            opt.zero_grad()
            (w * per.mean(1)).sum().div(w.sum()).backward()
            opt.step()
            sampler.update(idx, per.detach())  # [B, C]: reduced with "mean"
            step += 1
    with torch.no_grad():
        test_loss = bce(model(xte), yte).item()
        scores = torch.sigmoid(model(xte)).numpy()
    from sklearn.metrics import average_precision_score

    keep = yte.numpy().sum(0) > 0
    ap = average_precision_score(yte.numpy()[:, keep], scores[:, keep], average="macro")
    qs = np.concatenate(quantiles)
    late = np.concatenate(quantiles[len(quantiles) // 2:])
    return {"mean_q": qs.mean(), "late_mean_q": late.mean(), "top10": (qs >= 0.9).mean(),
            "bottom50": (qs < 0.5).mean(), "test_loss": test_loss, "ap": ap,
            "steps": step}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--reps", type=int, default=3000, help="timed calls per row")
    ap.add_argument("--lag", type=int, default=4, help="batches between draw and report")
    ap.add_argument("--epochs", type=int, default=8, help="epochs of the training run")
    ap.add_argument("--skip-training", action="store_true")
    args = ap.parse_args()
    torch.set_num_threads(1)

    cls, note = load_torchrl()
    print(f"anchor: {note}")
    if cls is not None:
        print(f"TorchRL draws vs its priorities: chi-square p = {check_torchrl(cls):.3f}")
    rows = []
    fmt = lambda s: f"{s * 1e6:.1f}"  # noqa: E731
    for n in (80_000, 1_000_000):
        ours_h = bench_ours(n, args.reps, args.lag, hard_fraction=1.0)
        ours_m = bench_ours(n, args.reps, args.lag, hard_fraction=0.5)
        raw = bench_sumtree(n, args.reps)
        npy = bench_numpy(n, max(300, args.reps // 3), args.lag)
        trl = bench_torchrl(cls, n, args.reps, args.lag) if cls is not None else None
        for op, k in (("sample 256 + IS weights", 0), ("update 256 losses", 1)):
            anchor = f"{fmt(trl[k])}" if trl else "n/a"
            ratio_t = f"{trl[k] / ours_h[k]:.1f}x" if trl else "n/a"
            rows.append([f"{n:,}", op, fmt(ours_h[k]), fmt(ours_m[k]), fmt(raw[k]), anchor,
                         fmt(npy[k]), ratio_t, f"{npy[k] / ours_h[k]:.1f}x"])
    print()
    print(f"Per call, median us (batch {BATCH}, report lag {args.lag}):")
    print(table(["capacity", "operation", "HardExampleSampler (hard 1.0)",
                 "HardExampleSampler (hard 0.5)", "SumTree alone", "TorchRL Prioritized",
                 "NumPy sum tree", "TorchRL / ours", "NumPy / ours"], rows))

    if not args.skip_training:
        print()
        print(f"Training run: logistic regression, make_long_tail('small') (9,600 train x 500 "
              f"labels), {args.epochs} epochs, batch {BATCH}, Adam 0.03, beta 1; the loss "
              f"quantile of each drawn example among all training losses (recomputed every "
              f"10 steps):")
        trows = []
        for label, kw in (
            ("uniform (hard 0)", dict(hard_fraction=0.0)),
            ("loss, alpha 1, hard 0.5", dict(hard_fraction=0.5, alpha=1.0)),
            ("loss, alpha 3, hard 0.5", dict(hard_fraction=0.5, alpha=3.0)),
            ("rank, pressure 100, hard 0.5", dict(hard_fraction=0.5, priority="rank")),
            ("percentile, alpha 3, hard 0.5", dict(hard_fraction=0.5, priority="percentile",
                                                  alpha=3.0)),
        ):
            r = training_run(args.epochs, beta=1.0, **kw)
            trows.append([label, f"{r['mean_q']:.3f}", f"{r['late_mean_q']:.3f}",
                          f"{r['top10']:.1%}", f"{r['bottom50']:.1%}",
                          f"{r['test_loss']:.4f}", f"{r['ap']:.4f}"])
        print(table(["draws", "mean loss quantile of drawn", "same, 2nd half",
                     "drawn from hardest 10%", "drawn from easiest 50%", "test BCE",
                     "test macro AP"], trows))


if __name__ == "__main__":
    main()
