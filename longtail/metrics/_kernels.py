"""Numba kernels behind :mod:`longtail.metrics`.

Scores reach these kernels only as the raw bit patterns of float32 values
(``uint32`` arrays, C-contiguous, read-only), and targets only as the CSR arrays of a
:class:`~longtail.datasets.LabelMatrix` (``int64`` offsets, ``int32`` indices,
read-only), so each kernel compiles once.

A float32 bit pattern ``b`` is mapped to an order-preserving unsigned key (``_key``):
``x < y`` as floats iff ``key(x) < key(y)`` as integers, ``-0.0`` and ``+0.0`` get the
same key, and NaN never reaches a kernel (the API rejects it, see :func:`first_nan`).
Sorting keys is therefore sorting scores, and equal keys are exactly the ties that
scikit-learn sees.

Average precision only needs, for every distinct score ``u`` held by a positive, the
number ``tp(u)`` of positives scoring ``>= u`` and the number ``ps(u)`` of all entries
scoring ``>= u``:  ``AP = (1/P) * sum_u m(u) * tp(u) / ps(u)`` where ``m(u)`` is the
number of positives scoring exactly ``u``. This is scikit-learn's step integral
``sum_n (R_n - R_{n-1}) P_n`` with precision taken at distinct thresholds, so ties are
handled exactly as it does.

Per label, ``ps(u)`` comes from one pass over the label's (unsorted) keys
(:func:`block_ap_counts`): each key is ranked among the label's sorted distinct
positive keys ``u_0 < ... < u_{m-1}`` (``r = #{u_j <= key}``) and ``hist[r]`` counted,
so that ``ps(u_j) = sum_{r > j} hist[r]``. The rank comes from a lookup table of
about ``8 m`` equal-width buckets of the key range of the positives: a bucket holding
at most one ``u_j`` gives the rank with one comparison, one holding more is searched
(rare: thresholds closer than a bucket width). Only the positives are sorted, never the
scores.
"""
from __future__ import annotations

import numpy as np
from numba import njit

_SIGN = 0x80000000
_ALL = 0xFFFFFFFF
_NAN_MIN = 0x7F800001  # (bits & 0x7FFFFFFF) >= this is a NaN


@njit(cache=True, inline="always")
def _key(b):
    """Order-preserving uint32 key of float32 bits ``b``; -0.0 maps like +0.0.

    Non-negative floats get the sign bit set, negative ones are bit-inverted; branch
    free so that loops over it vectorise.
    """
    m = ((b >> np.uint32(31)) * np.uint32(0x7FFFFFFF)) | np.uint32(_SIGN)
    return np.uint32((b ^ m) + (b == np.uint32(_SIGN)))


@njit(cache=True, inline="always")
def _is_nan(b):
    return (b & np.uint32(0x7FFFFFFF)) > np.uint32(0x7F800000)


@njit(cache=True, nogil=True)
def first_nan(bits):
    """Flat index of the first NaN in a 2-D uint32 view of float32 scores, or -1.

    Counts NaNs block by block (a branch-free, vectorisable loop) and only looks for
    the position inside a block that has one.
    """
    flat = bits.reshape(-1)
    n = flat.size
    step = 4096
    for s in range(0, n, step):
        e = min(n, s + step)
        cnt = 0
        for t in range(s, e):
            cnt += _is_nan(flat[t])
        if cnt:
            for t in range(s, e):
                if _is_nan(flat[t]):
                    return t
    return -1


