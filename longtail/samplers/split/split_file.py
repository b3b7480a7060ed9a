"""Splits as files: save named parts with what made them, load them back checked.

A split file is Parquet with one row per assigned example, sorted by index: ``index``
(int64) and ``part`` (dictionary-encoded string, the part's name), so
``pandas.read_parquet`` or any Arrow reader sees it directly. The schema metadata
(key ``longtail.split``, JSON) records the part names in order (empty parts included),
``n_examples``, the ``fractions``, ``seed`` and ``method`` that made it, and a
fingerprint of the label matrix (a CRC-32 of its shape and every label id), so that
:func:`load_split` ``(labels=...)`` refuses labels other than those the split was made
from. ``longtail split`` writes the same format.

Example
-------
>>> import os, tempfile
>>> from longtail import LabelMatrix, stratified_split
>>> y = LabelMatrix.from_lists([[0], [0, 1], [1], [0], [1], [0, 1]])
>>> fractions = {"train": 0.5, "test": 0.5}
>>> path = os.path.join(tempfile.mkdtemp(), "split.parquet")
>>> save_split(path, stratified_split(y, fractions, seed=3), labels=y,
...            fractions=fractions, seed=3, method="balanced")
>>> split = load_split(path, labels=y)       # checks the labels are the same
>>> {name: len(idx) for name, idx in split.items()}, split.seed
({'train': 3, 'test': 3}, 3)
"""
from __future__ import annotations

import json
import math
import os
from typing import Any, Iterator, Mapping

import numpy as np

from longtail._core.checks import is_int
from longtail._core.sampler import labels_crc

__all__ = ["Split", "save_split", "load_split"]

_META_KEY = b"longtail.split"
_FORMAT = "longtail.split"
_VERSION = 1


class Split(Mapping[str, np.ndarray]):
    """A split read from (or ready for) a file: part name -> sorted int64 indices.

    A read-only mapping in the order of the parts; the index arrays are read-only.

    Attributes
    ----------
    n_examples : int
        Number of examples of the data the split is of (indices are below it).
    fractions : dict of str -> float, or None
        The fraction asked for each part, when recorded.
    seed : int or None
    method : str or None
        How the split was made (e.g. ``"balanced"``), when recorded.
    fingerprint : int or None
        CRC-32 of the label matrix the split was made from, when recorded.
    n_labels : int or None
        Label count of that matrix, when recorded.
    path : str or None
        The file it was read from.

    Example
    -------
    >>> s = Split({"a": [2, 0], "b": [1]}, n_examples=3)
    >>> list(s), s["a"].tolist(), s.sizes()
    (['a', 'b'], [0, 2], {'a': 2, 'b': 1})
    """

    def __init__(self, parts: Mapping[Any, Any], *, n_examples: int | None = None,
                 fractions: Any = None, seed: int | None = None, method: str | None = None,
                 fingerprint: int | None = None, n_labels: int | None = None,
                 path: str | None = None) -> None:
        names, arrays = _check_parts(parts)
        top = max((int(a[-1]) + 1 for a in arrays if a.size), default=0)
        if n_examples is None:
            n_examples = top
        elif not is_int(n_examples) or n_examples < 0:
            raise ValueError(f"n_examples must be an integer >= 0, got {n_examples!r}")
        n_examples = int(n_examples)
        if top > n_examples:
            j = next(j for j, a in enumerate(arrays) if a.size and a[-1] >= n_examples)
            raise ValueError(f"part {names[j]!r} holds index {int(arrays[j][-1])}, beyond "
                             f"n_examples={n_examples} (indices must be < n_examples)")
        _check_disjoint(names, arrays, n_examples)
        if seed is not None and not is_int(seed):
            raise TypeError(f"seed must be an int or None, got {type(seed).__name__}")
        if method is not None and not isinstance(method, str):
            raise TypeError(f"method must be a str or None, got {type(method).__name__}")
        for name, value in (("fingerprint", fingerprint), ("n_labels", n_labels)):
            if value is not None and (not is_int(value) or value < 0):
                raise ValueError(f"{name} must be an integer >= 0 or None, got {value!r}")
        self._parts = dict(zip(names, arrays))
        self.n_examples = n_examples
        self.fractions = _check_fractions(fractions, names)
        self.seed = None if seed is None else int(seed)
        self.method = method
        self.fingerprint = None if fingerprint is None else int(fingerprint)
        self.n_labels = None if n_labels is None else int(n_labels)
        self.path = path

    def __getitem__(self, name: str) -> np.ndarray:
        try:
            return self._parts[name]
        except KeyError:
            raise KeyError(f"no part {name!r} in this split (parts: "
                           f"{list(self._parts)})") from None

    def __iter__(self) -> Iterator[str]:
        return iter(self._parts)

    def __len__(self) -> int:
        return len(self._parts)

    def sizes(self) -> dict[str, int]:
        """Number of examples in every part."""
        return {name: int(a.size) for name, a in self._parts.items()}

    def assignment(self) -> np.ndarray:
        """Part number (in part order) of every example, int32[n_examples]; -1 where an
        example is in no part.

        Example
        -------
        >>> Split({"a": [0, 2], "b": [3]}, n_examples=4).assignment().tolist()
        [0, -1, 0, 1]
        """
        out = np.full(self.n_examples, -1, dtype=np.int32)
        for j, a in enumerate(self._parts.values()):
            out[a] = j
        return out

    def __repr__(self) -> str:
        sizes = ", ".join(f"{k!r}: {v:,}" for k, v in self.sizes().items())
        where = f", path={self.path!r}" if self.path else ""
        return (f"Split({{{sizes}}}, n_examples={self.n_examples:,}, seed={self.seed}, "
                f"method={self.method!r}{where})")


