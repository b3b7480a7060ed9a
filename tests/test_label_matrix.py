import pickle

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import scipy.sparse as sp
import torch
from hypothesis import given
from hypothesis import strategies as st

from longtail import LabelMatrix
from longtail.datasets.io import LabelFileError


# ------------------------------------------------------------------ strategies / reference
@st.composite
def label_lists(draw, max_rows=30, max_labels=12):
    n_labels = draw(st.integers(1, max_labels))
    n = draw(st.integers(1, max_rows))
    rows = [sorted(draw(st.sets(st.integers(0, n_labels - 1), max_size=n_labels)))
            for _ in range(n)]
    return rows, n_labels


def dense_of(rows, n_labels):
    out = np.zeros((len(rows), n_labels), dtype=np.float32)
    for i, r in enumerate(rows):
        out[i, r] = 1
    return out


# ------------------------------------------------------------------ kernels vs NumPy
@given(label_lists())
def test_kernels_match_dense_reference(data):
    rows, L = data
    y = LabelMatrix.from_lists(rows, n_labels=L)
    dense = dense_of(rows, L)
    assert len(y) == len(rows) and y.n_labels == L and y.nnz == int(dense.sum())
    np.testing.assert_array_equal(y.label_counts(), dense.sum(0).astype(np.int64))
    np.testing.assert_allclose(y.prevalence(), dense.mean(0))
    np.testing.assert_array_equal(y.multi_hot().numpy(), dense)
    np.testing.assert_array_equal(y.to_scipy().toarray(), dense)
    t = y.transpose()
    np.testing.assert_array_equal(t.multi_hot_numpy(), dense.T)
    assert t.transpose().equals(y)
    np.testing.assert_array_equal(y.row_lengths(), dense.sum(1))


@given(label_lists(), st.data())
def test_take_and_multi_hot_rows(data, draw):
    rows, L = data
    y = LabelMatrix.from_lists(rows, n_labels=L)
    sel = draw.draw(st.lists(st.integers(-len(rows), len(rows) - 1), min_size=1, max_size=20))
    dense = dense_of(rows, L)
    np.testing.assert_array_equal(y.take(sel).multi_hot_numpy(), dense[sel])
    np.testing.assert_array_equal(y.multi_hot(sel).numpy(), dense[sel])
    np.testing.assert_array_equal(y.multi_hot(sel, dtype=torch.bfloat16).float().numpy(),
                                  dense[sel])


@given(st.lists(st.lists(st.integers(0, 9), max_size=8), min_size=1, max_size=20))
def test_canonicalize_matches_sorted_sets(raw):
    y = LabelMatrix.from_lists(raw, n_labels=10, canonicalize=True)
    for i, r in enumerate(raw):
        assert y[i].tolist() == sorted(set(r))


def reference_stats(dense):
    counts = dense.sum(0).astype(np.float64)
    present = counts > 0
    ir = counts.max() / counts[present]
    ir_full = np.ones(dense.shape[1])
    ir_full[present] = ir
    sc = []
    for row in dense:
        labs = np.flatnonzero(row)
        if labs.size == 0:
            sc.append(0.0)
            continue
        v = ir_full[labs]
        sc.append(1 - np.prod(v) ** (1 / v.size) / v.mean())
    cvir = ir.std(ddof=1) / ir.mean() if ir.size > 1 else 0.0
    return ir.mean(), ir.max(), cvir, np.mean(sc)


@given(label_lists())
def test_stats_match_reference(data):
    rows, L = data
    y = LabelMatrix.from_lists(rows, n_labels=L)
    dense = dense_of(rows, L)
    s = y.stats()
    assert s.cardinality == pytest.approx(dense.sum() / len(rows))
    assert s.empty_examples == int((dense.sum(1) == 0).sum())
    assert s.empty_labels == int((dense.sum(0) == 0).sum())
    if dense.sum():
        mean_ir, max_ir, cvir, scumble = reference_stats(dense)
        assert s.mean_ir == pytest.approx(mean_ir)
        assert s.max_ir == pytest.approx(max_ir)
        assert s.cvir == pytest.approx(cvir)
        assert s.scumble == pytest.approx(scumble, rel=1e-9, abs=1e-12)
    assert "MeanIR" in str(s)


def test_stats_known_values():
    y = LabelMatrix.from_lists([[0, 1], [1], [1, 2]])
    s = y.stats()
    # counts 1, 3, 1 -> IRLbl 3, 1, 3
    assert s.mean_ir == pytest.approx(7 / 3)
    assert s.max_ir == 3
    assert s.label_count_quantiles["max"] == 3
    assert s.to_dict()["n_examples"] == 3


