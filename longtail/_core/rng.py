"""Explicitly seeded random numbers for Numba kernels.

Numba's own ``np.random`` state is global and per thread, so kernels never use it: the
Python API derives a 64-bit seed from ``(seed, epoch, rank, stream, ...)`` with
:func:`derive_seed` and passes it in; the kernel keeps a xoshiro256** state in a
``uint64[4]`` array made by :func:`rng_init`. Same seed, same numbers, on every platform,
whatever the number of DataLoader workers.
"""
from __future__ import annotations

import enum
from typing import Any, Union

import numpy as np
from numba import njit, uint64

from longtail._core.checks import is_int

_MASK64 = (1 << 64) - 1


class Stream(enum.IntEnum):
    """Named stream ids: the key that makes each consumer's random numbers independent of
    every other's for the same user seed (``derive_seed(seed, [epoch,] Stream.X)``).

    The values are part of the reproducibility contract (changing one changes every
    result that used it); add a new member for a new consumer, never reuse one.
    """

    SYNTH_LABELS = 0          # make_long_tail: label frequencies, topics, rows
    SYNTH_ROWS = 1            # make_long_tail: per-row kernel draws
    SYNTH_FEATURES = 2        # make_long_tail: features
    STRATIFY = 0x5757         # iterative_stratification kernels
    REPORT_PAIRS = 0x9A1      # stratification_report: pair sampling
    REPORT_PAIR_KEYS = 0x9A2  # stratification_report: pair occurrence kernel
    COMPAT_ORDER = 0x4D       # iterstrat-compatible Mersenne Twister order
    STRATIFIED_BATCHES = 0xBA7C   # StratifiedBatchSampler
    STRATIFIED_GROUPS = 0xBA7D    # StratifiedBatchSampler: groups of batches
    SUMTREE = 0x5EED7EE       # SumTree.sample
    HARD_DRAW = 0x48415244    # HardExampleSampler draws ("HARD")


def derive_seed(seed: int, *keys: int) -> int:
    """Derive an independent 64-bit seed from ``seed`` and integer keys (epoch, rank...).

    Uses :class:`numpy.random.SeedSequence`, so nearby inputs give unrelated streams.

    Example
    -------
    >>> derive_seed(0, 1) != derive_seed(0, 2)
    True
    """
    entropy = [int(seed) & _MASK64] + [int(k) & _MASK64 for k in keys]
    state = np.random.SeedSequence(entropy).generate_state(2, dtype=np.uint32)
    return int(state[0]) | (int(state[1]) << 32)


def kernel_seed(seed: int, *keys: int) -> np.uint64:
    """:func:`derive_seed` as ``np.uint64``: the one type kernels are compiled for.

    A plain Python int above 2**63 - 1 would not fit Numba's int64 (``OverflowError``
    once an int64 specialization exists), and mixing int64/uint64 compiles twice.

    Example
    -------
    >>> type(kernel_seed(0, 1)).__name__
    'uint64'
    """
    return np.uint64(derive_seed(seed, *keys))


@njit(cache=True, inline="always")
def _rotl(x, k):
    return (x << uint64(k)) | (x >> uint64(64 - k))


@njit(cache=True)
def rng_init(seed):
    """A xoshiro256** state (``uint64[4]``) from a 64-bit integer seed, via splitmix64."""
    state = np.empty(4, dtype=np.uint64)
    z = uint64(seed)
    for i in range(4):
        z = z + uint64(0x9E3779B97F4A7C15)
        x = z
        x = (x ^ (x >> uint64(30))) * uint64(0xBF58476D1CE4E5B9)
        x = (x ^ (x >> uint64(27))) * uint64(0x94D049BB133111EB)
        state[i] = x ^ (x >> uint64(31))
    return state


@njit(cache=True, inline="always")
def rng_next(state):
    """Next 64 random bits (xoshiro256**)."""
    result = _rotl(state[1] * uint64(5), 7) * uint64(9)
    t = state[1] << uint64(17)
    state[2] ^= state[0]
    state[3] ^= state[1]
    state[1] ^= state[2]
    state[0] ^= state[3]
    state[2] ^= t
    state[3] = _rotl(state[3], 45)
    return result