# ---------------------------------------------------------------------------------
# per-label (macro) kernels over a block of columns
# ---------------------------------------------------------------------------------
@njit(cache=True, nogil=True)
def block_keys(bits, c0, c1, out):
    """``out[j, i] = key(bits[i, c0 + j])`` for the columns ``c0 <= c < c1``.

    Transposes a column block of the C-ordered score matrix into contiguous rows, 16
    rows at a time so that each output cache line is written whole. Returns the number
    of NaN scores seen (the caller raises).
    """
    n = bits.shape[0]
    nb = c1 - c0
    t = 16
    nfull = (n // t) * t
    nan = 0
    for i0 in range(0, nfull, t):
        for j in range(nb):
            c = c0 + j
            for a in range(t):
                v = bits[i0 + a, c]
                nan += _is_nan(v)
                out[j, i0 + a] = _key(v)
    for i in range(nfull, n):
        for j in range(nb):
            v = bits[i, c0 + j]
            nan += _is_nan(v)
            out[j, i] = _key(v)
    return nan


@njit(cache=True, nogil=True)
def positive_keys64(bits, offsets, indices, out):
    """``out[t] = (label << 32) | key(score)`` for every positive ``t`` (CSR order).

    Sorting ``out`` (numpy) groups the positives by label with their score keys
    ascending: the per-label segments are then ``col_off[c]:col_off[c + 1]``.
    """
    n = offsets.size - 1
    for i in range(n):
        for t in range(offsets[i], offsets[i + 1]):
            c = indices[t]
            out[t] = (np.uint64(c) << np.uint64(32)) | np.uint64(_key(bits[i, c]))


@njit(cache=True, inline="always")
def _lower_bound(row, u, lo, hi):
    """First index ``i`` in ``[lo, hi)`` with ``row[i] >= u`` (``hi`` if none); ``row``
    ascending."""
    while lo < hi:
        mid = (lo + hi) >> 1
        if np.int64(row[mid]) < u:
            lo = mid + 1
        else:
            hi = mid
    return lo


@njit(cache=True, inline="always")
def _low32(x):
    return np.int64(x & np.uint64(0xFFFFFFFF))


@njit(cache=True, inline="always")
def _count_below(row, u, p):
    """First index ``i <= p`` with ``row[i:p]`` all ``>= u`` and ``row[i - 1] < u``.

    ``row`` ascending and ``row[p:] >= u`` known: gallops down from ``p`` (cheap when
    consecutive thresholds are close) then bisects the bracket.
    """
    step = 1
    hi = p
    lo = p - step
    while lo > 0 and np.int64(row[lo]) >= u:
        hi = lo
        step *= 2
        lo = p - step
    if lo < 0:
        lo = 0
    # row[hi:] >= u; answer in [lo, hi]
    return _lower_bound(row, u, lo, hi)


@njit(cache=True, nogil=True)
def block_ap(sorted_keys, c0, pos64, col_off, out):
    """Average precision of each column of a block.

    ``sorted_keys[j]`` holds the ascending keys of all scores of column ``c0 + j``;
    ``pos64[col_off[c]:col_off[c + 1]]`` the (label, key) of its positives, keys
    ascending. A column without positives gets 0 (scikit-learn's value).
    """
    nb, n = sorted_keys.shape
    for j in range(nb):
        a = col_off[c0 + j]
        b = col_off[c0 + j + 1]
        npos = b - a
        if npos == 0:
            out[j] = 0.0
            continue
        row = sorted_keys[j]
        acc = 0.0
        tp = 0
        p = n
        t = b - 1
        while t >= a:
            u = _low32(pos64[t])
            m = 0
            while t >= a and _low32(pos64[t]) == u:
                m += 1
                t -= 1
            tp += m
            p = _count_below(row, u, p)
            acc += m * (tp / (n - p))
        out[j] = acc / npos


@njit(cache=True, nogil=True)
def block_f1_thresholds(sorted_keys, c0, pos64, col_off, out_key, out_f1):
    """Per column, the key ``u`` of a positive's score maximising F1 of ``score >= u``.

    F1 at threshold ``u`` is ``2 tp(u) / (ps(u) + P)``; its maximum over all
    thresholds is reached at the score of a positive (lowering the threshold past
    negatives alone only adds false positives). Ties between thresholds keep the
    highest one. Columns without positives get key -1 ("predict nothing") and F1 0.
    """
    nb, n = sorted_keys.shape
    for j in range(nb):
        a = col_off[c0 + j]
        b = col_off[c0 + j + 1]
        npos = b - a
        out_key[j] = -1
        out_f1[j] = 0.0
        if npos == 0:
            continue
        row = sorted_keys[j]
        best = -1.0
        tp = 0
        p = n
        t = b - 1
        while t >= a:
            u = _low32(pos64[t])
            while t >= a and _low32(pos64[t]) == u:
                tp += 1
                t -= 1
            p = _count_below(row, u, p)
            f1 = 2.0 * tp / ((n - p) + npos)
            if f1 > best:
                best = f1
                out_key[j] = u
        out_f1[j] = best


@njit(cache=True, nogil=True)
def block_count_thresholds(sorted_keys, c0, col_off, out_key, out_count):
    """Per column, the threshold key whose ``score >= key`` count is closest to ``P``.

    Candidates are the distinct score at rank ``P`` (predicting ``>= P`` entries, more
    under ties) and the next higher distinct score (fewer than ``P``; key -1, meaning
    "predict nothing", when there is none). The nearer count wins; a draw goes to the
    one predicting at least ``P``. Columns with ``P == 0`` get key -1 and count 0.
    """
    nb, n = sorted_keys.shape
    for j in range(nb):
        npos = col_off[c0 + j + 1] - col_off[c0 + j]
        out_key[j] = -1
        out_count[j] = 0
        if npos == 0:
            continue
        row = sorted_keys[j]
        v = np.int64(row[n - npos])
        count_lo = n - _lower_bound(row, v, 0, n)  # >= npos
        hi_idx = n - npos
        while hi_idx < n and np.int64(row[hi_idx]) == v:
            hi_idx += 1
        count_hi = n - hi_idx  # < npos
        if npos - count_hi < count_lo - npos:
            out_key[j] = np.int64(row[hi_idx]) if hi_idx < n else -1
            out_count[j] = count_hi
        else:
            out_key[j] = v
            out_count[j] = count_lo


# ---------------------------------------------------------------------------------
# per-label (macro) average precision by counting (no sort of the scores)
# ---------------------------------------------------------------------------------
_AP_BUCKETS = 8  # lookup-table buckets per distinct positive score
_AP_COPIES = 4  # histogram copies (consecutive equal ranks do not wait on each other)
_MIXED = 0x80000000  # flag on a bucket holding two or more thresholds
_NO_KEY = 0xFFFFFFFF  # above every key of a non-NaN score


@njit(cache=True, nogil=True)
def block_positives(keys, c0, t_offsets, t_indices, out):
    """``(j << 32) | keys[j, row]`` for the positives of the columns ``c0 + j`` of a block.

    ``t_offsets`` / ``t_indices`` are the CSC of the targets (label -> rows); ``out``
    (uint64, one slot per positive of the block) is filled label by label. Sorting it
    (numpy) sorts each label's positive keys.
    """
    nb = keys.shape[0]
    start = t_offsets[c0]
    for j in range(nb):
        hi = np.uint64(j) << np.uint64(32)
        row = keys[j]
        for t in range(t_offsets[c0 + j], t_offsets[c0 + j + 1]):
            out[t - start] = hi | np.uint64(row[t_indices[t]])


@njit(cache=True, nogil=True)
def _ap_table(pos, a, b, u, table):
    """Distinct keys ``u`` of the sorted ``pos[a:b]`` and the bucket table; returns
    ``(m, base, shift, last_bucket)``.

    Bucket ``d`` holds the keys ``base + [d << shift, (d + 1) << shift)``; keys below
    ``base`` (all below ``u_0``) count in bucket 0, keys past the last bucket (which is
    above every ``u``) in the last. ``table[2 d]`` is the number of ``u`` in earlier
    buckets (``| _MIXED`` when bucket ``d`` holds two or more), ``table[2 d + 1]`` the
    first ``u`` not in an earlier bucket (``_NO_KEY`` if none). At most
    ``2 * (_AP_BUCKETS * m + 2)`` entries.
    """
    m = 0
    prev = np.int64(-1)
    for t in range(a, b):
        k = _low32(pos[t])
        if k != prev:
            u[m] = k
            m += 1
            prev = k
    lo_k = np.int64(u[0])
    hi_k = np.int64(u[m - 1])
    width = hi_k - lo_k
    shift = 0
    while (width >> shift) + 1 > _AP_BUCKETS * m:
        shift += 1
    base = max(lo_k - (np.int64(1) << shift), 0)
    n_buckets = ((hi_k - base) >> shift) + 2
    d = 0
    i = 0
    while i < m:
        bucket = (np.int64(u[i]) - base) >> shift
        e = i + 1
        while e < m and (np.int64(u[e]) - base) >> shift == bucket:
            e += 1
        while d < bucket:  # buckets without a threshold
            table[2 * d] = i
            table[2 * d + 1] = u[i]
            d += 1
        table[2 * d] = np.uint32(i) | (np.uint32(_MIXED) if e - i > 1 else np.uint32(0))
        table[2 * d + 1] = u[i]
        d += 1
        i = e
    while d < n_buckets:
        table[2 * d] = m
        table[2 * d + 1] = _NO_KEY
        d += 1
    return m, base, shift, n_buckets - 1


@njit(cache=True, inline="always")
def _rank(k, base, shift, last, table, u):
    """``#{u_j <= k}`` by the bucket table of :func:`_ap_table` (all uint32)."""
    e = np.uint32(2) * min((max(k, base) - base) >> shift, last)
    lo = table[e]
    if lo & np.uint32(_MIXED):  # two or more thresholds here: bisect between buckets
        lo = lo & np.uint32(~np.uint32(_MIXED))
        hi = table[e + np.uint32(2)] & np.uint32(~np.uint32(_MIXED))
        while lo < hi:
            mid = (lo + hi) >> np.uint32(1)
            if u[mid] <= k:
                lo = mid + np.uint32(1)
            else:
                hi = mid
        return lo
    return lo + np.uint32(table[e + np.uint32(1)] <= k)


@njit(cache=True, nogil=True)
def _count_ranks(row, base, shift, last, table, u, hist, stride):
    """``hist[q * stride + rank(row[i])] += 1`` with ``q = i % 4`` (and ``q = 0`` for
    the tail): four copies, so runs of equal ranks do not serialise on one counter."""
    n = row.size
    n4 = n // 4 * 4
    h1 = stride
    h2 = stride + stride
    h3 = h2 + stride
    one = np.uint32(1)
    for i in range(0, n4, 4):
        hist[_rank(row[i], base, shift, last, table, u)] += one
        hist[h1 + _rank(row[i + 1], base, shift, last, table, u)] += one
        hist[h2 + _rank(row[i + 2], base, shift, last, table, u)] += one
        hist[h3 + _rank(row[i + 3], base, shift, last, table, u)] += one
    for i in range(n4, n):
        hist[_rank(row[i], base, shift, last, table, u)] += one


@njit(cache=True, nogil=True)
def block_ap_counts(keys, c0, pos, t_offsets, out):
    """Average precision of each column of a block, without sorting its scores.

    ``keys[j]`` holds the keys of column ``c0 + j`` in any order (fewer than ``2**31``
    rows); ``pos`` the block's positives from :func:`block_positives`, sorted, so that
    ``pos[t_offsets[c] - t_offsets[c0]:t_offsets[c + 1] - t_offsets[c0]]`` are column
    ``c``'s positive keys ascending. Per column: the distinct positive keys and their
    bucket table (:func:`_ap_table`), one counting pass over the column
    (:func:`_count_ranks`), then the AP sum over the distinct positive scores from the
    highest down, with the same operations as :func:`block_ap`, so the values are the
    same to the bit. A column without positives gets 0 (scikit-learn's value).
    """
    nb = keys.shape[0]
    start = t_offsets[c0]
    p_max = 0
    for j in range(nb):
        p_max = max(p_max, t_offsets[c0 + j + 1] - t_offsets[c0 + j])
    u = np.empty(p_max, dtype=np.uint32)
    table = np.empty(2 * (_AP_BUCKETS * p_max + 2), dtype=np.uint32)
    hist = np.empty(_AP_COPIES * (p_max + 1), dtype=np.uint32)
    for j in range(nb):
        a = t_offsets[c0 + j] - start
        b = t_offsets[c0 + j + 1] - start
        if a == b:
            out[j] = 0.0
            continue
        m, base, shift, last = _ap_table(pos, a, b, u, table)
        stride = m + 1  # ranks 0..m
        hist[:_AP_COPIES * stride] = 0
        _count_ranks(keys[j], np.uint32(base), np.uint32(shift), np.uint32(last), table, u,
                     hist, np.uint32(stride))
        acc = 0.0
        tp = 0
        ps = 0  # scores >= the current positive score: those ranked above it
        r = m
        t = b - 1
        while t >= a:
            v = _low32(pos[t])
            mult = 0
            while t >= a and _low32(pos[t]) == v:
                mult += 1
                t -= 1
            tp += mult
            for q in range(_AP_COPIES):
                ps += hist[q * stride + r]
            r -= 1
            acc += mult * (tp / ps)
        out[j] = acc / (b - a)


# ---------------------------------------------------------------------------------
# micro average precision
# ---------------------------------------------------------------------------------
@njit(cache=True, nogil=True)
def csr_pos_keys(bits, offsets, indices, row0, out, out0):
    """Keys of the positive entries of rows ``row0 ..`` of a score chunk, in CSR order."""
    r = bits.shape[0]
    p = out0
    for i in range(r):
        for t in range(offsets[row0 + i], offsets[row0 + i + 1]):
            out[p] = _key(bits[i, indices[t]])
            p += 1
    return p


@njit(cache=True, nogil=True)
def keys_1d(bits, out):
    """``out[t] = key(bits[t])`` for a 1-D uint32 view of float32 scores; NaN count."""
    nan = 0
    for t in range(bits.size):
        v = bits[t]
        nan += _is_nan(v)
        out[t] = _key(v)
    return nan


@njit(cache=True, nogil=True)
def run_lengths(sorted_keys):
    """Distinct values of an ascending key array and their multiplicities."""
    n = sorted_keys.size
    vals = np.empty(n, dtype=np.uint32)
    cnt = np.empty(n, dtype=np.int64)
    k = 0
    t = 0
    while t < n:
        v = sorted_keys[t]
        s = t
        while t < n and sorted_keys[t] == v:
            t += 1
        vals[k] = v
        cnt[k] = t - s
        k += 1
    return vals[:k].copy(), cnt[:k].copy()


@njit(cache=True, nogil=True)
def count_ge(sorted_chunk, u_asc, out):
    """``out[j] += #{sorted_chunk >= u_asc[j]}`` by one merge pass (both ascending)."""
    n = sorted_chunk.size
    p = 0
    for j in range(u_asc.size):
        u = np.int64(u_asc[j])
        while p < n and np.int64(sorted_chunk[p]) < u:
            p += 1
        out[j] += n - p


@njit(cache=True, nogil=True)
def ap_from_counts(mult, ge, n_pos):
    """AP from distinct positive values (ascending): multiplicities and ``>=`` counts."""
    acc = 0.0
    tp = 0
    for j in range(mult.size - 1, -1, -1):
        tp += mult[j]
        acc += mult[j] * (tp / ge[j])
    return acc / n_pos


# ---------------------------------------------------------------------------------
# precision at k
# ---------------------------------------------------------------------------------
@njit(cache=True, inline="always")
def _row_topk(bits, i, kmax, bk, bi):
    """The ``kmax`` highest scores of row ``i`` into ``bk`` (keys, descending) and ``bi``
    (their label ids); returns the number of NaN scores in the row.

    The selection of :func:`topk_hits` (kept inline there: calling this helper cost it a
    few per cent): ties go to the lower label id (a stable descending sort), a later
    label displaces only strictly lower keys. Needs ``kmax <= bits.shape[1]``.
    """
    c = bits.shape[1]
    cnt = 0
    nan = 0
    for j in range(c):
        v = bits[i, j]
        nan += _is_nan(v)
        k = _key(v)
        if cnt < kmax:
            pos = cnt
            cnt += 1
        elif k > bk[kmax - 1]:
            pos = kmax - 1
        else:
            continue
        while pos > 0 and bk[pos - 1] < k:
            bk[pos] = bk[pos - 1]
            bi[pos] = bi[pos - 1]
            pos -= 1
        bk[pos] = k
        bi[pos] = j
    return nan


@njit(cache=True, inline="always")
def _has_label(indices, a, b, lab):
    """Whether the sorted ``indices[a:b]`` hold ``lab`` (bisection)."""
    lo = a
    hi = b
    while lo < hi:
        mid = (lo + hi) >> 1
        if indices[mid] < lab:
            lo = mid + 1
        else:
            hi = mid
    return lo < b and indices[lo] == lab


@njit(cache=True, nogil=True)
def topk_hits(bits, offsets, indices, row0, ks, hits):
    """Add, for each ``k`` in ``ks``, the number of true labels among each row's top k.

    Top k by score, ties broken towards the lower label id (a stable descending sort).
    ``hits[q]`` accumulates over the rows of this chunk for ``k = ks[q]``. Returns the
    number of NaN scores seen.
    """
    r, c = bits.shape
    kmax = 0
    for q in range(ks.size):
        kmax = max(kmax, ks[q])
    bk = np.empty(kmax, dtype=np.int64)
    bi = np.empty(kmax, dtype=np.int64)
    prefix = np.empty(kmax, dtype=np.int64)
    nan = 0
    for i in range(r):
        cnt = 0
        for j in range(c):
            v = bits[i, j]
            nan += _is_nan(v)
            k = _key(v)
            if cnt < kmax:
                pos = cnt
                cnt += 1
            elif k > bk[kmax - 1]:
                pos = kmax - 1
            else:
                continue
            while pos > 0 and bk[pos - 1] < k:
                bk[pos] = bk[pos - 1]
                bi[pos] = bi[pos - 1]
                pos -= 1
            bk[pos] = k
            bi[pos] = j
        a = offsets[row0 + i]
        b = offsets[row0 + i + 1]
        h = 0
        for s in range(kmax):
            lab = bi[s]
            lo = a
            hi = b
            while lo < hi:
                mid = (lo + hi) >> 1
                if indices[mid] < lab:
                    lo = mid + 1
                else:
                    hi = mid
            if lo < b and indices[lo] == lab:
                h += 1
            prefix[s] = h
        for q in range(ks.size):
            hits[q] += prefix[ks[q] - 1]
    return nan


@njit(cache=True, nogil=True)
def topk_weighted_hits(bits, offsets, indices, row0, ks, inv, num, best):
    """Propensity-scored hits of each row's top k, and the best achievable sums.

    For each ``k = ks[q]`` and each row of this chunk, ``num[q]`` gets the sum of
    ``inv[l]`` (inverse propensities, float64) over the true labels ``l`` among the row's
    top k (chosen exactly as in :func:`topk_hits`), and ``best[q]`` the sum of the
    ``min(k, |y_i|)`` largest ``inv`` of the row's true labels (what a perfect ranking
    would get). Sums are float64, per row then over rows. Returns the number of NaN
    scores seen.
    """
    r = bits.shape[0]
    kmax = 0
    for q in range(ks.size):
        kmax = max(kmax, ks[q])
    bk = np.empty(kmax, dtype=np.int64)
    bi = np.empty(kmax, dtype=np.int64)
    top = np.empty(kmax, dtype=np.float64)  # largest true-label weights, descending
    prefix = np.empty(kmax, dtype=np.float64)
    nan = 0
    for i in range(r):
        nan += _row_topk(bits, i, kmax, bk, bi)
        a = offsets[row0 + i]
        b = offsets[row0 + i + 1]
        h = 0.0
        for s in range(kmax):
            lab = bi[s]
            if _has_label(indices, a, b, lab):
                h += inv[lab]
            prefix[s] = h
        for q in range(ks.size):
            num[q] += prefix[ks[q] - 1]
        cnt = 0
        for t in range(a, b):
            w = inv[indices[t]]
            if cnt < kmax:
                pos = cnt
                cnt += 1
            elif w > top[kmax - 1]:
                pos = kmax - 1
            else:
                continue
            while pos > 0 and top[pos - 1] < w:
                top[pos] = top[pos - 1]
                pos -= 1
            top[pos] = w
        h = 0.0
        for s in range(kmax):
            if s < cnt:
                h += top[s]
            prefix[s] = h
        for q in range(ks.size):
            best[q] += prefix[ks[q] - 1]
    return nan
