"""Numba kernels behind :mod:`longtail.datasets.label_matrix`.

Every kernel takes the canonical arrays: ``offsets`` int64 and ``indices`` int32, both
read-only (see CONTRIBUTING.md), so each compiles once.
"""
from __future__ import annotations

import numpy as np
from numba import njit

@njit(cache=True)
def row_order_stats(offsets, indices):
    """How far rows are from canonical: ``(unsorted rows, rows with duplicates,
    duplicate ids)``, all 0 when every row is strictly increasing (one pass, no copy;
    only rows that are not get sorted, to count their duplicates)."""
    n = offsets.shape[0] - 1
    unsorted = 0
    dup_rows = 0
    dups = 0
    for r in range(n):
        start, stop = offsets[r], offsets[r + 1]
        ordered = True
        descending = False
        for p in range(start + 1, stop):
            if indices[p] <= indices[p - 1]:
                ordered = False
                if indices[p] < indices[p - 1]:
                    descending = True
                    break
        if ordered:
            continue
        if descending:
            unsorted += 1
        row = np.sort(indices[start:stop])
        d = 0
        for p in range(1, row.shape[0]):
            if row[p] == row[p - 1]:
                d += 1
        if d:
            dup_rows += 1
            dups += d
    return unsorted, dup_rows, dups


@njit(cache=True)
def canonicalize_rows(offsets, indices):
    """Sort every row and drop duplicate ids; returns new ``(offsets, indices)``.

    Rows already strictly increasing are copied without sorting.
    """
    n = offsets.shape[0] - 1
    out_offsets = np.empty(n + 1, dtype=np.int64)
    out_indices = np.empty(indices.shape[0], dtype=np.int32)
    out_offsets[0] = 0
    k = 0
    for r in range(n):
        start, stop = offsets[r], offsets[r + 1]
        ordered = True
        for p in range(start + 1, stop):
            if indices[p] <= indices[p - 1]:
                ordered = False
                break
        if ordered:
            for p in range(start, stop):
                out_indices[k] = indices[p]
                k += 1
        else:
            row = np.sort(indices[start:stop])
            for p in range(row.shape[0]):
                if p == 0 or row[p] != row[p - 1]:
                    out_indices[k] = row[p]
                    k += 1
        out_offsets[r + 1] = k
    return out_offsets, out_indices[:k].copy()


@njit(cache=True)
def count_labels(indices, n_labels):
    """Number of examples per label (int64[n_labels])."""
    counts = np.zeros(n_labels, dtype=np.int64)
    for p in range(indices.shape[0]):
        counts[indices[p]] += 1
    return counts


@njit(cache=True)
def transpose(offsets, indices, n_labels):
    """CSC of the matrix: label -> sorted example ids, as ``(offsets int64, indices int32)``."""
    n = offsets.shape[0] - 1
    t_offsets = np.zeros(n_labels + 1, dtype=np.int64)
    for p in range(indices.shape[0]):
        t_offsets[indices[p] + 1] += 1
    for c in range(n_labels):
        t_offsets[c + 1] += t_offsets[c]
    fill = t_offsets[:-1].copy()
    t_indices = np.empty(indices.shape[0], dtype=np.int32)
    for r in range(n):
        for p in range(offsets[r], offsets[r + 1]):
            c = indices[p]
            t_indices[fill[c]] = r
            fill[c] += 1
    return t_offsets, t_indices


@njit(cache=True)
def take_rows(offsets, indices, rows):
    """Rows ``rows`` (int64, already bounds-checked) as a new ``(offsets, indices)``."""
    m = rows.shape[0]
    out_offsets = np.empty(m + 1, dtype=np.int64)
    out_offsets[0] = 0
    for i in range(m):
        r = rows[i]
        out_offsets[i + 1] = out_offsets[i] + offsets[r + 1] - offsets[r]
    out_indices = np.empty(out_offsets[m], dtype=np.int32)
    for i in range(m):
        # a slice copy (a vectorised memcpy) is twice as fast as an element loop here:
        # 54 vs 107 us per 256 random rows of ~130 labels (benchmarks/README.md)
        r = rows[i]
        out_indices[out_offsets[i]:out_offsets[i + 1]] = indices[offsets[r]:offsets[r + 1]]
    return out_offsets, out_indices


