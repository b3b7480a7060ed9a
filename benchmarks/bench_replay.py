"""Hard-example replay: longtail's HardExampleSampler / SumTree against TorchRL's
PrioritizedSampler and a vectorised NumPy sum tree, plus a small training run showing
where the sampler spends its draws.

    flock /tmp/longtail-bench.lock .venv/bin/python benchmarks/bench_replay.py

Per-call medians, batch 256, capacities 8e4 and 1e6, every implementation in this
process on the same priorities, in a training loop's rhythm: draw a batch (indices and
importance weights), then report the losses (a CPU float32 torch tensor) of the batch
drawn ``--lag`` (4) steps earlier, as with DataLoader prefetch. Three settings:

* interleaved: the implementations take turns in blocks of calls, so a change in the
  machine's load hits all of them alike (the ratios are the robust figures; each block
  starts with caches another implementation used);
* one at a time (1e6): each implementation alone, caches to itself;
* cold (1e6): 64 MB streamed through the caches before every call, a stand-in for
  the training step that runs between two sampler calls.

"ours, hard 1.0" draws the whole batch by priority (what TorchRL does); "hard 0.5" is
the default mix (half by priority, half uniform). TorchRL's IS weights come from its
min-tree (``(p_i / p_min) ** -beta``), ours are ``(p_target / q) ** beta`` over the batch.

TorchRL: the wheels of torchrl 0.13/0.14 were built against other torch versions than
the pinned 2.13 (one unrelated autograd symbol differs), so its C++ extension is loaded
with lazy symbol binding (``RTLD_LAZY``); the segment-tree code never calls that symbol,
and the script checks the draws against the priorities (chi-square) before timing.
Install: ``pip install --no-deps torchrl==0.14.1 tensordict==0.14.3 pyvers==0.2.3
hoptorch==0.1.4``; without it the TorchRL columns read "n/a".
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

from longtail.samplers.replay.sampler import HardExampleSampler  # noqa: E402
from longtail.samplers.replay.sumtree import SumTree  # noqa: E402

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
def _initial_losses(n: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).gamma(1.0, 0.5, n).astype(np.float32)


class Runner:
    """One implementation in a training loop's rhythm: ``sample()`` a batch, then report
    losses (CPU float32 tensor) for the batch drawn ``lag`` steps earlier. Per-call
    times accumulate over every :meth:`run`, so runners can take turns in blocks and
    share whatever else the machine is doing."""

    def __init__(self, sample, update, lag: int, seed: int = 1) -> None:
        self.sample, self.update, self.lag = sample, update, lag
        rng = np.random.default_rng(seed)
        self.losses = [torch.from_numpy(rng.gamma(1.0, 0.5, BATCH).astype(np.float32))
                       for _ in range(64)]
        self.pending: collections.deque = collections.deque()
        self.ts: list[float] = []
        self.tu: list[float] = []
        self.r = 0

    def run(self, calls: int, warmup: int, flush=None) -> None:
        for c in range(warmup + calls):
            keep = c >= warmup
            if flush is not None:
                flush()
            t0 = time.perf_counter()
            idx = self.sample()
            t1 = time.perf_counter()
            if keep:
                self.ts.append(t1 - t0)
            self.pending.append(idx)
            if len(self.pending) > self.lag:
                old = self.pending.popleft()
                if flush is not None:
                    flush()
                t2 = time.perf_counter()
                self.update(old, self.losses[self.r % 64])
                t3 = time.perf_counter()
                if keep:
                    self.tu.append(t3 - t2)
            self.r += 1

    def medians(self) -> tuple[float, float]:
        return float(np.median(self.ts)), float(np.median(self.tu))


def ours(n: int, lag: int, **kw) -> Runner:
    s = HardExampleSampler(n, BATCH, alpha=ALPHA, beta=BETA, eps=EPS, seed=0, **kw)
    s.update(np.arange(n), _initial_losses(n))

    def sample():
        b = s.sample()  # indices + extras {"index", "weight", "prob"}
        return torch.from_numpy(b.extras["index"])  # what collation hands the loop

    return Runner(sample, s.update, lag)


def sumtree_alone(n: int, lag: int) -> Runner:
    tree = SumTree(n, values=(_initial_losses(n).astype(np.float64) + EPS) ** ALPHA)
    return Runner(lambda: tree.sample(BATCH),
                  lambda i, l: tree.update(i, (l.numpy().astype(np.float64) + EPS) ** ALPHA),
                  lag)


def torchrl_sampler(cls, n: int, lag: int) -> Runner:
    ps = cls(n, alpha=ALPHA, beta=BETA, eps=EPS)
    ps.update_priority(torch.arange(n), torch.from_numpy(_initial_losses(n)))
    storage = _Storage(n)

    def sample():
        idx, info = ps.sample(storage, BATCH)  # info["priority_weight"]: IS weights
        return idx

    return Runner(sample, ps.update_priority, lag)


def numpy_tree(n: int, lag: int) -> Runner:
    t = NumpySumTree(n)
    t.update(np.arange(n), _initial_losses(n))
    return Runner(lambda: t.sample(BATCH)[0],
                  lambda i, l: t.update(np.asarray(i), l.numpy()), lag)


_FLUSH = None


def flush_caches() -> None:
    """Stream 64 MB through the caches (a stand-in for the training step between calls)."""
    global _FLUSH
    if _FLUSH is None:
        _FLUSH = np.ones(8 << 20)
    _FLUSH.sum()


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


def measure(cls, args) -> dict:
    """One pass of every timing setting: {(setting, capacity, impl): (sample s, update s)}."""
    out = {}
    for n in (80_000, 1_000_000):
        runners = {"h1": ours(n, args.lag, hard_fraction=1.0),
                   "h5": ours(n, args.lag, hard_fraction=0.5),
                   "tree": sumtree_alone(n, args.lag),
                   "numpy": numpy_tree(n, args.lag)}
        if cls is not None:
            runners["torchrl"] = torchrl_sampler(cls, n, args.lag)
        per_block = max(1, args.reps // args.blocks)
        for _ in range(args.blocks):  # take turns, so load changes hit everyone alike
            for name, runner in runners.items():
                calls = per_block if name != "numpy" else max(1, per_block // 4)
                runner.run(calls, warmup=20)
        for k, r in runners.items():
            out["interleaved", n, k] = r.medians()
        del runners
    # capacity 1e6, one implementation at a time (each keeps the caches to itself)
    n = 1_000_000
    alone = {"h1": lambda: ours(n, args.lag, hard_fraction=1.0),
             "h5": lambda: ours(n, args.lag, hard_fraction=0.5),
             "tree": lambda: sumtree_alone(n, args.lag)}
    if cls is not None:
        alone["torchrl"] = lambda: torchrl_sampler(cls, n, args.lag)
    for name, make in alone.items():
        runner = make()
        runner.run(args.reps, warmup=100)
        out["alone", n, name] = runner.medians()
        del runner
    if cls is not None and args.cold_reps:
        runners = {"h1": ours(n, args.lag, hard_fraction=1.0),
                   "h5": ours(n, args.lag, hard_fraction=0.5),
                   "torchrl": torchrl_sampler(cls, n, args.lag)}
        for _ in range(args.blocks):
            for runner in runners.values():
                runner.run(max(1, args.cold_reps // args.blocks), warmup=5, flush=flush_caches)
        for k, r in runners.items():
            out["cold", n, k] = r.medians()
        del runners
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--reps", type=int, default=3000, help="timed calls per row")
    ap.add_argument("--blocks", type=int, default=6, help="interleaved blocks per row")
    ap.add_argument("--cold-reps", type=int, default=300,
                    help="timed calls per row with caches flushed (0: skip)")
    ap.add_argument("--runs", type=int, default=3,
                    help="repeat every timing this often; figures are medians over runs")
    ap.add_argument("--lag", type=int, default=4, help="batches between draw and report")
    ap.add_argument("--epochs", type=int, default=8, help="epochs of the training run")
    ap.add_argument("--skip-training", action="store_true")
    args = ap.parse_args()
    torch.set_num_threads(1)

    cls, note = load_torchrl()
    print(f"anchor: {note}")
    if cls is not None:
        print(f"TorchRL draws vs its priorities: chi-square p = {check_torchrl(cls):.3f}")
    runs = [measure(cls, args) for _ in range(args.runs)]
    med = {key: tuple(float(np.median([r[key][k] for r in runs])) for k in (0, 1))
           for key in runs[0]}
    fmt = lambda s: f"{s * 1e6:.1f}"  # noqa: E731
    ratio = lambda a, b: f"{a / b:.1f}x"  # noqa: E731
    ops = (("sample 256 + IS weights", 0), ("update 256 losses", 1))
    has_trl = cls is not None

    rows = []
    for n in (80_000, 1_000_000):
        m = {k: med["interleaved", n, k] for k in ("h1", "h5", "tree", "numpy", "torchrl")
             if ("interleaved", n, k) in med}
        for op, k in ops:
            trl = m.get("torchrl")
            rows.append([f"{n:,}", op, fmt(m["h1"][k]), fmt(m["h5"][k]), fmt(m["tree"][k]),
                         fmt(trl[k]) if trl else "n/a", fmt(m["numpy"][k]),
                         ratio(trl[k], m["h1"][k]) if trl else "n/a",
                         ratio(trl[k], m["h5"][k]) if trl else "n/a",
                         ratio(m["numpy"][k], m["h1"][k])])
    print()
    print(f"Per call, median us over {args.runs} runs (batch {BATCH}, losses reported "
          f"{args.lag} batches after their draw, {args.blocks} interleaved blocks):")
    print(table(["capacity", "operation", "ours, hard 1.0", "ours, hard 0.5",
                 "SumTree alone", "TorchRL PrioritizedSampler", "NumPy sum tree",
                 "TorchRL / ours 1.0", "TorchRL / ours 0.5", "NumPy / ours 1.0"], rows))

    n = 1_000_000
    m = {k: med["alone", n, k] for k in ("h1", "h5", "tree", "torchrl")
         if ("alone", n, k) in med}
    arows = []
    for op, k in ops:
        trl = m.get("torchrl")
        arows.append([op, fmt(m["h1"][k]), fmt(m["h5"][k]), fmt(m["tree"][k]),
                      fmt(trl[k]) if trl else "n/a",
                      ratio(trl[k], m["h1"][k]) if trl else "n/a",
                      ratio(trl[k], m["h5"][k]) if trl else "n/a"])
    print()
    print(f"Capacity 1,000,000, one implementation at a time (median us over {args.runs} "
          f"runs):")
    print(table(["operation", "ours, hard 1.0", "ours, hard 0.5", "SumTree alone",
                 "TorchRL PrioritizedSampler", "TorchRL / ours 1.0", "TorchRL / ours 0.5"],
                arows))

    if has_trl and args.cold_reps:
        m = {k: med["cold", n, k] for k in ("h1", "h5", "torchrl")}
        crows = [[op, fmt(m["h1"][k]), fmt(m["h5"][k]), fmt(m["torchrl"][k]),
                  ratio(m["torchrl"][k], m["h1"][k]), ratio(m["torchrl"][k], m["h5"][k])]
                 for op, k in ops]
        print()
        print(f"Capacity 1,000,000 with 64 MB streamed through the caches before every call "
              f"(median us over {args.runs} runs):")
        print(table(["operation", "ours, hard 1.0", "ours, hard 0.5",
                     "TorchRL PrioritizedSampler", "TorchRL / ours 1.0",
                     "TorchRL / ours 0.5"], crows))

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
