"""A float64 sum tree in Numba: batched updates and batched proportional sampling.

The data structure of prioritized replay (Schaul et al. 2016): ``capacity`` non-negative
leaves, each inner node the sum of its children, so drawing ``i`` with probability
``value[i] / total`` is a descent of ``log2(capacity)`` levels. This one

* is **float64** throughout (a float32 tree loses the low bits of small leaves under a
  large total, and its descents then land on zero-priority items);
* takes **any capacity** (the leaf level is padded with zeros to a power of two);
* updates **in batches**, level by level (one pass over the batch per level; from the
  level with no more nodes than the batch up, each node -- the ancestors the batch
  shares -- is recomputed once), and always as ``left + right`` (never by adding a
  delta), so the inner nodes are a pure function of the leaves: no drift, duplicates
  and repeated sums are harmless, and rebuilding from the leaves gives a bitwise
  identical tree;
* samples **in batches**, all draws descending together one level at a time (the loads
  of one level are independent, so the CPU overlaps their cache misses);
* **never returns a zero-priority leaf**: a descent never enters a child whose sum is 0,
  so rounding in the prefix sums cannot push a draw onto an empty leaf or the padding.

Duplicate indices in one :meth:`SumTree.update` follow **last write wins** (the values are
written in order).
"""
from __future__ import annotations

from typing import Any

import numpy as np
from numpy.typing import ArrayLike

from longtail._core.rng import Stream, derive_seed
from longtail.samplers.replay import _kernels as _k
from longtail._core.checks import freeze
from longtail._core.sampler import (
    check_int,
    check_memory,
    check_positive_int,
    check_seed,
    state_value,
)

_FLOAT_MAX = float(np.finfo(np.float64).max)


def _tree_size(capacity: int) -> int:
    size = 2
    while size < capacity:
        size <<= 1
    return size


