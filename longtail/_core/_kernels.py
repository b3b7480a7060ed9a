"""Numba kernel behind :mod:`longtail._core.checks` (row order of a CSR whose offsets and id
range were already checked in Python)."""
from __future__ import annotations

from numba import njit

# codes returned by check_order
OK, UNSORTED, DUPLICATE = 0, 3, 4


@njit(cache=True)
def check_order(offsets, indices):
    """First row whose ids are not strictly increasing: ``(code, row, position)``.

    Only call it on checked offsets (start 0, non-decreasing, end ``len(indices)``).
    """
    n = offsets.shape[0] - 1
    for r in range(n):
        prev = -1
        for p in range(offsets[r], offsets[r + 1]):
            v = indices[p]
            if v < prev:
                return UNSORTED, r, p
            if v == prev:
                return DUPLICATE, r, p
            prev = v
    return OK, -1, -1