@njit(cache=True)
def fill_multi_hot(offsets, indices, rows, out):
    """Set ``out[i, c] = 1`` for every label c of row ``rows[i]`` (``out`` zeroed)."""
    for i in range(rows.shape[0]):
        r = rows[i]
        for p in range(offsets[r], offsets[r + 1]):
            out[i, indices[p]] = 1


@njit(cache=True)
def row_imbalance(offsets, indices, ir_label):
    """Per-row SCUMBLE (Charte et al. 2019) from the per-label imbalance ratio IRLbl.

    SCUMBLE_i = 1 - (prod_l IRLbl_l)^(1/|Y_i|) / mean_l IRLbl_l over the row's labels;
    0 for rows with no labels.
    """
    n = offsets.shape[0] - 1
    out = np.zeros(n, dtype=np.float64)
    log_ir = np.log(ir_label)
    for r in range(n):
        start = offsets[r]
        k = offsets[r + 1] - start
        if k == 0:
            continue
        s = 0.0
        s_log = 0.0
        for p in range(start, start + k):
            c = indices[p]
            s += ir_label[c]
            s_log += log_ir[c]
        out[r] = 1.0 - np.exp(s_log / k) / (s / k)
    return out


@njit(cache=True)
def row_lengths(offsets):
    """Labels per row (int64[n])."""
    n = offsets.shape[0] - 1
    out = np.empty(n, dtype=np.int64)
    for r in range(n):
        out[r] = offsets[r + 1] - offsets[r]
    return out


# ---------------------------------------------------------------------------------
# dense 0/1 rows -> CSR (behind LabelMatrix.from_dense)
# ---------------------------------------------------------------------------------
@njit(cache=True, inline="always")
def _dense_bytes(flat, p, stop, rs, cur, end, indices, fill):
    """Bytes ``p .. stop`` of a row one at a time (see :func:`dense_nonzero`); the new
    cursor, or -1 when a fill would pass the row's end."""
    while p < stop:
        if fill:
            if cur > end:
                return -1
            indices[cur] = p - rs
        cur += flat[p]
        p += 1
    return cur


@njit(cache=True, nogil=True)
def dense_nonzero(flat, words, head, n_cols, row0, counts, indices, ends):
    """Non-zeros of a row-major ``[r, n_cols]`` chunk of 0/1 bytes, 8 bytes at a time.

    ``flat`` is the chunk's bytes (each 0 or 1: the caller checked); ``words`` a uint64
    view of ``flat[head:head + 8 * len(words)]`` (``head`` makes it aligned). With
    ``indices`` empty, adds the number of ones of each row ``r`` to
    ``counts[row0 + r]`` (a branch-free byte sum per word); otherwise writes their
    column ids into ``indices`` at the cursors ``counts[row0 + r]``, advancing them
    (``indices`` needs 8 slots of slack at its end: writes are branch-free too), and
    never past ``ends[row0 + r + 1]`` (the row's end from the counting pass; +7 slack).

    Returns -1, or in fill mode the first row whose ones differ from the count (the
    bytes changed between the passes); nothing is written past the row's end then.
    """
    fill = indices.size > 0
    r = flat.size // n_cols
    ones = np.uint64(0x0101010101010101)
    w_end = head + 8 * words.size  # words cover flat[head:w_end]
    for i in range(r):
        rs = i * n_cols
        re = rs + n_cols
        cur = counts[row0 + i]
        end = ends[row0 + i + 1] if fill else 0
        # whole words in [a, b): a the first aligned byte >= rs, b the last aligned <= re
        a = head + ((max(rs, head) - head + 7) // 8) * 8
        b = head + ((min(re, w_end) - head) // 8) * 8 if re > head else head
        if a >= b:
            a = b = re
        cur = _dense_bytes(flat, rs, a, rs, cur, end, indices, fill)
        if cur < 0:
            return row0 + i
        for p in range(a, b, 8):
            w = words[(p - head) >> 3]
            if fill:
                if w != 0:
                    if cur > end:
                        return row0 + i
                    for q in range(8):
                        indices[cur] = p - rs + q
                        cur += np.int64((w >> np.uint64(8 * q)) & np.uint64(1))
            else:
                cur += np.int64((w * ones) >> np.uint64(56))
        cur = _dense_bytes(flat, b, re, rs, cur, end, indices, fill)
        if cur < 0:
            return row0 + i
        counts[row0 + i] = cur
        if fill and cur != end:
            return row0 + i
    return -1
