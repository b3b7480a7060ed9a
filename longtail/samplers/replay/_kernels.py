"""Numba kernels of :class:`~longtail.samplers.SumTree` and :class:`HardExampleSampler`.

Tree layout
-----------
A tree over ``capacity`` leaves is one ``float64[2 * size]`` array, ``size`` the smallest
power of two >= max(capacity, 2): node ``1`` is the root, node ``k`` has children ``2k`` and
``2k + 1``, leaf ``i`` is node ``size + i`` and the ``size - capacity`` padding leaves stay
0 (slot 0 is unused). A parent is always *recomputed* as ``left + right`` (never
incremented by a delta), so every inner node is a pure function of the leaves: no drift,
and a tree rebuilt from its leaves is bitwise equal to one updated step by step (what
makes resume and DDP replicas exact).

Sampler state
-------------
The :class:`HardExampleSampler` kernels take named NumPy records (the dtypes of
:mod:`longtail.samplers.replay.state`): ``ex`` (one 32-byte ``EXAMPLE`` row per
example: ``prio``, ``raw``, ``last``, ``flight``, so touching an example costs one cache
line), ``slots`` (the in-flight ring's ``SLOT`` rows: ``step``, ``live``), and
one-element arrays ``params`` (``PARAMS``: the sampler's fixed parameters) and
``counters`` (``COUNTERS``: step, running statistics, sweep and history cursors). A tree
array carries its own size (``tree.shape[0] // 2``).

Every kernel is serial (``parallel=False``: samplers run in the main process next to
fork-started DataLoader workers) and takes its randomness from ``longtail._core.rng``.
"""
from __future__ import annotations

import numpy as np
from numba import njit, uint64

from longtail._core.rng import rng_below, rng_init, rng_shuffle, rng_uniform

_GOLDEN = 0x9E3779B97F4A7C15


# ---------------------------------------------------------------------------------------
# seeds
# ---------------------------------------------------------------------------------------
@njit(cache=True)
def mix_seed(base, counter):
    """A 64-bit seed for draw number ``counter`` of a stream whose seed is ``base``.

    ``splitmix64(base + counter * golden)``: a bijective hash of the counter, so the
    per-step streams are unrelated; ``base`` comes from :func:`longtail._core.rng.derive_seed`
    (``SeedSequence``, ~10 us) once per sampler, this costs nanoseconds per step.
    """
    z = uint64(base) + uint64(counter) * uint64(_GOLDEN)
    z = (z ^ (z >> uint64(30))) * uint64(0xBF58476D1CE4E5B9)
    z = (z ^ (z >> uint64(27))) * uint64(0x94D049BB133111EB)
    return z ^ (z >> uint64(31))


# ---------------------------------------------------------------------------------------
# the sum tree
# ---------------------------------------------------------------------------------------
@njit(cache=True)
def tree_build(tree, size):
    """Recompute every inner node from the leaves (O(size))."""
    for k in range(size - 1, 0, -1):
        tree[k] = tree[2 * k] + tree[2 * k + 1]


@njit(cache=True)
def tree_propagate(tree, size, idx):
    """Recompute the ancestors of leaves ``idx`` (any order, duplicates allowed).

    Level by level, one pass over the batch per level (the loads of a level are
    independent, so their cache misses overlap). From the first level with at most
    ``len(idx)`` nodes up, the whole level is recomputed once, so the ancestors the
    batch shares (the top of the tree) are computed once per batch, not once per leaf.
    Below it two leaves rarely share a parent; when they do it is simply recomputed
    twice (idempotent: a node is always ``left + right``). That beats sorting the batch to
    deduplicate every level (sort and branches cost more than the few repeated sums;
    benchmarks/README.md, "Design measurements").
    """
    k = idx.shape[0]
    if k == 0:
        return
    node = idx + size
    s = size
    while s > 1:
        s >>= 1
        if s <= k:
            for p in range(2 * s - 1, 0, -1):
                tree[p] = tree[2 * p] + tree[2 * p + 1]
            return
        for j in range(k):
            p = node[j] >> 1
            node[j] = p
            tree[p] = tree[2 * p] + tree[2 * p + 1]


@njit(cache=True)
def tree_propagate_range(tree, size, lo, hi):
    """Recompute the ancestors of the contiguous leaves ``[lo, hi)`` (no sort needed)."""
    if hi <= lo:
        return
    a = (lo + size) >> 1
    b = (hi - 1 + size) >> 1
    while True:
        for p in range(a, b + 1):
            tree[p] = tree[2 * p] + tree[2 * p + 1]
        if a <= 1:
            break
        a >>= 1
        b >>= 1


