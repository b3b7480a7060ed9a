"""Unsorted label rows (and repeated ids) are accepted by every in-memory entry point:
sorted and deduplicated once, counted, and reported with one UnsortedLabelsWarning;
memory-mapped files stay strict and say how to fix them (issue 15, point 6)."""
from __future__ import annotations

import pickle
import re
import warnings

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest
from hypothesis import given
from hypothesis import strategies as st

from longtail import LabelMatrix, UnsortedLabelsWarning, sample_weights, stratified_split
from longtail.datasets import _kernels as K

rows_strategy = st.lists(st.lists(st.integers(0, 11), max_size=8), min_size=1, max_size=25)


def reference(rows):
    """Brute force: canonical rows and (unsorted rows, rows with repeats, repeated ids)."""
    canon = [sorted(set(r)) for r in rows]
    unsorted = sum(any(b < a for a, b in zip(r, r[1:])) for r in rows)
    dup_rows = sum(len(set(r)) != len(r) for r in rows)
    dups = sum(len(r) - len(set(r)) for r in rows)
    return canon, (unsorted, dup_rows, dups)


def counts_of(message: str) -> tuple[int, int, int]:
    """(unsorted rows, rows with repeats, repeated ids) read back from the warning."""
    m = re.search(r"sorted ([\d,]+) of", message)
    d = re.search(r"duplicates removed: ([\d,]+) \(in ([\d,]+) rows?", message)
    num = lambda s: int(s.replace(",", ""))  # noqa: E731
    return (num(m.group(1)) if m else 0, num(d.group(2)) if d else 0,
            num(d.group(1)) if d else 0)


def rows_of(y: LabelMatrix) -> list[list[int]]:
    return [y[i].tolist() for i in range(len(y))]


@given(rows_strategy)
def test_from_any_sorts_counts_and_warns_once(rows):
    canon, counts = reference(rows)
    with warnings.catch_warnings(record=True) as w:
        warnings.simplefilter("always")
        y = LabelMatrix.from_any(rows, n_labels=12)
    assert rows_of(y) == canon
    assert y.nnz == sum(map(len, canon)) and y.shape == (len(rows), 12)
    ours = [x for x in w if issubclass(x.category, UnsortedLabelsWarning)]
    if counts == (0, 0, 0):
        assert ours == []
    else:
        assert len(ours) == 1
        assert counts_of(str(ours[0].message)) == counts
        assert f"of {len(rows):,}" in str(ours[0].message)
        assert ours[0].filename == __file__  # points at the caller, not into longtail


@given(rows_strategy)
def test_canonicalize_true_is_silent_false_is_strict(rows):
    canon, counts = reference(rows)
    with warnings.catch_warnings():
        warnings.simplefilter("error", UnsortedLabelsWarning)
        assert rows_of(LabelMatrix.from_any(rows, 12, canonicalize=True)) == canon
    if counts == (0, 0, 0):
        assert rows_of(LabelMatrix.from_any(rows, 12, canonicalize=False)) == canon
    else:
        with pytest.raises(ValueError, match="canonicalize=True"):
            LabelMatrix.from_any(rows, 12, canonicalize=False)


@given(rows_strategy)
def test_kernels_match_reference(rows):
    canon, counts = reference(rows)
    off = np.concatenate([[0], np.cumsum([len(r) for r in rows])]).astype(np.int64)
    idx = np.array([v for r in rows for v in r], dtype=np.int32)
    assert tuple(K.row_order_stats(off, idx)) == counts
    o2, i2 = K.canonicalize_rows(off, idx)
    assert [i2[a:b].tolist() for a, b in zip(o2[:-1], o2[1:])] == canon


def test_every_in_memory_constructor_sorts():
    rows = [[3, 1, 1], [0], [2, 0]]
    canon = [[1, 3], [0], [0, 2]]
    arrow = pa.array(rows, pa.list_(pa.int64()))
    inputs = {
        "lists": lambda: LabelMatrix.from_lists(rows),
        "arrow": lambda: LabelMatrix.from_arrow(arrow),
        "chunked": lambda: LabelMatrix.from_any(pa.chunked_array([arrow[:1], arrow[1:]])),
        "csr": lambda: LabelMatrix(np.array([0, 3, 4, 6]), np.array([3, 1, 1, 0, 2, 0]),
                                   canonicalize=None),
        "series": lambda: LabelMatrix.from_any(pd.Series(rows)),
        "object array": lambda: LabelMatrix.from_any(np.array([np.array(r) for r in rows],
                                                              dtype=object)),
    }
    for name, make in inputs.items():
        with pytest.warns(UnsortedLabelsWarning, match=r"sorted 2 of 3 rows.*duplicates "
                          r"removed: 1 \(in 1 row\)"):
            assert rows_of(make()) == canon, name


