"""scikit-learn compatible multilabel splitters built on sparse iterative stratification.

The classes follow scikit-learn's cross-validator protocol (``split(X, y, groups)`` and
``get_n_splits()``) without importing scikit-learn, so ``cross_val_score(est, X, Y,
cv=MultilabelStratifiedKFold())`` and ``GridSearchCV(..., cv=...)`` work. ``y`` may be a
:class:`~longtail.datasets.LabelMatrix`, a scipy sparse matrix, a dense 0/1 array (numpy,
torch, pandas; Python lists are read as 0/1 rows, as scikit-learn does), an Arrow list
array of label ids, or a 1-D array of class ids. It is never densified.

Differences from iterative-stratification 0.1.9 (the package these names come from):

* ``random_state`` is used with or without ``shuffle`` (the package's KFold refuses a
  ``random_state`` without ``shuffle`` under current scikit-learn, yet breaks ties with
  it);
* ``MultilabelStratifiedShuffleSplit`` honours ``train_size``: when ``train_size +
  test_size < n`` the rest of the examples is in neither set (the package spreads all
  examples in the ratio train : test);
* ``groups`` are honoured (a group is never split); the package ignores them;
* the default ``method="balanced"`` gives exact sizes and a lower label distribution
  error; ``method="sechidis", compat="iterstrat"`` gives the package's folds exactly
  (same ``random_state``, same parts; with ``train_size`` leaving a remainder, the
  package's rule is applied to three parts instead).

Example
-------
>>> import numpy as np
>>> from longtail.samplers import MultilabelStratifiedKFold
>>> Y = np.array([[1, 0], [0, 1], [1, 1], [0, 0]] * 5)
>>> [len(test) for _, test in MultilabelStratifiedKFold(4, random_state=0).split(None, Y)]
[5, 5, 5, 5]
"""
from __future__ import annotations

import itertools
from typing import Any, Iterator, Mapping, Sequence

import numpy as np

from longtail._core.checks import check_bool, check_int
from longtail._core.rng import check_seed_like, derive_seed, random_state_from, seed_from
from longtail.samplers.split.stratification import (
    _compat_parts,
    _group_index,
    _stratify,
    as_label_matrix,
    check_options,
    sizes_from_fractions,
)

__all__ = [
    "MultilabelStratifiedKFold",
    "RepeatedMultilabelStratifiedKFold",
    "MultilabelStratifiedShuffleSplit",
    "multilabel_train_test_split",
    "stratified_split",
]


# ----------------------------------------------------------------------------- helpers
def _labels_of(y: Any, name: str = "y") -> Any:
    """A LabelMatrix from a splitter's ``y`` (lists are dense 0/1 rows, sklearn-style)."""
    from longtail.datasets.label_matrix import LabelMatrix

    if y is None:
        raise ValueError(f"{name} (the multilabel targets) is required for stratification")
    if isinstance(y, np.ndarray) and y.ndim == 1:
        if y.size and not (np.issubdtype(y.dtype, np.integer) or y.dtype == bool):
            raise TypeError(f"a 1-D {name} must hold integer class ids, got dtype {y.dtype}")
        # checked on the original dtype (a uint64 id is never read as a negative one)
        if y.size and y.min() < 0:
            raise ValueError(f"{name}: negative class id {int(y.min())} at example "
                             f"{int(np.argmin(y))}")
        # class ids are names: renumbered 0..C-1 in their order (the same parts, and
        # one stray id such as 2**40 cannot ask for a label table of that size)
        _, ids = np.unique(y, return_inverse=True)
        ids = ids.reshape(-1).astype(np.int32)
        return as_label_matrix(LabelMatrix(np.arange(ids.size + 1, dtype=np.int64), ids,
                                           int(ids.max()) + 1 if ids.size else 0), name)
    return as_label_matrix(y, name, lists="dense")


def _num_samples(x: Any) -> int:
    shape = getattr(x, "shape", None)
    if shape is not None and len(shape) > 0 and shape[0] is not None:
        return int(shape[0])
    if hasattr(x, "__len__"):
        return len(x)
    raise TypeError(f"expected an array-like with a length, got {type(x).__name__}")


def _check_X(X: Any, n: int) -> None:
    if X is not None and _num_samples(X) != n:
        raise ValueError(f"X has {_num_samples(X)} samples but y has {n}")


