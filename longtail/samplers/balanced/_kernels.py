"""Numba kernels behind :mod:`longtail.samplers.balanced.samplers`.

Serial kernels (they run in the DataLoader's main process, next to fork-started workers),
seeded explicitly through :mod:`longtail._core.rng`. They release the GIL (``nogil``): a
sampler with ``prefetch=True`` builds its next epoch in a background thread while the
training thread runs. Inputs are float64 weights and the
canonical LabelMatrix arrays (int64 offsets, int32 indices, read-only), so each kernel
compiles once.
"""
from __future__ import annotations

import numpy as np
from numba import njit

from longtail._core.rng import rng_below, rng_init, rng_shuffle, rng_uniform


@njit(cache=True, nogil=True)
def build_alias(weights):
    """Walker/Vose alias table of ``weights`` (float64, finite, >= 0, positive sum).

    Returns ``(prob, alias)``: draw a column ``k`` uniformly, keep it with probability
    ``prob[k]``, else take ``alias[k]``. O(n); zero weights are never drawn.

    The weights are first divided by their maximum, so the scale ``n / total`` is at most
    ``n`` whatever their magnitude: subnormal weights (``5e-324``) cannot overflow it to
    ``inf`` (which made ``0 * inf = NaN`` columns that drew zero-weight examples).
    """
    n = weights.shape[0]
    wmax = 0.0
    for i in range(n):
        if weights[i] > wmax:
            wmax = weights[i]
    total = 0.0
    for i in range(n):
        total += weights[i] / wmax
    prob = np.empty(n, dtype=np.float64)
    alias = np.empty(n, dtype=np.int64)
    small = np.empty(n, dtype=np.int64)
    large = np.empty(n, dtype=np.int64)
    ns = 0
    nl = 0
    scale = n / total
    for i in range(n):
        prob[i] = (weights[i] / wmax) * scale
        alias[i] = i
        if prob[i] < 1.0:
            small[ns] = i
            ns += 1
        else:
            large[nl] = i
            nl += 1
    while ns > 0 and nl > 0:
        ns -= 1
        s = small[ns]
        g = large[nl - 1]
        alias[s] = g
        prob[g] = (prob[g] + prob[s]) - 1.0
        if prob[g] < 1.0:
            nl -= 1
            small[ns] = g
            ns += 1
    # what is left is 1 up to rounding: always keep it (a zero weight stays at 0 only if
    # it was paired above, which every entry < 1 is while large entries remain)
    for k in range(nl):
        prob[large[k]] = 1.0
    for k in range(ns):
        i = small[k]
        # (weights that underflow to 0 once scaled count as zero: never drawn)
        prob[i] = 1.0 if weights[i] / wmax > 0.0 else 0.0
        if prob[i] == 0.0:
            # a zero weight left unpaired (rounding): send it to any positive column
            for j in range(n):
                if weights[j] / wmax > 0.0:
                    alias[i] = j
                    break
    return prob, alias


@njit(cache=True, nogil=True)
def interleave_alias(prob, alias):
    """The alias table as one float64 array ``[prob_0, alias_0, prob_1, alias_1, ...]``
    (alias ids are exact in float64 below 2**53): one cache line per draw."""
    n = prob.shape[0]
    table = np.empty(2 * n, dtype=np.float64)
    for k in range(n):
        table[2 * k] = prob[k]
        table[2 * k + 1] = alias[k]
    return table


@njit(cache=True, nogil=True)
def draw_alias(table, m, seed):
    """``m`` independent draws from an interleaved alias table (int64[m]).

    Random numbers are made a block at a time and the table is read in a second loop,
    so the (cache-missing) table reads of a block overlap."""
    state = rng_init(seed)
    n = table.shape[0] // 2
    out = np.empty(m, dtype=np.int64)
    block = 512
    ks = np.empty(block, dtype=np.int64)
    us = np.empty(block, dtype=np.float64)
    for t0 in range(0, m, block):
        b = min(block, m - t0)
        for j in range(b):
            ks[j] = rng_below(state, n)
            us[j] = rng_uniform(state)
        for j in range(b):
            k = ks[j]
            if us[j] < table[2 * k]:
                out[t0 + j] = k
            else:
                out[t0 + j] = np.int64(table[2 * k + 1])
    return out


@njit(cache=True, nogil=True)
def radix_argsort(keys):
    """Stable ascending argsort of uint64 keys: LSD radix sort with 11-bit digits.

    All six digit histograms come from one read pass; a pass whose digit is the same for
    every key is skipped; (key, index) pairs move together, interleaved in one array, so
    each scatter writes one stream. O(m) per pass."""
    m = keys.shape[0]
    passes = 6
    hist = np.zeros((passes, 2048), dtype=np.int64)
    for i in range(m):
        k = keys[i]
        for p in range(passes):
            hist[p, np.int64((k >> np.uint64(11 * p)) & np.uint64(2047))] += 1
    a = np.empty(2 * m, dtype=np.uint64)
    b = np.empty(2 * m, dtype=np.uint64)
    offs = np.empty(2048, dtype=np.int64)
    first = True
    for p in range(passes):
        if hist[p].max() == m:
            continue
        acc = 0
        for d in range(2048):
            offs[d] = acc
            acc += hist[p, d]
        sh = np.uint64(11 * p)
        if first:
            for i in range(m):
                k = keys[i]
                d = np.int64((k >> sh) & np.uint64(2047))
                pos = offs[d]
                offs[d] = pos + 1
                b[2 * pos] = k
                b[2 * pos + 1] = np.uint64(i)
            first = False
        else:
            for i in range(m):
                k = a[2 * i]
                d = np.int64((k >> sh) & np.uint64(2047))
                pos = offs[d]
                offs[d] = pos + 1
                b[2 * pos] = k
                b[2 * pos + 1] = a[2 * i + 1]
        a, b = b, a
    out = np.empty(m, dtype=np.int64)
    if first:
        for i in range(m):
            out[i] = i
    else:
        for i in range(m):
            out[i] = np.int64(a[2 * i + 1])
    return out