class SumTree:
    """Sum tree over ``capacity`` non-negative float64 priorities.

    Parameters
    ----------
    capacity : int
        Number of leaves (any positive integer).
    values : array_like, optional
        Initial leaf values, float64 ``[capacity]``, finite and >= 0 (default: zeros).
    seed : int
        Seed of :meth:`sample`; call ``k`` of the tree uses the stream
        ``(seed, k)``, so a tree replays the same draws from the same seed.

    Notes
    -----
    Leaf values must stay at most ``max_value = float64 max / (2 * size)`` so that no sum
    can overflow (about 8.6e301 at a capacity of one million).

    Example
    -------
    >>> tree = SumTree(5, values=[0.0, 1.0, 0.0, 3.0, 0.0])
    >>> tree.total
    4.0
    >>> tree.update([1, 1], [2.0, 5.0])      # last write wins
    >>> tree[1], tree.total
    (5.0, 8.0)
    >>> tree.find([4.9, 5.0, 7.99]).tolist()  # prefix-sum search
    [1, 3, 3]
    >>> sorted(set(tree.sample(1000).tolist()))
    [1, 3]
    """

    def __init__(self, capacity: int, values: ArrayLike | None = None, *, seed: int = 0) -> None:
        self.capacity = check_positive_int("capacity", capacity)
        check_memory(f"capacity={self.capacity:,}", 32.0 * self.capacity + 32)
        self.size = _tree_size(self.capacity)
        self.max_value = _FLOAT_MAX / (2 * self.size)
        self._tree = np.zeros(2 * self.size, dtype=np.float64)
        self.seed = check_seed(seed)
        self._base_seed = derive_seed(self.seed, Stream.SUMTREE)
        self._draws = 0
        if values is not None:
            self.set_all(values)

    # -- validation -------------------------------------------------------------------
    def _check_values(self, values: Any, name: str, length: int | None) -> np.ndarray:
        arr = np.asarray(values)
        if arr.dtype.kind not in "fiub":
            raise TypeError(f"{name} must be a real array, got dtype {arr.dtype}")
        if arr.ndim != 1 or (length is not None and arr.shape[0] != length):
            raise ValueError(f"{name} must have shape ({length},), got {arr.shape}")
        arr = np.ascontiguousarray(arr, dtype=np.float64)
        bad = ~(np.isfinite(arr) & (arr >= 0.0) & (arr <= self.max_value))
        if bad.any():
            pos = int(np.flatnonzero(bad)[0])
            raise ValueError(
                f"{name} must be finite, >= 0 and <= {self.max_value:.3g}; "
                f"{name}[{pos}] = {arr[pos]!r}"
            )
        return arr

    def _check_indices(self, indices: Any) -> np.ndarray:
        idx = np.asarray(indices)
        if idx.dtype.kind not in "iu" and not (idx.size == 0 and idx.dtype.kind == "f"):
            raise TypeError(f"indices must be integers, got dtype {idx.dtype}")
        if idx.ndim != 1:
            raise ValueError(f"indices must be 1-D, got shape {idx.shape}")
        if idx.size and idx.dtype.kind in "iu":
            # checked on the original dtype: a uint64 2**64 - 5 is reported as itself
            bad = (idx < 0) | (idx >= self.capacity)
            if bad.any():
                pos = int(np.flatnonzero(bad)[0])
                raise ValueError(
                    f"indices[{pos}] = {int(idx[pos])} is outside [0, {self.capacity})"
                )
        return np.ascontiguousarray(idx, dtype=np.int64)

    # -- reading -----------------------------------------------------------------------
    @property
    def total(self) -> float:
        """Sum of all leaves (the root)."""
        return float(self._tree[1])

    @property
    def values(self) -> np.ndarray:
        """A read-only view of the leaves, float64 ``[capacity]`` (it follows later
        updates; ``flags.writeable = True`` raises: copy it to modify)."""
        # a window on the tree through a read-only buffer: numpy refuses to make it
        # writeable again (a plain read-only view could be switched back)
        return freeze(self._tree)[self.size:self.size + self.capacity]

    def __len__(self) -> int:
        return self.capacity

    def __getitem__(self, index: Any) -> Any:
        """Leaf value(s): a float for an integer index, an array otherwise."""
        value = self.values[index]
        return float(value) if np.ndim(value) == 0 else value

    def probabilities(self, indices: ArrayLike | None = None) -> np.ndarray:
        """``value / total`` for ``indices`` (default all leaves)."""
        total = self.total
        if not total > 0.0:
            raise ValueError("the tree is empty (total priority is 0)")
        vals = self.values if indices is None else self.values[self._check_indices(indices)]
        return vals / total

    # -- writing -----------------------------------------------------------------------
    def update(self, indices: ArrayLike, values: ArrayLike) -> None:
        """Set leaves ``indices`` to ``values`` (in order, last write wins).

        Everything is validated before anything is written: on error the tree is
        unchanged.
        """
        idx = self._check_indices(indices)
        vals = self._check_values(values, "values", idx.shape[0])
        _k.tree_set(self._tree, self.size, idx, vals)

    def set_all(self, values: ArrayLike) -> None:
        """Replace every leaf and rebuild the tree (O(capacity))."""
        vals = self._check_values(values, "values", self.capacity)
        self._tree[self.size:self.size + self.capacity] = vals
        self._tree[self.size + self.capacity:] = 0.0
        _k.tree_build(self._tree, self.size)

    # -- sampling ----------------------------------------------------------------------
    def find(self, mass: ArrayLike) -> np.ndarray:
        """Prefix-sum search: for each ``m`` the leaf ``i`` with ``cum[i-1] <= m < cum[i]``.

        ``cum`` is the running sum of the leaves; masses at or past the total, and ties
        that would land on a zero leaf, resolve to the nearest positive leaf on the left
        (the zero guard). Masses must be finite and >= 0.
        """
        m = np.asarray(mass)
        if m.dtype.kind not in "fiu" and not (m.size == 0 and m.dtype.kind == "b"):
            raise TypeError(f"mass must be real numbers, got dtype {m.dtype}")
        m = np.ascontiguousarray(m, dtype=np.float64)
        if m.ndim != 1:
            raise ValueError(f"mass must be 1-D, got shape {m.shape}")
        if m.size and not (np.isfinite(m).all() and (m >= 0).all()):
            pos = int(np.flatnonzero(~(np.isfinite(m) & (m >= 0)))[0])
            raise ValueError(f"mass must be finite and >= 0; mass[{pos}] = {m[pos]!r}")
        if not self.total > 0.0:
            raise ValueError("the tree is empty (total priority is 0)")
        return _k.tree_find(self._tree, self.size, m)

    def sample(self, k: int, *, seed: int | None = None) -> np.ndarray:
        """``k`` independent draws, leaf ``i`` with probability ``value[i] / total``.

        Parameters
        ----------
        k : int
            Number of draws.
        seed : int, optional
            Draw from this seed instead of the tree's own ``(seed, call number)`` stream.
        """
        k = check_positive_int("k", k)
        check_memory(f"k={k:,}", 16.0 * k)
        if not self.total > 0.0:
            raise ValueError("cannot sample: the tree is empty (total priority is 0)")
        if seed is None:
            s = np.uint64(_k.mix_seed(np.uint64(self._base_seed), self._draws))
            self._draws += 1
        else:
            s = np.uint64(derive_seed(check_seed(seed), Stream.SUMTREE))
        return _k.tree_sample(self._tree, self.size, k, s)

    # -- state -------------------------------------------------------------------------
    def state_dict(self) -> dict[str, Any]:
        """Leaves and sampling position as plain values."""
        return {"capacity": self.capacity, "seed": self.seed, "draws": self._draws,
                "values": np.array(self.values)}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore :meth:`state_dict` (the inner sums are rebuilt bitwise identical).

        Every field is checked before anything changes (on error the tree is as it was):
        ``capacity`` must match, ``seed`` and ``draws`` be integers in range, ``values``
        a real ``[capacity]`` array, finite, >= 0 and <= ``max_value`` (attribute).
        """
        capacity = state_value(state, "capacity", "SumTree")
        if not (isinstance(capacity, (int, np.integer)) and not isinstance(capacity, bool)
                and int(capacity) == self.capacity):
            raise ValueError(
                f"state_dict has capacity={capacity!r}, this tree has "
                f"capacity={self.capacity}"
            )
        vals = self._check_values(state_value(state, "values", "SumTree"),
                                  "state_dict['values']", self.capacity)
        seed = check_seed(state_value(state, "seed", "SumTree"))
        draws = check_int("state_dict['draws']", state_value(state, "draws", "SumTree"),
                          0, 2**63 - 1)
        self._tree[self.size:self.size + self.capacity] = vals
        self._tree[self.size + self.capacity:] = 0.0
        _k.tree_build(self._tree, self.size)
        self.seed = seed
        self._base_seed = derive_seed(self.seed, Stream.SUMTREE)
        self._draws = draws

    def __repr__(self) -> str:
        return f"SumTree(capacity={self.capacity}, total={self.total!r})"
