"""Epoch prefetch for WeightedSampler, RepeatFactorSampler and ClassAwareSampler (issue 14).

The next epoch is built in a background thread (``prefetch=True``, the default) by kernels
that release the GIL; prefetched epochs equal those built on the spot, across ranks and a
mid-epoch resume, and the epochs themselves are bit-identical to those of the samplers
before prefetch existed (fingerprints recorded from that implementation).
"""
import copy
import hashlib
import threading
import warnings

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

import longtail._core.sampler as core
from longtail.datasets import LabelMatrix, make_long_tail
from longtail.samplers import ClassAwareSampler, RepeatFactorSampler, WeightedSampler
from longtail.samplers.balanced import _kernels as BK

_MASK = (1 << 64) - 1


@pytest.fixture(scope="module")
def labels():
    return make_long_tail("small", seed=0, n_examples=700).labels


def _make(kind, labels, **kw):
    """One sampler of each kind (and layout) on the module's labels."""
    n = len(labels)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        if kind == "weighted":
            return WeightedSampler(np.arange(n, dtype=float) % 13, num_samples=900, **kw)
        if kind == "weighted_norep":
            return WeightedSampler(np.arange(n, dtype=float) % 13, num_samples=600,
                                   replacement=False, **kw)
        if kind == "repeat":
            return RepeatFactorSampler(labels, threshold=0.3, **kw)
        if kind == "repeat_factors":
            return RepeatFactorSampler.from_factors(np.linspace(0.2, 2.5, n), **kw)
        if kind == "class_aware":
            return ClassAwareSampler(labels, num_samples=1001, **kw)
        if kind == "class_aware_batches":
            return ClassAwareSampler(labels, num_samples=1001, batch_size=32,
                                     return_labels=True, **kw)
        raise AssertionError(kind)


KINDS = ["weighted", "weighted_norep", "repeat", "repeat_factors", "class_aware",
         "class_aware_batches"]


def _plain(items):
    """Items as comparable values: ints, or (indices, sampled labels) per batch."""
    return [(list(b), {k: v.tolist() for k, v in b.extras.items()})
            if isinstance(b, list) else b for b in items]


# ---------------------------------------------------------------------------- the option
@pytest.mark.parametrize("kind", KINDS)
def test_prefetch_is_on_by_default_and_checked(labels, kind):
    assert _make(kind, labels).prefetch is True
    assert _make(kind, labels, prefetch=False).prefetch is False
    with pytest.raises(TypeError, match="prefetch"):
        _make(kind, labels, prefetch=1)


def test_the_epoch_kernels_release_the_gil():
    for kernel in (BK.build_alias, BK.interleave_alias, BK.draw_alias, BK.radix_argsort,
                   BK.draw_without_replacement, BK.repeat_epoch, BK.class_aware_epoch):
        assert kernel.targetoptions.get("nogil") is True, kernel


@pytest.mark.parametrize("kind", KINDS)
def test_the_next_epoch_is_built_off_the_main_thread_and_then_used(labels, kind):
    s = _make(kind, labels, seed=3)
    first = _plain(s)
    assert s._pending is not None and s._pending[1] == 1
    shard = s._pending[2].result(timeout=60)
    s.set_epoch(1)
    second = _plain(s)
    assert s._cached_shard is shard                  # epoch 1 is the prefetched one
    fresh = _make(kind, labels, seed=3, prefetch=False)
    assert _plain(fresh) == first
    fresh.set_epoch(1)
    assert _plain(fresh) == second and fresh._pending is None


# ---------------------------------------------------------------------------- same epochs
@settings(max_examples=6, deadline=None)
@given(seed=st.integers(0, 2**64 - 1), first=st.integers(0, 4),
       kind=st.sampled_from(KINDS), replicas=st.sampled_from([1, 2]))
def test_prefetched_epochs_equal_fresh_ones(labels, seed, first, kind, replicas):
    for rank in range(replicas):
        s = _make(kind, labels, seed=seed, num_replicas=replicas, rank=rank)
        fresh = _make(kind, labels, seed=seed, num_replicas=replicas, rank=rank,
                      prefetch=False)
        for epoch in range(first, first + 3):
            s.set_epoch(epoch)
            fresh.set_epoch(epoch)
            assert len(s) == len(fresh)
            assert _plain(s) == _plain(fresh)
            if epoch > first:
                assert s._cached_epoch == epoch


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("replicas", [1, 2])
def test_resume_mid_epoch_with_a_prefetch_in_flight(labels, kind, replicas):
    for rank in range(replicas):
        kw = dict(seed=11, num_replicas=replicas, rank=rank)
        reference = _make(kind, labels, prefetch=False, **kw)
        reference.set_epoch(2)
        epoch2 = _plain(reference)
        reference.set_epoch(3)
        epoch3 = _plain(reference)

        s = _make(kind, labels, **kw)
        s.set_epoch(2)
        it = iter(s)
        k = len(s) // 3
        head = _plain(next(it) for _ in range(k))
        assert s._pending is not None and s._pending[1] == 3
        state = s.state_dict()
        assert state["epoch"] == 2 and state["yielded"] == k

        resumed = _make(kind, labels, **kw)
        resumed.load_state_dict(state)
        assert head + _plain(resumed) == epoch2
        resumed.set_epoch(3)                           # from the resumed one's prefetch
        assert _plain(resumed) == epoch3
        assert head + _plain(it) == epoch2
        s.set_epoch(3)
        assert _plain(s) == epoch3


