"""Epoch prefetch: the next epoch is built in a background thread, and equals a fresh build."""
import copy
import os
import pickle
import threading
import time

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

from longtail._core.sampler import EpochSampler
from longtail.datasets import make_long_tail
from longtail.samplers import StratifiedBatchSampler
from longtail.samplers.split import _kernels as K
from longtail.samplers.split import _queue as Q


@pytest.fixture(scope="module")
def labels():
    return make_long_tail("small", seed=0, n_examples=700).labels


class SlowSampler(EpochSampler):
    """A permutation per epoch that takes ``delay`` seconds to build; records each build
    as ``(epoch, built on the main thread)``."""

    def __init__(self, n, delay, fail_off_main=False, as_list=False, **kw):
        super().__init__(**kw)
        self.n, self.delay, self.fail_off_main = n, delay, fail_off_main
        self.as_list = as_list   # a list order is handed out by a picklable list iterator
        self.calls = []

    def _signature(self):
        return {"n": self.n}

    def _global_order(self, epoch):
        main = threading.current_thread() is threading.main_thread()
        self.calls.append((epoch, main))
        time.sleep(self.delay)
        if self.fail_off_main and not main:
            raise MemoryError("prefetch failed")
        order = np.random.default_rng([self.seed, epoch]).permutation(self.n)
        return order.tolist() if self.as_list else order


