"""The one place where CSR label arrays are checked before any Numba kernel sees them.

Numba does not check bounds: a kernel that walks ``offsets`` and ``indices`` reads and
writes wherever they point. Every CSR that enters longtail (a user's arrays, an Arrow or
Parquet file, a memory-mapped IPC file whose metadata claims it is canonical, a duck-typed
target of :mod:`longtail.metrics`) goes through :func:`check_csr` first, which checks, in
this order and before touching ``indices`` through ``offsets``:

1. ``offsets``: integer, 1-D, at least one entry, ``offsets[0] == 0``, non-decreasing
   ("offsets decrease at row r"), ``offsets[-1] == len(indices)``;
2. ``indices``: integer, every id in ``[0, n_labels)`` (one vectorised min/max pass; the
   first bad id is reported with its row), checked *before* any cast that could wrap;
3. optionally, sorted and unique ids within each row (a kernel, safe after 1 and 2).

The arrays it returns are owned and frozen (:func:`freeze`): C-contiguous, ``int64`` /
``int32`` and read-only in a way that cannot be undone by setting ``flags.writeable``, so
a caller who mutates the array they passed in cannot reach what a kernel reads.

Example
-------
>>> import numpy as np
>>> off, idx, n_labels = check_csr(np.array([0, 2, 3]), np.array([0, 4, 1]), 5)
>>> off.dtype, idx.dtype, idx.flags.writeable
(dtype('int64'), dtype('int32'), False)
>>> check_csr(np.array([0, 5, 3]), np.array([0, 1, 2]), n_labels=3)
Traceback (most recent call last):
...
ValueError: offsets decrease at row 1 (offsets[1]=5 > offsets[2]=3)
"""
from __future__ import annotations

import math
import numbers
import operator
from typing import Any, Sequence

import numpy as np

from longtail._core import _kernels as K

_INT32_MAX = int(np.iinfo(np.int32).max)
_INT64_MAX = int(np.iinfo(np.int64).max)


def is_immutable(a: np.ndarray) -> bool:
    """True if no one can write to ``a``'s memory through numpy (a frozen or Arrow view).

    A read-only view of a writable array is *not* immutable: its base can still be
    written, or the flag turned back on. The test asks numpy to make a fresh view
    writeable, which it refuses exactly when some base in the chain is read-only memory
    (an Arrow buffer, a read-only memory map, ``bytes``, a read-only memoryview).

    Example
    -------
    >>> a = np.zeros(3); v = a.view(); v.flags.writeable = False
    >>> is_immutable(v), is_immutable(freeze(a.copy()))
    (False, True)
    """
    if a.flags.writeable:
        return False
    probe = a.view()
    try:
        probe.flags.writeable = True
    except ValueError:
        return True
    return False


def freeze(a: np.ndarray) -> np.ndarray:
    """``a`` (which the caller owns and gives away) as an array that stays read-only.

    The result views ``a``'s memory through a read-only ``memoryview``; numpy refuses to
    set ``flags.writeable = True`` on it. Kernels see the same type as any read-only
    array (no new Numba specialization). Already-immutable arrays are returned as they are.

    Example
    -------
    >>> f = freeze(np.arange(3))
    >>> f.flags.writeable = True
    Traceback (most recent call last):
    ...
    ValueError: cannot set WRITEABLE flag to True of this array
    """
    if is_immutable(a):
        return a
    a = np.ascontiguousarray(a)
    return np.frombuffer(memoryview(a.reshape(-1)).toreadonly(), dtype=a.dtype).reshape(a.shape)


def own(a: np.ndarray, dtype: Any) -> np.ndarray:
    """A frozen C-contiguous ``dtype`` array equal to ``a``: copied unless immutable already.

    Example
    -------
    >>> src = np.array([1, 2]); o = own(src, np.int64); src[0] = 9; int(o[0])
    1
    """
    if a.dtype == dtype and a.flags.c_contiguous and is_immutable(a):
        return a
    return freeze(np.array(a, dtype=dtype, order="C", copy=True))


def _integer_array(a: Any, name: str, where: str) -> np.ndarray:
    arr = np.asarray(a)
    if arr.ndim != 1:
        raise ValueError(f"{name}{where} must be 1-D, got shape {arr.shape}")
    if arr.dtype.kind not in "iu":
        if arr.size == 0 and arr.dtype.kind in "fb":
            return arr.astype(np.int64)
        raise TypeError(f"{name}{where} must be integers, got dtype {arr.dtype}")
    return arr


