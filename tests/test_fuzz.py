"""Fuzz suite: corrupt label files, corrupt CSR arrays and bad arguments never crash.

Every case must end in ``ValueError`` / ``TypeError`` (``IndexError`` for row selections,
as numpy and torch do) or in a result equal to a plain NumPy reference; never a crash, a
hang or a silently different answer. Numba does not check bounds, so a kernel that read
out of bounds would usually *not* fail here by luck: :func:`test_fuzz_under_boundscheck`
runs this module (and the sampler-state fuzz suite) again in a subprocess with
``NUMBA_BOUNDSCHECK=1`` and its own ``NUMBA_CACHE_DIR``, where any out-of-bounds access in
a kernel raises ``IndexError: index is out of bounds``, which fails the test.
"""
from __future__ import annotations

import os
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from longtail import LabelMatrix
from longtail.datasets import ArrowDataset

UNDER_BOUNDSCHECK = os.environ.get("NUMBA_BOUNDSCHECK") == "1"
#: what a rejected input may raise (IndexError for row selections, like numpy)
EXPECTED = (ValueError, TypeError, IndexError)
DTYPES = [np.int8, np.uint8, np.int16, np.int32, np.uint32, np.int64, np.uint64, np.float64]
FILE_SETTINGS = settings(suppress_health_check=[HealthCheck.function_scoped_fixture,
                                                HealthCheck.too_slow], deadline=None)


def _reject_ok(exc: BaseException) -> None:
    """An expected rejection, and never a bounds error raised inside a kernel."""
    assert isinstance(exc, EXPECTED), repr(exc)
    assert not (isinstance(exc, IndexError) and "index is out of bounds" in str(exc)), \
        f"a kernel read out of bounds: {exc!r}"


# ------------------------------------------------------------------ NumPy reference
def reference_rows(offsets: np.ndarray, indices: np.ndarray, n_labels) -> list | None:
    """The rows as Python lists if the CSR is valid and canonical, else ``None``."""
    off = [int(v) for v in offsets]
    # an empty float array (np.array([])) is accepted as "no ids"
    ids = [int(v) for v in indices] if indices.dtype.kind in "iu" or indices.size == 0 else None
    if offsets.dtype.kind not in "iu" or ids is None or len(off) < 2 or off[0] != 0 \
            or off[-1] != len(ids) or any(b < a for a, b in zip(off, off[1:])):
        return None
    if n_labels is not None and (isinstance(n_labels, bool) or int(n_labels) != n_labels
                                 or not 0 <= n_labels < 2**31):
        return None
    width = (max(ids) + 1 if ids else 0) if n_labels is None else int(n_labels)
    if width > 2**31 - 1:
        return None
    rows = [ids[a:b] for a, b in zip(off, off[1:])]
    for r in rows:
        if any(not 0 <= v < width for v in r) or r != sorted(set(r)):
            return None
    return rows


def assert_matches_reference(y: LabelMatrix, rows: list, n_labels: int) -> None:
    """Every kernel-backed view of ``y`` equals the plain-Python answer for ``rows``."""
    n = len(rows)
    dense = np.zeros((n, n_labels), dtype=np.uint8)
    for r, ids in enumerate(rows):
        dense[r, ids] = 1
    assert y.shape == (n, n_labels)
    assert [y[i].tolist() for i in range(n)] == rows
    assert np.array_equal(y.label_counts(), dense.sum(0))
    assert np.array_equal(y.multi_hot_numpy(dtype=np.uint8), dense)
    assert np.array_equal(y.multi_hot().numpy(), dense.astype(np.float32))
    t = y.transpose()
    assert [t[c].tolist() for c in range(n_labels)] == \
        [np.flatnonzero(dense[:, c]).tolist() for c in range(n_labels)]
    order = np.arange(n)[::-1]
    assert [r.tolist() for r in (y.take(order)[i] for i in range(n))] == [rows[i] for i in order]
    s = y.stats()
    assert s.nnz == int(dense.sum()) and s.empty_examples == int((dense.sum(1) == 0).sum())


