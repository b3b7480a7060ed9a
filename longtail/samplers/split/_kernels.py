"""Numba kernels of iterative stratification (first order, pairs, groups, batches).

All kernels take the CSR arrays of a LabelMatrix (``offsets`` int64, read-only;
``indices`` int32, read-only) or a unit matrix with the same types, and never build a dense
matrix. The work is O(nnz) plus the label queue, which is a *bucket queue* keyed by the
remaining positive count of each label (doubly linked lists, O(1) per update), so picking
the rarest remaining label stays O(1) amortised with 670,000 labels.

Units are the things that are assigned to parts: examples, groups of examples (rows then
carry a multiplicity per label in ``data`` and a size in ``unit_size``), or examples over
label *pairs* (second order). ``weighted=False`` means multiplicity 1 and size 1 (``data``
and ``unit_size`` are then empty and never read).

Label ties in the queue go to the label that reached its count most recently (LIFO within
a bucket); initially, to the label seen last in processing order. The compatibility kernel
instead replays iterative-stratification 0.1.9 exactly (a segment tree gives the k-th
lowest label id among the rarest ones, MT19937 replays NumPy's ``RandomState``).
"""
from __future__ import annotations

import numpy as np
from numba import njit, uint32, uint64

from longtail._core.rng import rng_below, rng_init, rng_shuffle

METHOD_SECHIDIS = 0
METHOD_BALANCED = 1
#: weight of the label being placed in the balanced score (the others weigh 1)
ACTIVE_WEIGHT = 5.0
#: a swap walk between two parts stops after this many rejected candidates in a row
MAX_FAILS = 32
#: candidates ranked per part and pair of parts in a swap pass
WALK = 2048


# ----------------------------------------------------------------------------- helpers
@njit(cache=True, inline="always")
def _row_weight(data, weighted, p):
    if weighted:
        return np.int64(data[p])
    return np.int64(1)


@njit(cache=True)
def _pick_tie(state, ties, n_ties):
    """One of ``ties[:n_ties]``, uniformly (one draw only when there is a tie)."""
    if n_ties == 1:
        return ties[0]
    return ties[rng_below(state, n_ties)]