def _fold_pairs(folds: np.ndarray, n_splits: int
                ) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """``(train_indices, test_indices)`` for each fold id ``0 .. n_splits - 1``."""
    for i in range(n_splits):
        test = folds == i
        yield np.flatnonzero(~test), np.flatnonzero(test)


def _check_size(name: str, v: Any, n: int | None = None) -> Any:
    """A train / test size: None, a float fraction in (0, 1) or an int count in [1, n)
    (``n`` unknown at construction: >= 1)."""
    if v is None:
        return None
    if isinstance(v, (bool, np.bool_)) or not isinstance(v, (int, float, np.integer,
                                                             np.floating)):
        raise TypeError(f"{name} must be a float in (0, 1) or an int in [1, n), got {v!r}")
    if isinstance(v, (float, np.floating)):
        if not 0.0 < float(v) < 1.0:
            raise ValueError(f"{name}={v!r} must be in (0, 1) as a fraction")
    elif v < 1 or (n is not None and v >= n):
        raise ValueError(f"{name}={v!r} must be in [1, {'n' if n is None else n}) as a count"
                         + ("" if n is None else f" (n = {n} samples)"))
    return v


def _n_units(lm: Any, groups: Any) -> tuple[int, str]:
    if groups is None:
        return len(lm), "examples"
    _, n_groups = _group_index(groups, len(lm))
    return n_groups, "groups"


def _train_test_sizes(n: int, test_size: Any, train_size: Any) -> tuple[int, int]:
    """scikit-learn's rule: float = fraction (test rounded up, train down), int = count."""
    _check_size("test_size", test_size, n)
    _check_size("train_size", train_size, n)
    if test_size is None and train_size is None:
        test_size = 0.1
    n_test = None if test_size is None else (
        int(np.ceil(float(test_size) * n)) if isinstance(test_size, (float, np.floating))
        else int(test_size))
    n_train = None if train_size is None else (
        int(np.floor(float(train_size) * n)) if isinstance(train_size, (float, np.floating))
        else int(train_size))
    if n_train is None:
        n_train = n - n_test
    if n_test is None:
        n_test = n - n_train
    if n_train + n_test > n:
        raise ValueError(f"train_size + test_size = {n_train} + {n_test} examples is more "
                         f"than the {n} samples")
    if n_train <= 0 or n_test <= 0:
        raise ValueError(f"with n={n} samples, test_size={test_size!r} and "
                         f"train_size={train_size!r} leave an empty set "
                         f"(train {n_train}, test {n_test})")
    return n_train, n_test


class _Splitter:
    """What the splitters share: the seed and method parameters, ``repr``, split count."""

    _params: Sequence[str] = ()
    n_splits: int

    def _set_options(self, random_state: Any, order: int, method: str,
                     compat: str | None) -> None:
        """Check (drawing nothing) and keep ``random_state``, ``order``, ``method``,
        ``compat``."""
        self.random_state = check_seed_like(random_state, "random_state", allow_none=True)
        self.order, self.method, self.compat = order, method, compat
        check_options(order, method, compat, None)

    def __repr__(self) -> str:
        args = ", ".join(f"{p}={getattr(self, p)!r}" for p in sorted(self._params))
        return f"{type(self).__name__}({args})"

    def get_n_splits(self, X: Any = None, y: Any = None, groups: Any = None) -> int:
        """Number of splits."""
        return self.n_splits