def check_offsets(offsets: Any, n_values: int, *, where: str = "") -> np.ndarray:
    """Validate CSR row pointers against ``n_values`` entries; return them as int64.

    Checks, in order: integer 1-D with at least 2 entries (one row), no value beyond
    int64, ``offsets[0] == 0``, non-decreasing, ``offsets[-1] == n_values``. The array
    is returned as given when already int64 (not copied, not frozen).

    Raises
    ------
    TypeError, ValueError
        Naming the first bad row, e.g. ``offsets decrease at row 3``.

    Example
    -------
    >>> check_offsets([0, 1, 1, 3], 3).tolist()
    [0, 1, 1, 3]
    """
    off = _integer_array(offsets, "offsets", where)
    if off.size < 2:
        raise ValueError(f"offsets{where} must have at least 2 entries (one row), "
                         f"got {off.size}")
    if off.dtype.kind == "u" and off.dtype.itemsize == 8 and int(off.max()) > _INT64_MAX:
        p = int(np.flatnonzero(off > _INT64_MAX)[0])
        raise ValueError(f"offsets{where}[{p}]={int(off[p])} is beyond the int64 range")
    if off.dtype != np.int64:
        off = off.astype(np.int64)
    if off[0] != 0:
        raise ValueError(f"offsets{where} must start at 0, got offsets[0]={int(off[0])}")
    steps = np.diff(off)
    if steps.size and steps.min() < 0:
        r = int(np.flatnonzero(steps < 0)[0])
        raise ValueError(f"offsets{where} decrease at row {r} "
                         f"(offsets[{r}]={int(off[r])} > offsets[{r + 1}]={int(off[r + 1])})")
    if int(off[-1]) != int(n_values):
        raise ValueError(f"offsets{where} must end at len(indices)={int(n_values)}, "
                         f"got offsets[-1]={int(off[-1])}")
    return off


def row_of(offsets: np.ndarray, position: int) -> int:
    """Row of a (checked) CSR that holds flat position ``position``.

    Example
    -------
    >>> row_of(np.array([0, 2, 2, 5]), 3)
    2
    """
    return int(np.searchsorted(offsets, position, side="right") - 1)


def check_label_ids(indices: Any, offsets: np.ndarray, n_labels: int | None, *,
                    where: str = "") -> tuple[np.ndarray, int]:
    """Validate label ids (after :func:`check_offsets`): integers in ``[0, n_labels)``.

    Without ``n_labels`` the width is ``max id + 1`` (ids must still fit int32). Returns
    ``(indices as int32, n_labels)``; the range is checked on the original dtype, so
    nothing wraps (a uint64 ``2**64 - 5`` is reported as itself, not as ``-5``).

    Example
    -------
    >>> idx, L = check_label_ids(np.array([3, 1], np.uint64), np.array([0, 2]), None)
    >>> idx.dtype, L
    (dtype('int32'), 4)
    """
    idx = _integer_array(indices, "label ids", where)
    n_labels = check_n_labels(n_labels, where=where)
    limit = _INT32_MAX if n_labels is None else n_labels  # width max id + 1 fits int32
    if idx.size:
        lo, hi = int(idx.min()), int(idx.max())
        if lo < 0 or hi >= limit:
            bad = idx < 0 if lo < 0 else idx >= limit
            p = int(np.flatnonzero(bad)[0])
            v, r = int(idx[p]), row_of(offsets, p)
            if v < 0:
                raise ValueError(f"negative label id {v} in row {r}{where}")
            if n_labels is not None:
                raise ValueError(f"label id {v} >= n_labels={n_labels} in row {r}{where}")
            raise ValueError(f"label id {v} beyond the int32 range in row {r}{where}")
        if n_labels is None:
            n_labels = hi + 1
    elif n_labels is None:
        n_labels = 0
    if idx.dtype != np.int32:
        idx = idx.astype(np.int32)
    return idx, n_labels