# ----------------------------------------------------------------------------- one segment
@njit(cache=True)
def stratify_segment(offsets, indices, data, weighted, unit_size, units, r, targets,
                     method, state, mapped, local_of, part, col_off, col_units, col_lab,
                     rotate):
    """Assign ``units`` to ``len(r)`` parts; writes ``part[unit]``.

    The segment's labels are the columns of a CSC: column ``c`` lists the units with label
    ``col_lab[c]`` as ``col_units[col_off[c]:col_off[c + 1]]`` (absolute offsets). With
    ``mapped``, ``local_of`` (length n_labels, all -1) maps a label id to its column for
    the duration of the call; without, column = label id (``col_lab`` unused). A unit's
    examples of a label are visited in column order, from a random start when
    ``rotate``; ``units`` order only matters for units without labels.

    ``targets`` are the part sizes (in examples) the balanced rule fills exactly; ``r``
    the fractions whose share of every label each part wants. Returns ``(got, pos)``:
    positives of every column per part (float64[n_cols, k + 1], column k holds
    1 / positives) and per column (int64).
    """
    k = r.shape[0]
    nu = units.shape[0]
    nl = col_off.shape[0] - 1
    if mapped:
        for lm in range(nl):
            local_of[col_lab[lm]] = lm
    total = 0
    for i in range(nu):
        u = units[i]
        total += unit_size[u] if weighted else 1
        part[u] = -1
    pos = np.zeros(nl, dtype=np.int64)
    if weighted:
        for i in range(nu):
            u = units[i]
            for p in range(offsets[u], offsets[u + 1]):
                m = indices[p]
                pos[local_of[m] if mapped else m] += data[p]
    else:
        for lm in range(nl):
            pos[lm] = col_off[lm + 1] - col_off[lm]
    # per-label state in two row-major tables (one cache line or two per label):
    # got[l, :k] assigned positives per part, got[l, k] = 1 / positives;
    # st[l] = (remaining, count it is filed under, previous, next, touched)
    got = np.zeros((nl, k + 1), dtype=np.float64)
    st = np.zeros((nl, 5), dtype=np.int64)
    maxc = 0
    for lm in range(nl):
        c = pos[lm]
        got[lm, k] = 1.0 / c if c > 0 else 0.0
        st[lm, 0] = c
        if c > maxc:
            maxc = c
    # bucket queue over remaining counts (head insertion: LIFO within a bucket)
    head = np.full(maxc + 1, -1, dtype=np.int64)
    touched = np.empty(nl, dtype=np.int64)
    cur = maxc + 1
    for lm in range(nl):
        c = pos[lm]
        st[lm, 1] = c
        if c <= 0:
            continue
        h = head[c]
        st[lm, 3] = h
        st[lm, 2] = -1
        if h >= 0:
            st[h, 2] = lm
        head[c] = lm
        if c < cur:
            cur = c
    inv_r = np.empty(k, dtype=np.float64)
    for j in range(k):
        inv_r[j] = 1.0 / r[j] if r[j] > 0 else 0.0
    size = np.zeros(k, dtype=np.int64)
    fill_j = np.empty(k, dtype=np.float64)
    ties = np.empty(k, dtype=np.int64)
    eligible = np.empty(k, dtype=np.bool_)
    fk = np.float64(total)
    big = np.int64(1) << 62
    while True:
        while cur <= maxc and head[cur] < 0:
            cur += 1
        if cur > maxc:
            break
        active = head[cur]
        # unlink the active label (it is the head of its bucket)
        h = st[active, 3]
        head[cur] = h
        if h >= 0:
            st[h, 2] = -1
        nt = 0
        ca = np.float64(pos[active])
        c0 = col_off[active]
        clen = col_off[active + 1] - c0
        start = rng_below(state, clen) if rotate and clen > 1 else 0
        for qq in range(clen):
            q = qq + start
            if q >= clen:
                q -= clen
            u = col_units[c0 + q]
            if part[u] >= 0:
                continue
            w = unit_size[u] if weighted else 1
            if method == METHOD_SECHIDIS:
                # the part that most wants the active label (largest r_j |D^l| - got),
                # then the part that wants the most examples, then random
                best = -np.inf
                for j in range(k):
                    d = r[j] * ca - got[active, j]
                    if d > best:
                        best = d
                n_t = 0
                best2 = -np.inf
                for j in range(k):
                    if r[j] * ca - got[active, j] == best:
                        want = r[j] * fk - size[j]
                        if want > best2:
                            best2 = want
                            n_t = 0
                        if want == best2:
                            ties[n_t] = j
                            n_t += 1
            else:
                # balanced: parts with room only; the part whose squared deviation
                # sum_l w_l e_jl^2 / r_j grows least: v_j = (1 / r_j) * sum_l w_l m_l
                # (2 got_jl + m_l), w_l = ACTIVE_WEIGHT / |D^l| for the active label,
                # 1 / |D^l| for the others; then most room; then random
                any_room = False
                for j in range(k):
                    eligible[j] = size[j] + w <= targets[j]
                    if eligible[j]:
                        any_room = True
                if not any_room:
                    most = -big
                    for j in range(k):
                        if targets[j] - size[j] > most:
                            most = targets[j] - size[j]
                    for j in range(k):
                        eligible[j] = targets[j] - size[j] == most
                for j in range(k):
                    fill_j[j] = 0.0
                own = 0.0
                for p in range(offsets[u], offsets[u + 1]):
                    lm = local_of[indices[p]] if mapped else indices[p]
                    mw = np.float64(_row_weight(data, weighted, p))
                    f = mw * got[lm, k]
                    if lm == active:
                        f *= ACTIVE_WEIGHT
                    own += f * mw
                    for j in range(k):
                        fill_j[j] += got[lm, j] * f
                best = np.inf
                for j in range(k):
                    fill_j[j] = (2.0 * fill_j[j] + own) * inv_r[j]
                    if eligible[j] and fill_j[j] < best:
                        best = fill_j[j]
                n_t = 0
                most = -big
                for j in range(k):
                    if eligible[j] and fill_j[j] == best:
                        room = targets[j] - size[j]
                        if room > most:
                            most = room
                            n_t = 0
                        if room == most:
                            ties[n_t] = j
                            n_t += 1
            j_sel = _pick_tie(state, ties, n_t)
            part[u] = j_sel
            size[j_sel] += w
            for p in range(offsets[u], offsets[u + 1]):
                lm = local_of[indices[p]] if mapped else indices[p]
                mw = _row_weight(data, weighted, p)
                got[lm, j_sel] += mw
                st[lm, 0] -= mw
                if st[lm, 4] == 0:
                    st[lm, 4] = 1
                    touched[nt] = lm
                    nt += 1
        # re-file the labels whose count fell, in order of first touch (head insertion:
        # the last one touched wins the next tie); the active label is done
        for a in range(nt):
            lm = touched[a]
            st[lm, 4] = 0
            if lm == active:
                continue
            new = st[lm, 0]
            old = st[lm, 1]
            pa = st[lm, 2]
            pb = st[lm, 3]
            if pa >= 0:
                st[pa, 3] = pb
            else:
                head[old] = pb
            if pb >= 0:
                st[pb, 2] = pa
            st[lm, 1] = new
            if new > 0:
                h = head[new]
                st[lm, 3] = h
                st[lm, 2] = -1
                if h >= 0:
                    st[h, 2] = lm
                head[new] = lm
                if new < cur:
                    cur = new
    # units without labels: the part that wants the most examples (sechidis) or has the
    # most room (balanced), ties random
    for i in range(nu):
        u = units[i]
        if part[u] >= 0:
            continue
        w = unit_size[u] if weighted else 1
        n_t = 0
        if method == METHOD_SECHIDIS:
            best = -np.inf
            for j in range(k):
                want = r[j] * fk - size[j]
                if want > best:
                    best = want
                    n_t = 0
                if want == best:
                    ties[n_t] = j
                    n_t += 1
        else:
            most = -big
            for j in range(k):
                room = targets[j] - size[j]
                if room > most:
                    most = room
                    n_t = 0
                if room == most:
                    ties[n_t] = j
                    n_t += 1
        j_sel = _pick_tie(state, ties, n_t)
        part[u] = j_sel
        size[j_sel] += w
    if mapped:
        for lm in range(nl):
            local_of[col_lab[lm]] = -1
    return got, pos


