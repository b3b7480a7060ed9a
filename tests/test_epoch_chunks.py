"""EpochSampler hands an epoch out in growing chunks (FIRST_CHUNK, doubling up to CHUNK):
the items, their count for ``state_dict`` and the resume point are the same whatever the
chunk sizes."""
from __future__ import annotations

import itertools

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import longtail
from longtail._core import sampler as core


def _sampler():
    return longtail.WeightedSampler(np.linspace(1.0, 2.0, 100), num_samples=100,
                                    replacement=False, seed=3, prefetch=False)


def test_the_first_chunk_is_small_and_chunks_double(monkeypatch):
    monkeypatch.setattr(core, "FIRST_CHUNK", 3)
    monkeypatch.setattr(core, "CHUNK", 16)
    s = _sampler()
    it = iter(s)
    sizes = []
    for _ in range(100):
        next(it)
        if s._chunk_len and (not sizes or s._chunk_base != sizes[-1][0]):
            sizes.append((s._chunk_base, s._chunk_len))
    assert [n for _, n in sizes] == [3, 6, 12, 16, 16, 16, 16, 15]
    assert [b for b, _ in sizes] == [0, 3, 9, 21, 37, 53, 69, 85]


@settings(max_examples=30, deadline=None)
@given(first=st.integers(1, 20), chunk=st.integers(1, 40), stop=st.integers(0, 100))
def test_items_and_resume_do_not_depend_on_the_chunks(first, chunk, stop):
    want = list(_sampler())
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(core, "FIRST_CHUNK", first)
        mp.setattr(core, "CHUNK", chunk)
        s = _sampler()
        it = iter(s)
        head = list(itertools.islice(it, stop))
        state = s.state_dict()
        assert state["yielded"] == stop
        again = _sampler()
        again.load_state_dict(state)
        tail = list(again)
    assert head + tail == want