# ------------------------------------------------------------------ corrupt CSR arrays
@st.composite
def csr_arrays(draw):
    """Valid CSRs, then one of several corruptions, in any integer (or float) dtype."""
    n = draw(st.integers(1, 6))
    rows = [sorted(set(draw(st.lists(st.integers(0, 9), max_size=4)))) for _ in range(n)]
    off = np.concatenate([[0], np.cumsum([len(r) for r in rows])]).astype(np.int64)
    idx = np.array([v for r in rows for v in r], dtype=np.int64)
    kind = draw(st.sampled_from(["none", "decrease", "first", "last", "id", "unsorted",
                                 "duplicate", "huge", "empty"]))
    if kind == "decrease" and n >= 2:
        i = draw(st.integers(1, n - 1))
        off[i] = off[i + 1] + draw(st.integers(1, 5))
    elif kind == "first":
        off[0] = draw(st.sampled_from([-1, 1, -(2**40)]))
    elif kind == "last":
        off[-1] += draw(st.sampled_from([-1, 1, 2**33]))
    elif kind == "id" and idx.size:
        idx[draw(st.integers(0, idx.size - 1))] = draw(st.sampled_from([-1, 10, 2**31, -(2**35)]))
    elif kind in ("unsorted", "duplicate"):
        long_rows = [r for r in range(n) if off[r + 1] - off[r] >= 2]
        if long_rows:
            r = draw(st.sampled_from(long_rows))
            a = off[r]
            if kind == "unsorted":
                idx[a], idx[a + 1] = idx[a + 1], idx[a]
            else:
                idx[a + 1] = idx[a]
    elif kind == "huge":
        off = np.array([0, 2**62], dtype=np.int64)
    elif kind == "empty":
        off = off[:draw(st.integers(0, 1))]
    dt_off, dt_idx = draw(st.sampled_from(DTYPES)), draw(st.sampled_from(DTYPES))
    with np.errstate(all="ignore"):
        off, idx = off.astype(dt_off), idx.astype(dt_idx)
    n_labels = draw(st.one_of(st.none(), st.integers(-2, 12), st.sampled_from([2**31, 2.0, True])))
    return off, idx, n_labels


@given(csr_arrays(), st.booleans())
def test_csr_arrays_never_crash(arrays, canonicalize):
    off, idx, n_labels = arrays
    before = (off.copy(), idx.copy())
    try:
        y = LabelMatrix(off, idx, n_labels, canonicalize=canonicalize)
    except Exception as exc:  # noqa: BLE001 - classified below
        _reject_ok(exc)
        assert canonicalize or reference_rows(off, idx, n_labels) is None, \
            f"valid input rejected: {exc!r}"
        return
    finally:
        assert np.array_equal(off, before[0]) and np.array_equal(idx, before[1])  # inputs intact
    if canonicalize:
        rows = [sorted(set(int(v) for v in idx[a:b])) for a, b in zip(off[:-1], off[1:])]
    else:
        rows = reference_rows(off, idx, n_labels)
        assert rows is not None, "an invalid CSR was accepted"
    assert_matches_reference(y, rows, y.n_labels)


@given(st.lists(st.one_of(st.lists(st.one_of(st.integers(-2**70, 2**70), st.integers(0, 6),
                                             st.floats(), st.text(max_size=2), st.none()),
                                   max_size=3),
                          st.none(), st.integers(), st.text(max_size=2)), max_size=4),
       st.one_of(st.none(), st.integers(-3, 8)))
def test_label_lists_never_crash(lists, n_labels):
    try:
        y = LabelMatrix.from_lists(lists, n_labels)
    except Exception as exc:  # noqa: BLE001
        _reject_ok(exc)
        return
    rows = [sorted(set(r)) for r in lists]   # unsorted rows and repeats: sorted (warned)
    assert all(isinstance(v, int) and not isinstance(v, bool) for r in rows for v in r)
    assert_matches_reference(y, rows, y.n_labels)


@given(st.one_of(st.integers(-2**65, 2**65), st.lists(st.integers(-12, 12), max_size=5),
                 st.lists(st.booleans(), max_size=5), st.floats(), st.text(max_size=3),
                 st.slices(8), st.sampled_from([np.array([2**64 - 1], np.uint64),
                                                np.array([[0]]), np.array([0.5]), None])))
def test_row_selections_never_crash(rows):
    y = LabelMatrix.from_lists([[0, 3], [], [1], [2, 3], [0]], n_labels=4)
    dense = y.multi_hot_numpy(dtype=np.uint8)
    try:
        got = y.multi_hot_numpy(rows, dtype=np.uint8)
    except Exception as exc:  # noqa: BLE001
        _reject_ok(exc)
        return
    sel = np.arange(5)[rows] if rows is not None else np.arange(5)
    assert np.array_equal(got, dense[np.atleast_1d(sel)])


# ------------------------------------------------------------------ corrupt files
def _valid_file(directory: Path, metadata: bool) -> tuple[Path, list]:
    rows = [[0, 3], [1], [], [2, 3, 5], [4]] * 4
    y = LabelMatrix.from_lists(rows, n_labels=6)
    path = directory / "labels.arrow"
    if metadata:
        y.save(path, overwrite=True)
    else:  # a foreign file: list<int32>, no metadata
        table = pa.table({"labels": pa.array(rows, pa.list_(pa.int32()))})
        with pa.OSFile(str(path), "wb") as sink, pa.ipc.new_file(sink, table.schema) as w:
            w.write_table(table)
    return path, rows


