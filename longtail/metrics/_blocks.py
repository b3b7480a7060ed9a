"""Per-label machinery of :mod:`longtail.metrics`: column blocks of score keys.

The score matrix is cut into column blocks that a Numba kernel transposes into
order-preserving uint32 keys (:func:`for_each_block`). Threshold tuning then sorts each
column (numpy's SIMD sort for uint32) and takes its positives' scores from one CSR pass
and one sort of ``(label << 32) | key`` (:func:`positives`). Average precision leaves
the columns unsorted: it takes each block's positives through the CSC of the targets
(:func:`block_positives`), sorts only those, and counts (see
:func:`longtail.metrics._kernels.block_ap_counts`).

Example
-------
>>> import numpy as np
>>> decode_keys(np.array([0x80000000 + 0x3F800000, -1])).tolist()   # key of 1.0, none
[1.0, inf]
"""
from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from typing import Callable

import numpy as np

from longtail._core.checks import freeze
from longtail.datasets import LabelMatrix
from longtail.metrics import _kernels as _k
from longtail.metrics._inputs import raise_nan

#: bytes of transposed keys per column block (per thread) in the per-label kernels
BLOCK_BYTES = 64 << 20
#: at most this many columns per block (the transpose is fastest around 128-512)
BLOCK_COLS = 512
#: at most this many columns per average-precision block: the block's keys stay in the
#: last-level cache while its positives are gathered from them
AP_BLOCK_COLS = 128


def for_each_block(bits: np.ndarray, fn: Callable[[int, int, np.ndarray], None],
                   n_jobs: int = 1, *, sort: bool = True, max_cols: int | None = None
                   ) -> None:
    """Call ``fn(c0, c1, keys)`` for column blocks of the score matrix.

    ``keys[j]`` is column ``c0 + j``'s keys (transposed by a Numba kernel, which also
    rejects NaN scores), ascending when ``sort`` (numpy's sort). Blocks have at most
    ``max_cols`` (and :data:`BLOCK_COLS`) columns. ``n_jobs`` threads take every
    ``n_jobs``-th block (the kernels and numpy's sort release the GIL).
    """
    n, n_labels = bits.shape
    cols = BLOCK_COLS if max_cols is None else min(max_cols, BLOCK_COLS)
    nb = int(max(1, min(n_labels, cols, BLOCK_BYTES // (4 * n))))
    blocks = [(c0, min(n_labels, c0 + nb)) for c0 in range(0, n_labels, nb)]

    def work(block_list: list[tuple[int, int]]) -> None:
        buf = np.empty((nb, n), dtype=np.uint32)
        for c0, c1 in block_list:
            keys = buf[: c1 - c0]
            if _k.block_keys(bits, c0, c1, keys):
                raise_nan(bits)
            if sort:
                keys.sort(axis=1)
            fn(c0, c1, keys)

    jobs = min(n_jobs, len(blocks))
    if jobs <= 1:
        work(blocks)
    else:
        with ThreadPoolExecutor(jobs) as ex:
            list(ex.map(work, [blocks[i::jobs] for i in range(jobs)]))


def positives(bits: np.ndarray, labels: LabelMatrix) -> tuple[np.ndarray, np.ndarray]:
    """Positives grouped by label, score keys ascending, and the label offsets.

    Returns ``(pos64, col_off)``: ``pos64[col_off[c]:col_off[c + 1]]`` are label
    ``c``'s positives as ``(c << 32) | key``, sorted.
    """
    pos64 = np.empty(labels.nnz, dtype=np.uint64)
    _k.positive_keys64(bits, labels.offsets, labels.indices, pos64)
    pos64.sort()
    col_off = np.zeros(bits.shape[1] + 1, dtype=np.int64)
    np.cumsum(labels.label_counts(), out=col_off[1:])
    return freeze(pos64), freeze(col_off)


def block_positives(keys: np.ndarray, c0: int, csc: LabelMatrix) -> np.ndarray:
    """The positives of the columns ``c0 ..`` of a key block, sorted (uint64).

    ``csc`` is the transposed targets (``labels.transpose()``: label -> rows). Entry
    ``(j << 32) | key`` per positive of column ``c0 + j``; after the sort, column
    ``c``'s positive keys ascend in ``csc.offsets[c]:csc.offsets[c + 1]`` minus
    ``csc.offsets[c0]``.
    """
    c1 = c0 + keys.shape[0]
    out = np.empty(int(csc.offsets[c1] - csc.offsets[c0]), dtype=np.uint64)
    _k.block_positives(keys, c0, csc.offsets, csc.indices, out)
    out.sort()
    return out


def decode_keys(keys: np.ndarray) -> np.ndarray:
    """Float64 thresholds from kernel keys (-1 means +inf: predict nothing)."""
    keys = np.asarray(keys, dtype=np.int64)
    out = np.full(keys.shape, np.inf, dtype=np.float64)
    ok = keys >= 0
    k = keys[ok].astype(np.uint32)
    bits = np.where(k >= np.uint32(0x80000000), k - np.uint32(0x80000000), ~k)
    out[ok] = bits.astype(np.uint32).view(np.float32)
    return out