@njit(cache=True)
def stratify(offsets, indices, data, weighted, unit_size, r, targets, method, seed,
             shuffle, t_offsets, t_indices, refine):
    """Parts of all units (int32[n_units]), then ``refine`` swap passes.

    ``t_offsets`` / ``t_indices``: the CSC of the units (label -> unit ids, ascending).
    With ``shuffle`` every label's units are visited from a seeded random start and units
    without labels in a random order. Swaps (:func:`refine_swaps`) only for the balanced
    method on unweighted units.
    """
    n = offsets.shape[0] - 1
    k = r.shape[0]
    state = rng_init(seed)
    units = np.arange(n, dtype=np.int64)
    if shuffle:
        rng_shuffle(state, units)
    local_of = np.empty(0, dtype=np.int32)
    part = np.empty(n, dtype=np.int32)
    got, pos = stratify_segment(offsets, indices, data, weighted, unit_size, units, r,
                                targets, method, state, False, local_of, part, t_offsets,
                                t_indices, local_of, shuffle)
    if refine > 0 and method == METHOD_BALANCED and not weighted:
        for m in range(got.shape[0]):
            c = np.float64(pos[m])
            for j in range(k):
                got[m, j] -= r[j] * c
        refine_swaps(offsets, indices, part, r, got, refine)
    return part


