"""Numba kernels that replay iterative-stratification 0.1.9 part for part.

``compat="iterstrat"`` must give the package's parts for the same ``random_state``: its
label order (the rarest remaining label, ties to the k-th lowest label id for a
``RandomState.choice`` k, found in a segment tree of (min count, how many attain it)), its
part rule (Sechidis et al.) and its NumPy draws (MT19937 with ``RandomState``'s state
layout, advanced exactly where the package draws).
"""
from __future__ import annotations

import numpy as np
from numba import njit, uint32, uint64


@njit(cache=True)
def _mt_next(key, pos):
    """MT19937 32-bit output with NumPy's ``RandomState`` state layout (key, pos)."""
    if pos[0] >= 624:
        for i in range(624):
            y = (key[i] & uint32(0x80000000)) | (key[(i + 1) % 624] & uint32(0x7FFFFFFF))
            v = key[(i + 397) % 624] ^ (y >> uint32(1))
            if y & uint32(1):
                v ^= uint32(0x9908B0DF)
            key[i] = v
        pos[0] = 0
    y = key[pos[0]]
    pos[0] += 1
    y ^= y >> uint32(11)
    y ^= (y << uint32(7)) & uint32(0x9D2C5680)
    y ^= (y << uint32(15)) & uint32(0xEFC60000)
    y ^= y >> uint32(18)
    return y


@njit(cache=True)
def mt_choice(key, pos, n):
    """``RandomState.choice(n)`` for 1 < n < 2**32 (masked rejection on 32-bit draws)."""
    rng = uint64(n - 1)
    mask = rng
    mask |= mask >> uint64(1)
    mask |= mask >> uint64(2)
    mask |= mask >> uint64(4)
    mask |= mask >> uint64(8)
    mask |= mask >> uint64(16)
    while True:
        v = uint64(_mt_next(key, pos)) & mask
        if v <= rng:
            return np.int64(v)


@njit(cache=True)
def _tree_pull(tmin, tcnt, node):
    a = 2 * node
    b = a + 1
    if tmin[a] < tmin[b]:
        tmin[node] = tmin[a]
        tcnt[node] = tcnt[a]
    elif tmin[b] < tmin[a]:
        tmin[node] = tmin[b]
        tcnt[node] = tcnt[b]
    else:
        tmin[node] = tmin[a]
        tcnt[node] = tcnt[a] + tcnt[b]


@njit(cache=True)
def iterstrat_compat(offsets, indices, n_labels, order, r, key, pos):
    """iterative-stratification 0.1.9's ``IterativeStratification`` on ``y[order]``.

    Returns the fold of every example (int32, indexed by example id, not position). ``key`` and
    ``pos`` are the MT19937 state of the ``RandomState``, advanced in place exactly as the
    package advances it (``choice`` only where there is a tie).
    """
    n = offsets.shape[0] - 1
    k = r.shape[0]
    L = n_labels
    big = np.int64(1) << 62
    # positions (rank in processing order) of the examples of every label, ascending
    counts = np.zeros(L, dtype=np.int64)
    for p in range(indices.shape[0]):
        counts[indices[p]] += 1
    col_off = np.empty(L + 1, dtype=np.int64)
    col_off[0] = 0
    for m in range(L):
        col_off[m + 1] = col_off[m] + counts[m]
    fill = col_off[:L].copy()
    col = np.empty(indices.shape[0], dtype=np.int32)
    for rank in range(n):
        x = order[rank]
        for p in range(offsets[x], offsets[x + 1]):
            m = indices[p]
            col[fill[m]] = rank
            fill[m] += 1
    c_folds = np.empty(k, dtype=np.float64)
    for j in range(k):
        c_folds[j] = r[j] * n
    c_labels = np.empty((L, k), dtype=np.float64)
    for m in range(L):
        for j in range(k):
            c_labels[m, j] = r[j] * np.float64(counts[m])
    # segment tree over label ids: (min positive remaining count, how many attain it)
    size = 1
    while size < max(L, 1):
        size *= 2
    tmin = np.full(2 * size, big, dtype=np.int64)
    tcnt = np.zeros(2 * size, dtype=np.int64)
    rem = counts.copy()
    for m in range(L):
        if rem[m] > 0:
            tmin[size + m] = rem[m]
            tcnt[size + m] = 1
    for node in range(size - 1, 0, -1):
        _tree_pull(tmin, tcnt, node)
    done = np.zeros(n, dtype=np.bool_)
    fold = np.empty(n, dtype=np.int32)
    dirty = np.zeros(L, dtype=np.bool_)
    touched = np.empty(L, dtype=np.int64)
    ties = np.empty(k, dtype=np.int64)
    n_done = 0
    while n_done < n:
        if tmin[1] >= big:
            # only examples without labels are left: most wanted size, ties random
            for rank in range(n):
                if done[rank]:
                    continue
                best = -np.inf
                for j in range(k):
                    if c_folds[j] > best:
                        best = c_folds[j]
                n_t = 0
                for j in range(k):
                    if c_folds[j] == best:
                        ties[n_t] = j
                        n_t += 1
                j_sel = ties[0] if n_t == 1 else ties[mt_choice(key, pos, n_t)]
                fold[order[rank]] = j_sel
                c_folds[j_sel] -= 1
                done[rank] = True
                n_done += 1
            break
        target = tmin[1]
        pick = 0
        if tcnt[1] > 1:
            pick = mt_choice(key, pos, tcnt[1])
        node = 1
        while node < size:
            a = 2 * node
            if tmin[a] == target:
                if pick < tcnt[a]:
                    node = a
                    continue
                pick -= tcnt[a]
            node = a + 1
        lab = node - size
        nt = 0
        for q in range(col_off[lab], col_off[lab + 1]):
            rank = col[q]
            if done[rank]:
                continue
            best = -np.inf
            for j in range(k):
                if c_labels[lab, j] > best:
                    best = c_labels[lab, j]
            n_t = 0
            best2 = -np.inf
            for j in range(k):
                if c_labels[lab, j] == best:
                    if c_folds[j] > best2:
                        best2 = c_folds[j]
                        n_t = 0
                    if c_folds[j] == best2:
                        ties[n_t] = j
                        n_t += 1
            j_sel = ties[0] if n_t == 1 else ties[mt_choice(key, pos, n_t)]
            x = order[rank]
            fold[x] = j_sel
            done[rank] = True
            n_done += 1
            c_folds[j_sel] -= 1
            for p in range(offsets[x], offsets[x + 1]):
                m = indices[p]
                c_labels[m, j_sel] -= 1
                rem[m] -= 1
                if not dirty[m]:
                    dirty[m] = True
                    touched[nt] = m
                    nt += 1
        for t in range(nt):
            m = touched[t]
            dirty[m] = False
            node = size + m
            if rem[m] > 0:
                tmin[node] = rem[m]
                tcnt[node] = 1
            else:
                tmin[node] = big
                tcnt[node] = 0
            node //= 2
            while node >= 1:
                _tree_pull(tmin, tcnt, node)
                node //= 2
    return fold
