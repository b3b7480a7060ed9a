"""LabelMatrix: an immutable CSR multilabel matrix over Arrow memory.

Rows are examples; each row holds its sorted, unique label ids in ``[0, n_labels)``.
Construction validates once and says which row is wrong; after that every kernel trusts
the two arrays ``offsets`` (int64[n+1], offsets[0] == 0) and ``indices`` (int32[nnz]).

Real label lists are often unsorted or repeat an id: every in-memory constructor (and so
every longtail entry point, through :meth:`LabelMatrix.from_any`) sorts and deduplicates
such rows once and says so with one :class:`UnsortedLabelsWarning` that counts them
(``canonicalize=True`` does it silently, ``canonicalize=False`` refuses them). A
memory-mapped file (:meth:`LabelMatrix.open`) stays strict: sorting it would copy the
whole column into memory behind the caller's back; ``longtail convert --canonicalize``
rewrites it once.
"""
from __future__ import annotations

import dataclasses
import os
import sys
import warnings
from typing import TYPE_CHECKING, Any, Iterable, Sequence

import numpy as np

from longtail._core.checks import check_csr, check_n_labels, check_offsets, freeze, row_of
from longtail.datasets import _kernels as K
from longtail.datasets.io import (
    PathLike,
    check_input_file,
    check_mapped,
    check_output_file,
    column_of,
    file_fingerprint,
    labels_field_array,
    open_ipc,
)

if TYPE_CHECKING:  # pragma: no cover
    import pyarrow as pa
    import scipy.sparse
    import torch

_INT64_MAX = int(np.iinfo(np.int64).max)

#: order-error hints: in-memory constructors take ``canonicalize``; files have the CLI
_HINT_MEMORY = "; canonicalize=True (CLI: longtail convert --canonicalize) sorts and deduplicates"
_HINT_FILE = ("; rewrite the file once with `longtail convert --canonicalize`, or open it "
              "with canonicalize=True to sort it into memory")
_PACKAGE_DIR = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


class UnsortedLabelsWarning(UserWarning):
    """Label rows were not sorted or repeated an id, and were sorted and deduplicated.

    Emitted once per conversion with the number of rows fixed. Silence it with
    ``canonicalize=True`` (or a warnings filter on this class); ``canonicalize=False``
    turns such rows into an error.

    Example
    -------
    >>> import warnings
    >>> with warnings.catch_warnings(record=True) as w:
    ...     warnings.simplefilter("always")
    ...     y = LabelMatrix.from_lists([[2, 0, 2], [1]])
    >>> y.indices.tolist()
    [0, 2, 1]
    >>> print(*str(w[0].message).split("; "), sep="\\n")
    labels: sorted 1 of 2 rows (label ids were not in ascending order)
    duplicates removed: 1 (in 1 row)
    pass canonicalize=True to do this silently
    """


def _stacklevel() -> int:
    """``warnings.warn`` stacklevel of the first caller outside the longtail package."""
    frame, level = sys._getframe(1), 1
    while frame is not None and os.path.abspath(frame.f_code.co_filename).startswith(
            _PACKAGE_DIR + os.sep):
        frame, level = frame.f_back, level + 1
    return level


def _order_message(n_rows: int, unsorted: int, dup_rows: int, dups: int, where: str) -> str:
    """The text of an :class:`UnsortedLabelsWarning`."""
    parts = []
    if unsorted:
        parts.append(f"sorted {unsorted:,} of {n_rows:,} rows (label ids were not in "
                     "ascending order)")
    if dups:
        rows = f"{dup_rows:,} row" + ("s" if dup_rows != 1 else "")
        parts.append(f"duplicates removed: {dups:,} (in {rows}"
                     + ("" if unsorted else f" of {n_rows:,}") + ")")
    return (f"labels{where}: " + "; ".join(parts)
            + "; pass canonicalize=True to do this silently")


def _as_rows(rows: Any, n: int) -> np.ndarray:
    """Normalise row selectors to a fresh int64 array, checking bounds (negatives wrap)."""
    if isinstance(rows, slice):
        return np.arange(n, dtype=np.int64)[rows]
    if hasattr(rows, "detach"):  # torch tensor
        rows = rows.detach().cpu().numpy()
    arr = np.asarray(rows)
    if arr.dtype == bool:
        if arr.shape != (n,):
            raise ValueError(f"boolean row mask must have shape ({n},), got {arr.shape}")
        return np.flatnonzero(arr).astype(np.int64)
    if arr.ndim == 0:
        arr = arr.reshape(1)
    if arr.ndim != 1:
        raise ValueError(f"rows must be 1-D, got shape {arr.shape}")
    if arr.size and not np.issubdtype(arr.dtype, np.integer):
        raise TypeError(f"rows must be integers, got dtype {arr.dtype}")
    if arr.dtype.kind == "u" and arr.size and int(arr.max()) > _INT64_MAX:
        k = int(np.flatnonzero(arr > _INT64_MAX)[0])
        raise IndexError(f"row {int(arr[k])} (position {k}) is out of range for {n} rows")
    out = np.array(arr, dtype=np.int64, copy=True)
    if out.size:
        neg = out < 0
        if neg.any():
            out[neg] += n
        bad = (out < 0) | (out >= n)
        if bad.any():
            k = int(np.flatnonzero(bad)[0])
            raise IndexError(f"row {int(arr[k])} (position {k}) is out of range for {n} rows")
    return out


@dataclasses.dataclass(frozen=True)
class LabelStats:
    """Label statistics of a multilabel dataset (Charte et al. 2015 measures).

    ``ir_per_label`` is IRLbl: count of the most frequent label / count of the label
    (``inf`` for a label without examples, excluded from MeanIR, MaxIR and CVIR).
    """

    n_examples: int
    n_labels: int
    nnz: int
    cardinality: float
    density: float
    empty_examples: int
    empty_labels: int
    prevalence_min: float
    prevalence_max: float
    label_count_quantiles: dict[str, float]
    ir_per_label: np.ndarray
    mean_ir: float
    max_ir: float
    cvir: float
    scumble: float

    def to_dict(self, per_label: bool = False) -> dict[str, Any]:
        """Plain-Python dictionary (JSON-ready); ``per_label`` adds the IRLbl list."""
        out = {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}
        ir = out.pop("ir_per_label")
        if per_label:
            out["ir_per_label"] = [None if not np.isfinite(v) else float(v) for v in ir]
        return out

    def __str__(self) -> str:
        q = self.label_count_quantiles
        rows = [
            ("examples", f"{self.n_examples:,}"),
            ("labels", f"{self.n_labels:,}"),
            ("positive pairs (nnz)", f"{self.nnz:,}"),
            ("cardinality (labels/example)", f"{self.cardinality:.2f}"),
            ("density", f"{self.density:.5f}"),
            ("examples without labels", f"{self.empty_examples:,}"),
            ("labels without examples", f"{self.empty_labels:,}"),
            ("prevalence min .. max", f"{self.prevalence_min:.4%} .. {self.prevalence_max:.4%}"),
            ("label count quantiles", "  ".join(f"{k}:{v:g}" for k, v in q.items())),
            ("MeanIR", f"{self.mean_ir:.3f}"),
            ("MaxIR", f"{self.max_ir:.3f}"),
            ("CVIR", f"{self.cvir:.3f}"),
            ("SCUMBLE", f"{self.scumble:.4f}"),
        ]
        width = max(len(k) for k, _ in rows)
        return "\n".join(f"{k:<{width}}  {v}" for k, v in rows)


