"""HardExampleSampler: draw probabilities, importance weights, feedback, DDP, resume."""
import json
import pickle

import numpy as np
import pytest
import torch
from scipy import stats
from torch.utils.data import DataLoader, Dataset

from longtail.datasets.index_batch import (IndexBatch, collate_with_extras,
                                           with_extras)
from longtail.samplers.replay.sampler import HardExampleSampler

N = 30


def _primed(**kw) -> HardExampleSampler:
    """A sampler whose priorities were all set by one update (no in-flight marks)."""
    kw.setdefault("in_flight_timeout", 0)
    s = HardExampleSampler(N, kw.pop("batch_size", 64), seed=kw.pop("seed", 5), **kw)
    losses = (np.arange(N) % 7).astype(np.float64)  # zeros included
    s.update(np.arange(N), losses)
    return s


BASE = np.linspace(0.0, 3.0, N)  # first weight is 0
MIXES = {
    "hard": dict(hard_fraction=1.0),
    "uniform": dict(hard_fraction=0.0),
    "base": dict(hard_fraction=0.0, base_weights=BASE),
    "hard+uniform": dict(hard_fraction=0.5),
    "hard+base": dict(hard_fraction=0.5, base_weights=BASE),
    "hard+base+uniform": dict(hard_fraction=0.4, base_weights=BASE, base_fraction=0.35),
}


def _hand_target(s: HardExampleSampler, kw: dict) -> np.ndarray:
    """p_target from the definition: the non-hard sources with their batch shares."""
    kb, ku = s._kb, s._ku
    base = kw.get("base_weights")
    if kb + ku == 0:
        return base / base.sum() if base is not None else np.full(N, 1.0 / N)
    p = np.full(N, ku / (kb + ku) / N)
    if base is not None:
        p = p + kb / (kb + ku) * base / base.sum()
    return p


@pytest.mark.parametrize("mix", sorted(MIXES))
def test_draw_frequencies_match_q(mix):
    kw = dict(MIXES[mix], eps=0.0, alpha=1.0)
    s = _primed(**kw)
    q = s.probabilities()
    assert q.sum() == pytest.approx(1.0)
    counts = np.zeros(N)
    steps = 300
    for _ in range(steps):
        b = s.sample()
        np.testing.assert_allclose(b.extras["prob"], q[b.extras["index"]], rtol=1e-12)
        counts += np.bincount(b.extras["index"], minlength=N)
    total = steps * s.global_batch
    assert counts[q == 0].sum() == 0  # zero-probability examples are never drawn
    pos = q > 0
    assert stats.chisquare(counts[pos], q[pos] * total).pvalue > 1e-4
    # the same test rejects the plain uniform distribution (it can fail)
    if mix != "uniform":
        u = np.full(pos.sum(), total / pos.sum())
        assert stats.chisquare(counts[pos], u).pvalue < 1e-6


@pytest.mark.parametrize("mix", sorted(MIXES))
@pytest.mark.parametrize("beta", [0.4, 1.0])
def test_importance_weights_by_hand(mix, beta):
    kw = MIXES[mix]
    s = _primed(beta=beta, batch_size=32, **kw)
    g = s.global_batch
    # effective shares are integers of the batch
    assert s._kh == round(kw["hard_fraction"] * g) or mix == "hard+base+uniform"
    pt = _hand_target(s, kw)
    fr = s.fractions
    for _ in range(5):
        hard_leaves = s.priorities
        q_hand = (fr["hard"] * hard_leaves / hard_leaves.sum() + fr["uniform"] / N
                  + (fr["base"] * BASE / BASE.sum() if "base_weights" in kw else 0.0))
        b = s.sample()
        i = b.extras["index"]
        np.testing.assert_allclose(b.extras["prob"], q_hand[i], rtol=1e-12)
        w = (pt[i] / q_hand[i]) ** beta
        w = w / w.max()
        assert b.extras["weight"].dtype == np.float32
        np.testing.assert_allclose(b.extras["weight"], w, rtol=2e-7, atol=1e-30)
        s.update(i, np.random.default_rng(len(i)).random(len(i)))


