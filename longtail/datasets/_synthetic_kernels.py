"""Numba kernels behind :mod:`longtail.datasets.synthetic`."""
from __future__ import annotations

import numpy as np
from numba import njit

from longtail._core.rng import rng_init, rng_uniform


@njit(cache=True)
def _search(cum, lo, hi, x):
    """First position p in [lo, hi) with cum[p] > x (cum increasing)."""
    while lo < hi:
        mid = (lo + hi) >> 1
        if cum[mid] > x:
            hi = mid
        else:
            lo = mid + 1
    return lo


@njit(cache=True)
def sparse_topic_labels(seed, n, mean_extra, p_global, topic_cum, topic_start, topic_labels,
                        label_cum, topic_of_row):
    """Draw each example's labels: a primary topic, then 1 + Poisson(mean_extra) labels,
    each from the topic's label distribution (or, with probability ``p_global``, from the
    global one), redrawing duplicates. Rows come out sorted and unique. Returns ``(offsets, indices)``.
    """
    state = rng_init(seed)
    n_topics = topic_start.shape[0] - 1
    n_labels = label_cum.shape[0]
    offsets = np.zeros(n + 1, dtype=np.int64)
    cap = int(n * (mean_extra + 2.0)) + 16
    indices = np.empty(cap, dtype=np.int32)
    row = np.empty(64, dtype=np.int32)
    total_topic = topic_cum[n_topics - 1]
    total_label = label_cum[n_labels - 1]
    limit = np.exp(-mean_extra)
    k = 0
    for i in range(n):
        t = _search(topic_cum, 0, n_topics, rng_uniform(state) * total_topic)
        topic_of_row[i] = t
        # Poisson by multiplication (mean_extra is small)
        m = 1
        prod = rng_uniform(state)
        while prod > limit and m < 64:
            m += 1
            prod *= rng_uniform(state)
        lo = topic_start[t]
        hi = topic_start[t + 1]
        base = label_cum[lo - 1] if lo > 0 else 0.0
        span = label_cum[hi - 1] - base
        got = 0
        attempts = 0
        while got < m and attempts < 8 * m:
            attempts += 1
            if rng_uniform(state) < p_global or span <= 0.0:
                pos = _search(label_cum, 0, n_labels, rng_uniform(state) * total_label)
            else:
                pos = _search(label_cum, lo, hi, base + rng_uniform(state) * span)
            if pos >= n_labels:
                pos = n_labels - 1
            lab = topic_labels[pos]
            dup = False
            for q in range(got):
                if row[q] == lab:
                    dup = True
                    break
            if not dup:
                row[got] = lab
                got += 1
        m = got
        srt = np.sort(row[:m])
        if k + m > indices.shape[0]:
            grown = np.empty(indices.shape[0] * 2, dtype=np.int32)
            grown[:k] = indices[:k]
            indices = grown
        for j in range(m):
            indices[k] = srt[j]
            k += 1
        offsets[i + 1] = k
    return offsets, indices[:k].copy()


@njit(cache=True)
def sparse_features(seed, offsets, indices, topic_of_row, topic_emb, label_emb, label_gain,
                    noise):
    """float32 features: topic embedding + gain * mean of label embeddings + noise."""
    state = rng_init(seed)
    n = offsets.shape[0] - 1
    d = topic_emb.shape[1]
    out = np.empty((n, d), dtype=np.float32)
    for i in range(n):
        t = topic_of_row[i]
        k = offsets[i + 1] - offsets[i]
        for j in range(d):
            acc = 0.0
            for p in range(offsets[i], offsets[i + 1]):
                acc += label_emb[indices[p], j]
            # approximately normal noise: sum of 4 uniforms, unit variance
            e = (rng_uniform(state) + rng_uniform(state) + rng_uniform(state)
                 + rng_uniform(state) - 2.0) * 1.7320508075688772
            out[i, j] = topic_emb[t, j] + label_gain * acc / max(k, 1) + noise * e
    return out