@njit(cache=True)
def tree_set(tree, size, idx, values):
    """Write ``values`` at leaves ``idx`` in order (last write wins) and fix the sums."""
    for j in range(idx.shape[0]):
        tree[size + idx[j]] = values[j]
    tree_propagate(tree, size, idx)


@njit(cache=True)
def tree_descend(tree, size, mass, out, offset):
    """Prefix-sum search for every ``mass[j]`` in ``[0, root)``, all draws together.

    One level at a time over all draws: the loads of one level are independent, so the
    CPU overlaps their cache misses (what makes a batch of 256 cost far less than 256
    single descents). Writes leaf ids to ``out[offset + j]``; ``mass`` is clobbered.

    Guard: a child with zero sum is never entered (when rounding pushes the mass past the
    left sum and the right sum is 0, the draw stays left). Since a parent is ``left +
    right`` of non-negative numbers, a positive node always has a positive child, so a
    descent from a positive root ends on a positive leaf: never a zero-priority (or
    padding) leaf, whatever the rounding.
    """
    k = mass.shape[0]
    node = np.ones(k, dtype=np.int64)
    s = size
    while s > 1:
        for j in range(k):
            c = node[j] << 1
            left = tree[c]
            m = mass[j]
            # branch-free (the direction is a coin flip: a branch would mispredict)
            go = (m >= left) & (tree[c + 1] > 0.0)
            node[j] = c + np.int64(go)
            mass[j] = m - (left if go else 0.0)
        s >>= 1
    for j in range(k):
        out[offset + j] = node[j] - size


@njit(cache=True)
def tree_find(tree, size, mass):
    """Leaf ids for given masses (prefix-sum search with the zero guard)."""
    m = mass.copy()
    out = np.empty(m.shape[0], dtype=np.int64)
    tree_descend(tree, size, m, out, 0)
    return out


@njit(cache=True)
def tree_sample(tree, size, k, seed):
    """``k`` independent draws with probability ``leaf / root`` (root must be > 0)."""
    state = rng_init(seed)
    total = tree[1]
    mass = np.empty(k, dtype=np.float64)
    for j in range(k):
        mass[j] = rng_uniform(state) * total
    out = np.empty(k, dtype=np.int64)
    tree_descend(tree, size, mass, out, 0)
    return out


# ---------------------------------------------------------------------------------------
# HardExampleSampler
# ---------------------------------------------------------------------------------------
#: largest importance weight before normalisation (finite: a batch's sum stays finite)
W_CAP = 1e300


@njit(cache=True, inline="always")
def _unmark(ex, i, slots):
    """Lift example ``i``'s in-flight mark; its ring slot counts one live mark less."""
    f = ex[i].flight
    if f >= 0:
        slot = f % slots.shape[0]
        if slots[slot].step == f:
            slots[slot].live -= 1
        ex[i].flight = -1


@njit(cache=True)
def _lift_all_marks(tree, ex, slots):
    """Lift every in-flight mark (the hard source has nothing left to draw from)."""
    size = tree.shape[0] >> 1
    for i in range(ex.shape[0]):
        if ex[i].flight >= 0:
            ex[i].flight = -1
            tree[size + i] = ex[i].prio
    for t in range(slots.shape[0]):
        slots[t].live = 0
        slots[t].step = -1
    tree_build(tree, size)