@njit(cache=True, nogil=True)
def draw_without_replacement(weights, m, seed):
    """``m`` draws without replacement, probability proportional to ``weights``.

    Efraimidis & Spirakis (2006) in exponential form: with ``E_i = -log(u_i)``, the ``m``
    smallest keys ``E_i / w_i`` in increasing order are distributed as successive weighted
    draws without replacement. O(n) keys and selection, then a radix sort of the ``m``
    selected keys (non-negative doubles sort like their bit patterns). Needs at least
    ``m`` positive weights.
    """
    state = rng_init(seed)
    n = weights.shape[0]
    keys = np.empty(n, dtype=np.float64)
    for i in range(n):
        w = weights[i]
        if w > 0.0:
            u = rng_uniform(state)
            while u == 0.0:
                u = rng_uniform(state)
            key = -np.log(u) / w
            # a subnormal weight overflows to inf: keep it ahead of the zero weights
            keys[i] = key if key < 1.0e308 else 1.0e308
        else:
            keys[i] = np.inf
    if m < n:
        kth = np.partition(keys, m - 1)[m - 1]     # the m-th smallest key (copy, O(n))
        sel = np.empty(m, dtype=np.int64)
        k = 0
        for i in range(n):
            if keys[i] < kth:
                sel[k] = i
                k += 1
        for i in range(n):
            if k >= m:
                break
            if keys[i] == kth:
                sel[k] = i
                k += 1
        sub = np.empty(m, dtype=np.float64)
        for j in range(m):
            sub[j] = keys[sel[j]]
        order = radix_argsort(sub.view(np.uint64))
        out = np.empty(m, dtype=np.int64)
        for j in range(m):
            out[j] = sel[order[j]]
        return out
    return radix_argsort(keys.view(np.uint64))


@njit(cache=True, nogil=True)
def repeat_epoch(factors, seed):
    """Repeat-factor epoch (detectron2 semantics): example i appears ``floor(r_i)`` times,
    plus once more with probability ``frac(r_i)`` (stochastic rounding), then the whole
    list is shuffled. Returns int64[total]."""
    state = rng_init(seed)
    n = factors.shape[0]
    reps = np.empty(n, dtype=np.int64)
    total = 0
    for i in range(n):
        r = factors[i]
        k = np.int64(np.floor(r))
        if rng_uniform(state) < r - k:
            k += 1
        reps[i] = k
        total += k
    out = np.empty(total, dtype=np.int64)
    pos = 0
    for i in range(n):
        for _ in range(reps[i]):
            out[pos] = i
            pos += 1
    rng_shuffle(state, out)
    return out


@njit(cache=True, nogil=True)
def class_aware_epoch(t_offsets, t_indices, classes, prob, alias, use_alias, m, per_label,
                      seed, out):
    """Class-aware epoch (mmdetection ``ClassAwareSampler`` semantics), written to ``out``.

    Pick a label -- cycling through a shuffled list of ``classes`` (reshuffled after
    each pass), or, with ``use_alias``, drawn from the alias table ``(prob, alias)`` over
    ``classes`` -- then take ``per_label`` examples of that label from its own shuffled
    cycle (``t_offsets``/``t_indices`` is the label -> examples CSC): each cycle is a
    uniformly random order of the label's examples, drawn one step of a Fisher-Yates
    shuffle per draw, so an epoch costs O(draws) rather than a shuffle of every label's
    examples (46 -> ~10 ms at the seed scale).

    ``out`` is int64 ``[rows, width]``: row ``t`` gets draw ``t`` of the epoch of ``m``
    draws -- the example in column 0 and, when ``width`` is 2, the label it was drawn for
    in column 1. Only the first ``min(m, rows)`` draws are made (the epoch's prefix);
    rows from ``m`` on are filled with -1 (the missing tail of a shorter last batch).
    """
    state = rng_init(seed)
    rows = out.shape[0]
    width = out.shape[1]
    stop = min(m, rows)
    n_classes = classes.shape[0]
    L = t_offsets.shape[0] - 1
    buf = np.empty(t_indices.shape[0], dtype=np.int32)
    pos = np.full(L, -1, dtype=np.int64)
    cycle = classes.copy()
    rng_shuffle(state, cycle)
    ci = 0
    t = 0
    while t < stop:
        if use_alias:
            k = rng_below(state, n_classes)
            if rng_uniform(state) >= prob[k]:
                k = alias[k]
            c = classes[k]
        else:
            if ci == n_classes:
                rng_shuffle(state, cycle)
                ci = 0
            c = cycle[ci]
            ci += 1
        start = t_offsets[c]
        length = t_offsets[c + 1] - start
        seg = buf[start:start + length]
        if pos[c] < 0:
            seg[:] = t_indices[start:start + length]
            pos[c] = 0
        for _ in range(per_label):
            if t >= stop:
                break
            p = pos[c]
            if p == length:   # the label's cycle is used up: the next one starts
                p = 0
            # the cycle's next example, uniform among those it has not given yet (a
            # Fisher-Yates shuffle done one step per draw: O(draws), not O(examples))
            j = p + rng_below(state, length - p)
            e = seg[j]
            seg[j] = seg[p]
            seg[p] = e
            out[t, 0] = e
            if width > 1:
                out[t, 1] = c
            pos[c] = p + 1
            t += 1
    for r in range(stop, rows):
        for w in range(width):
            out[r, w] = -1