# ------------------------------------------------------------------ Arrow zero-copy
def test_from_arrow_list_int32_is_zero_copy():
    arr = pa.array([[0, 2], [1], []], type=pa.list_(pa.int32()))
    y = LabelMatrix.from_arrow(arr)
    values = arr.values.to_numpy()
    assert np.shares_memory(y.indices, values)
    assert y.offsets.dtype == np.int64 and y.indices.dtype == np.int32
    assert not y.indices.flags.writeable and not y.offsets.flags.writeable


def test_from_arrow_large_list_shares_offsets_too():
    arr = pa.array([[0, 2], [1]], type=pa.large_list(pa.int32()))
    y = LabelMatrix.from_arrow(arr)
    assert np.shares_memory(y.offsets, np.asarray(arr.offsets))
    assert np.shares_memory(y.indices, arr.values.to_numpy())


def test_sliced_arrow_array():
    arr = pa.array([[5], [0, 2], [1], [3, 4]], type=pa.list_(pa.int32()))
    sliced = arr.slice(1, 2)
    assert np.asarray(sliced.offsets)[0] != 0
    y = LabelMatrix.from_arrow(sliced, n_labels=6)
    assert y.offsets.tolist() == [0, 2, 3]
    assert [y[0].tolist(), y[1].tolist()] == [[0, 2], [1]]
    assert np.shares_memory(y.indices, arr.values.to_numpy())


def test_chunked_int64_like_hugging_face():
    chunks = [pa.array([[i % 7, 7 + i % 3]] * 1000, type=pa.list_(pa.int64())) for i in range(3)]
    y = LabelMatrix.from_arrow(pa.chunked_array(chunks))
    assert len(y) == 3000 and y.n_labels == 10
    assert y[2500].tolist() == [2, 9]


def test_single_chunk_chunked_array_is_zero_copy():
    arr = pa.array([[0], [1, 2]], type=pa.list_(pa.int32()))
    y = LabelMatrix.from_arrow(pa.chunked_array([arr]))
    assert np.shares_memory(y.indices, arr.values.to_numpy())


# ------------------------------------------------------------------ other constructors
def test_from_scipy_and_dense_roundtrip():
    dense = np.array([[1, 0, 1], [0, 0, 0], [0, 1, 1]])
    m = sp.coo_matrix(dense)
    before = m.copy()
    y = LabelMatrix.from_scipy(m)
    assert (m != before).nnz == 0  # input untouched
    np.testing.assert_array_equal(y.multi_hot_numpy(), dense)
    np.testing.assert_array_equal(LabelMatrix.from_dense(dense).multi_hot_numpy(), dense)
    np.testing.assert_array_equal(LabelMatrix.from_dense(torch.tensor(dense).bool()).multi_hot_numpy(), dense)
    np.testing.assert_array_equal(LabelMatrix.from_scipy(sp.csc_array(dense)).multi_hot_numpy(), dense)


@given(st.integers(1, 40), st.integers(1, 21), st.sampled_from([0.0, 0.1, 0.5, 1.0]),
       st.sampled_from(["float32", "float64", "float16", "int64", "int8", "uint8", "bool",
                        "bool-bytes", "fortran", "strided", "torch-bf16"]),
       st.integers(1, 64), st.integers(0, 2**32 - 1))
def test_from_dense_matches_nonzero_in_any_chunking(n, c, p, kind, chunk, seed):
    """The byte-wise two-pass path equals np.nonzero for every dtype and layout, and
    for any row chunking (a chunk of ``chunk`` entries: several rows or one)."""
    import longtail.datasets.label_matrix as lm

    ref = np.random.default_rng(seed).random((n, c)) < p
    if kind == "bool-bytes":  # bool bytes other than 0 and 1 are true, as in numpy
        a = ref.copy()
        a.view(np.uint8)[a] = 7
    elif kind == "fortran":
        a = np.asfortranarray(ref.astype(np.float32))
    elif kind == "strided":
        a = np.repeat(ref.astype(np.int32), 3, axis=1)[:, ::3]
    elif kind == "torch-bf16":
        a = torch.from_numpy(ref).to(torch.bfloat16)
    else:
        a = ref.astype(kind)
    old = lm._DENSE_CHUNK
    lm._DENSE_CHUNK = chunk
    try:
        y = LabelMatrix.from_dense(a)
    finally:
        lm._DENSE_CHUNK = old
    rows, cols = np.nonzero(ref)
    assert y.shape == (n, c) and y.indices.dtype == np.int32
    np.testing.assert_array_equal(y.indices, cols)
    np.testing.assert_array_equal(y.row_lengths(), np.bincount(rows, minlength=n))