@njit(cache=True)
def stratified_batches(offsets, indices, data, n_labels, batch_sizes, seed, arity,
                       t_offsets, t_indices):
    """Partition all examples into ``len(batch_sizes)`` stratified batches.

    Recursive k-way splitting (k <= ``arity``) with the balanced rule, level by level: a
    segment holding B batches is split into k groups of about B / k batches, each sized
    exactly, until every segment is one batch. The CSC of every child segment is its
    parent's, filtered (one sequential pass), so no level rebuilds it from the rows;
    within a column units stay in id order and are visited from a random start.
    Returns ``(order, starts)``: batch b is ``order[starts[b]:starts[b + 1]]``.
    """
    n = offsets.shape[0] - 1
    nb = batch_sizes.shape[0]
    state = rng_init(seed)
    order = np.arange(n, dtype=np.int64)
    rng_shuffle(state, order)
    starts = np.empty(nb + 1, dtype=np.int64)
    starts[0] = 0
    for b in range(nb):
        starts[b + 1] = starts[b] + batch_sizes[b]
    local_of = np.full(n_labels, -1, dtype=np.int32)
    part = np.empty(n, dtype=np.int32)
    unit_size = np.empty(0, dtype=np.int64)
    # level 0: one segment, the columns of every label with positives
    ncols = 0
    for m in range(n_labels):
        if t_offsets[m + 1] > t_offsets[m]:
            ncols += 1
    clab = np.empty(ncols, dtype=np.int32)
    cstart = np.empty(ncols + 1, dtype=np.int64)
    cu = t_indices.copy()
    c = 0
    cstart[0] = 0
    for m in range(n_labels):
        if t_offsets[m + 1] > t_offsets[m]:
            clab[c] = m
            cstart[c + 1] = t_offsets[m + 1]
            c += 1
    seg_b = np.empty(nb + 1, dtype=np.int64)   # segment s: batches seg_b[s]..seg_b[s+1]
    seg_c = np.empty(nb + 1, dtype=np.int64)   # and columns seg_c[s]..seg_c[s+1]
    seg_b[0] = 0
    seg_b[1] = nb
    seg_c[0] = 0
    seg_c[1] = ncols
    n_seg = 1
    r = np.empty(arity, dtype=np.float64)
    targets = np.empty(arity, dtype=np.int64)
    bounds = np.empty(arity + 1, dtype=np.int64)
    fillu = np.empty(arity, dtype=np.int64)
    tmp = np.empty(n, dtype=np.int64)
    while n_seg < nb:
        # next level: at most min(ncols * arity, nnz) columns
        cap = min(ncols * arity, cu.shape[0])
        n_clab = np.empty(cap, dtype=np.int32)
        n_cstart = np.empty(cap + 1, dtype=np.int64)
        n_cu = np.empty(cu.shape[0], dtype=np.int32)
        n_seg_b = np.empty(nb + 1, dtype=np.int64)
        n_seg_c = np.empty(nb + 1, dtype=np.int64)
        nn = 0        # next-level segments
        ncol2 = 0     # next-level columns
        n_cstart[0] = 0
        n_seg_b[0] = 0
        n_seg_c[0] = 0
        for sgi in range(n_seg):
            b0 = seg_b[sgi]
            b1 = seg_b[sgi + 1]
            c0 = seg_c[sgi]
            c1 = seg_c[sgi + 1]
            nbs = b1 - b0
            if nbs == 1:
                # a finished batch: nothing left to do, its columns are dropped
                nn += 1
                n_seg_b[nn] = b1
                n_seg_c[nn] = ncol2
                continue
            s = starts[b0]
            e = starts[b1]
            units = order[s:e]
            k = min(arity, nbs)
            for i in range(k + 1):
                bounds[i] = b0 + (i * nbs) // k
            total = e - s
            for i in range(k):
                targets[i] = starts[bounds[i + 1]] - starts[bounds[i]]
                r[i] = targets[i] / total
            got, _ = stratify_segment(offsets, indices, data, False, unit_size, units,
                                      r[:k], targets[:k], METHOD_BALANCED, state, True,
                                      local_of, part, cstart[c0:c1 + 1], cu, clab[c0:c1],
                                      True)
            # children's units: stable partition of the segment
            for i in range(k):
                fillu[i] = starts[bounds[i]] - s
            for i in range(total):
                u = units[i]
                j = part[u]
                tmp[fillu[j]] = u
                fillu[j] += 1
            for i in range(total):
                units[i] = tmp[i]
            # children's columns: every column split by part (the counts are the
            # segment's assigned positives), child by child; none for a single batch
            ncs = c1 - c0
            wpos = np.empty((k, ncs), dtype=np.int64)
            any_split = False
            for i in range(k):
                leaf = bounds[i + 1] - bounds[i] == 1
                any_split = any_split or not leaf
                for cc in range(ncs):
                    v = np.int64(got[cc, i])
                    if v > 0 and not leaf:
                        n_clab[ncol2] = clab[c0 + cc]
                        wpos[i, cc] = n_cstart[ncol2]      # write position
                        n_cstart[ncol2 + 1] = n_cstart[ncol2] + v
                        ncol2 += 1
                    else:
                        wpos[i, cc] = -1
                nn += 1
                n_seg_b[nn] = bounds[i + 1]
                n_seg_c[nn] = ncol2
            if not any_split:
                continue
            for cc in range(ncs):
                for q in range(cstart[c0 + cc], cstart[c0 + cc + 1]):
                    u = cu[q]
                    j = part[u]
                    if wpos[j, cc] >= 0:
                        n_cu[wpos[j, cc]] = u
                        wpos[j, cc] += 1
        clab = n_clab[:ncol2]
        cstart = n_cstart[:ncol2 + 1]
        cu = n_cu
        seg_b = n_seg_b
        seg_c = n_seg_c
        n_seg = nn
        ncols = ncol2
    return order, starts