# ----------------------------------------------------------------------------- k-fold
class MultilabelStratifiedKFold(_Splitter):
    """Multilabel stratified k-fold cross-validator (iterative stratification).

    Parameters
    ----------
    n_splits : int
        Number of folds, >= 2.
    shuffle : bool
        Visit examples in a random order (seeded by ``random_state``).
    random_state : int, RandomState, Generator or None
        Seed; used with or without ``shuffle``. None: a fresh seed from NumPy's global
        RandomState at every ``split``.
    order : {1, 2}
        Labels or label pairs (see :func:`~longtail.iterative_stratification`).
    method : {"balanced", "sechidis"}
        Part choice; ``balanced`` gives folds of equal size (+-1).
    compat : {None, "iterstrat"}
        With ``method="sechidis"``: exactly the folds of iterative-stratification 0.1.9.

    Example
    -------
    >>> import numpy as np
    >>> Y = np.eye(3, dtype=int)[np.arange(30) % 3]
    >>> cv = MultilabelStratifiedKFold(n_splits=3, random_state=0)
    >>> [sorted(np.bincount(np.argmax(Y[test], 1)).tolist()) for _, test in cv.split(None, Y)]
    [[3, 3, 4], [3, 3, 4], [3, 3, 4]]
    """

    _params = ("n_splits", "shuffle", "random_state", "order", "method", "compat")

    def __init__(self, n_splits: int = 5, shuffle: bool = True, random_state: Any = None,
                 order: int = 1, *, method: str = "balanced", compat: str | None = None) -> None:
        self.n_splits = check_int("n_splits", n_splits, 2)
        self.shuffle = check_bool("shuffle", shuffle)
        self._set_options(random_state, order, method, compat)

    def _folds(self, y: Any, groups: Any, random_state: Any) -> np.ndarray:
        check_options(self.order, self.method, self.compat, groups)
        lm = _labels_of(y)
        units, what = _n_units(lm, groups)
        if self.n_splits > units:
            raise ValueError(f"n_splits={self.n_splits} is more than the number of {what} "
                             f"({units})")
        k = self.n_splits
        if self.compat is not None:
            return _compat_parts(lm, np.asarray([1 / k] * k), random_state, self.shuffle)
        r = np.full(k, 1.0 / k)
        return _stratify(lm, r, sizes_from_fractions(r, len(lm)), order=self.order,
                         seed=seed_from(random_state, "random_state", allow_none=True),
                         method=self.method, groups=groups, shuffle=self.shuffle)

    def split(self, X: Any, y: Any, groups: Any = None
              ) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        """Yield ``(train_indices, test_indices)`` for every fold.

        Parameters
        ----------
        X : array-like of shape (n, ...) or None
            Only its length is checked.
        y : multilabel targets (see the module documentation)
        groups : array-like of shape (n,), optional
            Group ids: a group is never split across folds.
        """
        lm = _labels_of(y)
        _check_X(X, len(lm))
        yield from _fold_pairs(self._folds(lm, groups, self.random_state), self.n_splits)


class RepeatedMultilabelStratifiedKFold(_Splitter):
    """Repeats :class:`MultilabelStratifiedKFold` ``n_repeats`` times, reshuffled each time.

    Parameters
    ----------
    n_splits : int
        Folds per repetition, >= 2.
    n_repeats : int
        Repetitions, >= 1.
    random_state : int, RandomState, Generator or None
        Seed of the whole sequence.
    order, method, compat
        As for :class:`MultilabelStratifiedKFold` (``compat="iterstrat"`` reproduces the
        package's ``RepeatedMultilabelStratifiedKFold``).

    Example
    -------
    >>> import numpy as np
    >>> Y = np.eye(2, dtype=int)[np.arange(8) % 2]
    >>> cv = RepeatedMultilabelStratifiedKFold(n_splits=2, n_repeats=3, random_state=0)
    >>> cv.get_n_splits(), len(list(cv.split(None, Y)))
    (6, 6)
    """

    _params = ("n_splits", "n_repeats", "random_state", "order", "method", "compat")

    def __init__(self, n_splits: int = 5, n_repeats: int = 10, random_state: Any = None,
                 order: int = 1, *, method: str = "balanced", compat: str | None = None) -> None:
        self.n_splits = check_int("n_splits", n_splits, 2)
        self.n_repeats = check_int("n_repeats", n_repeats, 1)
        self._set_options(random_state, order, method, compat)

    def get_n_splits(self, X: Any = None, y: Any = None, groups: Any = None) -> int:
        """Number of splits: ``n_splits * n_repeats``."""
        return self.n_splits * self.n_repeats

    def split(self, X: Any, y: Any, groups: Any = None
              ) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        """Yield ``(train_indices, test_indices)``, ``n_splits`` per repetition."""
        cv = MultilabelStratifiedKFold(self.n_splits, shuffle=True, order=self.order,
                                       method=self.method, compat=self.compat)
        if self.compat is not None:
            rng: Any = random_state_from(self.random_state)
            states: Iterator[Any] = itertools.repeat(rng, self.n_repeats)
        else:
            base = seed_from(self.random_state, "random_state", allow_none=True)
            # one seed per repetition, made when it is reached (never a list of n_repeats)
            states = (derive_seed(base, rep) >> 1 for rep in range(self.n_repeats))
        lm = _labels_of(y)
        _check_X(X, len(lm))
        for state in states:
            yield from _fold_pairs(cv._folds(lm, groups, state), self.n_splits)


