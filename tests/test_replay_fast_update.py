"""``HardExampleSampler.update``'s fast path (1-D int64 indices and float losses, CPU
tensors or numpy arrays, one replica, no targets) leaves exactly the state the general
path leaves, and refuses bad values with the same errors."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from longtail import HardExampleSampler
from longtail.samplers.replay import feedback


def _pair(n=50, batch=8, seed=0):
    a = HardExampleSampler(n, batch, seed=seed)
    b = HardExampleSampler(n, batch, seed=seed)
    return a, b


@settings(max_examples=40, deadline=None)
@given(st.integers(0, 2**31), st.sampled_from(["torch32", "torch64", "np32", "np64"]),
       st.integers(1, 6))
def test_fast_and_general_paths_leave_the_same_state(seed, kind, steps):
    fast, slow = _pair(seed=seed % 1000)
    rng = np.random.default_rng(seed)
    for _ in range(steps):
        ba, bb = fast.sample(), slow.sample()
        assert list(ba) == list(bb)
        idx = ba.extras["index"]
        loss = rng.gamma(2.0, size=len(idx))
        dtype = np.float32 if kind.endswith("32") else np.float64
        if kind.startswith("torch"):
            i, l_ = torch.from_numpy(idx.copy()), torch.from_numpy(loss.astype(dtype))
        else:
            i, l_ = idx.copy(), loss.astype(dtype)
        assert feedback.host_pair(i, l_) is not None          # the fast path is taken
        fast.update(i, l_)
        slow.update(idx.tolist(), loss.astype(dtype).tolist())  # lists: the general path
    assert fast.digest() == slow.digest()


@pytest.mark.parametrize("indices, losses", [
    (torch.tensor([1, 2]), torch.tensor([1.0, 2.0], dtype=torch.float16)),   # dtype
    (torch.tensor([1, 2], dtype=torch.int32), torch.tensor([1.0, 2.0])),
    (torch.tensor([1, 2]), torch.tensor([[1.0], [2.0]])),                       # shape
    (torch.tensor([1, 2]), torch.tensor([1.0, 2.0, 3.0])),
    (np.array([1, 2]), torch.tensor([1.0, 2.0])),                              # mixed
    ([1, 2], np.array([1.0, 2.0])),
])
def test_anything_else_takes_the_general_path(indices, losses):
    assert feedback.host_pair(indices, losses) is None


@pytest.mark.parametrize("indices, losses, match", [
    (torch.tensor([1, 50]), torch.tensor([1.0, 2.0]), r"indices\[1\] = 50 is outside"),
    (torch.tensor([-1, 2]), torch.tensor([1.0, 2.0]), r"indices\[0\] = -1 is outside"),
    (torch.tensor([1, 2]), torch.tensor([1.0, float("nan")]), r"losses\[1\]"),
    (np.array([1, 2]), np.array([np.inf, 1.0]), r"losses\[0\]"),
    (np.array([1, 2]), np.array([1e300, 1.0]), r"finite \(as float32\)"),
])
def test_bad_values_raise_as_on_the_general_path_and_change_nothing(indices, losses, match):
    s = HardExampleSampler(50, 8, seed=0)
    s.sample()
    before = s.digest()
    with pytest.raises(ValueError, match=match):
        s.update(indices, losses)
    assert s.digest() == before
    # the general path says the same
    with pytest.raises(ValueError, match=match):
        s.update(np.asarray(indices).tolist(), np.asarray(losses).tolist())


def test_a_loss_that_needs_grad_is_detached():
    s = HardExampleSampler(50, 8, seed=0)
    b = s.sample()
    loss = torch.rand(len(b), requires_grad=True)
    s.update(torch.from_numpy(b.extras["index"]), loss * 2)
    assert s.step == 1