# ---------------------------------------------------------------------------- checks
def _check_parts(parts: Any) -> tuple[list[str], list[np.ndarray]]:
    """Part names (str) and sorted, unique, read-only int64 index arrays."""
    if isinstance(parts, Mapping):
        items = list(parts.items())
    elif isinstance(parts, (list, tuple)):
        items = list(enumerate(parts))
    else:
        raise TypeError("parts must be a mapping part name -> index array (e.g. what "
                        "stratified_split returns) or a list of index arrays, got "
                        f"{type(parts).__name__}")
    if not items:
        raise ValueError("parts is empty: a split needs at least one part")
    names: list[str] = []
    arrays: list[np.ndarray] = []
    for key, idx in items:
        if isinstance(key, (bool, np.bool_)) or not isinstance(key, (str, int, np.integer)):
            raise TypeError(f"part names must be str or int, got {key!r}")
        name = str(key)
        if not name:
            raise ValueError("part names must not be empty")
        if name in names:
            raise ValueError(f"two parts are named {name!r} (names are compared as str)")
        a = np.asarray(idx)
        if a.ndim != 1:
            raise ValueError(f"part {name!r}: indices must be 1-D, got shape {a.shape}")
        if a.size and a.dtype.kind not in "iu":
            raise TypeError(f"part {name!r}: indices must be integers, got dtype {a.dtype}")
        if a.dtype.kind == "u" and a.size and a.max() > np.iinfo(np.int64).max:
            raise ValueError(f"part {name!r}: index {a.max()} does not fit in int64")
        a = np.sort(a.astype(np.int64, copy=False))
        if a.size and a[0] < 0:
            raise ValueError(f"part {name!r}: index {int(a[0])} is negative (indices are "
                             "positions 0..n_examples-1)")
        dup = np.flatnonzero(a[1:] == a[:-1])
        if dup.size:
            raise ValueError(f"part {name!r} holds index {int(a[dup[0]])} twice")
        a.flags.writeable = False
        names.append(name)
        arrays.append(a)
    return names, arrays


def _check_disjoint(names: list[str], arrays: list[np.ndarray], n: int) -> None:
    """Refuse an example in two parts, naming both and the example."""
    owner = np.full(n, -1, dtype=np.int32)
    for j, a in enumerate(arrays):
        taken = owner[a]
        clash = np.flatnonzero(taken >= 0)
        if clash.size:
            i = int(a[clash[0]])
            raise ValueError(f"parts {names[int(taken[clash[0]])]!r} and {names[j]!r} "
                             f"both hold example {i}: parts must be disjoint")
        owner[a] = j