@njit(cache=True, inline="always")
def rng_uniform(state):
    """A float64 uniform in [0, 1) with 53 random bits."""
    return float(rng_next(state) >> uint64(11)) * (1.0 / 9007199254740992.0)


@njit(cache=True, inline="always")
def rng_below(state, n):
    """A uniform integer in [0, n) for 0 < n < 2**53 (no modulo bias worth measuring)."""
    return np.int64(rng_uniform(state) * n)


@njit(cache=True)
def rng_shuffle(state, a):
    """Fisher-Yates shuffle of a 1-D array in place."""
    for i in range(a.shape[0] - 1, 0, -1):
        j = rng_below(state, i + 1)
        tmp = a[i]
        a[i] = a[j]
        a[j] = tmp


# ---------------------------------------------------------------------------- user seeds
#: what a user may pass as a seed: an integer, or a NumPy random state to draw one from
SeedLike = Union[int, np.integer, np.random.RandomState, np.random.Generator]
_DRAW_HIGH = 2**63 - 1


def check_seed_like(seed: Any, name: str = "seed", *, allow_none: bool = False) -> Any:
    """Validate a seed argument without drawing from it, and return it unchanged.

    Accepted: an integer in ``[0, 2**64)``, a NumPy ``RandomState`` or ``Generator``, and
    ``None`` where ``allow_none`` (scikit-learn's "NumPy's global state"). Anything else
    is a ``TypeError``; a negative (or 64-bit overflowing) integer a ``ValueError``; both
    name ``name``.

    Example
    -------
    >>> check_seed_like(np.random.default_rng(0)) is not None
    True
    >>> check_seed_like(-1, "random_state")
    Traceback (most recent call last):
    ...
    ValueError: random_state must be a non-negative integer below 2**64, got -1
    """
    if (seed is None and allow_none) or isinstance(seed, (np.random.RandomState,
                                                         np.random.Generator)):
        return seed
    if not is_int(seed):
        raise TypeError(f"{name} must be {'None, ' if allow_none else ''}an integer, a numpy "
                        f"RandomState or Generator, got {seed!r} ({type(seed).__name__})")
    if not 0 <= seed <= _MASK64:
        raise ValueError(f"{name} must be a non-negative integer below 2**64, got {seed!r}")
    return seed


def seed_from(seed: Any, name: str = "seed", *, allow_none: bool = False) -> int:
    """The one conversion of a user seed to an integer seed (validated as
    :func:`check_seed_like`).

    An integer is used as it is; a ``RandomState`` or ``Generator`` gives one draw in
    ``[0, 2**63 - 1)`` (advancing it, so a shared state gives a new seed per call); ``None``
    (where allowed) one draw from NumPy's global ``RandomState``, as scikit-learn does.

    Example
    -------
    >>> seed_from(7), seed_from(np.random.RandomState(0)) == seed_from(np.random.RandomState(0))
    (7, True)
    """
    seed = check_seed_like(seed, name, allow_none=allow_none)
    if seed is None:
        seed = np.random.mtrand._rand
    if isinstance(seed, np.random.RandomState):
        return int(seed.randint(0, _DRAW_HIGH, dtype=np.int64))
    if isinstance(seed, np.random.Generator):
        return int(seed.integers(0, _DRAW_HIGH))
    return int(seed)


def random_state_from(seed: Any, name: str = "random_state") -> np.random.RandomState:
    """A NumPy ``RandomState`` for code that replays one (scikit-learn's
    ``check_random_state``): None is NumPy's global state, a RandomState itself, an
    integer in ``[0, 2**32)`` seeds a new one. A ``Generator`` cannot stand for one
    (``TypeError``, as for any other type). Draws nothing.

    Example
    -------
    >>> random_state_from(3).randint(10) == np.random.RandomState(3).randint(10)
    True
    """
    if seed is None:
        return np.random.mtrand._rand
    if isinstance(seed, np.random.RandomState):
        return seed
    if isinstance(seed, np.random.Generator) or not is_int(seed):
        raise TypeError(f"{name} must be None, an integer or a numpy RandomState (a "
                        f"Generator cannot replay RandomState draws), got {seed!r} "
                        f"({type(seed).__name__})")
    if not 0 <= seed < 2**32:
        raise ValueError(f"{name} must be an integer in [0, 2**32) to seed a RandomState, "
                         f"got {seed!r}")
    return np.random.RandomState(int(seed))