class LabelMatrix:
    """Immutable CSR multilabel matrix (example -> sorted label ids), Arrow-backed.

    Build it with a ``from_*`` constructor, :meth:`open` (memory-mapped IPC) or
    :meth:`read_parquet`; the arrays are validated once and are read-only afterwards.
    ``LabelMatrix(offsets, indices, n_labels)`` takes CSR arrays, which are canonical by
    definition (each row sorted and unique, as scipy's ``has_canonical_format``): it
    refuses other rows unless ``canonicalize=True`` (sort silently) or ``None`` (sort
    and warn, the default of every ``from_*`` constructor).

    Attributes
    ----------
    offsets : ndarray of int64, shape (n + 1,)
        Row ``i`` holds ``indices[offsets[i]:offsets[i + 1]]``; ``offsets[0] == 0``.
    indices : ndarray of int32, shape (nnz,)
        Sorted, unique label ids per row.
    n_labels : int
        Number of labels (columns).

    Example
    -------
    >>> y = LabelMatrix.from_lists([[0, 3], [], [3]], n_labels=4)
    >>> len(y), y.nnz, y.label_counts().tolist()
    (3, 3, [1, 0, 0, 2])
    >>> y.multi_hot([0]).tolist()
    [[1.0, 0.0, 0.0, 1.0]]
    """

    __slots__ = ("_offsets", "_indices", "_n_labels", "_keepalive", "_path", "_column",
                 "_fingerprint", "_transpose", "_counts", "_fixed", "__weakref__")

    def __init__(
        self,
        offsets: np.ndarray,
        indices: np.ndarray,
        n_labels: int | None = None,
        *,
        canonicalize: bool | None = False,
    ) -> None:
        self._setup(offsets, indices, n_labels, canonicalize=canonicalize, hint=None)

    # ------------------------------------------------------------------ construction
    def _setup(self, offsets, indices, n_labels, *, canonicalize=None, trusted=False,
               keepalive=None, path=None, column=None, where="", fingerprint=None,
               hint: str | None = _HINT_MEMORY) -> None:
        """Check (unless ``trusted``: arrays this package just built), own and freeze.

        Untrusted arrays go through :func:`longtail._core.checks.check_csr` (offsets first,
        then the id range, then the order), so no kernel ever walks unchecked offsets.
        ``canonicalize``: ``False`` refuses rows that are not strictly increasing (the
        error ends with ``hint``), ``True`` sorts and deduplicates them, ``None`` does
        too and warns once with their count. Canonical input costs one pass, no copy.
        ``hint=None`` keeps :func:`check_csr`'s own hint (``canonicalize=True``).
        """
        if canonicalize is not None and not isinstance(canonicalize, (bool, np.bool_)):
            raise TypeError(f"canonicalize must be True, False or None, got {canonicalize!r}")
        fixed = False
        if trusted:
            offsets, indices = freeze(offsets), freeze(indices)
            n_labels = int(n_labels)
        else:
            strict = canonicalize is not None and not canonicalize
            kw = {} if hint is None else {"hint": hint}
            offsets, indices, n_labels = check_csr(offsets, indices, n_labels, where=where,
                                                   order=strict, **kw)
            if not strict and indices.size:
                unsorted, dup_rows, dups = K.row_order_stats(offsets, indices)
                if unsorted or dups:
                    offsets, indices = K.canonicalize_rows(offsets, indices)
                    offsets, indices = freeze(offsets), freeze(indices)
                    keepalive, fixed = None, True  # the new arrays own their memory
                    if canonicalize is None:
                        msg = _order_message(offsets.shape[0] - 1, unsorted, dup_rows,
                                             dups, where)
                        warnings.warn(msg, UnsortedLabelsWarning, stacklevel=_stacklevel())
        self._offsets = offsets
        self._indices = indices
        self._n_labels = n_labels
        self._keepalive = keepalive
        self._path = path
        self._column = column
        self._fingerprint = fingerprint
        self._transpose = None
        self._counts = None
        self._fixed = fixed

    @classmethod
    def _trusted(cls, offsets, indices, n_labels) -> "LabelMatrix":
        """A matrix over arrays that this package built and knows to be canonical."""
        self = cls.__new__(cls)
        self._setup(offsets, indices, n_labels, trusted=True)
        return self

    @classmethod
    def from_arrow(
        cls,
        array: "pa.Array | pa.ChunkedArray",
        n_labels: int | None = None,
        *,
        canonicalize: bool | None = None,
    ) -> "LabelMatrix":
        """From an Arrow ``list`` / ``large_list`` array of integer label ids.

        A single-chunk ``list<int32>`` or ``large_list<int32>`` array is not copied (the
        label ids share memory with Arrow; ``list`` offsets are widened to int64); other
        integer types are converted once; a ChunkedArray of several chunks (Hugging Face
        datasets stores ``list<int64>`` in 1000-row chunks) is combined once. Sliced
        arrays (``offsets[0] != 0``) are handled. Offsets and ids are always checked
        (one vectorised pass), whatever the array's origin.

        Parameters
        ----------
        array : pyarrow.Array or pyarrow.ChunkedArray
            ``list<int*>`` or ``large_list<int*>``, no nulls.
        n_labels : int, optional
            Number of labels; default ``max id + 1``.
        canonicalize : bool or None
            Rows that are unsorted or repeat an id: ``None`` (default) sorts and
            deduplicates them (one copy) and warns once with their count
            (:class:`UnsortedLabelsWarning`), ``True`` does it silently, ``False``
            refuses them (ValueError naming the first such row).

        Example
        -------
        >>> import pyarrow as pa
        >>> LabelMatrix.from_arrow(pa.array([[0, 1], [2]], pa.list_(pa.int32()))).nnz
        3
        """
        keepalive, offsets, values = cls._arrow_arrays(array)
        self = cls.__new__(cls)
        self._setup(offsets, values, n_labels, canonicalize=canonicalize, keepalive=keepalive)
        return self

    @staticmethod
    def _arrow_arrays(array: Any, where: str = "") -> tuple[Any, np.ndarray, np.ndarray]:
        """Zero-copy ``(keepalive, offsets, values)`` of an Arrow list array.

        The offsets are checked here (in bounds of the values, non-decreasing) before the
        values are sliced with them; ids are checked by :func:`check_csr` afterwards.
        """
        import pyarrow as pa

        if isinstance(array, pa.Table):
            raise TypeError("from_arrow takes a column (Array/ChunkedArray), not a Table")
        if isinstance(array, pa.ChunkedArray):
            if array.num_chunks == 1:
                array = array.chunk(0)
            elif array.num_chunks == 0:
                array = pa.array([], type=array.type)
            else:
                try:
                    array = array.combine_chunks()
                except (pa.ArrowException, OSError) as exc:
                    raise ValueError(f"labels{where}: cannot combine chunks: {exc}") from None
        if not isinstance(array, pa.Array):
            raise TypeError(f"expected a pyarrow Array or ChunkedArray, got {type(array).__name__}")
        t = array.type
        if not (pa.types.is_list(t) or pa.types.is_large_list(t)):
            raise TypeError(f"labels{where} must be list<int> or large_list<int>, got {t}")
        vt = t.value_type
        if pa.types.is_nested(vt):
            raise TypeError(f"labels{where} must be a flat list of label ids, got nested type {t}")
        if not pa.types.is_integer(vt):
            raise TypeError(f"label ids{where} must be integers, got {vt}")
        if len(array) == 0:
            raise ValueError(f"labels{where} have zero rows")
        offsets = np.asarray(array.offsets)
        values = array.values
        start, stop = int(offsets[0]), int(offsets[-1])
        if not 0 <= start <= len(values):
            raise ValueError(f"labels{where}: first offset {start} is outside the "
                             f"{len(values)} label ids")
        if stop > len(values):
            raise ValueError(f"labels{where}: last offset {stop} is beyond the "
                             f"{len(values)} label ids")
        if start:
            offsets = offsets.astype(np.int64) - start
        offsets = check_offsets(offsets, max(stop - start, 0), where=where)
        if array.null_count:
            row = int(np.flatnonzero(np.asarray(array.is_null()))[0])
            raise ValueError(f"labels{where}: row {row} is null")
        if values.null_count:
            nulls = np.flatnonzero(np.asarray(values.is_null())[start:stop])
            if nulls.size:
                pos = int(nulls[0])
                raise ValueError(f"labels{where}: null label id in row {row_of(offsets, pos)}")
            values = values.slice(start, stop - start)
            vals = np.asarray(values.fill_null(0))
        else:
            vals = values.to_numpy(zero_copy_only=True)[start:stop]
        return array, offsets, vals

    @classmethod
    def from_lists(
        cls,
        lists: Iterable[Iterable[int]],
        n_labels: int | None = None,
        *,
        canonicalize: bool | None = None,
    ) -> "LabelMatrix":
        """From a sequence of label-id sequences (lists, tuples, arrays).

        Parameters
        ----------
        lists : sequence of sequences of int
            One sequence of label ids per example, in any order.
        n_labels : int, optional
            Number of labels; default ``max id + 1``.
        canonicalize : bool or None
            Rows that are unsorted or repeat an id: ``None`` (default) sorts and
            deduplicates them (one copy) and warns once with their count
            (:class:`UnsortedLabelsWarning`), ``True`` does it silently, ``False``
            refuses them (ValueError naming the first such row).

        Example
        -------
        >>> LabelMatrix.from_lists([[2, 0, 2]], canonicalize=True).indices.tolist()
        [0, 2]
        """
        import pyarrow as pa

        lists = lists if isinstance(lists, Sequence) else list(lists)
        try:
            # infer the type: an explicit int type would silently truncate 1.5 to 1
            arr = pa.array(lists)
        except (pa.ArrowInvalid, pa.ArrowTypeError, TypeError, ValueError, OverflowError) as exc:
            err, msg = cls._explain_bad_list(lists, exc)
            raise err(msg) from None
        t = arr.type
        if pa.types.is_null(t) and len(arr):
            raise ValueError("labels: row 0 is null")
        if pa.types.is_null(t) or (pa.types.is_list(t) and pa.types.is_null(t.value_type)):
            arr = arr.cast(pa.large_list(pa.int64()))
        elif not ((pa.types.is_list(t) or pa.types.is_large_list(t))
                  and pa.types.is_integer(t.value_type)):
            err, msg = cls._explain_bad_list(lists, TypeError(f"inferred type {t}"))
            raise err(msg)
        return cls.from_arrow(arr, n_labels, canonicalize=canonicalize)

    @staticmethod
    def _explain_bad_list(lists: Sequence[Any], exc: Exception) -> tuple[type, str]:
        """``(exception type, message)`` naming the first row that Arrow could not read."""
        for r, row in enumerate(lists):
            if row is None:
                continue
            if isinstance(row, (str, bytes)) or not hasattr(row, "__iter__"):
                return TypeError, f"row {r} is not a sequence of label ids: {row!r}"
            for v in row:
                if v is None:
                    continue
                if isinstance(v, (str, bytes)):
                    return TypeError, (f"row {r} has a non-integer label id {v!r} "
                                       f"({type(v).__name__})")
                if hasattr(v, "__iter__"):
                    return TypeError, (f"row {r} is nested (a label id is itself a "
                                       f"sequence: {v!r})")
                if isinstance(v, (bool, np.bool_)) or not isinstance(v, (int, np.integer)):
                    return TypeError, (f"row {r} has a non-integer label id {v!r} "
                                       f"({type(v).__name__})")
                if not -(1 << 63) <= int(v) < (1 << 63):
                    return ValueError, (f"label id {int(v)} beyond the int32 label-id range in row {r}"
                                        "")
        return TypeError, f"cannot read label lists: {exc}"

    @classmethod
    def from_scipy(
        cls, matrix: "scipy.sparse.spmatrix | scipy.sparse.sparray", *, canonicalize: bool = False
    ) -> "LabelMatrix":
        """From a scipy sparse 0/1 matrix (any format; the input is not modified).

        Explicit zeros are dropped; stored values other than 1 are an error (duplicate
        COO entries sum to 2: pass ``canonicalize=True`` to treat every stored nonzero as 1).

        Example
        -------
        >>> import scipy.sparse as sp
        >>> LabelMatrix.from_scipy(sp.csr_matrix([[0, 1], [1, 1]])).nnz
        3
        """
        import scipy.sparse as sp

        if not sp.issparse(matrix):
            raise TypeError(f"expected a scipy sparse matrix, got {type(matrix).__name__}")
        coo = sp.coo_matrix(matrix, copy=True)
        n, n_labels = coo.shape
        if n == 0:
            raise ValueError("labels have zero rows")
        if coo.data.dtype.kind not in "biuf":
            raise TypeError(f"sparse labels must be numeric or bool, got dtype {coo.data.dtype}")
        with np.errstate(invalid="ignore"):
            bad = ~np.isfinite(coo.data) | (coo.data < 0)
        if bad.any():  # checked before duplicates are summed: -1 + 1 must not vanish
            p = int(np.flatnonzero(bad)[0])
            raise ValueError(f"value {coo.data[p].item()!r} at row {int(coo.row[p])}, label "
                             f"{int(coo.col[p])}: entries must be 0 or 1")
        csr = coo.tocsr()
        csr.sum_duplicates()
        csr.eliminate_zeros()
        data = csr.data
        if not canonicalize:
            bad = data != 1
            if bad.any():
                p = int(np.flatnonzero(bad)[0])
                raise ValueError(
                    f"value {data[p].item()!r} at row {row_of(csr.indptr, p)}, label "
                    f"{int(csr.indices[p])}: entries must be 0 or 1")
        return cls(csr.indptr, csr.indices, n_labels)

    @classmethod
    def from_dense(cls, array: Any) -> "LabelMatrix":
        """From a dense (n, n_labels) 0/1 or boolean array (numpy, torch, lists).

        Any numeric dtype whose entries are all 0 or 1 is accepted (a bool is 1 where
        it is true). The array is read in row chunks of about 32M entries, as bytes,
        two passes (count, then fill), 8 bytes at a time: zero bytes cost little and the
        extra memory is one chunk of bytes (none for 1-byte dtypes) plus the result.

        Raises
        ------
        TypeError
            A dtype that is neither numeric nor bool.
        ValueError
            Not 2-D, zero rows, or an entry other than 0 or 1 (the first one, by row).

        Example
        -------
        >>> LabelMatrix.from_dense([[1, 0, 1]]).indices.tolist()
        [0, 2]
        """
        if hasattr(array, "detach"):
            import torch

            t = array.detach().cpu()
            array = (t.float() if t.dtype == torch.bfloat16 else t).numpy()  # no NumPy bf16
        a = np.asarray(array)
        if a.ndim != 2:
            raise ValueError(f"dense labels must be 2-D (n, n_labels), got shape {a.shape}")
        if a.shape[0] == 0:
            raise ValueError("labels have zero rows")
        if a.dtype != bool and not np.issubdtype(a.dtype, np.number):
            raise TypeError(f"dense labels must be numeric or bool, got dtype {a.dtype}")
        check_n_labels(a.shape[1])
        offsets, indices = _dense_csr(a)
        return cls._trusted(offsets, indices, a.shape[1])

    @classmethod
    def from_any(cls, labels: Any, n_labels: int | None = None, *,
                 lists: str = "ids", canonicalize: bool | None = None) -> "LabelMatrix":
        """The one label coercion: every longtail entry point reads ``labels`` through it.

        Parameters
        ----------
        labels : LabelMatrix, pyarrow list array, Hugging Face Dataset or column, pandas
            Series or DataFrame, scipy sparse, array, tensor or sequence of sequences
            A LabelMatrix is returned as is; an Arrow list array, a pandas Series of
            lists and a Hugging Face ``Dataset`` / ``ds["labels"]`` column hold label
            ids (read through Arrow, no Python objects: see :meth:`from_hf`; a Dataset
            must have exactly one list-of-integer column); a scipy sparse matrix, a 2-D
            NumPy array, a torch tensor and a pandas DataFrame are dense 0/1 (or bool)
            ``(n, n_labels)`` matrices.
        n_labels : int, optional
            Number of labels for label-id input (default: largest id + 1, or the
            ``ClassLabel`` size of a Hugging Face column); a LabelMatrix with another
            ``n_labels`` is refused.
        lists : {"ids", "dense"}
            What a Python list (or tuple) of rows means: label-id lists (``"ids"``, the
            longtail default: ``[[0, 2], [1]]`` is two examples with labels {0, 2} and
            {1}) or dense 0/1 rows (``"dense"``, scikit-learn's convention for ``y``,
            used by the splitters). It decides nothing for arrays and tensors.
        canonicalize : bool or None
            Label-id rows that are unsorted or repeat an id: ``None`` (default) sorts
            and deduplicates them once and warns with their count
            (:class:`UnsortedLabelsWarning`), ``True`` does it silently, ``False``
            refuses them.

        Example
        -------
        >>> LabelMatrix.from_any([[0, 2], [1]]).nnz   # Python lists are label-id lists
        3
        >>> LabelMatrix.from_any([[0, 1], [1, 0]], lists="dense").indices.tolist()
        [1, 0]
        >>> LabelMatrix.from_any(np.array([[1, 0], [0, 1]])).nnz   # arrays are dense 0/1
        2
        >>> LabelMatrix.from_any([[2, 0]], canonicalize=True).indices.tolist()  # any order
        [0, 2]
        """
        if lists not in ("ids", "dense"):
            raise ValueError(f"lists must be 'ids' or 'dense', got {lists!r}")
        if canonicalize is not None and not isinstance(canonicalize, (bool, np.bool_)):
            raise TypeError(f"canonicalize must be True, False or None, got {canonicalize!r}")
        if isinstance(labels, LabelMatrix):
            if n_labels is not None and check_n_labels(n_labels) != labels.n_labels:
                raise ValueError(f"labels have n_labels={labels.n_labels}, "
                                 f"n_labels={n_labels} was asked for")
            return labels
        mod = type(labels).__module__
        if mod.startswith("datasets"):    # Hugging Face: read its Arrow table
            return cls.from_hf(labels, None, n_labels=n_labels, canonicalize=canonicalize)
        if mod.startswith("pandas"):
            if getattr(labels, "ndim", 2) == 1:   # a Series of label-id lists
                arr = _series_arrow(labels)
                if arr is not None:
                    return cls.from_arrow(arr, n_labels, canonicalize=canonicalize)
                labels, lists = labels.to_numpy().tolist(), "ids"  # explains bad rows
            else:
                labels = labels.to_numpy()
        elif mod.startswith("pyarrow"):
            return cls.from_arrow(labels, n_labels, canonicalize=canonicalize)
        elif mod.startswith("scipy"):
            lm = cls.from_scipy(labels)
            return cls.from_any(lm, n_labels)
        if isinstance(labels, np.ndarray) and labels.dtype == object and labels.ndim == 1:
            labels = labels.tolist()      # ragged rows: label-id lists
        elif isinstance(labels, np.ndarray) or hasattr(labels, "detach"):
            return cls.from_any(cls.from_dense(labels), n_labels)
        if lists == "dense":
            if isinstance(labels, (str, bytes)) or not hasattr(labels, "__len__"):
                raise TypeError(f"dense labels must be a sequence of 0/1 rows, got "
                                f"{type(labels).__name__}")
            rows = {len(r) if hasattr(r, "__len__") else -1 for r in labels}
            if len(rows) > 1 or -1 in rows:
                raise ValueError("lists='dense': every row must be a sequence of 0/1 with "
                                 "one entry per label (rows have different lengths); "
                                 "pass lists='ids' for label-id lists")
            return cls.from_any(cls.from_dense(np.asarray(labels)), n_labels)
        return cls.from_lists(labels, n_labels, canonicalize=canonicalize)

    @classmethod
    def from_hf(cls, dataset: Any, column: str | None = "labels", *,
                n_labels: int | None = None,
                canonicalize: bool | None = None) -> "LabelMatrix":
        """From a label-id list column of a Hugging Face ``datasets.Dataset``, via Arrow.

        Reads the dataset's Arrow table directly (``dataset.data.column(column)``, as
        :meth:`from_arrow` does): no Python list per row, which is what makes
        ``from_any(ds["labels"])`` slow when it goes through Python objects (80,000 rows
        x 130 labels: 0.1 s instead of several seconds). Hugging Face keeps tables in
        chunks of ``list<int64>``: they are combined and narrowed to int32 once (the only
        copy). A dataset after ``select`` / ``shuffle`` / ``train_test_split`` reads
        through an indices mapping: its rows are gathered with one Arrow ``take`` of
        this column only (the private ``dataset._indices``, used when present; it gives
        what ``dataset.flatten_indices()`` would, without rewriting every column), so
        the matrix follows the dataset's row order.

        Parameters
        ----------
        dataset : datasets.Dataset or a column of one (``ds["labels"]``)
            An in-memory or memory-mapped (not streaming) dataset; a ``DatasetDict``
            must be indexed by split first.
        column : str or None
            The ``list`` / ``Sequence`` column of integer label ids (``ClassLabel``
            included); ``None`` picks the only such column, if there is exactly one.
        n_labels : int, optional
            Number of labels; default the ``ClassLabel``'s ``num_classes`` when the
            column's feature is one, else ``max id + 1``.
        canonicalize : bool or None
            As in :meth:`from_arrow` (rows in any order are accepted by default).

        Example
        -------
        >>> from datasets import ClassLabel, Dataset, Features, Sequence
        >>> ds = Dataset.from_dict({"tags": [[1, 3], [0]]}, features=Features(
        ...     {"tags": Sequence(ClassLabel(names=["a", "b", "c", "d", "e"]))}))
        >>> y = LabelMatrix.from_hf(ds, "tags")
        >>> y.shape, y[0].tolist()
        ((2, 5), [1, 3])
        >>> LabelMatrix.from_hf(ds.select([1, 0]), "tags")[0].tolist()   # follows select
        [0]
        """
        array, hint = _hf_label_array(dataset, column)
        return cls.from_arrow(array, hint if n_labels is None else n_labels,
                              canonicalize=canonicalize)

    @classmethod
    def read_parquet(cls, path: PathLike, column: str = "labels", *,
                     n_labels: int | None = None,
                     canonicalize: bool | None = None) -> "LabelMatrix":
        """Read one list column of a Parquet file (decoded into memory, combined once).

        Offsets and ids are checked like any other input; an unreadable or corrupt file
        is a ValueError that names it. The column is decoded into memory, so unsorted
        rows are sorted like those of any in-memory input (``canonicalize``, as in
        :meth:`from_arrow`).

        Example
        -------
        >>> # LabelMatrix.read_parquet("train.parquet", column="labels")
        """
        import pyarrow.parquet as pq

        p = check_input_file(path)
        try:
            schema = pq.read_schema(p)
        except Exception as exc:  # pyarrow raises ArrowInvalid / OSError variants
            raise ValueError(f"{p!r} is not a readable Parquet file: {exc}") from None
        if column not in schema.names:
            raise ValueError(f"{p!r} has no column {column!r} (columns: {schema.names})")
        try:
            table = pq.read_table(p, columns=[column])
        except Exception as exc:  # corrupt pages: OSError / ArrowInvalid without the path
            raise ValueError(f"{p!r} column {column!r} cannot be read (corrupt Parquet "
                             f"file?): {exc}") from None
        where = f" of {p!r} column {column!r}"
        if n_labels is None:
            n_labels = _meta_n_labels(schema.field(column), where)
        keepalive, offsets, values = cls._arrow_arrays(table.column(0), where)
        self = cls.__new__(cls)
        self._setup(offsets, values, n_labels, canonicalize=canonicalize, keepalive=keepalive,
                    where=where)
        return self

    @classmethod
    def open(cls, path: PathLike, column: str = "labels", *, n_labels: int | None = None,
             canonicalize: bool | None = False) -> "LabelMatrix":
        """Memory-map a label column of an uncompressed Arrow IPC file (zero-copy).

        The file is untrusted input, whatever its metadata says: offsets (start at 0,
        non-decreasing, in bounds) and label ids (in ``[0, n_labels)``, sorted and unique
        per row) are checked once on open, in one pass over the ids (see
        benchmarks/README.md for what that costs). The width is ``n_labels`` if given, else the
        field metadata ``longtail.n_labels`` written by :meth:`save`, else ``max id + 1``.
        A compressed IPC file is refused: convert it with ``longtail convert``.

        The matrix pickles as its path with the file's size and modification time;
        unpickling (e.g. in a DataLoader worker) re-opens and re-checks the file and
        refuses a file that changed in between. A file rewritten or truncated by another
        process *while* it is mapped cannot be detected cheaply: do not modify dataset
        files in place while a job reads them (write a new file and rename it).

        Parameters
        ----------
        path : str or PathLike
            The IPC file.
        column : str
            Its ``list`` / ``large_list`` label column.
        n_labels : int, optional
            Width, overriding the file's metadata.
        canonicalize : bool or None
            ``False`` (default): a row that is unsorted or repeats an id is an error
            (a mapped file is not copied behind your back; ``longtail convert
            --canonicalize`` rewrites it once). ``True`` / ``None``: sort and
            deduplicate into memory, silently / with an :class:`UnsortedLabelsWarning`.

        Example
        -------
        >>> # y = LabelMatrix.open("data.arrow"); y.label_counts()
        """
        import pyarrow as pa

        p, data, base, size = open_ipc(path)
        fingerprint = file_fingerprint(p)
        col = column_of(data, column, p)
        field = data.schema.field(column)
        if isinstance(col, pa.ChunkedArray) and col.num_chunks == 1:
            col = col.chunk(0)
        if isinstance(col, pa.Array):
            check_mapped(col.values if hasattr(col, "values") else col, base, size, p)
        where = f" of {p!r} column {column!r}"
        if n_labels is None:
            n_labels = _meta_n_labels(field, where)
        keepalive, offsets, values = cls._arrow_arrays(col, where)
        self = cls.__new__(cls)
        self._setup(offsets, values, n_labels, canonicalize=canonicalize, keepalive=keepalive,
                    path=os.path.abspath(p), column=column, where=where,
                    fingerprint=fingerprint, hint=_HINT_FILE)
        return self

    # ------------------------------------------------------------------ persistence
    def save(self, path: PathLike, *, overwrite: bool = False) -> None:
        """Write an uncompressed Arrow IPC file (column ``labels``), atomically.

        Example
        -------
        >>> import tempfile, os
        >>> p = os.path.join(tempfile.mkdtemp(), "y.arrow")
        >>> LabelMatrix.from_lists([[1]]).save(p); LabelMatrix.open(p).nnz
        1
        """
        import pyarrow as pa

        from longtail.datasets.io import write_table

        check_output_file(path, overwrite)
        field, arr = labels_field_array(self)
        write_table(path, pa.Table.from_arrays([arr], schema=pa.schema([field])), overwrite)

    def __reduce__(self):
        if self._path is not None:
            return (_reopen, (self._path, self._column, self._n_labels, self._fingerprint,
                              self._fixed))
        return (_from_arrays,
                (np.asarray(self._offsets), np.asarray(self._indices), self._n_labels))

    # ------------------------------------------------------------------ basic views
    @property
    def offsets(self) -> np.ndarray:
        """Row pointers, int64[n + 1], read-only."""
        return self._offsets

    @property
    def indices(self) -> np.ndarray:
        """Label ids, int32[nnz], read-only, sorted and unique within each row."""
        return self._indices

    @property
    def n_labels(self) -> int:
        """Number of labels (columns)."""
        return self._n_labels

    @property
    def shape(self) -> tuple[int, int]:
        """``(n_examples, n_labels)``."""
        return len(self), self._n_labels

    @property
    def nnz(self) -> int:
        """Number of positive (example, label) pairs."""
        return int(self._indices.shape[0])

    @property
    def path(self) -> str | None:
        """The memory-mapped file, if opened with :meth:`open`."""
        return self._path

    def __len__(self) -> int:
        return int(self._offsets.shape[0] - 1)

    def __repr__(self) -> str:
        src = f", path={self._path!r}" if self._path else ""
        return f"LabelMatrix(n={len(self):,}, n_labels={self._n_labels:,}, nnz={self.nnz:,}{src})"

    def __getitem__(self, key: Any) -> "np.ndarray | LabelMatrix":
        """``y[i]`` is row i's label ids (a read-only view); other keys give :meth:`take`."""
        if isinstance(key, (int, np.integer)):
            n = len(self)
            i = int(key) + n if key < 0 else int(key)
            if not 0 <= i < n:
                raise IndexError(f"row {int(key)} is out of range for {n} rows")
            return self._indices[self._offsets[i]:self._offsets[i + 1]]
        return self.take(key)

    def row_lengths(self) -> np.ndarray:
        """Number of labels of every example (int64[n])."""
        return np.diff(self._offsets)

    def equals(self, other: "LabelMatrix") -> bool:
        """Same shape and the same label ids in every row."""
        return (isinstance(other, LabelMatrix) and other.shape == self.shape
                and np.array_equal(other.offsets, self.offsets)
                and np.array_equal(other.indices, self.indices))

    # ------------------------------------------------------------------ derived data
    def label_counts(self) -> np.ndarray:
        """Examples per label, int64[n_labels] (computed once, returned read-only)."""
        if self._counts is None:
            self._counts = freeze(K.count_labels(self._indices, self._n_labels))
        return self._counts

    def prevalence(self) -> np.ndarray:
        """Fraction of examples carrying each label, float64[n_labels]."""
        return self.label_counts() / float(len(self))

    def transpose(self) -> "LabelMatrix":
        """The CSC view as a LabelMatrix: label -> sorted example ids (built once, cached).

        Example
        -------
        >>> LabelMatrix.from_lists([[0, 1], [1]]).transpose()[1].tolist()
        [0, 1]
        """
        if self._transpose is None:
            t_offsets, t_indices = K.transpose(self._offsets, self._indices, self._n_labels)
            self._transpose = LabelMatrix._trusted(t_offsets, t_indices, len(self))
        return self._transpose

    def take(self, rows: Any) -> "LabelMatrix":
        """A new LabelMatrix with the given rows (ints, negatives wrap, bool mask, slice)."""
        idx = _as_rows(rows, len(self))
        if idx.size == 0:
            raise ValueError("take() selected zero rows")
        offsets, indices = K.take_rows(self._offsets, self._indices, idx)
        return LabelMatrix._trusted(offsets, indices, self._n_labels)

    def to_scipy(self, dtype: Any = np.float32) -> "scipy.sparse.csr_matrix":
        """A ``scipy.sparse.csr_matrix`` of ones (label ids and pointers are copied)."""
        import scipy.sparse as sp

        data = np.ones(self.nnz, dtype=dtype)
        return sp.csr_matrix((data, np.array(self._indices), np.array(self._offsets)),
                             shape=self.shape)

    def to_arrow(self) -> "pa.LargeListArray":
        """A ``large_list<int32>`` Arrow array sharing memory with this matrix."""
        return labels_field_array(self)[1]

    def multi_hot_numpy(self, rows: Any = None, dtype: Any = np.float32) -> np.ndarray:
        """Dense (len(rows), n_labels) 0/1 numpy batch for the given rows (default: all).

        Example
        -------
        >>> LabelMatrix.from_lists([[1], [0]]).multi_hot_numpy([1], dtype=np.uint8).tolist()
        [[1, 0]]
        """
        idx = _as_rows(slice(None) if rows is None else rows, len(self))
        dtype = np.dtype(dtype)
        kernel_dtype = np.float32 if dtype == np.float32 else np.uint8
        out = np.zeros((idx.size, self._n_labels), dtype=kernel_dtype)
        K.fill_multi_hot(self._offsets, self._indices, idx, out)
        return out if out.dtype == dtype else out.astype(dtype)

    def multi_hot(self, rows: Any = None, dtype: "torch.dtype | None" = None,
                  device: "torch.device | str | None" = None) -> "torch.Tensor":
        """Dense multi-hot torch batch ``[len(rows), n_labels]`` built by a Numba kernel.

        Parameters
        ----------
        rows : int array, list, tensor, slice or bool mask, optional
            Which examples (default all).
        dtype : torch.dtype
            Default ``torch.float32``; other dtypes are converted from a uint8 batch.
        device : torch.device or str, optional
            Copied there (non-blocking) after it is built on the CPU.

        Example
        -------
        >>> LabelMatrix.from_lists([[0, 2]]).multi_hot([0]).tolist()
        [[1.0, 0.0, 1.0]]
        """
        import torch

        dtype = torch.float32 if dtype is None else dtype
        idx = _as_rows(slice(None) if rows is None else rows, len(self))
        if dtype == torch.float32:
            out = np.zeros((idx.size, self._n_labels), dtype=np.float32)
            K.fill_multi_hot(self._offsets, self._indices, idx, out)
            t = torch.from_numpy(out)
        else:
            out = np.zeros((idx.size, self._n_labels), dtype=np.uint8)
            K.fill_multi_hot(self._offsets, self._indices, idx, out)
            t = torch.from_numpy(out).to(dtype)
        if device is not None:
            t = t.to(device, non_blocking=True)
        return t

    def stats(self) -> LabelStats:
        """Label statistics: cardinality, density, quantiles, IRLbl, MeanIR, CVIR, SCUMBLE.

        Example
        -------
        >>> s = LabelMatrix.from_lists([[0, 1], [1]]).stats()
        >>> s.cardinality, s.mean_ir
        (1.5, 1.5)
        """
        n, L = len(self), self._n_labels
        counts = self.label_counts()
        present = counts > 0
        n_present = int(present.sum())
        lengths = self.row_lengths()
        if n_present:
            max_count = float(counts.max())
            ir = np.full(L, np.inf)
            ir[present] = max_count / counts[present]
            irp = ir[present]
            mean_ir = float(irp.mean())
            max_ir = float(irp.max())
            cvir = float(irp.std(ddof=1) / mean_ir) if n_present > 1 else 0.0
            # rows only ever reference present labels, so inf never reaches the kernel sums
            safe_ir = np.where(present, ir, 1.0)
            scumble = float(K.row_imbalance(self._offsets, self._indices, safe_ir).mean())
        else:
            ir = np.full(L, np.inf)
            mean_ir = max_ir = cvir = scumble = float("nan")
        qs = (0.0, 0.01, 0.25, 0.5, 0.75, 0.99, 1.0)
        qv = np.quantile(counts, qs) if L else np.zeros(len(qs))
        names = ("min", "p1", "p25", "median", "p75", "p99", "max")
        prev = counts / n
        return LabelStats(
            n_examples=n, n_labels=L, nnz=self.nnz,
            cardinality=float(self.nnz / n), density=float(self.nnz / (n * L)) if L else 0.0,
            empty_examples=int((lengths == 0).sum()), empty_labels=int(L - n_present),
            prevalence_min=float(prev.min()) if L else 0.0,
            prevalence_max=float(prev.max()) if L else 0.0,
            label_count_quantiles={k: float(v) for k, v in zip(names, qv)},
            ir_per_label=freeze(ir), mean_ir=mean_ir, max_ir=max_ir, cvir=cvir,
            scumble=scumble,
        )