def test_from_dense_names_the_first_bad_entry_in_a_later_chunk():
    import longtail.datasets.label_matrix as lm

    a = np.zeros((10, 3), dtype=np.float32)
    a[7, 2], a[8, 0] = 0.5, 2.0
    old, lm._DENSE_CHUNK = lm._DENSE_CHUNK, 6  # two rows per chunk
    try:
        with pytest.raises(ValueError, match="value 0.5 at row 7, label 2: entries must be 0"):
            LabelMatrix.from_dense(a)
        b = np.eye(5, 3, dtype=np.int16)
        b[4, 0] = -1
        with pytest.raises(ValueError, match="value -1 at row 4, label 0"):
            LabelMatrix.from_dense(b)
    finally:
        lm._DENSE_CHUNK = old
    with pytest.raises(TypeError, match="numeric or bool"):
        LabelMatrix.from_dense(np.array([["a", "b"]]))
    assert LabelMatrix.from_dense(np.zeros((2, 0))).shape == (2, 0)


def test_dense_fill_kernel_never_writes_past_a_row_that_changed():
    from longtail.datasets import _kernels as K

    flat = np.ones(16, dtype=np.uint8)
    flat.flags.writeable = False
    words = flat.view(np.uint64)
    counts = np.zeros(3, dtype=np.int64)  # counted as all-zero rows: 0 slots + 8 slack
    slack = np.full(8, -1, dtype=np.int32)
    assert K.dense_nonzero(flat, words, 0, 8, 0, counts, slack, counts.copy()) == 0


def test_scipy_duplicates_need_canonicalize():
    m = sp.coo_matrix((np.ones(3), ([0, 0, 1], [1, 1, 0])), shape=(2, 2))
    with pytest.raises(ValueError, match="row 0, label 1"):
        LabelMatrix.from_scipy(m)
    assert LabelMatrix.from_scipy(m, canonicalize=True)[0].tolist() == [1]


def test_getitem_slices_and_masks():
    y = LabelMatrix.from_lists([[0], [1], [2]])
    assert y[-1].tolist() == [2]
    assert y[1:].shape == (2, 3)
    assert y[np.array([True, False, True])][1].tolist() == [2]
    with pytest.raises(IndexError, match="row 3"):
        y[3]
    with pytest.raises(IndexError, match="row 5"):
        y.take([0, 5])


# ------------------------------------------------------------------ files
def test_save_open_roundtrip_memory_mapped(tmp_path):
    y = LabelMatrix.from_lists([[0, 3], [], [1, 2, 3]], n_labels=5)
    path = tmp_path / "y.arrow"
    y.save(path)
    before = pa.total_allocated_bytes()
    z = LabelMatrix.open(path)
    assert pa.total_allocated_bytes() == before  # nothing allocated by Arrow
    assert z.equals(y) and z.n_labels == 5 and z.path == str(path)
    with pytest.raises(FileExistsError):
        y.save(path)
    y.save(path, overwrite=True)
    assert [p.name for p in tmp_path.iterdir()] == ["y.arrow"]  # no temp files left


def test_opened_matrix_shares_the_mapped_arrow_buffers(tmp_path):
    y = LabelMatrix.from_lists([[i % 50, 50 + i % 7] for i in range(5000)])
    path = tmp_path / "y.arrow"
    y.save(path)
    before = pa.total_allocated_bytes()
    z = LabelMatrix.open(path)
    assert pa.total_allocated_bytes() == before
    arrow = z._keepalive  # the Arrow array over the memory map
    assert np.shares_memory(z.indices, arrow.values.to_numpy())
    assert np.shares_memory(z.offsets, np.asarray(arrow.offsets))
    assert z.equals(y)


def test_memory_mapped_matrix_pickles_as_path(tmp_path):
    y = LabelMatrix.from_lists([[i % 50] for i in range(20000)])
    path = tmp_path / "y.arrow"
    y.save(path)
    z = LabelMatrix.open(path)
    blob = pickle.dumps(z)
    assert len(blob) < 500  # the path, not the data
    w = pickle.loads(blob)
    assert w.equals(y) and w.path == z.path
    v = pickle.loads(pickle.dumps(y))  # in-memory matrix pickles by value
    assert v.equals(y)


def test_parquet(tmp_path):
    table = pa.table({"labels": pa.array([[1, 2], [0]], pa.list_(pa.int64())), "x": [1, 2]})
    path = tmp_path / "t.parquet"
    pq.write_table(table, path)
    y = LabelMatrix.read_parquet(path)
    assert y[0].tolist() == [1, 2]
    with pytest.raises(ValueError, match=r"no column 'tags'.*columns: \['labels', 'x'\]"):
        LabelMatrix.read_parquet(path, "tags")


