"""What :mod:`longtail.metrics` accepts, checked once at the boundary.

Scores become a read-only C-contiguous ``uint32`` view of float32 values
(:func:`score_bits`); targets and predictions become a
:class:`~longtail.datasets.LabelMatrix` (:func:`as_labels`): dense arrays, tensors and
lists of 0/1 rows through :meth:`LabelMatrix.from_any`, a scipy sparse matrix or any
object with CSR ``offsets`` / ``indices`` through :func:`longtail._core.checks.check_csr`
(the LabelMatrix constructor) after their structure was checked here. Errors name the
argument (``targets: ...``), the value and the first position.

Example
-------
>>> import numpy as np
>>> as_labels(np.array([[1, 0], [1, 1]]), 2, 2).indices.tolist()
[0, 0, 1]
>>> as_labels(np.array([[1, 2]]), 1, 2)
Traceback (most recent call last):
...
ValueError: targets: value 2 at row 0, label 1: entries must be 0 or 1
"""
from __future__ import annotations

import numbers
import operator
import sys
from typing import TYPE_CHECKING, Any, Union

import numpy as np

from longtail._core.checks import check_n_labels, check_offsets, freeze
from longtail.datasets import LabelMatrix
from longtail.metrics import _kernels as _k

if TYPE_CHECKING:  # pragma: no cover
    import torch

    ArrayLike = Union[np.ndarray, torch.Tensor]
else:
    ArrayLike = Any

#: entries per row chunk in the micro-average and row-wise kernels
CHUNK_ELEMS = 1 << 25