def test_read_parquet_sorts_and_names_the_file(tmp_path):
    import pyarrow.parquet as pq

    path = tmp_path / "u.parquet"
    pq.write_table(pa.table({"labels": pa.array([[2, 0], [1]])}), path)
    with pytest.warns(UnsortedLabelsWarning, match=r"u\.parquet.*sorted 1 of 2 rows"):
        assert LabelMatrix.read_parquet(path)[0].tolist() == [0, 2]


def test_canonical_input_is_neither_copied_nor_reported():
    arr = pa.array([[0, 2], [1]], pa.large_list(pa.int32()))
    with warnings.catch_warnings():
        warnings.simplefilter("error", UnsortedLabelsWarning)
        y = LabelMatrix.from_any(arr)
    assert np.shares_memory(y.indices, np.asarray(arr.values))


def test_entry_points_accept_unsorted_lists():
    rng = np.random.default_rng(0)
    rows = [sorted(rng.choice(9, size=int(rng.integers(1, 4)), replace=False).tolist())
            for _ in range(120)]
    shuffled = [r[::-1] + r[:1] for r in rows]   # reversed, with a repeated id
    with pytest.warns(UnsortedLabelsWarning) as w:
        weights = sample_weights(shuffled, "inverse_frequency")
    assert len([x for x in w if x.category is UnsortedLabelsWarning]) == 1
    assert w[0].filename == __file__
    np.testing.assert_allclose(weights, sample_weights(rows, "inverse_frequency"))
    with pytest.warns(UnsortedLabelsWarning, match="sorted"):
        parts = stratified_split(shuffled, [0.8, 0.2], seed=1)
    expected = stratified_split(rows, [0.8, 0.2], seed=1)
    assert all(np.array_equal(a, b) for a, b in zip(parts.values(), expected.values()))


def test_memory_mapped_file_stays_strict_and_says_how_to_fix(tmp_path):
    path = tmp_path / "u.arrow"
    table = pa.table({"labels": pa.array([[0, 1], [2, 1]], pa.large_list(pa.int32()))})
    with pa.OSFile(str(path), "wb") as sink, pa.ipc.new_file(sink, table.schema) as writer:
        writer.write_table(table)
    with pytest.raises(ValueError, match=r"row 1 .*not sorted.*longtail convert "
                       r"--canonicalize.*canonicalize=True") as err:
        LabelMatrix.open(path)
    assert "u.arrow" in str(err.value)
    y = LabelMatrix.open(path, canonicalize=True)     # sorted into memory, silently
    assert rows_of(y) == [[0, 1], [1, 2]] and y.path == str(path)
    assert rows_of(pickle.loads(pickle.dumps(y))) == [[0, 1], [1, 2]]  # re-opens sorted


def test_strict_in_memory_error_names_an_option_that_exists():
    with pytest.raises(ValueError, match=r"duplicate label id 1 in row 0; "
                       r"canonicalize=True \(CLI: longtail convert --canonicalize\)"):
        LabelMatrix.from_any([[1, 1]], canonicalize=False)


def test_raw_csr_constructor_stays_strict():
    # CSR arrays are canonical by definition; its hint names its own option
    with pytest.raises(ValueError, match=r"row 0 are not sorted \(id 1 after 3\); pass "
                       r"canonicalize=True to sort and deduplicate$"):
        LabelMatrix(np.array([0, 2]), np.array([3, 1]))
    assert LabelMatrix(np.array([0, 2]), np.array([3, 1]), canonicalize=True)[0].tolist() == [1, 3]


def test_canonicalize_must_be_bool_or_none():
    with pytest.raises(TypeError, match="canonicalize must be True, False or None"):
        LabelMatrix.from_any([[1]], canonicalize="yes")
    with pytest.raises(TypeError, match="canonicalize must be True, False or None"):
        LabelMatrix.from_lists([[1]], canonicalize=1)


def test_out_of_range_ids_are_errors_whatever_the_order():
    with pytest.raises(ValueError, match="label id 9 >= n_labels=5 in row 1"):
        LabelMatrix.from_any([[1, 0], [9, 2]], n_labels=5)


def test_pandas_series_paths():
    s = pd.Series([[2, 0], [1]])
    with pytest.warns(UnsortedLabelsWarning):
        assert rows_of(LabelMatrix.from_any(s)) == [[0, 2], [1]]
    arrow_backed = pd.Series([[0, 2], [1]], dtype=pd.ArrowDtype(pa.list_(pa.int32())))
    y = LabelMatrix.from_any(arrow_backed)
    assert rows_of(y) == [[0, 2], [1]]
    with pytest.raises(TypeError, match="row 1 has a non-integer label id 1.5"):
        LabelMatrix.from_any(pd.Series([[0], [1.5]]))
    with pytest.raises(ValueError, match="row 1 is null"):
        LabelMatrix.from_any(pd.Series([[0], None]))
    assert rows_of(LabelMatrix.from_any(pd.Series([[], []]), n_labels=3)) == [[], []]