# ------------------------------------------------------------------ bad input
@pytest.mark.parametrize("rows, n_labels, exc, match", [
    ([[0], None, [1]], None, ValueError, "row 1 is null"),
    ([[0], [1, None]], None, ValueError, "null label id in row 1"),
    ([[0], [2, -1]], None, ValueError, "negative label id -1 in row 1"),
    ([[0], [1], [4]], 3, ValueError, "label id 4 >= n_labels=3 in row 2"),
    ([[0, 1], [2, 1]], None, ValueError, "row 1 are not sorted"),
    ([[0, 1], [1, 1]], None, ValueError, "duplicate label id 1 in row 1"),
    ([[0], [1.5]], None, TypeError, "row 1 has a non-integer label id 1.5"),
    ([[0], [[1]]], None, TypeError, "row 1 is nested"),
    ([[0], "ab"], None, TypeError, "row 1 is not a sequence"),
    ([], None, ValueError, "zero rows"),
])
def test_bad_lists(rows, n_labels, exc, match):
    # canonicalize=False: unsorted / duplicate rows are refused (the default sorts them,
    # see tests/test_unsorted_rows.py); every other error is the same either way
    with pytest.raises(exc, match=match):
        LabelMatrix.from_lists(rows, n_labels=n_labels, canonicalize=False)


def test_canonicalize_still_rejects_out_of_range():
    with pytest.raises(ValueError, match="label id 9 >= n_labels=5 in row 1"):
        LabelMatrix.from_lists([[1, 0], [9]], n_labels=5, canonicalize=True)


@pytest.mark.parametrize("arr, exc, match", [
    (pa.array([[1.0]], pa.list_(pa.float64())), TypeError, "must be integers"),
    (pa.array([[[1]]], pa.list_(pa.list_(pa.int32()))), TypeError, "nested"),
    (pa.array([1, 2], pa.int32()), TypeError, "list<int> or large_list<int>"),
    (pa.array([], pa.list_(pa.int32())), ValueError, "zero rows"),
    (pa.array([[3000000000]], pa.list_(pa.int64())), ValueError, "beyond the int32 range in row 0"),
])
def test_bad_arrow(arr, exc, match):
    with pytest.raises(exc, match=match):
        LabelMatrix.from_arrow(arr)


def test_bad_dense_and_scipy():
    with pytest.raises(ValueError, match="value 2 at row 1, label 0"):
        LabelMatrix.from_dense([[0, 1], [2, 0]])
    with pytest.raises(ValueError, match="value nan at row 0, label 1"):
        LabelMatrix.from_dense(np.array([[0, np.nan]]))
    with pytest.raises(ValueError, match="2-D"):
        LabelMatrix.from_dense([0, 1])
    with pytest.raises(ValueError, match="value 3.0 at row 0, label 1"):
        LabelMatrix.from_scipy(sp.csr_matrix(np.array([[0, 3.0]])))


def test_missing_file_column_and_compressed(tmp_path):
    with pytest.raises(LabelFileError, match="no such file"):
        LabelMatrix.open(tmp_path / "nope.arrow")
    with pytest.raises(ValueError, match="no such file"):  # also a ValueError
        LabelMatrix.open(tmp_path / "nope.arrow")
    y = LabelMatrix.from_lists([[0], [1]])
    path = tmp_path / "y.arrow"
    y.save(path)
    with pytest.raises(ValueError, match=r"has no column 'tags' \(columns: \['labels'\]\)"):
        LabelMatrix.open(path, "tags")
    comp = tmp_path / "c.arrow"
    table = pa.table({"labels": pa.array([[i % 5] for i in range(1000)], pa.list_(pa.int32()))})
    with pa.OSFile(str(comp), "wb") as sink:
        with pa.ipc.new_file(sink, table.schema,
                             options=pa.ipc.IpcWriteOptions(compression="zstd")) as w:
            w.write_table(table)
    with pytest.raises(ValueError, match="compressed"):
        LabelMatrix.open(comp)
    junk = tmp_path / "junk.arrow"
    junk.write_bytes(b"not arrow at all")
    with pytest.raises(ValueError, match="not an Arrow IPC file"):
        LabelMatrix.open(junk)


def test_foreign_ipc_file_is_validated(tmp_path):
    table = pa.table({"labels": pa.array([[0, 1], [1, 1]], pa.list_(pa.int32()))})
    path = tmp_path / "f.arrow"
    with pa.OSFile(str(path), "wb") as sink:
        with pa.ipc.new_file(sink, table.schema) as w:
            w.write_table(table)
    with pytest.raises(ValueError, match=r"duplicate label id 1 in row 1 of '.*f.arrow' column 'labels'"):
        LabelMatrix.open(path)


def test_immutable():
    y = LabelMatrix.from_lists([[0, 1]])
    with pytest.raises(ValueError):
        y.indices[0] = 5
    with pytest.raises(AttributeError):
        y.n_labels = 3
    with pytest.raises(ValueError):
        y.label_counts()[0] = 7