def test_weight_normalisation_modes():
    for mode, check in (("mean", lambda w: np.mean(w) == pytest.approx(1.0, rel=1e-6)),
                        ("none", lambda w: True)):
        s = _primed(normalize=mode, beta=1.0, batch_size=16)
        q = s.probabilities()
        b = s.sample()
        raw = (1.0 / N) / q[b.extras["index"]]
        if mode == "none":
            np.testing.assert_allclose(b.extras["weight"], raw, rtol=1e-6)
        assert check(b.extras["weight"])


def test_zero_priority_never_hard_drawn():
    s = HardExampleSampler(N, 16, hard_fraction=1.0, eps=0.0, seed=1, in_flight_timeout=0)
    losses = np.where(np.arange(N) % 3 == 0, 0.0, 1.0)
    s.update(np.arange(N), losses)
    drawn = np.concatenate([s.sample().extras["index"] for _ in range(200)])
    assert set(drawn.tolist()) == set(np.flatnonzero(losses > 0).tolist())
    # all priorities zero: the hard source falls back to uniform, weights stay finite
    s.update(np.arange(N), np.zeros(N))
    b = s.sample()
    np.testing.assert_allclose(b.extras["prob"], 1.0 / N)
    assert np.isfinite(b.extras["weight"]).all()


def test_in_flight_examples_are_not_redrawn_until_reported():
    s = HardExampleSampler(40, 3, hard_fraction=1.0, seed=2, in_flight_timeout=4)
    hist = [s.sample().extras["index"] for _ in range(30)]
    for t, batch in enumerate(hist):
        for later in hist[t + 1:t + 5]:  # marks last 4 further draws
            assert not set(batch) & set(later)
    assert s.in_flight.sum() == len(set(np.concatenate(hist[-4:]).tolist()))
    # uniform and base draws do not follow priorities and are not marked
    u = HardExampleSampler(40, 3, hard_fraction=0.0, base_weights=np.ones(40), seed=2)
    u.sample()
    assert not u.in_flight.any()
    # once reported, an example is drawable again at once
    s2 = HardExampleSampler(40, 3, hard_fraction=1.0, seed=2, in_flight_timeout=100)
    b = s2.sample()
    assert s2.in_flight[b.extras["index"]].all()
    assert (s2.probabilities()[b.extras["index"]] == 0).all()
    s2.update(b.extras["index"], np.ones(3))
    assert not s2.in_flight.any()
    assert (s2.probabilities()[b.extras["index"]] > 0).all()
    # draw probabilities reported with a batch are the ones in force at draw time
    q_before = s2.probabilities()
    b = s2.sample()
    np.testing.assert_allclose(b.extras["prob"], q_before[b.extras["index"]], rtol=1e-12)


def test_all_in_flight_lifts_marks():
    s = HardExampleSampler(4, 4, hard_fraction=1.0, seed=0, in_flight_timeout=50)
    for _ in range(5):  # every example is in flight after the first draws
        b = s.sample()
        assert np.isfinite(b.extras["weight"]).all() and (b.extras["prob"] > 0).all()


def test_priority_kinds():
    idx = np.array([0, 1, 2, 3, 4, 5])
    losses = np.array([0.5, 2.0, 0.0, 1.0, 2.0, 8.0], dtype=np.float32)
    s = HardExampleSampler(10, 4, priority="loss", alpha=0.7, eps=1e-3, seed=0,
                           in_flight_timeout=0)
    s.update(idx, losses)
    p = s.priorities
    np.testing.assert_allclose(p[idx], (losses.astype(np.float64) + 1e-3) ** 0.7, rtol=1e-15)
    assert (p[6:] == p[idx].max()).all()  # unseen: the largest priority so far

    base = np.array([0.0, 1.5, 0.0, 0.0, 3.0, 1.0, 0, 0, 0, 0])
    s = HardExampleSampler(10, 4, priority="loss", alpha=1.0, eps=0.0, baseline=base,
                           seed=0, in_flight_timeout=0)
    s.update(idx, losses)
    np.testing.assert_allclose(s.priorities[idx], np.maximum(losses - base[idx], 0.0))

    srt = np.sort(losses.astype(np.float64))
    lo = np.searchsorted(srt, losses, "left")
    hi = np.searchsorted(srt, losses, "right")
    pct = (lo + hi) / 2 / len(srt)
    s = HardExampleSampler(10, 4, priority="percentile", alpha=2.0, eps=0.0, seed=0,
                           in_flight_timeout=0)
    s.update(idx, losses)
    np.testing.assert_allclose(s.priorities[idx], pct ** 2.0, rtol=1e-12)
    s = HardExampleSampler(10, 4, priority="rank", selection_pressure=50.0, seed=0,
                           in_flight_timeout=0)
    s.update(idx, losses)
    pr = s.priorities[idx]
    np.testing.assert_allclose(pr, 50.0 ** (pct - 1.0), rtol=1e-12)
    assert pr.max() / pr.min() <= 50.0
    order = np.argsort(losses, kind="stable")
    assert (np.diff(pr[order]) >= 0).all()  # monotone in the loss


