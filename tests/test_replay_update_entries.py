"""HardExampleSampler.update reduces what it is given: [B, C] entries with its own
``loss_reduction`` (and ``targets``), [B] losses as they are; the training loss stays the
caller's."""
import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from longtail.losses import asymmetric_loss, per_example_loss
from longtail.samplers.replay.sampler import HardExampleSampler

REDUCTIONS = ["mean", "sum", "max", "balanced"]
N = 20


def _sampler(reduction):
    # priority = the loss itself (alpha 1, eps 0), no staleness: priorities are readable
    return HardExampleSampler(N, 4, seed=0, loss_reduction=reduction, alpha=1.0, eps=0.0,
                              staleness_half_life=None, in_flight_timeout=0)


def _numpy_reduction(entries, targets, reduction):
    """Plain per-row loops: the reference for per_example_loss."""
    out = []
    for row, t in zip(entries, targets):
        if reduction == "mean":
            out.append(row.mean())
        elif reduction == "sum":
            out.append(row.sum())
        elif reduction == "max":
            out.append(row.max())
        else:
            pos, neg = row[t == 1], row[t == 0]
            if len(pos) and len(neg):
                out.append(0.5 * (pos.mean() + neg.mean()))
            else:
                out.append(pos.mean() if len(pos) else neg.mean())
    return np.array(out)


@st.composite
def batches(draw):
    b = draw(st.integers(1, 8))
    c = draw(st.integers(1, 6))
    entries = draw(st.lists(st.floats(0, 50, allow_nan=False, width=32), min_size=b * c,
                            max_size=b * c))
    targets = draw(st.lists(st.integers(0, 1), min_size=b * c, max_size=b * c))
    idx = draw(st.lists(st.integers(0, N - 1), min_size=b, max_size=b, unique=True))
    return (np.array(idx), np.array(entries, np.float32).reshape(b, c),
            np.array(targets, np.float32).reshape(b, c))


@settings(max_examples=60, deadline=None)
@given(data=batches(), reduction=st.sampled_from(REDUCTIONS),
       as_tensor=st.booleans())
def test_entries_equal_per_example_loss_and_numpy_reference(data, reduction, as_tensor):
    idx, entries, targets = data
    a, b, c = _sampler(reduction), _sampler(reduction), _sampler(reduction)
    e_in = torch.from_numpy(entries) if as_tensor else entries
    t_in = torch.from_numpy(targets) if as_tensor else targets
    a.update(idx, e_in, targets=t_in)
    reduced = per_example_loss(torch.from_numpy(entries), torch.from_numpy(targets),
                               reduction=a.loss_reduction)
    b.update(idx, reduced)
    # the CPU path reduces in one fused kernel (float64 sums, rounded once): equal to
    # torch's float32 reduction up to the last bit
    np.testing.assert_allclose(a.priorities, b.priorities, rtol=1e-6, atol=1e-6)
    # against plain loops (float64 reference, applied as float32 by the sampler)
    c.update(idx, _numpy_reduction(entries.astype(np.float64), targets, reduction))
    np.testing.assert_allclose(a.priorities, c.priorities, rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(a.priorities[idx],
                               _numpy_reduction(entries.astype(np.float64), targets,
                                                reduction), rtol=1e-6, atol=1e-5)


def test_balanced_differs_from_mean_on_dense_negatives():
    # one positive that is wrong, many easy negatives: "mean" hides it, "balanced" not
    entries = torch.tensor([[5.0] + [0.01] * 99, [0.2] * 100])
    targets = torch.zeros(2, 100)
    targets[0, 0] = 1
    mean_s, bal_s = _sampler("mean"), _sampler("balanced")
    mean_s.update([0, 1], entries, targets=targets)
    bal_s.update([0, 1], entries, targets=targets)
    assert mean_s.priorities[0] < mean_s.priorities[1]
    assert bal_s.priorities[0] > bal_s.priorities[1]


def test_the_training_loss_stays_the_callers():
    torch.manual_seed(0)
    model = torch.nn.Linear(4, 3)
    x, y = torch.randn(4, 4), (torch.rand(4, 3) < 0.4).float()
    entries = asymmetric_loss(model(x), y, reduction="none")
    s = _sampler("balanced")
    s.update(torch.arange(4), entries, targets=y)   # not detached: the sampler detaches
    assert entries.requires_grad and entries.grad_fn is not None
    entries.mean().backward()
    expected = torch.autograd.grad(asymmetric_loss(model(x), y, reduction="mean"),
                                   model.weight)[0]
    torch.testing.assert_close(model.weight.grad, expected)


def test_bad_input_changes_nothing():
    s = _sampler("balanced")
    before = s.digest()
    entries = torch.rand(3, 5)
    with pytest.raises(ValueError, match="needs targets"):
        s.update([0, 1, 2], entries)
    with pytest.raises(ValueError, match="shape"):
        s.update([0, 1, 2], entries, targets=torch.ones(3, 4))
    with pytest.raises(ValueError, match="only used with"):
        s.update([0, 1, 2], entries.mean(1), targets=torch.ones(3, 5))
    with pytest.raises(ValueError, match=r"\[B\] or \[B, C\]"):
        s.update([0, 1, 2], torch.rand(3, 5, 2))
    assert s.digest() == before