@njit(cache=True)
def _smallest(mvals, count):
    """Positions of the ``count`` smallest values (all ties of the last one included),
    by value, ties by position."""
    if mvals.shape[0] > count:
        thr = np.partition(mvals.copy(), count - 1)[count - 1]
        keep = np.flatnonzero(mvals <= thr)
    else:
        keep = np.arange(mvals.shape[0])
    order = np.argsort(mvals[keep], kind="mergesort")
    return keep[order]


@njit(cache=True)
def refine_swaps(offsets, indices, part, r, e, passes):
    """Swap pairs of examples between parts while that lowers sum_j sum_l e_jl^2 / r_j.

    ``e[l, j]`` (float64[n_labels, k], updated in place) is the deviation of part j for
    label l: positives of l in part j - ``r_j`` * positives of l. A pass first sums, for
    every example x, ``S_j(x) = sum_{l in x} e[l, j]``; then, for every pair of parts
    A < B, ranks the examples of A by ``M(x) = |x| (w_A + w_B) - 2 w_A S_A(x) +
    2 w_B S_B(x)`` (the change of the objective if x alone moved to B; ``w_j = 1 / r_j``),
    those of B likewise (the ``WALK`` best of each), and walks both lists together,
    swapping the i-th of each where the exact change (labels the two share cancel,
    current e) is below -1e-9; the walk ends where the M sum is no longer negative or
    after ``MAX_FAILS`` rejections in a row. Sizes never change. Stops after ``passes``
    passes or a pass without a swap. Returns the number of swaps.
    """
    n = offsets.shape[0] - 1
    k = r.shape[0]
    n_labels = e.shape[0]
    w = np.empty(k, dtype=np.float64)
    for j in range(k):
        w[j] = 1.0 / r[j] if r[j] > 0 else 0.0
    sx = np.empty((n, k), dtype=np.float64)
    mark = np.zeros(n_labels, dtype=np.bool_)
    swaps = 0
    for _ in range(passes):
        for i in range(n):
            for j in range(k):
                sx[i, j] = 0.0
            for p in range(offsets[i], offsets[i + 1]):
                m = indices[p]
                for j in range(k):
                    sx[i, j] += e[m, j]
        done = 0
        for A in range(k):
            for B in range(A + 1, k):
                if w[A] == 0.0 or w[B] == 0.0:
                    continue
                xa = np.flatnonzero(part == A)
                yb = np.flatnonzero(part == B)
                if xa.shape[0] == 0 or yb.shape[0] == 0:
                    continue
                mx = np.empty(xa.shape[0], dtype=np.float64)
                my = np.empty(yb.shape[0], dtype=np.float64)
                for t in range(xa.shape[0]):
                    i = xa[t]
                    ln = np.float64(offsets[i + 1] - offsets[i])
                    mx[t] = ln * (w[A] + w[B]) - 2.0 * w[A] * sx[i, A] + 2.0 * w[B] * sx[i, B]
                for t in range(yb.shape[0]):
                    i = yb[t]
                    ln = np.float64(offsets[i + 1] - offsets[i])
                    my[t] = ln * (w[A] + w[B]) - 2.0 * w[B] * sx[i, B] + 2.0 * w[A] * sx[i, A]
                ox = _smallest(mx, WALK)
                oy = _smallest(my, WALK)
                fails = 0
                for t in range(min(ox.shape[0], oy.shape[0])):
                    if mx[ox[t]] + my[oy[t]] >= 0.0 or fails >= MAX_FAILS:
                        break
                    x = xa[ox[t]]
                    y = yb[oy[t]]
                    d = 0.0
                    for p in range(offsets[y], offsets[y + 1]):
                        mark[indices[p]] = True
                    for p in range(offsets[x], offsets[x + 1]):
                        m = indices[p]
                        if not mark[m]:
                            d += w[A] * (1.0 - 2.0 * e[m, A]) + w[B] * (1.0 + 2.0 * e[m, B])
                    for p in range(offsets[y], offsets[y + 1]):
                        mark[indices[p]] = False
                    for p in range(offsets[x], offsets[x + 1]):
                        mark[indices[p]] = True
                    for p in range(offsets[y], offsets[y + 1]):
                        m = indices[p]
                        if not mark[m]:
                            d += w[B] * (1.0 - 2.0 * e[m, B]) + w[A] * (1.0 + 2.0 * e[m, A])
                    for p in range(offsets[x], offsets[x + 1]):
                        mark[indices[p]] = False
                    if d < -1e-9:
                        for p in range(offsets[x], offsets[x + 1]):
                            m = indices[p]
                            e[m, A] -= 1.0
                            e[m, B] += 1.0
                        for p in range(offsets[y], offsets[y + 1]):
                            m = indices[p]
                            e[m, B] -= 1.0
                            e[m, A] += 1.0
                        part[x] = B
                        part[y] = A
                        done += 1
                        fails = 0
                    else:
                        fails += 1
        swaps += done
        if done == 0:
            break
    return swaps