def test_percentile_reference_snapshot_refresh():
    # history 8: the sorted snapshot is refreshed once 8 // 4 = 2 new losses arrived
    s = HardExampleSampler(20, 4, priority="percentile", alpha=1.0, eps=0.0, history=8,
                           seed=0, in_flight_timeout=0)
    s.update([0, 1, 2, 3], [1.0, 2.0, 3.0, 4.0])  # first snapshot: these four
    np.testing.assert_allclose(s.priorities[:4], [1 / 8, 3 / 8, 5 / 8, 7 / 8])
    s.update([4], [10.0])  # 1 new loss: old snapshot, 10 is above all of it
    assert s.priorities[4] == 1.0
    s.update([5], [0.5])  # 2 new: re-sorted [0.5, 1, 2, 3, 4, 10], 0.5 is the lowest
    assert s.priorities[5] == pytest.approx(0.5 / 6)
    for _ in range(3):  # the history keeps the last 8 losses only
        s.update([6, 7], [100.0, 100.0])
    assert sorted(s._hist.tolist()) == [0.5, 10.0] + [100.0] * 6


def test_effective_fractions():
    s = HardExampleSampler(50, 10, hard_fraction=0.33, base_weights=np.ones(50),
                           base_fraction=0.33)
    assert s.fractions == {"hard": 0.3, "base": 0.3, "uniform": 0.4}
    s = HardExampleSampler(50, 7, hard_fraction=0.5, num_replicas=2, rank=0)
    assert s.fractions == {"hard": 0.5, "base": 0.0, "uniform": 0.5}  # of 14
    s = HardExampleSampler(50, 3, hard_fraction=0.5)  # 1.5 -> 2 (ties go to hard)
    assert (s._kh, s._kb, s._ku) == (2, 0, 1)


def test_staleness_decays_toward_running_mean():
    n = 8
    s = HardExampleSampler(n, 8, seed=0, in_flight_timeout=0, alpha=1.0, eps=0.0,
                           staleness_half_life=2.0)
    assert s._sweep_chunk == n  # one epoch is one step here: the sweep covers all
    losses = np.arange(1.0, n + 1)
    s.update(np.arange(n), losses)
    np.testing.assert_allclose(s.priorities, losses)  # fresh: no decay
    m = losses.mean()
    for _ in range(3):
        s.sample()
    s.update([0], [20.0])
    m = m + (20.0 - m) * 1 / 8  # reports so far 9 > n: weight b / n
    age = 3
    expected = m + (losses - m) * 2.0 ** (-age / 2.0)
    expected[0] = 20.0
    np.testing.assert_allclose(s.priorities, expected, rtol=1e-12)
    # disabled: stale priorities stay as reported
    s = HardExampleSampler(n, 8, seed=0, in_flight_timeout=0, alpha=1.0, eps=0.0,
                           staleness_half_life=None)
    s.update(np.arange(n), losses)
    for _ in range(3):
        s.sample()
    s.update([0], [20.0])
    np.testing.assert_allclose(s.priorities[1:], losses[1:])