@njit(cache=True)
def replay_draw(tree, btree, ex, slots, ring, params, counters, idx_out, w_out, q_out):
    """Draw the global batch of step ``counters[0].step``, mark it in flight, count it.

    ``kh`` / ``kb`` / ``ku`` draws (``params[0]``) come from the hard tree, the base tree
    and the uniform distribution; every draw gets ``q`` = the mixture probability
    ``kh/B * leaf/H + kb/B * base/Bt + ku/B / n`` (B = kh + kb + ku) and the importance
    weight ``(p_target / q) ** beta``, p_target = ``tu / n + tb * base / Bt`` (the
    non-hard part of the mix), normalised over the batch by ``norm`` (0 none, 1 max, 2
    mean). With more than one source the batch is shuffled (so rank slices mix the
    sources). Then every *hard-drawn* example's leaf becomes ``prio * factor`` until its
    update arrives or ``ring.shape[0] - 1`` further steps pass: ``ring[slot]`` keeps the
    hard draws of the step held by ``slots[slot]`` and ``slots[slot].live`` how many of
    its marks are still up, so expiring a batch whose losses all came back costs
    nothing. Returns 1 when the hard source drew uniformly (every priority 0).
    Importance weights are capped at ``W_CAP`` before normalising (only reached when
    ``q`` underflows), so they are always finite.
    """
    p = params[0]
    c = counters[0]
    kh, kb, ku = p.kh, p.kb, p.ku
    step = c.step
    beta = p.beta
    n = ex.shape[0]
    size = tree.shape[0] >> 1
    bsize = btree.shape[0] >> 1
    bg = kh + kb + ku
    nslots = ring.shape[0]
    hard_uniform = 0
    if kh > 0 and not (tree[1] > 0.0):
        # every priority is 0 or in flight: lift the in-flight marks first
        _lift_all_marks(tree, ex, slots)
        if not (tree[1] > 0.0):
            hard_uniform = 1
    total_h = tree[1]
    total_b = btree[1]
    state = rng_init(mix_seed(p.seed, step))

    idx = np.empty(bg, dtype=np.int64)
    if kh > 0:
        if hard_uniform:
            for j in range(kh):
                idx[j] = rng_below(state, n)
        else:
            mass = np.empty(kh, dtype=np.float64)
            for j in range(kh):
                mass[j] = rng_uniform(state) * total_h
            tree_descend(tree, size, mass, idx, 0)
    if kb > 0:
        mass = np.empty(kb, dtype=np.float64)
        for j in range(kb):
            mass[j] = rng_uniform(state) * total_b
        tree_descend(btree, bsize, mass, idx, kh)
    for j in range(kh + kb, bg):
        idx[j] = rng_below(state, n)

    fh = kh / bg
    fb = kb / bg
    fu = ku / bg
    tu = p.tu
    tb = p.tb
    inv_n = 1.0 / n
    w = np.empty(bg, dtype=np.float64)
    q = np.empty(bg, dtype=np.float64)
    wmax = 0.0
    wsum = 0.0
    use_base = tb > 0.0 or kb > 0
    for j in range(bg):
        i = idx[j]
        qj = fu * inv_n
        pt = tu * inv_n
        if kh > 0:
            if hard_uniform:
                qj += fh * inv_n
            else:
                qj += fh * (tree[size + i] / total_h)
        if use_base:
            pb = btree[bsize + i] / total_b
            qj += fb * pb
            pt += tb * pb
        q[j] = qj
        # q underflows to 0 only for a leaf ~1e-308 times the total (a drawn example
        # always has q > 0 in exact arithmetic): cap the ratio instead of dividing by 0
        if qj > 0.0:
            r = pt / qj
        else:
            r = W_CAP if pt > 0.0 else 0.0
        if beta == 1.0:
            wj = r
        elif beta == 0.0:
            wj = 1.0
        else:
            wj = r ** beta
        if not (wj <= W_CAP):   # overflow: a finite weight, so normalising cannot NaN
            wj = W_CAP
        w[j] = wj
        wsum += wj
        if wj > wmax:
            wmax = wj
    scale = 1.0
    if p.norm == 1 and wmax > 0.0:
        scale = 1.0 / wmax
    elif p.norm == 2 and wsum > 0.0:
        scale = bg / wsum

    sources = (kh > 0) + (kb > 0) + (ku > 0)
    if sources > 1:  # the sources were drawn in blocks: shuffle while writing out
        perm = np.arange(bg)
        rng_shuffle(state, perm)
        for j in range(bg):
            t = perm[j]
            idx_out[j] = idx[t]
            q_out[j] = q[t]
            w_out[j] = w[t] * scale
    else:  # draws from one source are i.i.d. already
        for j in range(bg):
            idx_out[j] = idx[j]
            q_out[j] = q[j]
            w_out[j] = w[j] * scale

    if nslots > 1 and kh > 0:
        _mark_in_flight(tree, ex, slots, ring, idx, kh, step, p.factor)
    c.step = step + 1
    return hard_uniform