def _check_fractions(fractions: Any, names: list[str]) -> dict[str, float] | None:
    if fractions is None:
        return None
    if isinstance(fractions, Mapping):
        keyed = {str(k): v for k, v in fractions.items()}
        if set(keyed) != set(names):
            raise ValueError(f"fractions name the parts {sorted(keyed)}, the parts are "
                             f"{names}")
        values = [keyed[name] for name in names]
    else:
        values = list(np.asarray(fractions, dtype=object).reshape(-1)) \
            if not isinstance(fractions, (str, bytes)) else None
        if values is None or len(values) != len(names):
            raise ValueError(f"fractions must give one number per part ({len(names)}: "
                             f"{names}), got {fractions!r}")
    out = {}
    for name, v in zip(names, values):
        if isinstance(v, (bool, np.bool_)) or not isinstance(v, (int, float, np.number)):
            raise TypeError(f"fractions[{name!r}] must be a number, got {v!r}")
        f = float(v)
        if not (math.isfinite(f) and f >= 0):
            raise ValueError(f"fractions[{name!r}] is {f}: fractions must be finite and "
                             ">= 0")
        out[name] = f
    return out


# ---------------------------------------------------------------------------- save / load
def save_split(path: str | os.PathLike, parts: Mapping[Any, Any] | Any, *,
               labels: Any = None, fractions: Any = None, seed: int | None = None,
               method: str | None = None, n_examples: int | None = None,
               overwrite: bool = False) -> None:
    """Write a split as Parquet, with its part names, fractions, seed, method and labels'
    fingerprint.

    Parameters
    ----------
    path : str or PathLike
        The ``.parquet`` file to write (atomically: a temporary file renamed into place).
    parts : mapping part name -> index array, a list of index arrays, or a :class:`Split`
        E.g. what :func:`~longtail.stratified_split` returns. Names are stored as str
        (a list names its parts ``"0"``, ``"1"``, ...); the parts must be disjoint, their
        indices >= 0 and below ``n_examples``; they need not cover every example.
    labels : LabelMatrix or anything :meth:`LabelMatrix.from_any` accepts, optional
        The labels the split is of: gives ``n_examples`` and the fingerprint that
        :func:`load_split` checks.
    fractions : mapping name -> float, or one float per part, optional
    seed : int, optional
    method : str, optional
        How the split was made (e.g. ``"balanced"``); recorded as given.
    n_examples : int, optional
        Size of the data (default: ``len(labels)``, else the largest index + 1).
    overwrite : bool
        Replace an existing file (refused by default: ``FileExistsError``).

    A :class:`Split` given as ``parts`` lends its recorded fields to the arguments left
    out. Everything is validated before the file is created.

    Example
    -------
    >>> import os, tempfile
    >>> path = os.path.join(tempfile.mkdtemp(), "s.parquet")
    >>> save_split(path, {"train": [0, 2, 3], "test": [1]}, seed=0)
    >>> save_split(path, {"train": [0]})
    Traceback (most recent call last):
    ...
    FileExistsError: ... exists; pass overwrite=True (CLI: --force) to replace it
    >>> save_split(path, {"train": [0, 1], "test": [1]}, overwrite=True)
    Traceback (most recent call last):
    ...
    ValueError: parts 'train' and 'test' both hold example 1: parts must be disjoint
    """
    import pyarrow as pa
    import pyarrow.parquet as pq

    from longtail._core.checks import check_bool
    from longtail.datasets.io import atomic_output, check_output_file

    overwrite = check_bool("overwrite", overwrite)
    if isinstance(parts, Split):
        fractions = parts.fractions if fractions is None else fractions
        seed = parts.seed if seed is None else seed
        method = parts.method if method is None else method
        if n_examples is None and labels is None:
            n_examples = parts.n_examples
    fingerprint = n_labels = None
    if labels is not None:
        from longtail.datasets.label_matrix import LabelMatrix

        y = LabelMatrix.from_any(labels)
        if n_examples is not None and int(n_examples) != len(y):
            raise ValueError(f"n_examples={n_examples} but labels have {len(y):,} rows")
        n_examples, fingerprint, n_labels = len(y), labels_crc(y), y.n_labels
    elif isinstance(parts, Split) and parts.fingerprint is not None \
            and n_examples == parts.n_examples:
        fingerprint, n_labels = parts.fingerprint, parts.n_labels
    split = Split(parts, n_examples=n_examples, fractions=fractions, seed=seed,
                  method=method, fingerprint=fingerprint, n_labels=n_labels)
    check_output_file(path, overwrite)   # before building the table
    names = list(split)
    owner = split.assignment()
    rows = np.flatnonzero(owner >= 0)
    part = pa.DictionaryArray.from_arrays(pa.array(owner[rows]), pa.array(names, pa.string()))
    meta = {"format": _FORMAT, "version": _VERSION, "parts": names,
            "n_examples": split.n_examples, "fractions": split.fractions,
            "seed": split.seed, "method": split.method,
            "fingerprint": split.fingerprint, "n_labels": split.n_labels}
    schema = pa.schema([pa.field("index", pa.int64(), nullable=False),
                        pa.field("part", part.type, nullable=False)],
                       metadata={_META_KEY: json.dumps(meta).encode()})
    table = pa.Table.from_arrays([pa.array(rows.astype(np.int64)), part], schema=schema)
    with atomic_output(path, overwrite) as tmp:
        pq.write_table(table, tmp)