def test_multilabel_losses_and_torch_inputs():
    rng = np.random.default_rng(0)
    loss2d = torch.from_numpy(rng.random((6, 5)).astype(np.float32))
    idx = torch.tensor([3, 1, 4, 1, 5, 9])
    a = HardExampleSampler(12, 3, seed=0)
    b = HardExampleSampler(12, 3, seed=0)
    c = HardExampleSampler(12, 3, seed=0)
    a.update(idx, loss2d)                       # [B, C] torch: reduced with "mean"
    b.update(idx.numpy(), loss2d.mean(1).numpy())
    c.update(idx, loss2d.numpy())               # [B, C] numpy
    assert a.digest() == c.digest()             # both reduced by the fused kernel
    np.testing.assert_allclose(a.priorities, b.priorities, rtol=1e-6)
    d = HardExampleSampler(12, 3, seed=0, loss_reduction="max")
    e = HardExampleSampler(12, 3, seed=0)
    d.update(idx, loss2d)
    e.update(idx, loss2d.amax(1))
    assert d.digest() == e.digest()
    # "balanced" (mean over positives and over negatives, equally) needs the targets
    y = torch.from_numpy(rng.random((6, 5)) < 0.3).float()
    f = HardExampleSampler(12, 3, seed=0, loss_reduction="balanced")
    g = HardExampleSampler(12, 3, seed=0)
    f.update(idx, loss2d, targets=y)
    pos = (loss2d * y).sum(1) / y.sum(1).clamp_min(1)
    neg = (loss2d * (1 - y)).sum(1) / (1 - y).sum(1).clamp_min(1)
    g.update(idx, torch.where(y.sum(1) > 0, 0.5 * (pos + neg), neg))
    np.testing.assert_allclose(f.priorities, g.priorities, rtol=1e-6)
    with pytest.raises(ValueError):
        HardExampleSampler(12, 3, loss_reduction="balanced").update(idx, loss2d)


def test_the_obvious_training_path():
    from longtail.losses import asymmetric_loss

    torch.manual_seed(0)
    model = torch.nn.Linear(4, 6)
    x, y = torch.randn(12, 4), (torch.rand(12, 6) < 0.3).float()
    s = HardExampleSampler(12, 4, seed=0, in_flight_timeout=0)
    for _ in range(3):
        b = s.sample()
        idx = torch.from_numpy(b.extras["index"])
        losses = asymmetric_loss(model(x[idx]), y[idx], reduction="sample")  # [B], grad
        (torch.from_numpy(b.extras["weight"]) * losses).mean().backward()
        s.update(idx, losses)  # requires_grad is fine: detached inside
        expected = (losses.detach().double().float().double().numpy() + s.eps) ** s.alpha
        last = dict(zip(idx.tolist(), expected))  # duplicates: the last write wins
        np.testing.assert_allclose(s.priorities[list(last)], list(last.values()))


def _bad_updates():
    ok_idx = np.array([0, 1, 2])
    return [
        (ok_idx, np.array([1.0, np.nan, 2.0])),
        (ok_idx, np.array([1.0, np.inf, 2.0])),
        (torch.tensor([0, 1, 2]), torch.tensor([1.0, float("-inf"), 0.0])),
        (np.array([0, 1, N]), np.ones(3)),
        (np.array([0, -1, 2]), np.ones(3)),
        (torch.tensor([0, 1, 99]), torch.ones(3)),
        (np.array([0.0, 1.0, 2.0]), np.ones(3)),      # float indices
        (ok_idx, np.ones(4)),                           # length mismatch
        (ok_idx[:, None], np.ones(3)),                  # 2-D indices
        (ok_idx, np.ones((3, 2, 2))),                   # 3-D losses
        (ok_idx, np.array(["a", "b", "c"])),            # not numbers
    ]


@pytest.mark.parametrize("case", range(len(_bad_updates())))
def test_bad_updates_raise_and_change_nothing(case):
    idx, losses = _bad_updates()[case]
    s = _primed(batch_size=8, in_flight_timeout=8)
    s.sample()
    before = s.digest()
    state = s.state_dict()
    with pytest.raises(ValueError):
        s.update(idx, losses)
    assert s.digest() == before
    after = s.state_dict()
    for key, value in state.items():
        assert np.array_equal(np.asarray(after[key]), np.asarray(value)), key


@pytest.mark.parametrize("kw", [
    dict(hard_fraction=1.5),
    dict(hard_fraction=-0.1),
    dict(hard_fraction=float("nan")),
    dict(hard_fraction=0.7, base_weights=BASE, base_fraction=0.5),
    dict(base_fraction=0.3),                                   # no base weights
    dict(base_weights=-BASE),
    dict(base_weights=np.zeros(N)),
    dict(base_weights=np.ones(N - 1)),
    dict(base_weights=np.where(np.arange(N) == 3, np.nan, 1.0)),
    dict(priority="focal"),
    dict(normalize="sum"),
    dict(alpha=-1.0),
    dict(beta=float("inf")),
    dict(in_flight_factor=2.0),
    dict(in_flight_timeout=-1),
    dict(selection_pressure=1.0),
    dict(history=0),
    dict(baseline=np.ones(3)),
    dict(staleness_half_life=0.0),
    dict(seed=-1),
])
def test_bad_construction(kw):
    with pytest.raises(ValueError):
        HardExampleSampler(N, 4, **kw)