# ----------------------------------------------------------------------------- units
@njit(cache=True)
def group_rows(offsets, indices, group_of, n_groups, n_labels):
    """Sum example rows into group rows: ``(offsets, labels, multiplicity, size)``."""
    n = offsets.shape[0] - 1
    gsize = np.zeros(n_groups, dtype=np.int64)
    for i in range(n):
        gsize[group_of[i]] += 1
    gstart = np.empty(n_groups + 1, dtype=np.int64)
    gstart[0] = 0
    for g in range(n_groups):
        gstart[g + 1] = gstart[g] + gsize[g]
    members = np.empty(n, dtype=np.int64)
    fill = gstart[:n_groups].copy()
    for i in range(n):
        g = group_of[i]
        members[fill[g]] = i
        fill[g] += 1
    acc = np.zeros(n_labels, dtype=np.int64)
    touched = np.empty(n_labels, dtype=np.int32)
    out_off = np.zeros(n_groups + 1, dtype=np.int64)
    # first pass: distinct labels per group
    for g in range(n_groups):
        nt = 0
        for t in range(gstart[g], gstart[g + 1]):
            i = members[t]
            for p in range(offsets[i], offsets[i + 1]):
                m = indices[p]
                if acc[m] == 0:
                    touched[nt] = m
                    nt += 1
                acc[m] += 1
        out_off[g + 1] = out_off[g] + nt
        for a in range(nt):
            acc[touched[a]] = 0
    out_idx = np.empty(out_off[n_groups], dtype=np.int32)
    out_mul = np.empty(out_off[n_groups], dtype=np.int32)
    for g in range(n_groups):
        nt = 0
        for t in range(gstart[g], gstart[g + 1]):
            i = members[t]
            for p in range(offsets[i], offsets[i + 1]):
                m = indices[p]
                if acc[m] == 0:
                    touched[nt] = m
                    nt += 1
                acc[m] += 1
        sel = np.sort(touched[:nt])
        base = out_off[g]
        for a in range(nt):
            m = sel[a]
            out_idx[base + a] = m
            out_mul[base + a] = acc[m]
            acc[m] = 0
    return out_off, out_idx, out_mul, gsize