def _bad(path: str, why: str) -> ValueError:
    return ValueError(f"{path!r} is not a split file: {why}")


def load_split(path: str | os.PathLike, *, labels: Any = None) -> Split:
    """Read a split written by :func:`save_split` or ``longtail split``.

    Parameters
    ----------
    path : str or PathLike
    labels : LabelMatrix or anything :meth:`LabelMatrix.from_any` accepts, optional
        The labels about to be split: refused (``ValueError`` naming the file) when their
        number of examples, or their fingerprint where the file records one, differs from
        those of the labels the split was made from.

    Returns
    -------
    Split
        Part name -> sorted int64 indices, with ``n_examples``, ``fractions``, ``seed``,
        ``method``, ``fingerprint`` and ``path``. Files of earlier ``longtail split``
        versions (integer ``part`` or ``fold`` column, no metadata) are read too, their
        parts named ``"0"``, ``"1"``, ...

    Example
    -------
    >>> import os, tempfile
    >>> from longtail import LabelMatrix
    >>> y = LabelMatrix.from_lists([[0], [1], [0, 1], [1]])
    >>> path = os.path.join(tempfile.mkdtemp(), "s.parquet")
    >>> save_split(path, {"train": [0, 1, 3], "test": [2]}, labels=y)
    >>> load_split(path, labels=y)["test"].tolist()
    [2]
    >>> load_split(path, labels=LabelMatrix.from_lists([[0], [1], [1], [1]]))
    Traceback (most recent call last):
    ...
    ValueError: split file ... was made from other labels ...
    """
    import pyarrow as pa
    import pyarrow.parquet as pq

    from longtail.datasets.io import check_input_file

    p = check_input_file(path)
    try:
        table = pq.read_table(p)
    except (pa.ArrowException, OSError) as exc:
        raise _bad(p, f"cannot read it as Parquet ({exc})") from None
    raw = (table.schema.metadata or {}).get(_META_KEY)
    if raw is None:
        split = _load_legacy(p, table)
    else:
        try:
            meta = json.loads(raw)
        except ValueError as exc:
            raise _bad(p, f"its metadata is not JSON ({exc})") from None
        if not isinstance(meta, dict) or meta.get("format") != _FORMAT:
            raise _bad(p, "its metadata is not that of a longtail split")
        if meta.get("version", 0) > _VERSION:
            raise ValueError(f"{p!r} is a version {meta['version']} split file; this "
                             f"longtail reads version {_VERSION}: upgrade longtail")
        split = _load_current(p, table, meta)
    if labels is not None:
        _check_labels(split, labels, p)
    return split