@njit(cache=True, inline="always")
def _mark_in_flight(tree, ex, slots, ring, idx, kh, step, factor):
    """Mark the hard draws ``idx[:kh]`` of ``step`` in flight (leaf ``prio * factor``) in
    the ring slot of ``step``, and expire the slot that falls out of the ring."""
    # only the hard draws are marked: the hard source is what must not repeat itself,
    # and their tree paths are in cache from the descent just made
    size = tree.shape[0] >> 1
    nslots = ring.shape[0]
    changed = np.empty(2 * kh, dtype=np.int64)
    nc = 0
    slot = step % nslots
    slots[slot].step = step
    slots[slot].live = 0
    pr = np.empty(kh, dtype=np.float64)
    for j in range(kh):  # loads only, so that all their cache misses overlap
        pr[j] = ex[idx[j]].prio
    for j in range(kh):
        i = idx[j]
        ring[slot, j] = i
        # re-read (the row is in cache now): an example drawn twice in this batch must
        # count once, and its old slot must lose one live mark, not two
        f = ex[i].flight
        if f == step:  # drawn twice in this batch
            continue
        if f >= 0:  # still in flight from an earlier step: move its mark here
            o = f % nslots
            if slots[o].step == f:
                slots[o].live -= 1
        ex[i].flight = step
        slots[slot].live += 1
        v = pr[j] * factor
        if tree[size + i] != v:
            tree[size + i] = v
            changed[nc] = i
            nc += 1
    old = (step + 1) % nslots
    old_step = slots[old].step
    if old_step >= 0 and old_step == step - (nslots - 1):
        if slots[old].live > 0:
            for j in range(kh):
                i = ring[old, j]
                if ex[i].flight == old_step:
                    ex[i].flight = -1
                    v = ex[i].prio
                    if tree[size + i] != v:
                        tree[size + i] = v
                        changed[nc] = i
                        nc += 1
        slots[old].live = 0
        slots[old].step = -1
    tree_propagate(tree, size, changed[:nc])


@njit(cache=True)
def _bisect(a, length, x, right):
    lo = 0
    hi = length
    while lo < hi:
        mid = (lo + hi) >> 1
        if a[mid] < x or (right and a[mid] == x):
            lo = mid + 1
        else:
            hi = mid
    return lo


@njit(cache=True)
def _check_feedback(n, idx, loss, baseline, has_baseline, x):
    """Losses rounded to float32 minus the baseline into ``x``; ``(code, position)`` of
    the first invalid entry (1 index out of range, 2 loss not finite), else ``(0, 0)``."""
    for j in range(idx.shape[0]):
        i = idx[j]
        if i < 0 or i >= n:
            return 1, j
        v = loss[j]
        if not np.isfinite(v) or not np.isfinite(np.float32(v)):
            return 2, j
        v = np.float64(np.float32(v))
        if has_baseline:
            v = v - baseline[i]
        x[j] = v
    return 0, 0


@njit(cache=True, inline="always")
def _percentiles(x, hist, ref, p, c, out):
    """Mid-rank percentiles of ``x`` among the sorted snapshot ``ref`` of the loss
    history, after appending ``x`` to the history ring (``c.hist_*``) and re-sorting
    the snapshot once ``p.hist_every`` new losses have arrived."""
    b = x.shape[0]
    h = hist.shape[0]
    for j in range(b):
        hist[c.hist_pos] = x[j]
        c.hist_pos = (c.hist_pos + 1) % h
        if c.hist_count < h:
            c.hist_count += 1
    c.hist_new += b
    if c.hist_len == 0 or c.hist_new >= p.hist_every:
        cnt = c.hist_count
        srt = np.sort(hist[:cnt])
        for j in range(cnt):
            ref[j] = srt[j]
        c.hist_len = cnt
        c.hist_new = 0
    length = c.hist_len
    for j in range(b):
        lo = _bisect(ref, length, x[j], False)
        hi = _bisect(ref, length, x[j], True)
        out[j] = 0.5 * (lo + hi) / length