def reference(n, seed, epoch, num_replicas=1, rank=0):
    """Brute force: the permutation of the epoch, padded by wrap-around, rank's slice."""
    order = np.random.default_rng([seed, epoch]).permutation(n)
    size = -(-n // num_replicas) * num_replicas
    return np.resize(order, size)[rank::num_replicas].tolist()


def wait_prefetch(s):
    assert s._pending is not None
    s._pending[2].result(timeout=30)


def test_stratified_prefetch_is_on_by_default_and_the_kernels_release_the_gil(labels):
    assert StratifiedBatchSampler(labels, batch_size=64).prefetch is True
    assert StratifiedBatchSampler(labels, batch_size=64, prefetch=False).prefetch is False
    for kernel in (K.stratified_batches, K.stratify_segment, K.choose_balanced,
                   Q.queue_pop, Q.queue_refile):
        assert kernel.targetoptions.get("nogil") is True, kernel


def test_prefetch_must_be_a_bool(labels):
    with pytest.raises(TypeError, match="prefetch"):
        StratifiedBatchSampler(labels, batch_size=64, prefetch=1)


@settings(max_examples=8, deadline=None)
@given(seed=st.integers(0, 2**64 - 1), first=st.integers(0, 5),
       replicas=st.sampled_from([1, 2]))
def test_prefetched_epochs_equal_fresh_ones(labels, seed, first, replicas):
    for rank in range(replicas):
        s = StratifiedBatchSampler(labels, batch_size=64, seed=seed,
                                   num_replicas=replicas, rank=rank)
        for epoch in range(first, first + 3):
            s.set_epoch(epoch)
            got = list(s)
            assert s._pending is not None and s._pending[1] == epoch + 1
            if epoch > first:
                assert s._cached_epoch == epoch
            fresh = StratifiedBatchSampler(labels, batch_size=64, seed=seed,
                                           num_replicas=replicas, rank=rank, prefetch=False)
            fresh.set_epoch(epoch)
            assert got == list(fresh)
            assert fresh._pending is None


@settings(max_examples=10, deadline=None)
@given(seed=st.integers(0, 2**32), n=st.integers(1, 40), replicas=st.sampled_from([1, 2]))
def test_slow_sampler_prefetch_matches_brute_force(seed, n, replicas):
    for rank in range(replicas):
        s = SlowSampler(n, 0.0, seed=seed, num_replicas=replicas, rank=rank, prefetch=True)
        for epoch in range(3):
            s.set_epoch(epoch)
            assert list(s) == reference(n, seed, epoch, replicas, rank)
        # epochs 1 and 2 came from the prefetch thread, epoch 0 from the main thread
        assert sorted(s.calls)[:3] == [(0, True), (1, False), (2, False)]


def test_next_epoch_is_served_from_the_finished_prefetch():
    delay = 0.5
    s = SlowSampler(100, delay, seed=3, prefetch=True)
    assert list(s) == reference(100, 3, 0)
    wait_prefetch(s)
    s.set_epoch(1)
    t = time.perf_counter()
    first = next(iter(s))
    assert time.perf_counter() - t < delay / 2
    assert first == reference(100, 3, 1)[0]
    assert s.calls[:2] == [(0, True), (1, False)]
    assert (1, True) not in s.calls


def test_without_prefetch_every_epoch_is_built_on_the_main_thread():
    s = SlowSampler(20, 0.0, seed=3)
    for epoch in range(3):
        s.set_epoch(epoch)
        assert list(s) == reference(20, 3, epoch)
    assert s._pending is None
    assert s.calls == [(0, True), (1, True), (2, True)]


def test_set_epoch_jump_discards_the_prefetch():
    s = SlowSampler(30, 0.0, seed=5, prefetch=True)
    list(s)
    wait_prefetch(s)
    s.set_epoch(4)
    assert list(s) == reference(30, 5, 4)
    assert (4, True) in s.calls and (1, False) in s.calls
    assert s._pending[1] == 5                  # the epoch-1 prefetch is gone
    s.set_epoch(1)                             # built again, synchronously
    assert list(s) == reference(30, 5, 1)
    assert (1, True) in s.calls


def test_a_prefetch_from_another_process_or_that_failed_is_rebuilt():
    s = SlowSampler(30, 0.0, seed=5, prefetch=True)
    list(s)
    wait_prefetch(s)
    pid, epoch, future = s._pending
    s._pending = (pid + 1, epoch, future)       # as after a fork
    s.set_epoch(1)
    assert list(s) == reference(30, 5, 1)
    assert (1, True) in s.calls
    f = SlowSampler(30, 0.0, seed=5, prefetch=True, fail_off_main=True)
    list(f)
    with pytest.raises(MemoryError):
        wait_prefetch(f)
    f.set_epoch(1)
    assert list(f) == reference(30, 5, 1)
    assert (1, True) in f.calls


def test_state_dict_and_pickle_with_a_prefetch_in_flight():
    s = SlowSampler(50, 0.3, seed=7, prefetch=True, as_list=True)
    it = iter(s)
    head = [next(it) for _ in range(20)]
    assert s._pending is not None and not s._pending[2].done()   # still building
    state = s.state_dict()
    assert state["yielded"] == 20 and state["epoch"] == 0
    for other in (pickle.loads(pickle.dumps(s)), copy.deepcopy(s)):
        assert other._pending is None and other.state_dict() == state
        assert list(other) == reference(50, 7, 0)      # a new iter() restarts the epoch
        other.set_epoch(1)
        assert list(other) == reference(50, 7, 1)
    resumed = SlowSampler(50, 0.0, seed=7, prefetch=True, as_list=True)
    resumed.load_state_dict(state)
    assert head + list(resumed) == reference(50, 7, 0)
    assert head + list(it) == reference(50, 7, 0)
    s.set_epoch(1)
    assert list(s) == reference(50, 7, 1)
    assert s.calls[:2] == [(0, True), (1, False)]


def test_stratified_state_dict_and_pickle_with_a_prefetch_in_flight(labels):
    s = StratifiedBatchSampler(labels, batch_size=64, seed=2)
    it = iter(s)
    head = [next(it) for _ in range(3)]
    state = s.state_dict()
    clone = pickle.loads(pickle.dumps(s))
    assert clone._pending is None and s._pending is not None
    resumed = StratifiedBatchSampler(labels, batch_size=64, seed=2)
    resumed.load_state_dict(state)
    full = head + list(it)
    assert head + list(resumed) == full and list(clone) == full
    s.set_epoch(1)
    clone.set_epoch(1)
    assert list(s) == list(clone)
    assert os.getpid() == s._pending[0]


@pytest.mark.parametrize("drop_last", [False, True])
@pytest.mark.parametrize("replicas", [1, 2, 3])
def test_stratified_len_needs_no_epoch_build(labels, drop_last, replicas):
    for rank in range(replicas):
        s = StratifiedBatchSampler(labels, batch_size=64, drop_last=drop_last,
                                   num_replicas=replicas, rank=rank, prefetch=False)
        n = len(s)
        assert s._cached_epoch is None      # the length came without building the epoch
        assert n == len(list(s))
