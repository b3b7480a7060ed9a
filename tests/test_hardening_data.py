"""Hostile inputs to LabelMatrix, its files and ArrowDataset (issue: hardening).

Each test here failed (crash, wrong answer or unclear error) before the fix it names.
"""
from __future__ import annotations

import os
import pickle

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import scipy.sparse as sp

from longtail import LabelMatrix
from longtail._core.checks import check_csr, freeze, is_immutable, own
from longtail.datasets import ArrowDataset, make_long_tail, write_dataset


def _write_ipc(path, table):
    with pa.OSFile(str(path), "wb") as sink:
        with pa.ipc.new_file(sink, table.schema) as w:
            w.write_table(table)
    return path


def _crafted_file(path, offsets, values):
    """An IPC file whose large_list offsets are whatever we say: a valid file is written,
    then its offsets buffer is overwritten in place (Arrow checks offsets on construction,
    not in a file)."""
    n = len(offsets) - 1
    good = np.arange(n + 1, dtype=np.int64) * 1_000_003 + 17  # a unique byte pattern
    vals = pa.array(np.resize(np.asarray(values, dtype=np.int32), good[-1] - good[0]))
    arr = pa.LargeListArray.from_arrays(pa.array(good - good[0]), vals)
    _write_ipc(path, pa.table({"labels": arr}))
    raw = path.read_bytes()
    pattern = (good - good[0]).tobytes()
    assert raw.count(pattern) == 1
    crafted = np.asarray(offsets, dtype=np.int64).tobytes()
    path.write_bytes(raw.replace(pattern, crafted))
    return path


# ---------------------------------------------------------------- 1. file metadata is a hint
def test_concatenated_files_keep_first_metadata_and_are_refused(tmp_path):
    LabelMatrix.from_lists([[0, 2], [1]], n_labels=3).save(tmp_path / "a.arrow")
    LabelMatrix.from_lists([[5_000_000]]).save(tmp_path / "b.arrow")
    a = pa.ipc.open_file(str(tmp_path / "a.arrow")).read_all()
    b = pa.ipc.open_file(str(tmp_path / "b.arrow")).read_all()
    both = pa.concat_tables([a, b.cast(a.schema)]).combine_chunks()
    path = _write_ipc(tmp_path / "both.arrow", both)
    assert both.schema.field("labels").metadata[b"longtail.n_labels"] == b"3"
    with pytest.raises(ValueError, match=r"label id 5000000 >= n_labels=3 in row 2 of '.*both"):
        LabelMatrix.open(path)
    with pytest.raises(ValueError, match="label id 5000000 >= n_labels=3"):
        ArrowDataset(path, features=None)
    y = LabelMatrix.open(path, n_labels=5_000_001)  # the way out the message points to
    assert y.label_counts()[5_000_000] == 1 and y.nnz == 4


@pytest.mark.parametrize("offsets, values, match", [
    ([0, 2, 1, 3], [0, 1, 2], "offsets of .* decrease at row 1"),
    ([-1, 1, 2], [0, 1, 2], "first offset -1 is outside|Negative offsets"),
    ([0, 1, 10**8], [0, 1, 2], "last offset 100000000 is beyond|damaged"),
    ([0, 1, -5], [0, 1, 2], "decrease at row 1|damaged"),
])
def test_crafted_offsets_in_files(tmp_path, offsets, values, match):
    path = _crafted_file(tmp_path / "crafted.arrow", offsets, values)
    with pytest.raises(ValueError, match=match):
        LabelMatrix.open(path)
    with pytest.raises(ValueError, match=match):
        ArrowDataset(path, features=None)


@pytest.mark.parametrize("rows, match", [
    ([[0, 7]], "label id 7 >= n_labels=3 in row 0"),
    ([[1], [-2]], "negative label id -2 in row 1"),
    ([[2, 1]], "not sorted"),
    ([[1, 1]], "duplicate label id 1 in row 0"),
])
def test_canonical_metadata_is_not_trusted(tmp_path, rows, match):
    arr = pa.array(rows, pa.large_list(pa.int32()))
    field = pa.field("labels", arr.type, nullable=False,
                     metadata={"longtail.n_labels": "3", "longtail.canonical": "1"})
    path = _write_ipc(tmp_path / "lie.arrow", pa.Table.from_arrays([arr], schema=pa.schema([field])))
    with pytest.raises(ValueError, match=match):
        LabelMatrix.open(path)


def test_unsorted_file_canonicalized_gives_consistent_counts(tmp_path):
    arr = pa.array([[2, 0, 2], [1]], pa.large_list(pa.int32()))
    path = _write_ipc(tmp_path / "u.arrow", pa.table({"labels": arr}))
    y = LabelMatrix.open(path, canonicalize=True)
    assert y.label_counts().tolist() == y.multi_hot_numpy().sum(0).astype(int).tolist() == [1, 1, 1]