def test_len_epochs_and_iteration():
    s = HardExampleSampler(10, 3, seed=0)
    assert len(s) == 4  # ceil(10 / 3)
    batches = list(s)
    assert len(batches) == 4 and all(len(b) == 3 for b in batches)
    assert s.step == 4
    s.set_epoch(1)
    assert len(list(s)) == 4 and s.step == 8
    r = HardExampleSampler(10, 3, seed=0, num_replicas=2, rank=1)
    assert len(r) == 2  # ceil(10 / 6)


def test_ranks_take_slices_of_one_global_batch():
    kw = dict(seed=9, hard_fraction=0.5, base_weights=BASE)
    ranks = [HardExampleSampler(N, 4, num_replicas=3, rank=r, **kw) for r in range(3)]
    single = HardExampleSampler(N, 12, num_replicas=1, rank=0, **kw)
    rng = np.random.default_rng(0)
    for _ in range(6):
        parts = [r.sample() for r in ranks]
        whole = single.sample()
        assert sum((list(p) for p in parts), []) == list(whole)
        np.testing.assert_array_equal(np.concatenate([p.extras["weight"] for p in parts]),
                                      whole.extras["weight"])
        idx, losses = whole.extras["index"], rng.random(12)
        for r in ranks:
            r.update(idx, losses, gather=False)  # what the all-gather hands every rank
        single.update(idx, losses)
    assert len({r.digest() for r in ranks} | {single.digest()}) == 1


def _run_steps(s, steps, lag=2, seed=0):
    """Draw ``steps`` batches, reporting each one ``lag`` draws later."""
    rng = np.random.default_rng(seed + s.step)
    out, pending = [], []
    for _ in range(steps):
        b = s.sample()
        out.append((list(b), b.extras["weight"].copy(), b.extras["prob"].copy()))
        pending.append(b)
        if len(pending) > lag:
            old = pending.pop(0)
            s.update(old.extras["index"], rng.random(len(old)).astype(np.float32))
    return out, pending


@pytest.mark.parametrize("priority", ["loss", "rank", "percentile"])
def test_resume_reproduces_next_batches(priority):
    kw = dict(seed=4, hard_fraction=0.6, base_weights=BASE, base_fraction=0.2,
              priority=priority, in_flight_timeout=3, history=16)
    a = HardExampleSampler(N, 5, **kw)
    _run_steps(a, 12)
    state = pickle.loads(pickle.dumps(a.state_dict()))
    ref, _ = _run_steps(a, 10, seed=1)
    b = HardExampleSampler(N, 5, **kw)
    b.load_state_dict(state)
    got, _ = _run_steps(b, 10, seed=1)
    for (i1, w1, q1), (i2, w2, q2) in zip(ref, got):
        assert i1 == i2
        np.testing.assert_array_equal(w1, w2)
        np.testing.assert_array_equal(q1, q2)
    assert a.digest() == b.digest()


def test_state_mismatch_raises():
    state = HardExampleSampler(N, 4).state_dict()
    with pytest.raises(ValueError):
        HardExampleSampler(N + 1, 4).load_state_dict(state)
    with pytest.raises(ValueError):
        HardExampleSampler(N, 4, priority="rank").load_state_dict(state)
    with pytest.raises(ValueError):
        HardExampleSampler(N, 4).load_state_dict({"sampler": "WeightedSampler"})
    # another global batch size keeps the priorities, drops the in-flight marks
    a = HardExampleSampler(N, 4, seed=0)
    a.update(np.arange(N), np.arange(N) / N)
    a.sample()
    b = HardExampleSampler(N, 8, seed=0)
    b.load_state_dict(a.state_dict())
    assert not b.in_flight.any()
    np.testing.assert_array_equal(b.priorities, a.state_dict()["prio"])