def test_concurrent_builds_share_one_csc_and_agree(labels):
    s = _make("class_aware_batches", labels, seed=5, prefetch=False)
    want = [s._global_order(e) for e in range(4)]
    clone = copy.deepcopy(s)                         # its label matrix has no CSC yet
    assert clone.labels._transpose is None
    got = [None] * 4
    threads = [threading.Thread(target=lambda e=e: got.__setitem__(e, clone._global_order(e)))
               for e in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    for e in range(4):
        np.testing.assert_array_equal(got[e], want[e])
    assert clone.labels._transpose is not None


@pytest.mark.parametrize("kind", KINDS)
def test_an_epoch_build_does_not_change_the_sampler(labels, kind):
    s = _make(kind, labels, seed=2, prefetch=False)
    before = {k: (v, v.copy() if isinstance(v, np.ndarray) else None)
              for k, v in vars(s).items()}
    s._global_order(0)
    s._global_order(7)
    after = vars(s)
    assert after.keys() == before.keys()
    for k, (v, arr) in before.items():
        assert after[k] is v, k
        if arr is not None:
            np.testing.assert_array_equal(after[k], arr)


# ---------------------------------------------------------------------------- unchanged
def _fingerprint(s, epochs=(0, 1, 5)):
    """sha256 of what the sampler hands out over ``epochs`` (items, batches, extras)."""
    h = hashlib.sha256()
    for e in epochs:
        s.set_epoch(e)
        n = 0
        for item in s:
            n += 1
            if isinstance(item, list):
                h.update(np.asarray(list(item), dtype=np.int64).tobytes())
                h.update(b"|")
                assert type(item).__name__ == "IndexBatch"
                for key in sorted(item.extras):
                    a = item.extras[key]
                    assert a.dtype == np.int64 and a.shape == (len(item),)
                    h.update(key.encode())
                    h.update(a.tobytes())
                h.update(b";")
            else:
                assert type(item) is int
                h.update(int(item).to_bytes(8, "little", signed=True))
        assert n == len(s)
        h.update(b"#%d" % n)
    return h.hexdigest()[:16]


# recorded from the implementation before prefetch (and before class_aware_epoch wrote
# the batch layout itself): the epochs must not change. The class-aware ones were
# re-recorded when a label's cycle became one Fisher-Yates step per draw (issue 14: the
# same distribution, other draws; test_class_aware_kernel_matches_brute_force pins it)
RECORDED = {
    "ca_flat": ({}, "dd0621cc9a9aa693"),
    "ca_b32_lab": (dict(num_samples=3000, return_labels=True, batch_size=32),
                   "01824836e256857e"),
    "ca_b32": (dict(num_samples=3000, batch_size=32), "b4c9b29b5fe3c4d5"),
    "ca_b32_lab_r2": (dict(num_samples=3001, return_labels=True, batch_size=32,
                           num_replicas=2, rank=1), "a15718bef8a80fa9"),
    "ca_b7_drop_r2": (dict(num_samples=3001, batch_size=7, num_replicas=2, rank=0,
                           drop_last=True), "a1a6198bb387d2b5"),
    "ca_b7_lab_r3": (dict(num_samples=2999, return_labels=True, batch_size=7,
                          num_replicas=3, rank=2), "80475e4747750b26"),
    "ca_cw_b16_k3": (dict(num_samples=1000, class_weights="linspace", return_labels=True,
                          batch_size=16, samples_per_label=3), "4e00279295d6e870"),
    "ca_b1_lab": (dict(num_samples=200, return_labels=True, batch_size=1),
                  "bdec52251cf586d9"),
}


@pytest.mark.parametrize("chunk", [core.CHUNK, 5])
@pytest.mark.parametrize("prefetch", [True, False])
def test_epochs_are_those_recorded_before_the_change(labels, monkeypatch, prefetch, chunk):
    monkeypatch.setattr(core, "CHUNK", chunk)        # also hand out in many small chunks
    got, want = {}, {}
    for name, (kw, digest) in RECORDED.items():
        kw = dict(kw)
        if kw.get("class_weights") == "linspace":
            kw["class_weights"] = np.linspace(0, 2, labels.n_labels)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            s = ClassAwareSampler(labels, seed=7, prefetch=prefetch, **kw)
        got[name], want[name] = _fingerprint(s), digest
    w = np.arange(700, dtype=float) % 13
    got["w_rep"] = _fingerprint(WeightedSampler(w, num_samples=900, seed=3, num_replicas=2,
                                                rank=1, prefetch=prefetch))
    got["w_norep"] = _fingerprint(WeightedSampler(w, num_samples=600, replacement=False,
                                                  seed=3, prefetch=prefetch))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        got["rf"] = _fingerprint(RepeatFactorSampler(labels, threshold=0.3, seed=5,
                                                     num_replicas=2, rank=0,
                                                     prefetch=prefetch))
    want.update(w_rep="a006fe9a3d0ea363", w_norep="7c3a963f5c1c449a", rf="4905bb6d8b6af917")
    assert got == want


# ---------------------------------------------------------------------------- the kernel
class _Rng:
    """xoshiro256** seeded by splitmix64, in Python ints (longtail._core.rng by hand)."""

    def __init__(self, seed):
        z, self.s = seed, []
        for _ in range(4):
            z = (z + 0x9E3779B97F4A7C15) & _MASK
            x = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & _MASK
            x = ((x ^ (x >> 27)) * 0x94D049BB133111EB) & _MASK
            self.s.append(x ^ (x >> 31))

    def next(self):
        s = self.s
        rotl = lambda x, k: ((x << k) | (x >> (64 - k))) & _MASK  # noqa: E731
        result = (rotl((s[1] * 5) & _MASK, 7) * 9) & _MASK
        t = (s[1] << 17) & _MASK
        s[2] ^= s[0]
        s[3] ^= s[1]
        s[1] ^= s[2]
        s[0] ^= s[3]
        s[2] ^= t
        s[3] = rotl(s[3], 45)
        return result

    def uniform(self):
        return float(self.next() >> 11) * (1.0 / 9007199254740992.0)

    def below(self, n):
        return int(self.uniform() * n)

    def shuffle(self, a):
        for i in range(len(a) - 1, 0, -1):
            j = self.below(i + 1)
            a[i], a[j] = a[j], a[i]


def _class_aware_reference(rows, classes, weights, m, per_label, seed):
    """mmdetection's class-aware sampling, one draw at a time: (examples, labels)."""
    rng = _Rng(seed)
    per = {c: [i for i, r in enumerate(rows) if c in r] for c in classes}
    cycle, ci, started = list(classes), 0, {}
    rng.shuffle(cycle)
    if weights is not None:
        prob, alias = BK.build_alias(np.asarray(weights, dtype=np.float64))
    out = []
    while len(out) < m:
        if weights is not None:
            k = rng.below(len(classes))
            if rng.uniform() >= prob[k]:
                k = int(alias[k])
            c = classes[k]
        else:
            if ci == len(cycle):
                rng.shuffle(cycle)
                ci = 0
            c, ci = cycle[ci], ci + 1
        if c not in started:
            started[c] = 0                    # per[c]: the label's examples, ascending
        for _ in range(per_label):
            if len(out) >= m:
                break
            if started[c] == len(per[c]):
                started[c] = 0                # a new cycle
            p = started[c]                    # one Fisher-Yates step per draw
            j = p + rng.below(len(per[c]) - p)
            per[c][p], per[c][j] = per[c][j], per[c][p]
            out.append((per[c][p], c))
            started[c] += 1
    return out


@settings(max_examples=25, deadline=None)
@given(rows=st.lists(st.lists(st.integers(0, 5), max_size=4, unique=True).map(sorted),
                     min_size=1, max_size=12),
       m=st.integers(1, 40), per_label=st.integers(1, 3), extra=st.integers(-10, 10),
       weighted=st.booleans(), width=st.sampled_from([1, 2]),
       seed=st.integers(0, 2**64 - 1))
def test_class_aware_kernel_matches_brute_force(rows, m, per_label, extra, weighted, width,
                                               seed):
    y = LabelMatrix.from_lists(rows, n_labels=6)
    classes = np.flatnonzero(y.label_counts() > 0).astype(np.int64)
    if classes.size == 0:
        return
    weights = np.arange(1.0, classes.size + 1) if weighted else None
    if weighted:
        prob, alias = BK.build_alias(weights)
    else:
        prob, alias = np.ones(1), np.zeros(1, dtype=np.int64)
    n_rows = max(0, m + extra)                  # a prefix of the epoch, or it padded
    out = np.full((n_rows, width), 99, dtype=np.int64)
    t = y.transpose()
    BK.class_aware_epoch(t.offsets, t.indices, classes, prob, alias, weighted, m,
                         per_label, np.uint64(seed), out)
    want = _class_aware_reference(rows, classes.tolist(), weights, min(m, n_rows),
                                  per_label, seed)
    want = [pair[:width] for pair in want] + [(-1,) * width] * (n_rows - min(m, n_rows))
    assert [tuple(r) for r in out.tolist()] == want