#: a damaged file may validly declare a huge label count (e.g. 671,088,641): compare its
#: dense views only below this many cells (the sparse views are compared always)
_DENSE_CELLS = 2**24


def _consistent(y: LabelMatrix) -> bool:
    """Whatever a (damaged but accepted) file holds, every view of it agrees. Returns
    whether the dense views were compared too (False when they would be too large)."""
    rows = [y[i].tolist() for i in range(len(y))]
    assert reference_rows(y.offsets, y.indices, y.n_labels) == rows
    if len(y) * y.n_labels > _DENSE_CELLS:  # per-label views would be as large
        return False
    assert_matches_reference(y, rows, y.n_labels)
    return True


@FILE_SETTINGS
@given(data=st.data(), metadata=st.booleans())
def test_corrupt_ipc_files(tmp_path, data, metadata):
    path, rows = _valid_file(tmp_path, metadata)
    raw = bytearray(path.read_bytes())
    how = data.draw(st.sampled_from(["flip", "truncate", "splice"]))
    if how == "flip":
        for _ in range(data.draw(st.integers(1, 4))):
            pos = data.draw(st.integers(8, len(raw) - 11))
            raw[pos] = data.draw(st.integers(0, 255))
    elif how == "truncate":
        raw = raw[:data.draw(st.integers(0, len(raw) - 1))]
    else:  # an int64 written over an aligned word (offsets, lengths, ids)
        pos = data.draw(st.integers(1, len(raw) // 8 - 2)) * 8
        value = data.draw(st.sampled_from([-1, 2**31, 2**40, 7, 0]))
        raw[pos:pos + 8] = np.int64(value).tobytes()
    path.write_bytes(bytes(raw))
    try:
        y = LabelMatrix.open(path)
    except Exception as exc:  # noqa: BLE001
        _reject_ok(exc)
        return
    if not _consistent(y):
        return
    try:
        ds = ArrowDataset(path, features=None)
    except Exception as exc:  # noqa: BLE001
        _reject_ok(exc)
        return
    x, multi_hot, index, extras = ds.__getitems__(list(range(len(ds)))).batch
    assert extras == {}
    assert np.array_equal(multi_hot.numpy(), y.multi_hot_numpy())


@FILE_SETTINGS
@given(data=st.data())
def test_corrupt_parquet_files(tmp_path, data):
    rows = [[i % 5, 7] if i % 3 else [] for i in range(300)]
    path = tmp_path / "labels.parquet"
    pq.write_table(pa.table({"labels": pa.array(rows, pa.list_(pa.int64()))}), path,
                   compression=data.draw(st.sampled_from(["NONE", "SNAPPY"])))
    raw = bytearray(path.read_bytes())
    for _ in range(data.draw(st.integers(1, 6))):
        pos = data.draw(st.integers(4, len(raw) - 9))
        raw[pos] = data.draw(st.integers(0, 255))
    path.write_bytes(bytes(raw))
    try:  # strict, as before unsorted rows were sorted by default: corruption often
        y = LabelMatrix.read_parquet(path, canonicalize=False)  # shows as disorder
    except Exception as exc:  # noqa: BLE001
        _reject_ok(exc)
        assert "labels.parquet" in str(exc) or isinstance(exc, TypeError), str(exc)
        return
    _consistent(y)


# ------------------------------------------------------------------ the bounds-checked run
@pytest.mark.skipif(UNDER_BOUNDSCHECK, reason="this is the run that starts the bounds-checked one")
@pytest.mark.slow
def test_fuzz_under_boundscheck():
    """Run the fuzz suites again with Numba bounds checks: an OOB access fails the run."""
    root = Path(__file__).resolve().parent
    suites = [str(root / "test_fuzz.py")]
    suites += [str(p) for p in sorted(root.glob("test_fuzz_*.py"))]
    env = dict(os.environ, NUMBA_BOUNDSCHECK="1",
               NUMBA_CACHE_DIR=os.path.join(tempfile.gettempdir(), "longtail-numba-boundscheck"),
               HYPOTHESIS_MAX_EXAMPLES=os.environ.get("LONGTAIL_BOUNDSCHECK_EXAMPLES", "40"))
    proc = subprocess.run([sys.executable, "-m", "pytest", "-q", "-x", "-p", "no:cacheprovider",
                           *suites], env=env, capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, proc.stdout[-6000:] + proc.stderr[-3000:]
    assert " passed" in proc.stdout