def test_garbage_n_labels_metadata(tmp_path):
    arr = pa.array([[0]], pa.large_list(pa.int32()))
    for raw, err in ((b"three", "not an integer: b'three'"), (b"-4", "must be >= 0"),
                     (b"\xff", "not an integer")):
        field = pa.field("labels", arr.type, metadata={b"longtail.n_labels": raw})
        path = _write_ipc(tmp_path / "m.arrow", pa.Table.from_arrays([arr], schema=pa.schema([field])))
        with pytest.raises(ValueError, match=err):
            LabelMatrix.open(path)


def test_truncated_ipc_file(tmp_path):
    make_long_tail("small", seed=0, n_examples=300).save(str(tmp_path / "d.arrow"))
    data = (tmp_path / "d.arrow").read_bytes()
    for cut in (len(data) // 2, len(data) - 20, 100):
        (tmp_path / "t.arrow").write_bytes(data[:cut])
        with pytest.raises(ValueError, match="t.arrow"):
            LabelMatrix.open(tmp_path / "t.arrow")


def test_corrupt_parquet_names_the_file(tmp_path):
    path = tmp_path / "c.parquet"
    pq.write_table(pa.table({"labels": pa.array([[i % 7, 9] for i in range(5000)])}), path,
                   compression="NONE")
    raw = bytearray(path.read_bytes())
    mid = len(raw) // 2
    raw[mid:mid + 64] = b"\x07" * 64
    path.write_bytes(bytes(raw))
    # strict: the corrupted bytes land as ids out of order, which the default would sort
    # (with an UnsortedLabelsWarning that names the file, see tests/test_unsorted_rows.py)
    with pytest.raises(ValueError, match="c.parquet"):
        LabelMatrix.read_parquet(path, canonicalize=False)


# ---------------------------------------------------------------- 2. offsets checked first
@pytest.mark.parametrize("offsets, indices, match", [
    ([0, 5, 3], [0, 1, 2], r"offsets decrease at row 1 \(offsets\[1\]=5 > offsets\[2\]=3\)"),
    ([1, 3], [0, 1, 2], "must start at 0"),
    ([0, 2], [0, 1, 2], r"must end at len\(indices\)=3"),
    ([0], [], "at least 2 entries"),
    ([[0, 1]], [0], "1-D"),
    ([0.0, 1.0], [0], "integers"),
    (np.array([0, 2**64 - 5], dtype=np.uint64), [0], "beyond the int64 range"),
])
def test_bad_offsets(offsets, indices, match):
    with pytest.raises((ValueError, TypeError), match=match):
        LabelMatrix(np.asarray(offsets), np.asarray(indices), n_labels=3)


def test_bad_ids_are_reported_before_casting():
    with pytest.raises(ValueError, match=r"label id 18446744073709551611 >= n_labels=3 in row 0"):
        LabelMatrix(np.array([0, 1]), np.array([2**64 - 5], dtype=np.uint64), n_labels=3)
    with pytest.raises(ValueError, match="label id 4294967296 >= n_labels=3 in row 1"):
        LabelMatrix(np.array([0, 1, 2]), np.array([0, 2**32]), n_labels=3)


# ---------------------------------------------------------------- 3. no aliasing
def test_constructor_copies_writable_inputs():
    offs, idx = np.array([0, 2, 3]), np.array([0, 1, 1], dtype=np.int32)
    y = LabelMatrix(offs, idx, n_labels=2)
    idx[:] = 10_000_000
    offs[1] = 99
    assert y.indices.tolist() == [0, 1, 1] and y.offsets.tolist() == [0, 2, 3]
    assert y.transpose().offsets.tolist() == [0, 1, 3]


def test_readonly_view_of_writable_memory_is_copied():
    idx = np.array([0, 1], dtype=np.int32)
    view = idx.view()
    view.flags.writeable = False
    y = LabelMatrix(np.array([0, 2]), view, n_labels=2)
    idx[0] = 1_000_000
    assert y.indices.tolist() == [0, 1]


@pytest.mark.parametrize("make", [
    lambda: LabelMatrix.from_dense([[1, 0, 1]]),
    lambda: LabelMatrix.from_lists([[0, 2]]),
    lambda: LabelMatrix.from_lists([[2, 0]], canonicalize=True),
    lambda: LabelMatrix(np.array([0, 1]), np.array([0])),
    lambda: LabelMatrix.from_scipy(sp.csr_matrix(np.eye(3))),
    lambda: LabelMatrix.from_lists([[0, 2], [1]]).take([1, 0]),
    lambda: LabelMatrix.from_lists([[0, 2], [1]]).transpose(),
])
def test_arrays_cannot_be_made_writeable(make):
    y = make()
    for a in (y.offsets, y.indices, y.label_counts()):
        with pytest.raises(ValueError):
            a.flags.writeable = True


def test_arrow_memory_is_not_copied():
    arr = pa.array([[0, 1], [2]], pa.large_list(pa.int32()))
    y = LabelMatrix.from_arrow(arr)
    assert y.indices.ctypes.data == arr.values.buffers()[1].address


def test_freeze_and_own():
    a = np.arange(4)
    assert not is_immutable(a) and is_immutable(freeze(a))
    o = own(a, np.int32)
    a[0] = 7
    assert o[0] == 0 and o.dtype == np.int32 and is_immutable(o)


# ---------------------------------------------------------------- 7. NaN / inf in
def test_from_scipy_rejects_nan_and_negative_even_when_canonicalizing():
    for v in (np.nan, -1.0, np.inf):
        m = sp.csr_matrix(np.array([[0, 1.0], [v, 0]]))
        with pytest.raises(ValueError, match="at row 1, label 0"):
            LabelMatrix.from_scipy(m, canonicalize=True)
    coo = sp.coo_matrix((np.array([1.0, 1.0]), (np.array([0, 0]), np.array([1, 1]))), shape=(1, 2))
    assert LabelMatrix.from_scipy(coo, canonicalize=True).indices.tolist() == [1]
    cancel = sp.coo_matrix((np.array([-1.0, 1.0]), (np.array([0, 0]), np.array([1, 1]))),
                           shape=(1, 2))
    with pytest.raises(ValueError, match="value -1.0 at row 0, label 1"):
        LabelMatrix.from_scipy(cancel)


def test_write_dataset_checks_features_after_the_float32_cast(tmp_path):
    x = np.zeros((2, 3))
    x[1, 2] = 1e39
    with pytest.raises(ValueError, match="row 1, column 2"):
        write_dataset(tmp_path / "f.arrow", x, [[0], [1]])
    assert not os.listdir(tmp_path)
    with pytest.raises(TypeError, match="real numbers"):
        write_dataset(tmp_path / "f.arrow", np.array([["a"], ["b"]]), [[0], [1]])


# ---------------------------------------------------------------- 11. clear errors
@pytest.mark.parametrize("call, exc, match", [
    (lambda: LabelMatrix.from_lists([[2**63]]), ValueError,
     "label id 9223372036854775808 beyond the int32 label-id range in row 0"),
    (lambda: LabelMatrix.from_lists([[1], [-(2**70)]]), ValueError, "in row 1"),
    (lambda: LabelMatrix.from_lists([["a"]]), TypeError, "row 0 has a non-integer label id 'a'"),
    (lambda: LabelMatrix.from_lists([[0]], n_labels=-1), ValueError, "n_labels must be >= 0, got -1"),
    (lambda: LabelMatrix.from_lists([[0]], n_labels=2.5), TypeError, "n_labels must be an integer"),
    (lambda: LabelMatrix.from_lists([[0]], n_labels=2**40), ValueError, "int32"),
    (lambda: LabelMatrix.from_lists([[0], [1]]).take(np.array([2**64 - 5], np.uint64)), IndexError,
     "row 18446744073709551611"),
    (lambda: make_long_tail("small", kind="foo"), ValueError, "kind='foo' does not fit preset"),
    (lambda: make_long_tail("small", n_examples=2.5), TypeError, "n_examples must be an integer"),
    (lambda: make_long_tail("small", mean_labels=float("nan")), ValueError, "mean_labels"),
    (lambda: make_long_tail("small", min_prevalence=0.5), ValueError, "min_prevalence"),
])
def test_clear_errors(call, exc, match):
    with pytest.raises(exc, match=match):
        call()


def test_arrow_dataset_index_beyond_int64(tmp_path):
    path = tmp_path / "d.arrow"
    write_dataset(path, np.zeros((2, 2)), [[0], [1]])
    with pytest.raises(IndexError, match="index 36893488147419103232 is out of range"):
        ArrowDataset(path).__getitems__([0, 2**65])


# ---------------------------------------------------------------- 12. files that change
def test_unpickling_refuses_a_changed_file(tmp_path):
    path = tmp_path / "d.arrow"
    write_dataset(path, np.zeros((2, 2)), [[0], [1]])
    y, ds = LabelMatrix.open(path), ArrowDataset(path)
    blob_y, blob_ds = pickle.dumps(y), pickle.dumps(ds)
    assert pickle.loads(blob_y).equals(y) and len(pickle.loads(blob_ds)) == 2
    os.replace(path, tmp_path / "old.arrow")  # keep the mapped file alive, put another in place
    write_dataset(path, np.zeros((3, 2)), [[0], [1], [1]])
    with pytest.raises(ValueError, match="changed since this LabelMatrix was opened"):
        pickle.loads(blob_y)
    with pytest.raises(ValueError, match="changed since this ArrowDataset was opened"):
        pickle.loads(blob_ds)


def test_pickled_arrays_are_checked_again():
    y = LabelMatrix.from_lists([[0, 1]])
    func, (off, idx, n) = y.__reduce__()
    with pytest.raises(ValueError, match="label id 1 >= n_labels=1"):
        func(off, idx, 1)
    assert func(off, idx, n).equals(y)


def test_check_csr_returns_frozen_kernel_arrays():
    off, idx, n = check_csr([0, 1, 3], np.array([4, 0, 9], np.int64), None)
    assert (off.dtype, idx.dtype, n) == (np.int64, np.int32, 10)
    assert is_immutable(off) and is_immutable(idx)