def _columns(path: str, table: Any, part_column: str) -> tuple[np.ndarray, Any]:
    import pyarrow as pa

    for col in ("index", part_column):
        if col not in table.column_names:
            raise _bad(path, f"no column {col!r} (columns: {table.column_names})")
    index, part = table.column("index"), table.column(part_column)
    if not pa.types.is_integer(index.type):
        raise _bad(path, f"column 'index' is {index.type}, not integers")
    if index.null_count or part.null_count:
        raise _bad(path, "it has null entries")
    return index.to_numpy().astype(np.int64, copy=False), part


def _split_by_code(path: str, index: np.ndarray, codes: np.ndarray,
                   names: list[str]) -> dict[str, np.ndarray]:
    if codes.size and (codes.min() < 0 or codes.max() >= len(names)):
        raise _bad(path, "a part code has no name")
    order = np.argsort(codes, kind="stable")
    bounds = np.cumsum(np.bincount(codes, minlength=len(names)))[:-1]
    return dict(zip(names, np.split(index[order], bounds)))


def _load_current(path: str, table: Any, meta: dict[str, Any]) -> Split:
    import pyarrow as pa

    index, part = _columns(path, table, "part")
    names = meta.get("parts")
    if not isinstance(names, list) or not all(isinstance(n, str) for n in names):
        raise _bad(path, "its metadata lists no part names")
    part = part.combine_chunks() if isinstance(part, pa.ChunkedArray) else part
    if not pa.types.is_dictionary(part.type):
        part = part.dictionary_encode()
    stored = part.dictionary.to_pylist()
    missing = set(stored) - set(names)
    if missing:
        raise _bad(path, f"rows name parts {sorted(missing)} its metadata does not list")
    remap = np.array([names.index(s) for s in stored], dtype=np.int64)
    codes = remap[part.indices.to_numpy(zero_copy_only=False).astype(np.int64)] \
        if len(stored) else np.zeros(0, dtype=np.int64)
    parts = _split_by_code(path, index, codes, names)
    try:
        return Split(parts, n_examples=meta.get("n_examples"), fractions=meta.get("fractions"),
                     seed=meta.get("seed"), method=meta.get("method"),
                     fingerprint=meta.get("fingerprint"), n_labels=meta.get("n_labels"),
                     path=path)
    except (TypeError, ValueError) as exc:
        raise _bad(path, str(exc)) from None


def _load_legacy(path: str, table: Any) -> Split:
    """A file of ``longtail split`` before the named format: index + int part or fold."""
    import pyarrow as pa

    column = "part" if "part" in table.column_names else "fold"
    index, part = _columns(path, table, column)
    if not pa.types.is_integer(part.type):
        raise _bad(path, f"no longtail.split metadata, and column {column!r} is "
                         f"{part.type}, not part numbers")
    codes = part.to_numpy().astype(np.int64)
    if codes.size and codes.min() < 0:
        raise _bad(path, f"column {column!r} holds a negative part number")
    k = int(codes.max()) + 1 if codes.size else 0
    parts = _split_by_code(path, index, codes, [str(j) for j in range(k)])
    try:
        return Split(parts, n_examples=len(index), path=path)
    except (TypeError, ValueError) as exc:
        raise _bad(path, str(exc)) from None


def _check_labels(split: Split, labels: Any, path: str) -> None:
    from longtail.datasets.label_matrix import LabelMatrix

    y = LabelMatrix.from_any(labels)
    if len(y) != split.n_examples:
        raise ValueError(f"split file {path!r} is of {split.n_examples:,} examples, the "
                         f"labels given have {len(y):,}: it was made from other data")
    if split.fingerprint is not None and labels_crc(y) != split.fingerprint:
        shape = "" if split.n_labels is None or split.n_labels == y.n_labels else (
            f"; {split.n_labels:,} labels then, {y.n_labels:,} now")
        raise ValueError(f"split file {path!r} was made from other labels (fingerprint "
                         f"{split.fingerprint:08x}, these labels give {labels_crc(y):08x}"
                         f"{shape}): the same number of examples, but not the same label "
                         "ids; split these labels anew or load the labels it was made from")