@njit(cache=True)
def replay_update(tree, ex, slots, idx, loss, baseline, hist, ref, params, counters):
    """Validate, turn losses into priorities, apply them (in order: last write wins),
    then sweep. Returns ``(code, position)``: ``(0, 0)``, or on invalid input (nothing
    changed then) code 1 index out of range, 2 loss not finite, 3 priority overflow.

    Priorities (losses are rounded to float32 first, as the DDP gather sends them):
    kind 0 ``loss``: ``(max(loss - baseline, 0) + eps) ** alpha``;
    kind 1 ``rank`` (Loshchilov & Hutter 2015): ``pressure ** (pct - 1)``, i.e.
    ``exp(-ln(pressure) * rank / N)`` with the rank estimated as ``N * (1 - pct)``;
    kind 2 ``percentile`` (Selective-Backprop, Jiang et al. 2019): ``(pct + eps) ** alpha``.
    ``pct`` is the mid-rank percentile of the loss among a sorted snapshot ``ref`` of the
    last ``hist.shape[0]`` reported losses (:func:`_percentiles`).

    Running statistics (``counters[0]``): ``max_reported``, and ``mean_reported``, the
    mean of each update's priorities averaged with weight ``b / min(n, reports)`` (a
    cumulative mean over the first n reports, then an exponential average over about one
    pass of the data).

    Sweep: each call also revisits ``sweep_chunk`` examples cyclically from
    ``sweep_pos``; one never reported gets the largest priority reported so far (PER's
    rule: unseen examples come first), a reported one decays toward the running mean,
    ``prio = mean + (raw - mean) * 2 ** (-age / half_life)`` with ``age`` the steps since
    its report (no decay when ``half_life <= 0``). The first update sets every unseen
    example at once (O(n), once).
    """
    p = params[0]
    c = counters[0]
    n = ex.shape[0]
    b = idx.shape[0]
    x = np.empty(b, dtype=np.float64)
    code, pos = _check_feedback(n, idx, loss, baseline, p.has_baseline, x)
    if code:
        return code, pos
    pr = np.empty(b, dtype=np.float64)
    if p.kind == 0:
        alpha, eps, max_value = p.alpha, p.eps, p.max_value
        for j in range(b):
            v = x[j]
            if v < 0.0:
                v = 0.0
            pj = (v + eps) ** alpha
            if not (pj <= max_value):
                return 3, j
            pr[j] = pj
    elif b > 0:
        _percentiles(x, hist, ref, p, c, pr)
        if p.kind == 1:
            log_p = np.log(p.pressure)
            for j in range(b):
                pr[j] = np.exp(log_p * (pr[j] - 1.0))
        else:
            for j in range(b):
                pr[j] = (pr[j] + p.eps) ** p.alpha
    if b == 0:
        return 0, 0
    _apply_priorities(tree, ex, slots, idx, pr, p, c)
    return 0, 0


@njit(cache=True, inline="always")
def _apply_priorities(tree, ex, slots, idx, pr, p, c):
    """Write the reported priorities ``pr`` of examples ``idx``, update the running
    statistics, then sweep (see :func:`replay_update`)."""
    n = ex.shape[0]
    size = tree.shape[0] >> 1
    b = idx.shape[0]
    factor = p.factor
    step = c.step
    pmax = c.max_reported
    psum = 0.0
    acc = 0.0
    for j in range(b):  # loads only, so that the rows' cache misses overlap
        acc += ex[idx[j]].prio + tree[size + idx[j]]
    if acc != acc:  # never (keeps the loads)
        pmax = 0.0
    for j in range(b):
        i = idx[j]
        v = pr[j]
        _unmark(ex, i, slots)
        ex[i].raw = v
        ex[i].prio = v
        ex[i].last = step
        tree[size + i] = v
        psum += v
        if v > pmax:
            pmax = v
    c.max_reported = pmax
    c.reports += b
    denom = c.reports
    if denom > n:
        denom = n
    rate = b / denom
    if rate > 1.0:
        rate = 1.0
    c.mean_reported += (psum / b - c.mean_reported) * rate
    first = c.updates == 0
    c.updates += 1
    if first:
        for i in range(n):
            if ex[i].last < 0:
                ex[i].prio = pmax
                tree[size + i] = pmax * factor if ex[i].flight >= 0 else pmax
        tree_build(tree, size)
        return
    tree_propagate(tree, size, idx)
    chunk = p.sweep_chunk
    if chunk <= 0:
        return
    if chunk > n:
        chunk = n
    start = c.sweep_pos
    mean = c.mean_reported
    half_life = p.half_life
    fstep = np.float64(step)
    end = start + chunk
    for seg in range(2):
        if seg == 0:
            lo = start
            hi = end if end < n else n
        else:
            lo = 0
            hi = end - n if end > n else 0
        for i in range(lo, hi):
            last = ex[i].last
            if last < 0:
                v = pmax
            elif half_life > 0.0:
                if last < step:
                    v = mean + (ex[i].raw - mean) * np.exp2(-(fstep - np.float64(last))
                                                            / half_life)
                else:
                    v = ex[i].raw
            else:
                v = ex[i].prio
            ex[i].prio = v
            tree[size + i] = v * factor if ex[i].flight >= 0 else v
        tree_propagate_range(tree, size, lo, hi)
    c.sweep_pos = end % n