@njit(cache=True)
def pair_entries(offsets, indices):
    """Number of second-order units (label pairs a <= b, singletons included)."""
    n = offsets.shape[0] - 1
    total = 0
    for i in range(n):
        t = offsets[i + 1] - offsets[i]
        total += t * (t + 1) // 2
    return total


@njit(cache=True)
def pair_keys(offsets, indices, n_labels):
    """Row pointers and int64 keys ``a * n_labels + b`` (a <= b) of every row's pairs."""
    n = offsets.shape[0] - 1
    out_off = np.empty(n + 1, dtype=np.int64)
    out_off[0] = 0
    for i in range(n):
        t = offsets[i + 1] - offsets[i]
        out_off[i + 1] = out_off[i] + t * (t + 1) // 2
    keys = np.empty(out_off[n], dtype=np.int64)
    L = np.int64(n_labels)
    for i in range(n):
        q = out_off[i]
        for p in range(offsets[i], offsets[i + 1]):
            a = np.int64(indices[p])
            for p2 in range(p, offsets[i + 1]):
                keys[q] = a * L + indices[p2]
                q += 1
    return out_off, keys


# ----------------------------------------------------------------------------- report
@njit(cache=True)
def part_label_counts(offsets, indices, part, k, n_labels):
    """Positives of every label in every part: int64[k, n_labels]."""
    n = offsets.shape[0] - 1
    out = np.zeros((k, n_labels), dtype=np.int64)
    for i in range(n):
        j = part[i]
        for p in range(offsets[i], offsets[i + 1]):
            out[j, indices[p]] += 1
    return out


@njit(cache=True)
def pair_part_counts(t_offsets, t_indices, pa, pb, parts, k):
    """Examples with both labels ``pa[i]`` and ``pb[i]`` per part (sorted-column merge).

    ``parts`` is int32[n_sets, n]: the counts of every part assignment in one pass.
    Returns int64[n_sets, n_pairs, k].
    """
    n_pairs = pa.shape[0]
    n_sets = parts.shape[0]
    out = np.zeros((n_sets, n_pairs, k), dtype=np.int64)
    for i in range(n_pairs):
        p = t_offsets[pa[i]]
        pe = t_offsets[pa[i] + 1]
        q = t_offsets[pb[i]]
        qe = t_offsets[pb[i] + 1]
        while p < pe and q < qe:
            x = t_indices[p]
            y = t_indices[q]
            if x < y:
                p += 1
            elif y < x:
                q += 1
            else:
                for s in range(n_sets):
                    out[s, i, parts[s, x]] += 1
                p += 1
                q += 1
    return out


@njit(cache=True)
def sample_pair_occurrences(offsets, indices, cum, n_draws, seed):
    """Draw ``n_draws`` pair occurrences (example weighted by its pair count, then two of
    its labels uniformly): returns int64 keys ``a * 2**32 + b`` with a < b."""
    state = rng_init(seed)
    out = np.empty(n_draws, dtype=np.int64)
    total = cum[-1]
    for d in range(n_draws):
        x = rng_below(state, total)
        i = np.searchsorted(cum, x, side="right")
        t = offsets[i + 1] - offsets[i]
        a = rng_below(state, t)
        b = rng_below(state, t - 1)
        if b >= a:
            b += 1
        la = np.int64(indices[offsets[i] + a])
        lb = np.int64(indices[offsets[i] + b])
        if la > lb:
            la, lb = lb, la
        out[d] = (la << 32) | lb
    return out


# ----------------------------------------------------------------------------- compat
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