def check_n_labels(n_labels: Any, *, where: str = "") -> int | None:
    """``None`` or an integer in ``[0, 2**31 - 1]``; anything else is a clear error.

    Example
    -------
    >>> check_n_labels(np.int64(7))
    7
    """
    if n_labels is None:
        return None
    if isinstance(n_labels, (bool, np.bool_)):
        raise TypeError(f"n_labels{where} must be an integer, got {n_labels!r}")
    try:
        value = operator.index(n_labels)
    except TypeError:
        if isinstance(n_labels, float) and n_labels.is_integer():
            value = int(n_labels)
        else:
            raise TypeError(f"n_labels{where} must be an integer, got {n_labels!r} "
                            f"({type(n_labels).__name__})") from None
    if value < 0:
        raise ValueError(f"n_labels{where} must be >= 0, got {value}")
    if value > _INT32_MAX:
        raise ValueError(f"n_labels{where}={value} exceeds the int32 label-id range")
    return int(value)


_ORDER_HINT = "; pass canonicalize=True to sort and deduplicate"


def check_csr(offsets: Any, indices: Any, n_labels: int | None, *, where: str = "",
              order: bool = True,
              hint: str = _ORDER_HINT) -> tuple[np.ndarray, np.ndarray, int]:
    """Validate a CSR label matrix and return ``(offsets, indices, n_labels)`` for kernels.

    ``offsets`` come back int64 and ``indices`` int32, both C-contiguous and frozen
    (:func:`own`: copied unless already immutable, e.g. Arrow memory). With ``order``
    the ids of every row must also be sorted and unique.

    Parameters
    ----------
    offsets, indices : array-like of integers
        Row pointers and label ids.
    n_labels : int or None
        Width; ``None`` means ``max id + 1``.
    where : str
        Appended to messages to say what is checked (e.g. ``" of 'y.arrow'"``).
    order : bool
        Also require sorted, unique ids per row.
    hint : str
        Appended to an order error: what the caller can do about it (the default names
        the ``canonicalize=True`` option of the LabelMatrix constructors).

    Example
    -------
    >>> check_csr([0, 2], [1, 1], 3)
    Traceback (most recent call last):
    ...
    ValueError: duplicate label id 1 in row 0; pass canonicalize=True to sort and deduplicate
    """
    idx_arr = _integer_array(indices, "label ids", where)
    off = check_offsets(offsets, idx_arr.shape[0], where=where)
    idx, n_labels = check_label_ids(idx_arr, off, n_labels, where=where)
    off, idx = own(off, np.int64), own(idx, np.int32)
    if order and idx.size:
        code, row, pos = K.check_order(off, idx)
        if code == K.UNSORTED:
            raise ValueError(
                f"label ids of row {row}{where} are not sorted (id {int(idx[pos])} after "
                f"{int(idx[pos - 1])}){hint}")
        if code == K.DUPLICATE:
            raise ValueError(f"duplicate label id {int(idx[pos])} in row {row}{where}{hint}")
        if code != K.OK:  # pragma: no cover - ranges and offsets were checked above
            raise AssertionError((code, row, pos))
    return off, idx, n_labels


# ---------------------------------------------------------------------------- arguments
# The one convention: a value of the wrong type is a TypeError, a value of the right type
# outside its range is a ValueError; both name the argument and show the value.
_MAX_SEED = 2**64


def is_int(value: Any) -> bool:
    """True for a Python or NumPy integer that is not a bool."""
    return isinstance(value, (int, np.integer)) and not isinstance(value, (bool, np.bool_))


def check_int(name: str, value: Any, low: int | None = None, high: int | None = None) -> int:
    """An integer (not a bool, not a float) in ``[low, high]``, as a Python int.

    Raises ``TypeError`` for a non-integer and ``ValueError`` for one out of range, both
    naming ``name`` and the value.

    Example
    -------
    >>> check_int("epoch", np.int64(3), 0)
    3
    >>> check_int("yielded", 1.7, 0)
    Traceback (most recent call last):
    ...
    TypeError: yielded must be an integer, got 1.7 (float)
    """
    if not is_int(value):
        raise TypeError(f"{name} must be an integer, got {value!r} ({type(value).__name__})")
    v = int(value)
    if (low is not None and v < low) or (high is not None and v > high):
        lo = "-inf" if low is None else str(low)
        hi = "inf" if high is None else str(high)
        raise ValueError(f"{name} must be in [{lo}, {hi}], got {v}")
    return v