# ----------------------------------------------------------------------------- shuffle split
class MultilabelStratifiedShuffleSplit(_Splitter):
    """Stratified random train/test splits, ``n_splits`` times.

    Parameters
    ----------
    n_splits : int
        Number of re-splittings, >= 1.
    test_size, train_size : float, int or None
        A float is a fraction in (0, 1) (test rounded up, train down, as scikit-learn),
        an int a number of examples. Default: test 0.1, train the rest. Both given and
        summing to less than n: the remaining examples are in neither set.
    random_state : int, RandomState, Generator or None
        Seed of the whole sequence.
    order, method, compat
        As for :class:`MultilabelStratifiedKFold`.

    Example
    -------
    >>> import numpy as np
    >>> Y = np.eye(4, dtype=int)[np.arange(40) % 4]
    >>> cv = MultilabelStratifiedShuffleSplit(2, test_size=0.25, train_size=0.5,
    ...                                       random_state=0)
    >>> [(len(tr), len(te)) for tr, te in cv.split(None, Y)]
    [(20, 10), (20, 10)]
    """

    _params = ("n_splits", "test_size", "train_size", "random_state", "order", "method",
               "compat")

    def __init__(self, n_splits: int = 10, test_size: float | int | None = None,
                 train_size: float | int | None = None, random_state: Any = None,
                 order: int = 1, *, method: str = "balanced", compat: str | None = None) -> None:
        self.n_splits = check_int("n_splits", n_splits, 1)
        self.test_size = _check_size("test_size", test_size)
        self.train_size = _check_size("train_size", train_size)
        self._set_options(random_state, order, method, compat)

    def split(self, X: Any, y: Any, groups: Any = None
              ) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        """Yield ``(train_indices, test_indices)`` ``n_splits`` times."""
        check_options(self.order, self.method, self.compat, groups)
        lm = _labels_of(y)
        n = len(lm)
        _check_X(X, n)
        n_train, n_test = _train_test_sizes(n, self.test_size, self.train_size)
        rest = n - n_train - n_test
        sizes = np.array([n_train, n_test] + ([rest] if rest else []), dtype=np.int64)
        if groups is not None:
            units, _ = _n_units(lm, groups)
            if units < 2:
                raise ValueError(f"groups: {units} group cannot be split into train and test")
        if self.compat is not None:
            rng = random_state_from(self.random_state)
            r = sizes / (n_train + n_test + rest)
            for _ in range(self.n_splits):
                parts = _compat_parts(lm, r, rng, True)
                yield np.flatnonzero(parts == 0), np.flatnonzero(parts == 1)
            return
        base = seed_from(self.random_state, "random_state", allow_none=True)
        r = sizes / float(n)
        for i in range(self.n_splits):
            parts = _stratify(lm, r, sizes, order=self.order, seed=derive_seed(base, i) >> 1,
                              method=self.method, groups=groups, shuffle=True)
            yield np.flatnonzero(parts == 0), np.flatnonzero(parts == 1)


# ----------------------------------------------------------------------------- one-call
def _take(a: Any, idx: np.ndarray) -> Any:
    from longtail.datasets.label_matrix import LabelMatrix

    if isinstance(a, LabelMatrix):
        return a.take(idx)
    if hasattr(a, "iloc"):
        return a.iloc[idx]
    mod = type(a).__module__
    if mod.startswith("pyarrow"):
        return a.take(idx)
    if hasattr(a, "detach"):
        import torch

        return a[torch.from_numpy(idx)]
    if isinstance(a, np.ndarray) or mod.startswith("scipy"):
        return a[idx]
    if isinstance(a, (list, tuple)):
        return [a[i] for i in idx.tolist()]
    return a[idx]


