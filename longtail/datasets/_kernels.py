"""Numba kernels behind :mod:`longtail.datasets.label_matrix`.

Every kernel takes the canonical arrays: ``offsets`` int64 and ``indices`` int32, both
read-only (see CONTRIBUTING.md), so each compiles once.
"""
from __future__ import annotations

import numpy as np
from numba import njit

@njit(cache=True)
def canonicalize_rows(offsets, indices):
    """Sort every row and drop duplicate ids; returns new ``(offsets, indices)``."""
    n = offsets.shape[0] - 1
    out_offsets = np.empty(n + 1, dtype=np.int64)
    out_indices = np.empty(indices.shape[0], dtype=np.int32)
    out_offsets[0] = 0
    k = 0
    for r in range(n):
        row = np.sort(indices[offsets[r]:offsets[r + 1]])
        prev = -1
        first = True
        for v in row:
            if first or v != prev:
                out_indices[k] = v
                k += 1
                prev = v
                first = False
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
        r = rows[i]
        start = offsets[r]
        k = out_offsets[i]
        for p in range(offsets[r + 1] - start):
            out_indices[k + p] = indices[start + p]
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