def check_bool(name: str, value: Any) -> bool:
    """``True`` or ``False`` (a NumPy bool too); anything else is a ``TypeError``."""
    if not isinstance(value, (bool, np.bool_)):
        raise TypeError(f"{name} must be True or False, got {value!r} "
                        f"({type(value).__name__})")
    return bool(value)


def check_seed(seed: int) -> int:
    """Validate a user seed: an integer in ``[0, 2**64)`` (seeds are 64-bit: a larger one
    would silently give the stream of a smaller one)."""
    if not is_int(seed):
        raise TypeError(f"seed must be an integer, got {seed!r} ({type(seed).__name__})")
    if not 0 <= seed < _MAX_SEED:
        raise ValueError(f"seed must be a non-negative integer below 2**64, got {seed!r}")
    return int(seed)


def check_positive_int(name: str, value: Any, *, allow_none: bool = False) -> int | None:
    """Validate an integer argument that must be >= 1 (``num_samples``, ``batch_size``...)."""
    if value is None and allow_none:
        return None
    if not is_int(value):
        raise TypeError(f"{name} must be a positive integer, got {value!r} "
                        f"({type(value).__name__})")
    if value <= 0:
        raise ValueError(f"{name} must be a positive integer, got {value!r}")
    return int(value)


def _shown(value: Any) -> Any:
    """``value`` as it should read in a message (NumPy scalars as plain Python numbers)."""
    return value.item() if isinstance(value, np.generic) else value


def check_number(name: str, value: Any, low: float | None = None, high: float | None = None,
                 *, low_open: bool = False, high_open: bool = False,
                 finite: bool = True) -> float:
    """A real number (not a bool) in the interval given by ``low`` / ``high``, as a float.

    ``low_open`` / ``high_open`` exclude the bound itself; NaN is always refused and, with
    ``finite`` (the default), so are ``+-inf`` (a Python int too large for a float counts
    as infinite). Raises ``TypeError`` for a non-number and ``ValueError`` for a number
    outside its range, both naming ``name`` and the value.

    Example
    -------
    >>> check_number("beta", np.float32(0.5), 0.0, 1.0, high_open=True)
    0.5
    >>> check_number("power", -1, 0.0)
    Traceback (most recent call last):
    ...
    ValueError: power must be >= 0, got -1
    >>> check_number("clip", "0.1")
    Traceback (most recent call last):
    ...
    TypeError: clip must be a real number, got '0.1' (str)
    """
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Real):
        raise TypeError(f"{name} must be a real number, got {value!r} "
                        f"({type(value).__name__})")
    shown = _shown(value)
    try:
        v = float(value)
    except OverflowError:  # an int beyond the float range
        v = math.inf if value > 0 else -math.inf
    if math.isnan(v) or (finite and math.isinf(v)):
        raise ValueError(f"{name} must be {'finite' if finite else 'a number'}, got {shown!r}")
    below = low is not None and (v < low or (low_open and v == low))
    above = high is not None and (v > high or (high_open and v == high))
    if below or above:
        if low is not None and high is not None:
            rule = (f"in {'(' if low_open else '['}{low:g}, {high:g}"
                    f"{')' if high_open else ']'}")
        elif low is not None:
            rule = f"{'>' if low_open else '>='} {low:g}"
        else:
            rule = f"{'<' if high_open else '<='} {high:g}"
        raise ValueError(f"{name} must be {rule}, got {shown!r}")
    return v


def check_choice(name: str, value: Any, choices: Sequence[Any]) -> Any:
    """One of ``choices`` (strings, or ``None``), returned as the choice itself.

    A value of another type than every choice (a list, an array, a number for string
    choices) is a ``TypeError``; one of the right type that is not a choice is a
    ``ValueError``; both name ``name``, the value and the choices.

    Example
    -------
    >>> check_choice("average", "micro", ("macro", "micro", None))
    'micro'
    >>> check_choice("average", "weighted", ("macro", "micro", None))
    Traceback (most recent call last):
    ...
    ValueError: average must be one of 'macro', 'micro', None, got 'weighted'
    """
    options = ", ".join(repr(c) for c in choices)
    kinds = tuple({type(c) for c in choices})
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, kinds):
        raise TypeError(f"{name} must be one of {options}, got {value!r} "
                        f"({type(value).__name__})")
    for c in choices:
        if c == value:
            return c
    raise ValueError(f"{name} must be one of {options}, got {value!r}")