#: entries per row chunk read by LabelMatrix.from_dense
_DENSE_CHUNK = 1 << 25


def _dense_bytes(chunk: np.ndarray, row0: int, check: bool) -> tuple[np.ndarray, np.ndarray, int]:
    """A chunk of dense labels as ``(flat bytes, aligned uint64 words, head)`` for
    :func:`K.dense_nonzero`; with ``check`` every entry must be 0 or 1 (ValueError naming
    the first other one, as ``from_dense`` does)."""
    kind = chunk.dtype.kind
    if kind == "b":
        u8 = chunk.view(np.uint8)
        if u8.size and u8.max() > 1:  # bool bytes other than 0/1 are true
            u8 = (u8 != 0).view(np.uint8)
    elif kind == "f":
        with np.errstate(invalid="ignore"):  # NaN, inf, < 0: caught by the comparison
            u8 = chunk.astype(np.uint8)
        # 0 and 1 are the floats equal to their cast that casts to <= 1
        if check and u8.size and (u8.max() > 1 or not np.array_equal(u8, chunk)):
            _raise_not01(chunk, row0)
    else:
        if check and chunk.size and (kind == "c" or chunk.min() < 0 or chunk.max() > 1):
            if ((chunk != 0) & (chunk != 1)).any():
                _raise_not01(chunk, row0)
        if kind == "c":
            chunk = chunk.real
        u8 = chunk.view(np.uint8) if chunk.dtype.itemsize == 1 else chunk.astype(np.uint8)
    flat = freeze(np.ascontiguousarray(u8).reshape(-1))
    head = min((-flat.ctypes.data) % 8, flat.shape[0])
    words = flat[head:head + 8 * ((flat.shape[0] - head) // 8)].view(np.uint64)
    return flat, words, head


def _raise_not01(chunk: np.ndarray, row0: int) -> None:
    r, c = (int(x[0]) for x in np.nonzero((chunk != 0) & (chunk != 1)))
    raise ValueError(f"value {chunk[r, c].item()!r} at row {row0 + r}, label {c}: "
                     "entries must be 0 or 1")


def _dense_csr(a: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``(offsets, indices)`` of a 2-D 0/1 array: row chunks, a counting pass, then a
    filling pass (8 zero bytes skipped at a time)."""
    n, n_labels = a.shape
    counts = np.zeros(n + 1, dtype=np.int64)
    if n_labels == 0:
        return counts, np.empty(0, dtype=np.int32)
    rows = max(1, _DENSE_CHUNK // n_labels)
    chunks = [(r0, min(n, r0 + rows)) for r0 in range(0, n, rows)]
    none = np.empty(0, dtype=np.int32)
    for r0, r1 in chunks:
        first = _dense_bytes(a[r0:r1], r0, True)
        K.dense_nonzero(*first, n_labels, r0 + 1, counts, none, counts)
    np.cumsum(counts, out=counts)
    offsets = counts.copy()
    nnz = int(offsets[-1])
    indices = np.empty(nnz + 8, dtype=np.int32)  # the fill writes up to 7 slots ahead
    for r0, r1 in chunks if nnz else ():
        again = first if len(chunks) == 1 else _dense_bytes(a[r0:r1], r0, False)
        bad = K.dense_nonzero(*again, n_labels, r0, counts, indices, offsets)
        if bad >= 0:  # another thread wrote to the array between the passes
            raise RuntimeError(f"dense labels changed while they were read (row {bad})")
    return offsets, indices[:nnz]


def _series_arrow(series: Any) -> "pa.Array | pa.ChunkedArray | None":
    """A pandas Series of label-id lists as an Arrow list array (no Python list of
    lists; zero-copy for an Arrow-backed Series), or None to take the slow path that
    names the bad row (non-integer ids, nested rows, strings)."""
    import pyarrow as pa

    try:
        arr = pa.array(series, from_pandas=True)
    except (pa.ArrowException, TypeError, ValueError, OverflowError):
        return None
    t = arr.type
    if (pa.types.is_list(t) or pa.types.is_large_list(t)) and pa.types.is_null(t.value_type):
        return arr.cast(pa.large_list(pa.int64()))
    if (pa.types.is_list(t) or pa.types.is_large_list(t)) and pa.types.is_integer(t.value_type):
        return arr
    return None


def _hf_label_array(dataset: Any, column: str | None) -> tuple[Any, int | None]:
    """``(Arrow label column in the dataset's row order, ClassLabel size or None)`` of a
    Hugging Face Dataset (or of one of its columns)."""
    import datasets
    import pyarrow as pa

    column_type = getattr(datasets.arrow_dataset, "Column", None)  # datasets >= 4
    if column_type is not None and isinstance(dataset, column_type):
        if column is not None and column != dataset.column_name:
            raise ValueError(f"column={column!r} but the Hugging Face column given is "
                             f"{dataset.column_name!r}")
        dataset, column = dataset.source, dataset.column_name
    if isinstance(dataset, (datasets.DatasetDict, datasets.IterableDatasetDict)):
        split = next(iter(dataset), "train")
        raise TypeError(f"a Hugging Face DatasetDict holds several splits "
                        f"({list(dataset)}): pass one, e.g. dataset[{split!r}]")
    if isinstance(dataset, datasets.IterableDataset):
        raise TypeError("a streaming Hugging Face IterableDataset has no Arrow table to "
                        "read: load it without streaming=True, or collect the label "
                        "lists and use LabelMatrix.from_lists")
    if not isinstance(dataset, datasets.Dataset):
        raise TypeError(f"expected a Hugging Face datasets.Dataset or a column of one, got "
                        f"{type(dataset).__module__}.{type(dataset).__name__}")
    schema = dataset.data.schema
    if column is None:
        found = [f.name for f in schema
                 if (pa.types.is_list(f.type) or pa.types.is_large_list(f.type))
                 and pa.types.is_integer(f.type.value_type)]
        if len(found) != 1:
            what = ("no list-of-integer column" if not found
                    else f"{len(found)} list-of-integer columns {found}")
            raise ValueError(f"the Hugging Face dataset has {what} (columns: "
                             f"{dataset.column_names}): name the label column, "
                             "LabelMatrix.from_hf(dataset, column) or "
                             "from_any(dataset[column])")
        column = found[0]
    if not isinstance(column, str):
        raise TypeError(f"column must be a str, got {column!r} ({type(column).__name__})")
    if column not in dataset.column_names:
        raise ValueError(f"the Hugging Face dataset has no column {column!r} "
                         f"(columns: {dataset.column_names})")
    array = dataset.data.column(column)
    mapping = getattr(dataset, "_indices", None)   # set by select / shuffle / splits
    if mapping is not None:
        array = array.take(mapping.column(0))
    feature = getattr(dataset.features.get(column), "feature", None)
    n_classes = (feature.num_classes if isinstance(feature, datasets.ClassLabel)
                 else None)
    return array, n_classes


def _meta_n_labels(field: "pa.Field", where: str = "") -> int | None:
    """The ``longtail.n_labels`` field metadata (a hint, checked against the ids)."""
    meta = field.metadata or {}
    raw = meta.get(b"longtail.n_labels")
    if raw is None:
        return None
    try:
        value = int(raw.decode("ascii").strip())
    except (UnicodeDecodeError, ValueError):
        raise ValueError(f"metadata longtail.n_labels{where} is not an integer: {raw!r} "
                         "(pass n_labels= to override it)") from None
    return check_n_labels(value, where=f" (metadata longtail.n_labels{where})")


def _reopen(path: str, column: str, n_labels: int | None = None,
            fingerprint: tuple | None = None, canonicalize: bool = False) -> LabelMatrix:
    """Unpickle a memory-mapped matrix: re-open and re-check, refuse a changed file."""
    if fingerprint is not None:
        now = file_fingerprint(path) if os.path.exists(path) else None
        if now != tuple(fingerprint):
            raise ValueError(
                f"{path!r} changed since this LabelMatrix was opened (size/mtime "
                f"{tuple(fingerprint)} -> {now}); re-open it instead of unpickling")
    return LabelMatrix.open(path, column, n_labels=n_labels, canonicalize=canonicalize)


def _from_arrays(offsets: np.ndarray, indices: np.ndarray, n_labels: int) -> LabelMatrix:
    # a pickle is only as trustworthy as its source: check again (one cheap pass)
    return LabelMatrix(offsets, indices, n_labels)