def multilabel_train_test_split(
    *arrays: Any,
    labels: Any,
    test_size: float | int | None = None,
    train_size: float | int | None = None,
    random_state: Any = None,
    shuffle: bool = True,
    groups: Any = None,
    order: int = 1,
    method: str = "balanced",
    compat: str | None = None,
) -> list[Any]:
    """Split arrays into stratified train and test subsets (like ``train_test_split``).

    Parameters
    ----------
    *arrays : sequences of the same length as ``labels``
        numpy arrays, torch tensors, pandas objects, scipy sparse matrices, Arrow arrays,
        LabelMatrix or lists. None given: the index arrays are returned.
    labels : multilabel targets (see the module documentation)
        What to stratify on (often one of ``arrays``).
    test_size, train_size : float, int or None
        As for :class:`MultilabelStratifiedShuffleSplit` (default test 0.1).
    random_state : int, RandomState, Generator or None
        Seed.
    shuffle : bool
        Visit examples in a random order (the split is stratified either way).
    groups : array-like of shape (n,), optional
        Group ids: a group is never split.
    order, method, compat
        As for :class:`MultilabelStratifiedKFold`.

    Returns
    -------
    list
        ``[a_train, a_test, b_train, b_test, ...]``, or ``[train_idx, test_idx]``.

    Example
    -------
    >>> import numpy as np
    >>> X = np.arange(20).reshape(10, 2); Y = np.eye(2, dtype=int)[np.arange(10) % 2]
    >>> X_tr, X_te, Y_tr, Y_te = multilabel_train_test_split(X, Y, labels=Y, test_size=0.2,
    ...                                                      random_state=0)
    >>> X_te.shape, Y_te.sum(0).tolist()
    ((2, 2), [1, 1])
    """
    check_bool("shuffle", shuffle)
    cv = MultilabelStratifiedShuffleSplit(1, test_size=test_size, train_size=train_size,
                                          random_state=random_state, order=order,
                                          method=method, compat=compat)
    lm = _labels_of(labels, "labels")
    n = len(lm)
    for i, a in enumerate(arrays):
        if _num_samples(a) != n:
            raise ValueError(f"array {i} has {_num_samples(a)} samples but labels have {n}")
    if shuffle or compat is not None:
        train, test = next(cv.split(None, lm, groups))
    else:
        check_options(order, method, compat, groups)
        n_train, n_test = _train_test_sizes(n, test_size, train_size)
        rest = n - n_train - n_test
        sizes = np.array([n_train, n_test] + ([rest] if rest else []), dtype=np.int64)
        parts = _stratify(lm, sizes / float(n), sizes, order=order,
                          seed=seed_from(random_state, "random_state", allow_none=True),
                          method=method, groups=groups, shuffle=False)
        train, test = np.flatnonzero(parts == 0), np.flatnonzero(parts == 1)
    if not arrays:
        return [train, test]
    out: list[Any] = []
    for a in arrays:
        out.extend([_take(a, train), _take(a, test)])
    return out


def stratified_split(
    labels: Any,
    fractions: Mapping[Any, float] | Sequence[float],
    seed: Any = 0,
    *,
    groups: Any = None,
    order: int = 1,
    method: str = "balanced",
) -> dict[Any, np.ndarray]:
    """Split the examples into named stratified parts in one call.

    Parameters
    ----------
    labels : LabelMatrix or any supported multilabel input
        What to stratify on.
    fractions : mapping name -> fraction, or a sequence of fractions
        At least two parts, fractions >= 0 summing to 1. A sequence names the parts
        0, 1, ...
    seed : int
        Same seed, same split.
    groups : array-like of shape (n,), optional
        Group ids: a group is never split.
    order, method
        As for :func:`~longtail.iterative_stratification`.

    Returns
    -------
    dict
        Part name -> sorted int64 indices of its examples.

    Example
    -------
    >>> from longtail.datasets import make_long_tail
    >>> y = make_long_tail("small", seed=0, n_examples=1_000).labels
    >>> parts = stratified_split(y, {"train": 0.8, "val": 0.1, "test": 0.1})
    >>> {k: len(v) for k, v in parts.items()}
    {'train': 800, 'val': 100, 'test': 100}
    """
    from longtail.samplers.split.stratification import iterative_stratification

    if isinstance(fractions, Mapping):
        names = list(fractions.keys())
        values = list(fractions.values())
    else:
        values = list(fractions)
        names = list(range(len(values)))
    parts = iterative_stratification(labels, values, order=order, seed=seed, method=method,
                                     groups=groups)
    return {name: np.flatnonzero(parts == j) for j, name in enumerate(names)}