def test_state_dict_is_generated_from_the_records_and_versioned():
    from longtail.samplers.replay import state as codec

    s = HardExampleSampler(N, 4, seed=0, in_flight_timeout=3)
    s.update(np.arange(N), np.arange(N) / N)
    s.sample()
    st = s.state_dict()
    header = {"sampler", "seed", "epoch", "num_replicas", "rank", "yielded", "version", "n",
              "priority", "history", "global_batch"}
    fields = (set(codec.EXAMPLE.names) | set(codec.COUNTERS.names) | {"ring", "hist", "ref"}
              | {"ring_" + f for f in codec.SLOT.names})
    assert set(st) == header | fields
    assert st["version"] == codec.VERSION
    for name in codec.EXAMPLE.names:
        assert st[name].shape == (N,) and st[name].dtype == codec.EXAMPLE[name]
    assert all(type(st[k]) in (int, float) for k in codec.COUNTERS.names)
    assert codec.EXAMPLE.itemsize == 32     # one example, one cache line
    with pytest.raises(ValueError, match="saved with version=1"):
        HardExampleSampler(N, 4).load_state_dict(dict(st, version=1))
    with pytest.raises(ValueError, match="'version'"):
        HardExampleSampler(N, 4).load_state_dict({k: v for k, v in st.items() if k != "version"})
    with pytest.raises(ValueError, match="'bogus'"):
        HardExampleSampler(N, 4).load_state_dict(dict(st, bogus=0))
    legacy = {k: v for k, v in st.items() if k != "version"}
    legacy.update(stats=[1.0, 0.5, 30.0, 1.0], hstate=[0, 0, 0, 1, 0])
    with pytest.raises(ValueError, match="version-1"):
        HardExampleSampler(N, 4).load_state_dict(legacy)


def test_kernels_take_few_arguments_and_compile_once():
    import inspect

    from longtail.samplers.replay import _kernels as K

    for name in ("replay_draw", "replay_update", "tree_descend", "tree_propagate"):
        assert len(inspect.signature(getattr(K, name).py_func).parameters) <= 10, name
    # with and without a baseline, fresh or unpickled: one specialisation per kernel
    for s in (HardExampleSampler(N, 4, seed=0), HardExampleSampler(N, 4, baseline=BASE),
              pickle.loads(pickle.dumps(HardExampleSampler(N, 4, baseline=BASE)))):
        b = s.sample()
        s.update(b.extras["index"], np.ones(4))
    assert len(K.replay_draw.signatures) == 1
    assert len(K.replay_update.signatures) == 1


# --------------------------------------------------------------------------------------
# weights travel with their batch through DataLoader workers
# --------------------------------------------------------------------------------------
class _IndexDataset(Dataset):
    def __len__(self):
        return 40

    def __getitem__(self, i):
        return i


class _Recording(HardExampleSampler):
    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.drawn = []

    def sample(self):
        batch = super().sample()
        self.drawn.append({k: v.copy() for k, v in batch.extras.items()})
        return batch


def test_dataloader_workers_keep_weights_with_their_batch():
    sampler = _Recording(40, 4, seed=0, hard_fraction=0.75, beta=1.0)
    loader = DataLoader(with_extras(_IndexDataset()), batch_sampler=sampler,
                        collate_fn=collate_with_extras, num_workers=2, prefetch_factor=2)
    seen_weights = []
    for epoch in range(2):
        sampler.set_epoch(epoch)
        for k, (idx, extras) in enumerate(loader):
            # the sampler has run ahead by num_workers * prefetch_factor batches
            assert len(sampler.drawn) == min(epoch * 10 + k + 1 + 4, (epoch + 1) * 10)
            drawn = sampler.drawn[epoch * 10 + k]
            assert idx.tolist() == drawn["index"].tolist() == extras["index"].tolist()
            assert torch.equal(extras["weight"], torch.from_numpy(drawn["weight"]))
            assert torch.equal(extras["prob"], torch.from_numpy(drawn["prob"]))
            seen_weights.append(extras["weight"])
            sampler.update(extras["index"], (idx.float() + 1.0) ** 2 / (k + 1))
    # priorities moved, so batches drawn at different times carry different weights
    assert len({tuple(w.tolist()) for w in seen_weights}) > 10