def chunk_rows(n_labels: int) -> int:
    """Rows per chunk of about :data:`CHUNK_ELEMS` entries (at least one)."""
    return max(1, CHUNK_ELEMS // n_labels)


# ---------------------------------------------------------------------------------
# arrays and tensors
# ---------------------------------------------------------------------------------
def is_torch(x: Any) -> bool:
    """Whether ``x`` is a torch tensor (without importing torch)."""
    torch = sys.modules.get("torch")
    return torch is not None and isinstance(x, torch.Tensor)


def torch_module():
    import torch

    return torch


def to_numpy(x: Any, name: str) -> np.ndarray:
    """``x`` as a numpy array (a CPU copy of a tensor); TypeError/ValueError naming ``name``."""
    if is_torch(x):
        torch = torch_module()
        try:
            t = x.detach()
            if t.layout != torch.strided:
                raise TypeError(f"{name} must be a dense tensor, got layout {t.layout}")
            if t.device.type != "cpu":
                t = t.cpu()
            if t.dtype.is_floating_point and t.dtype not in (torch.float32, torch.float64):
                t = t.float()  # float16 / bfloat16 have no (portable) numpy dtype
            return t.resolve_conj().resolve_neg().numpy()
        except TypeError as exc:
            raise TypeError(f"{name}: {exc}" if name not in str(exc) else str(exc)) from None
        except (RuntimeError, NotImplementedError) as exc:
            raise TypeError(f"{name} cannot be read as an array: {exc}") from None
    try:
        return np.asarray(x)
    except ValueError as exc:  # ragged nested sequences
        raise ValueError(f"{name} is not a rectangular array: {exc}") from None
    except Exception as exc:
        raise TypeError(f"{name} must be an array or tensor, got {type(x).__name__}: "
                        f"{exc}") from None


def tensor_or_array(x: Any, name: str, *, floating: bool = False) -> tuple[Any, tuple]:
    """``(x, shape)``: a dense real tensor kept as it is, anything else as numpy.

    ``floating`` asks for floating point tensors and real (not bool) arrays; otherwise
    bool, integer and float are all accepted. TypeError names ``name`` and the dtype.
    """
    if is_torch(x):
        torch = torch_module()
        if (x.layout != torch.strided or x.dtype.is_complex
                or (floating and not x.is_floating_point())):
            kind = "a floating point" if floating else "a dense real"
            raise TypeError(f"{name} must be {kind} tensor, got {x.dtype}, {x.layout}")
        return x, tuple(x.shape)
    arr = to_numpy(x, name)
    if arr.dtype == object and _python_ints(arr):
        # integers beyond int64/uint64 (e.g. 2**64): real numbers all the same
        arr = arr.astype(np.float64)
    if arr.dtype.kind not in ("iuf" if floating else "biuf"):
        raise TypeError(f"{name} must be {'real numbers' if floating else 'numeric'}, "
                        f"got dtype {arr.dtype}")
    return arr, arr.shape


def _python_ints(arr: np.ndarray) -> bool:
    """Whether an object array holds only Python ints (not bools), as numpy makes of
    integers too large for int64 / uint64."""
    return arr.size > 0 and all(type(v) is int for v in arr.flat)


def real_array(x: Any, name: str) -> np.ndarray:
    """``x`` as a float64 array; TypeError for anything but real numbers (bool too)."""
    if isinstance(x, (str, bytes)):
        raise TypeError(f"{name} must be numeric, got {x!r}")
    arr = to_numpy(x, name)
    if arr.dtype.kind == "O" and arr.size and all(  # Python ints beyond int64, e.g. 2**64
            isinstance(v, numbers.Real) and not isinstance(v, (bool, np.bool_))
            for v in arr.flat):
        return arr.astype(np.float64)
    if arr.dtype.kind not in "iuf":
        raise TypeError(f"{name} must be real numbers, got dtype {arr.dtype}")
    return arr.astype(np.float64)


def first_true(mask: np.ndarray) -> str:
    """``"[i]"`` / ``"[i, j]"`` / ``""``: the first True position of ``mask``."""
    if mask.ndim == 0:
        return ""
    pos = np.argwhere(mask)[0]
    return "[" + ", ".join(str(int(p)) for p in pos) + "]"


# ---------------------------------------------------------------------------------
# scores
# ---------------------------------------------------------------------------------
def as_matrix(a: Any, name: str, *, nonempty: bool = False) -> Any:
    """``a`` (a NumPy array or a torch tensor) as ``[n, C]``: a 1-D input is one column;
    anything else but 2-D is a ValueError naming ``name``, as is an empty matrix when
    ``nonempty``."""
    if a.ndim == 1:
        a = a.reshape(-1, 1)
    if a.ndim != 2:
        raise ValueError(f"{name} must have shape [n, C], got shape {tuple(a.shape)}")
    if nonempty and (a.shape[0] == 0 or a.shape[1] == 0):
        raise ValueError(f"{name} is empty (shape {tuple(a.shape)}): need n >= 1 and C >= 1")
    return a


def score_bits(scores: Any, name: str = "scores", check_nan: bool = True) -> np.ndarray:
    """float32 scores as a read-only C-contiguous uint32 bit view ``[n, C]``.

    With ``check_nan=False`` the caller's kernels count NaNs on their single pass over
    the scores and call :func:`raise_nan` (no separate scan). Finite scores beyond the
    float32 range are rejected (they would all become ``inf``, a tie).
    """
    arr = to_numpy(scores, name)
    if arr.dtype.kind not in "fiub":
        raise TypeError(f"{name} must be numeric, got dtype {arr.dtype}")
    arr = as_matrix(arr, name, nonempty=True)
    if arr.shape[0] * arr.shape[1] >= 2**62:  # pragma: no cover - cannot be allocated
        raise ValueError(f"{name} is too large (shape {tuple(arr.shape)})")
    with np.errstate(over="ignore"):  # beyond float32: reported below
        f32 = np.ascontiguousarray(arr, dtype=np.float32)
    if arr.dtype.kind == "f" and arr.dtype.itemsize > 4:
        hi, lo = f32.max(), f32.min()
        if not (np.isfinite(hi) and np.isfinite(lo)):  # inf or NaN somewhere: look closer
            rows = chunk_rows(arr.shape[1])
            for r0 in range(0, arr.shape[0], rows):
                over = np.isinf(f32[r0:r0 + rows]) & np.isfinite(arr[r0:r0 + rows])
                if over.any():
                    r, c = np.argwhere(over)[0]
                    raise ValueError(
                        f"{name}[{r0 + int(r)}, {int(c)}]={arr[r0 + r, c].item()!r} is beyond "
                        f"the float32 range (scores are compared as float32)")
    bits = freeze(f32.view(np.uint32))
    if check_nan:
        raise_nan(bits, name)
    return bits


def raise_nan(bits: np.ndarray, name: str = "scores") -> None:
    """ValueError naming the first NaN of ``bits``, if any."""
    bad = _k.first_nan(bits)
    if bad >= 0:
        r, c = divmod(int(bad), bits.shape[1])
        raise ValueError(f"{name} contains NaN at row {r}, label {c}")


# ---------------------------------------------------------------------------------
# targets and predictions
# ---------------------------------------------------------------------------------
def is_csr(x: Any) -> bool:
    """Anything with CSR ``offsets`` / ``indices`` (a LabelMatrix or a duck-typed one)."""
    return hasattr(x, "offsets") and hasattr(x, "indices") and not is_torch(x)


def is_scipy_sparse(x: Any) -> bool:
    return hasattr(x, "tocsr") and hasattr(x, "nnz") and hasattr(x, "shape")


def prefixed(exc: Exception, name: str) -> Exception:
    """``exc`` (from :mod:`longtail._core.checks` or LabelMatrix) as ``"{name}: ..."``."""
    msg = str(exc).replace("; pass canonicalize=True to sort and deduplicate",
                           "; each row's ids must be sorted and unique")
    return type(exc)(f"{name}: {msg}")


def claimed_shape(x: Any, name: str) -> tuple[int | None, int | None, Any]:
    """``(rows, labels, x)`` of targets or predictions, read without walking any CSR.

    Dense inputs come back converted to numpy (``[n]`` as ``[n, 1]``), so they are
    converted only once; ``None`` where a CSR does not say.
    """
    if is_scipy_sparse(x):
        return (*_sparse_shape(x, name), x)
    if is_csr(x):
        offsets = to_numpy(x.offsets, f"{name}.offsets")
        n = offsets.shape[0] - 1 if offsets.ndim == 1 and offsets.shape[0] >= 1 else None
        try:
            n_labels = check_n_labels(getattr(x, "n_labels", None))
        except (TypeError, ValueError) as exc:
            raise prefixed(exc, name) from None
        return n, n_labels, x
    arr = as_matrix(to_numpy(x, name), name)
    return arr.shape[0], arr.shape[1], arr


def as_labels(targets: Any, n: int, n_labels: int, name: str = "targets") -> LabelMatrix:
    """Targets (or predictions) of shape ``(n, n_labels)`` as a checked LabelMatrix.

    A LabelMatrix is used as it is; dense arrays, tensors and lists of 0/1 rows go
    through :meth:`LabelMatrix.from_any`; a scipy sparse matrix and any object with CSR
    ``offsets`` / ``indices`` through the LabelMatrix constructor (every CSR check of
    :func:`longtail._core.checks.check_csr`) after their structure is checked here.
    """
    t_n, t_labels, targets = claimed_shape(targets, name)
    if (t_n is not None and t_n != n) or (t_labels is not None and t_labels != n_labels):
        raise ValueError(f"{name} has shape ({t_n}, {t_labels}) but scores have shape "
                         f"({n}, {n_labels})")
    if isinstance(targets, LabelMatrix):
        return targets
    if is_scipy_sparse(targets):
        return _scipy_labels(targets, name)
    if is_csr(targets):
        return _labels(to_numpy(targets.offsets, f"{name}.offsets"),
                       to_numpy(targets.indices, f"{name}.indices"), n_labels, name)
    if targets.dtype.kind not in "biuf":
        raise TypeError(f"{name} must be 0/1 (bool, integer or float), got dtype "
                        f"{targets.dtype}")
    try:
        return LabelMatrix.from_any(targets, n_labels)
    except (TypeError, ValueError) as exc:
        raise prefixed(exc, name) from None


def _labels(offsets: Any, indices: Any, n_labels: int, name: str) -> LabelMatrix:
    """``LabelMatrix(offsets, indices, n_labels)`` with errors that start with ``name``."""
    try:
        return LabelMatrix(offsets, indices, n_labels)
    except (TypeError, ValueError) as exc:
        raise prefixed(exc, name) from None


def _index_array(a: Any, name: str, limit: int) -> np.ndarray:
    """1-D integer ids, each in ``[0, limit)`` (checked on the original dtype), as int64."""
    arr = to_numpy(a, name)
    if arr.ndim != 1:
        raise ValueError(f"{name} must be 1-D, got shape {arr.shape}")
    if arr.dtype.kind not in "iu":
        if arr.size == 0:
            return np.empty(0, dtype=np.int64)
        raise TypeError(f"{name} must be integers, got dtype {arr.dtype}")
    if arr.size:
        lo, hi = int(arr.min()), int(arr.max())
        if lo < 0 or hi >= limit:
            p = int(np.flatnonzero((arr < 0) | (arr >= limit))[0])
            raise ValueError(f"{name}[{p}]={int(arr[p])} is out of range [0, {limit})")
    return arr.astype(np.int64)


def _sparse_shape(x: Any, name: str) -> tuple[int, int]:
    shape = getattr(x, "shape", None)
    try:
        n, c = (operator.index(v) for v in shape)
    except (TypeError, ValueError):
        raise ValueError(f"{name} must be a 2-D sparse matrix, got shape {shape!r}") from None
    if n < 0 or c < 0:
        raise ValueError(f"{name} has an invalid shape {shape!r}")
    return int(n), int(c)


def _scipy_entries(x: Any, name: str, n: int, n_labels: int
                   ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(rows, cols, data)`` of a scipy sparse matrix, its structure checked first.

    A matrix whose ``indptr`` / ``indices`` were replaced by hand is an error, not a
    crash: nothing here lets scipy walk an unchecked structure.
    """
    fmt = getattr(x, "format", None)
    try:
        if fmt in ("csr", "csc"):
            major, minor = (n, n_labels) if fmt == "csr" else (n_labels, n)
            ind = to_numpy(x.indices, f"{name}.indices")
            try:
                ptr = check_offsets(to_numpy(x.indptr, f"{name}.indptr"),
                                    ind.shape[0] if ind.ndim == 1 else -1)
            except (TypeError, ValueError) as exc:
                raise prefixed(exc, f"{name}.indptr") from None
            if ptr.shape[0] != major + 1:
                raise ValueError(f"{name}.indptr has {ptr.shape[0]} entries, expected "
                                 f"{major + 1} for shape {(n, n_labels)}")
            minor_ids = _index_array(ind, f"{name}.indices", minor)
            major_ids = np.repeat(np.arange(major, dtype=np.int64), np.diff(ptr))
            rows, cols = (major_ids, minor_ids) if fmt == "csr" else (minor_ids, major_ids)
            data = to_numpy(x.data, f"{name}.data")
        else:
            coo = x if fmt == "coo" else x.tocoo()
            rows = _index_array(coo.row, f"{name}.row", n)
            cols = _index_array(coo.col, f"{name}.col", n_labels)
            if rows.shape != cols.shape:
                raise ValueError(f"{name}: row and col differ in length "
                                 f"({rows.shape[0]} != {cols.shape[0]})")
            data = to_numpy(coo.data, f"{name}.data")
    except (TypeError, ValueError):
        raise
    except Exception as exc:  # a broken object: scipy's own checks, attributes missing
        raise ValueError(f"{name} is not a valid sparse matrix: {exc}") from None
    if data.ndim != 1 or data.shape[0] != rows.shape[0]:
        raise ValueError(f"{name}.data has shape {data.shape}, expected ({rows.shape[0]},)")
    if data.dtype.kind not in "biuf":
        raise TypeError(f"{name} must be 0/1 (bool, integer or float), got dtype {data.dtype}")
    return rows, cols, data


def _scipy_labels(x: Any, name: str) -> LabelMatrix:
    """A scipy sparse 0/1 matrix as a LabelMatrix (explicit zeros dropped).

    Entries count as in ``x.toarray()`` (duplicates summed) and must then be 0 or 1.
    """
    n, n_labels = _sparse_shape(x, name)
    rows, cols, data = _scipy_entries(x, name, n, n_labels)
    width = max(n_labels, 1)
    key = rows * width + cols  # < 2**62: n, n_labels < 2**31
    if key.size > 1 and not bool(np.all(key[1:] > key[:-1])):
        order = np.argsort(key, kind="stable")
        key = key[order]
        starts = np.flatnonzero(np.r_[True, key[1:] != key[:-1]])
        ufunc = np.logical_or if data.dtype.kind == "b" else np.add  # as scipy sums
        data = ufunc.reduceat(data[order], starts) if starts.size else data[order]
        key = key[starts]
    nz = data != 0
    key, data = key[nz], data[nz]
    bad = data != 1
    if bad.any():
        t = int(np.flatnonzero(bad)[0])
        raise ValueError(f"{name}: value {data[t].item()!r} at row {int(key[t] // width)}, "
                         f"label {int(key[t] % width)}: entries must be 0 or 1")
    offsets = np.zeros(n + 1, dtype=np.int64)
    if key.size:
        np.cumsum(np.bincount(key // width, minlength=n), out=offsets[1:])
    return _labels(offsets, key % width, n_labels, name)