# ---------------------------------------------------------------------------------------
# loss feedback: [B, C] entries to one loss per example
# ---------------------------------------------------------------------------------------
#: ``mode`` codes of :func:`reduce_entries`, in the order of
#: ``longtail.losses.per_example_loss``'s reductions
REDUCE_MODES = {"mean": 0, "sum": 1, "max": 2, "balanced": 3}


@njit(cache=True, nogil=True, inline="always", fastmath={"reassoc"})
def _row_max(row, c):
    """Largest entry of ``row[:c]``, NaN if one is NaN. Eight independent running
    maxima (the loop pipelines: one chain is latency-bound), then a sum that is NaN iff
    some entry is NaN or infinite (then the row is rescanned for a NaN)."""
    m0 = m1 = m2 = m3 = m4 = m5 = m6 = m7 = row[0]
    zero = np.float32(0.0)
    chk = zero
    c8 = c - c % 8
    for j in range(0, c8, 8):
        v = row[j]
        m0 = v if v > m0 else m0
        v = row[j + 1]
        m1 = v if v > m1 else m1
        v = row[j + 2]
        m2 = v if v > m2 else m2
        v = row[j + 3]
        m3 = v if v > m3 else m3
        v = row[j + 4]
        m4 = v if v > m4 else m4
        v = row[j + 5]
        m5 = v if v > m5 else m5
        v = row[j + 6]
        m6 = v if v > m6 else m6
        v = row[j + 7]
        m7 = v if v > m7 else m7
    for j in range(c8, c):
        v = row[j]
        m0 = v if v > m0 else m0
    m0 = m1 if m1 > m0 else m0
    m2 = m3 if m3 > m2 else m2
    m4 = m5 if m5 > m4 else m4
    m6 = m7 if m7 > m6 else m6
    m0 = m2 if m2 > m0 else m0
    m4 = m6 if m6 > m4 else m4
    m0 = m4 if m4 > m0 else m0
    for j in range(c):   # its own loop: vectorised
        chk += row[j] * zero
    if chk != chk:
        for j in range(c):
            if row[j] != row[j]:
                return np.float32(np.nan)
    return m0


@njit(cache=True, nogil=True, fastmath={"reassoc"})
def reduce_entries(entries, targets, mode, out):
    """Reduce element-wise losses ``entries`` (float32 ``[B, C]``, C-contiguous, C >= 1)
    to one float32 loss per row in ``out[B]``, in one pass over the row.

    ``mode`` (:data:`REDUCE_MODES`): 0 mean, 1 sum, 2 max (NaN propagates), 3 balanced:
    with ``targets`` (float32 ``[B, C]``, values in [0, 1] act as weights),
    ``pos = sum(l * t) / n_pos`` and ``neg = sum(l * (1 - t)) / n_neg`` where ``n_pos =
    sum(t)``, ``n_neg = sum(1 - t)`` (a zero count divides by 1), and the result is
    ``0.5 * (pos + neg)`` when both counts are > 0, else ``pos`` when ``n_pos > 0``, else
    ``neg`` -- the definition of ``longtail.losses.per_example_loss``. Other modes do not
    read ``targets`` (pass any float32 2-D array). Accumulates in float64, so the result
    is the float32 rounding of a nearly exact reduction.
    """
    b = entries.shape[0]
    c = entries.shape[1]
    for r in range(b):
        row = entries[r]
        if mode == 3:
            t_row = targets[r]
            ps = 0.0
            ns = 0.0
            npos = 0.0
            for j in range(c):
                v = np.float64(row[j])
                t = np.float64(t_row[j])
                ps += v * t
                ns += v * (1.0 - t)
                npos += t
            nneg = c - npos
            pm = ps / (npos if npos > 0.0 else 1.0)
            nm = ns / (nneg if nneg > 0.0 else 1.0)
            if npos > 0.0:
                res = 0.5 * (pm + nm) if nneg > 0.0 else pm
            else:
                res = nm
        elif mode == 2:
            res = np.float64(_row_max(row, c))
        else:
            s = 0.0
            for j in range(c):
                s += np.float64(row[j])
            res = s / c if mode == 0 else s
        out[r] = np.float32(res)