def test_index_batch_and_collate_layouts():
    b = IndexBatch([3, 1], {"weight": np.array([0.5, 1.0], dtype=np.float32)})
    c = pickle.loads(pickle.dumps(b))
    assert isinstance(c, IndexBatch) and c == [3, 1]
    assert c.extras["weight"].tolist() == [0.5, 1.0]
    tuples = IndexBatch([(torch.tensor(1.0), 1), (torch.tensor(2.0), 0)], b.extras)
    x, y, extras = collate_with_extras(tuples)
    assert x.tolist() == [1.0, 2.0] and extras["weight"].tolist() == [0.5, 1.0]
    dicts = IndexBatch([{"x": 1}, {"x": 2}], b.extras)
    out = collate_with_extras(dicts)
    assert out["x"].tolist() == [1, 2] and out["extras"]["weight"].tolist() == [0.5, 1.0]
    plain, extras = collate_with_extras(IndexBatch([torch.zeros(2), torch.ones(2)], b.extras))
    assert plain.shape == (2, 2) and set(extras) == {"weight"}
    assert collate_with_extras([1, 2])[1] == {}  # no extras: same layout, empty dict

    class WithGetitems(_IndexDataset):
        def __getitems__(self, indices):
            return [i * 10 for i in indices]

    ds = with_extras(WithGetitems())
    got = ds.__getitems__(b)
    assert got == [30, 10] and got.extras is not b.extras and len(ds) == 40


# --------------------------------------------------------------------------------------
# DDP: two gloo processes keep identical trees
# --------------------------------------------------------------------------------------
def _ddp_worker(rank, init_file, out_dir):
    import torch.distributed as dist

    dist.init_process_group("gloo", init_method=f"file://{init_file}", rank=rank,
                            world_size=2)
    try:
        s = HardExampleSampler(60, 4, seed=11, hard_fraction=0.5, in_flight_timeout=5)
        assert (s.num_replicas, s.rank) == (2, rank)
        batches, pending = [], []
        for _ in range(15):
            b = s.sample()
            batches.append(list(b))
            pending.append(b)
            if len(pending) > 2:
                old = pending.pop(0)
                idx = torch.as_tensor(old.extras["index"])
                s.update(idx, (idx % 7).float() / 7 + 0.5 * rank)  # rank-dependent
        digests = [None, None]
        dist.all_gather_object(digests, s.digest())
        errors = []
        bad = torch.tensor([1.0, float("nan")]) if rank == 1 else torch.tensor([1.0, 2.0])
        try:
            s.update(torch.tensor([0, 1]), bad)
        except ValueError:
            errors.append("nan")
        try:
            s.update(torch.tensor([0, 1]), torch.ones(3) if rank == 0 else torch.ones(2))
        except ValueError:
            errors.append("shape")
        unchanged = s.digest() == digests[rank]
        with open(f"{out_dir}/rank{rank}.json", "w") as fh:
            json.dump({"batches": batches, "digests": digests, "errors": errors,
                       "unchanged": unchanged}, fh)
    finally:
        dist.destroy_process_group()


def test_ddp_two_processes_keep_identical_trees(tmp_path):
    import torch.multiprocessing as mp

    mp.spawn(_ddp_worker, args=(str(tmp_path / "init"), str(tmp_path)), nprocs=2, join=True)
    r0 = json.loads((tmp_path / "rank0.json").read_text())
    r1 = json.loads((tmp_path / "rank1.json").read_text())
    assert r0["digests"][0] == r0["digests"][1] == r1["digests"][0]
    assert r0["errors"] == r1["errors"] == ["nan", "shape"]
    assert r0["unchanged"] and r1["unchanged"]
    # the same run in one process, feeding the gathered updates in rank order
    ref = HardExampleSampler(60, 8, seed=11, hard_fraction=0.5, in_flight_timeout=5)
    pending = []
    for step in range(15):
        b = ref.sample()
        assert list(b) == r0["batches"][step] + r1["batches"][step]
        pending.append(b)
        if len(pending) > 2:
            idx = torch.as_tensor(pending.pop(0).extras["index"])
            loss = torch.cat([(idx[:4] % 7).float() / 7, (idx[4:] % 7).float() / 7 + 0.5])
            ref.update(idx, loss)
    assert ref.digest() == r0["digests"][0]
