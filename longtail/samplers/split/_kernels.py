"""Numba kernels of iterative stratification (first order, pairs, groups, batches).

All kernels read the CSR arrays of a LabelMatrix (``offsets`` int64, ``indices`` int32,
read-only) or a unit matrix with the same types, and never build a dense matrix. The work
is O(nnz) plus the label queue, a *bucket queue* keyed by the remaining positive count of
every label (doubly linked lists, O(1) per update), so picking the rarest remaining label
stays O(1) amortised with 670,000 labels.

Arrays that travel together are passed as namedtuples (Numba types them as one argument):

* :data:`Units` ``(offsets, indices, mult, size)``: the things assigned to parts, as a
  CSR over labels: examples, groups of examples (an entry then carries the label's
  multiplicity in the group, ``mult``, and a unit its number of examples, ``size``) or
  examples over label *pairs* (second order). ``mult`` and ``size`` are empty for plain
  examples (multiplicity 1, size 1).
* :data:`Cols` ``(off, units, lab, col_of)``: the label columns of the units being split
  (a CSC): column ``c`` lists ``units[off[c]:off[c + 1]]`` (absolute offsets). ``lab`` is
  the label of every column and ``col_of`` (length n_labels, all -1) maps a label back to
  its column during a call; both are empty when the columns are the label ids.
* :data:`Parts` ``(r, target)``: the fractions whose share of every label each part wants,
  and the part sizes (in examples) that the balanced rule fills exactly.

A segment (:func:`stratify_segment`) pops the rarest label from the queue
(:mod:`~longtail.samplers.split._queue`), gives each of its unassigned units the part
chosen by the rule of ``method`` (:func:`choose_sechidis`, :func:`choose_balanced`),
re-files the labels whose count fell, and finally places the units without labels by the
same rule. Label ties in the queue go to the label that reached its count most recently
(LIFO within a bucket); initially, to the label seen last in column order.
(:mod:`~longtail.samplers.split._compat_kernels` replays iterative-stratification 0.1.9
instead.)
"""
from __future__ import annotations

from collections import namedtuple

import numpy as np
from numba import njit

from longtail._core.rng import rng_below, rng_init, rng_shuffle
from longtail.samplers.split._queue import KEY, QUEUE_COLS, queue_new, queue_pop, queue_refile

METHOD_SECHIDIS = 0
METHOD_BALANCED = 1
#: weight of the label being placed in the balanced score (the others weigh 1)
ACTIVE_WEIGHT = 5.0
#: a swap walk between two parts stops after this many rejected candidates in a row
MAX_FAILS = 32
#: candidates ranked per part and pair of parts in a swap pass
WALK = 2048

Units = namedtuple("Units", ["offsets", "indices", "mult", "size"])
Cols = namedtuple("Cols", ["off", "units", "lab", "col_of"])
Parts = namedtuple("Parts", ["r", "target"])
#: a segment's counts: positives per label and part (column k: 1 / positives), positives
#: per label, size filled per part, total size of the units
Tally = namedtuple("Tally", ["got", "pos", "filled", "total"])
#: per-part scratch of the rules: candidate mask, a key, the balanced scores, 1 / r
Work = namedtuple("Work", ["cand", "key", "score", "inv_r"])

_NO_I32 = np.empty(0, dtype=np.int32)
_NO_I64 = np.empty(0, dtype=np.int64)


def plain_units(offsets: np.ndarray, indices: np.ndarray) -> Units:
    """:data:`Units` of plain examples (multiplicity 1, size 1) over a CSR."""
    return Units(offsets, indices, _NO_I32, _NO_I64)


def label_cols(t_offsets: np.ndarray, t_indices: np.ndarray) -> Cols:
    """:data:`Cols` whose columns are the label ids, from the units' CSC."""
    return Cols(t_offsets, t_indices, _NO_I32, _NO_I32)


# ----------------------------------------------------------------------------- part choice
@njit(cache=True, nogil=True)
def _keep_max(key, cand):
    """Narrow the candidate mask ``cand`` to the candidates with the largest ``key``."""
    best = -np.inf
    for j in range(cand.shape[0]):
        if cand[j] and key[j] > best:
            best = key[j]
    for j in range(cand.shape[0]):
        cand[j] = cand[j] and key[j] == best


@njit(cache=True, nogil=True)
def _keep_min(key, cand):
    """Narrow the candidate mask ``cand`` to the candidates with the smallest ``key``."""
    best = np.inf
    for j in range(cand.shape[0]):
        if cand[j] and key[j] < best:
            best = key[j]
    for j in range(cand.shape[0]):
        cand[j] = cand[j] and key[j] == best


@njit(cache=True, nogil=True)
def _pick(state, cand):
    """One of the candidates, uniformly (a draw only when there are several)."""
    n = 0
    for j in range(cand.shape[0]):
        n += cand[j]
    t = rng_below(state, n) if n > 1 else 0
    for j in range(cand.shape[0]):
        if cand[j]:
            if t == 0:
                return j
            t -= 1
    return -1


@njit(cache=True, nogil=True)
def choose_sechidis(parts, tally, active, work, state):
    """Sechidis et al.: the part that wants the ``active`` label most (largest
    ``r_j |D^l| - got_jl``; skipped when ``active`` < 0, a unit without labels), then the
    part that wants the most examples (largest ``r_j * total - filled_j``), then random."""
    r = parts.r
    got, pos, filled, total = tally
    cand, key = work.cand, work.key
    k = r.shape[0]
    for j in range(k):
        cand[j] = True
    if active >= 0:
        ca = np.float64(pos[active])
        for j in range(k):
            key[j] = r[j] * ca - got[active, j]
        _keep_max(key, cand)
    fk = np.float64(total)
    for j in range(k):
        key[j] = r[j] * fk - filled[j]
    _keep_max(key, cand)
    return _pick(state, cand)


@njit(cache=True, nogil=True)
def choose_balanced(units, u, w, col_of, parts, tally, active, work, state):
    """Balanced: among the parts with room for unit ``u`` (size ``w``; if none, those with
    the most room), the part whose squared deviation ``sum_l w_l e_jl^2 / r_j`` grows
    least, then the one with the most room, then random.

    The growth is ``v_j = (1 / r_j) * sum_l w_l m_l (2 got_jl + m_l)`` over the unit's
    labels l (multiplicity ``m_l``), ``w_l = ACTIVE_WEIGHT / |D^l|`` for the ``active``
    label and ``1 / |D^l|`` for the others (``got[l, k]`` holds ``1 / |D^l|``).
    """
    target = parts.target
    offsets, indices, mult, _ = units
    got, _, filled, _ = tally
    cand, key, score, inv_r = work
    k = target.shape[0]
    for j in range(k):
        cand[j] = filled[j] + w <= target[j]
        key[j] = target[j] - filled[j]
    any_room = False
    for j in range(k):
        any_room = any_room or cand[j]
    if not any_room:
        for j in range(k):
            cand[j] = True
        _keep_max(key, cand)
    for j in range(k):
        score[j] = 0.0
    own = 0.0
    mapped = col_of.shape[0] > 0
    weighted = mult.shape[0] > 0
    for p in range(offsets[u], offsets[u + 1]):
        lm = col_of[indices[p]] if mapped else indices[p]
        mw = np.float64(mult[p]) if weighted else 1.0
        f = mw * got[lm, k]
        if lm == active:
            f *= ACTIVE_WEIGHT
        own += f * mw
        for j in range(k):
            score[j] += got[lm, j] * f
    for j in range(k):
        score[j] = (2.0 * score[j] + own) * inv_r[j]
    _keep_min(score, cand)
    _keep_max(key, cand)
    return _pick(state, cand)


# ----------------------------------------------------------------------------- one segment
#: the segment's flag per label in its queue row: touched during the current column
TOUCHED = QUEUE_COLS


@njit(cache=True, nogil=True)
def _segment_positives(units, members, cols, part):
    """Positives of every column among ``members`` (int64[n_cols]) and their total size;
    marks every member unassigned (``part[u] = -1``)."""
    offsets, indices, mult, size = units
    col_off, col_of = cols.off, cols.col_of
    nl = col_off.shape[0] - 1
    total = 0
    weighted = size.shape[0] > 0
    for i in range(members.shape[0]):
        u = members[i]
        total += size[u] if weighted else 1
        part[u] = -1
    pos = np.zeros(nl, dtype=np.int64)
    if weighted:
        mapped = col_of.shape[0] > 0
        for i in range(members.shape[0]):
            u = members[i]
            for p in range(offsets[u], offsets[u + 1]):
                m = indices[p]
                pos[col_of[m] if mapped else m] += mult[p]
    else:
        for c in range(nl):
            pos[c] = col_off[c + 1] - col_off[c]
    return pos, total


@njit(cache=True, nogil=True)
def _count_unit(units, u, j, col_of, got, node, touched, nt):
    """Count unit ``u``'s labels in part ``j`` (``got``) and off their keys (remaining
    positives) in the queue rows ``node``; labels touched for the first time are appended
    to ``touched``. Returns the new number of touched labels."""
    offsets, indices, mult, _ = units
    mapped = col_of.shape[0] > 0
    weighted = mult.shape[0] > 0
    for p in range(offsets[u], offsets[u + 1]):
        lm = col_of[indices[p]] if mapped else indices[p]
        mw = np.int64(mult[p]) if weighted else np.int64(1)
        got[lm, j] += mw
        node[lm, KEY] -= mw
        if node[lm, TOUCHED] == 0:
            node[lm, TOUCHED] = 1
            touched[nt] = lm
            nt += 1
    return nt


@njit(cache=True, nogil=True)
def stratify_segment(units, members, cols, parts, method, rotate, state, part):
    """Assign the units ``members`` to ``len(parts.r)`` parts; writes ``part[unit]``.

    ``cols`` are the columns of the labels of ``members`` (holding only members); a
    label's units are visited in column order, from a random start when ``rotate``;
    ``members`` order only matters for units without labels. Returns
    ``(got, pos)``: positives of every column per part (float64[n_cols, k + 1], column k
    holds 1 / positives) and per column (int64).
    """
    k = parts.r.shape[0]
    col_off, col_units, lab, col_of = cols
    nl = col_off.shape[0] - 1
    for c in range(lab.shape[0]):
        col_of[lab[c]] = c
    pos, total = _segment_positives(units, members, cols, part)
    # per-label state in two row-major tables (one cache line or two per label):
    # got[l, :k] assigned positives per part, got[l, k] = 1 / positives; the queue row
    # (filed under, previous, next, remaining positives = key, touched)
    got = np.zeros((nl, k + 1), dtype=np.float64)
    for c in range(nl):
        got[c, k] = 1.0 / pos[c] if pos[c] > 0 else 0.0
    tally = Tally(got, pos, np.zeros(k, dtype=np.int64), total)
    q = queue_new(pos, QUEUE_COLS + 1)
    node = q.node
    work = Work(np.empty(k, dtype=np.bool_), np.empty(k, dtype=np.float64),
                np.empty(k, dtype=np.float64), np.empty(k, dtype=np.float64))
    for j in range(k):
        work.inv_r[j] = 1.0 / parts.r[j] if parts.r[j] > 0 else 0.0
    touched = np.empty(nl, dtype=np.int64)
    filled, size = tally.filled, units.size
    weighted = size.shape[0] > 0
    while True:
        # the units of the rarest label, from a random start in its column; once no
        # label is left (``active`` -1), every member in order: those without labels
        active = queue_pop(q)
        if active >= 0:
            c0 = col_off[active]
            clen = col_off[active + 1] - c0
            start = rng_below(state, clen) if rotate and clen > 1 else 0
        else:
            c0 = 0
            clen = members.shape[0]
            start = 0
        nt = np.int64(0)  # not a literal 0: the callees compile once
        for qq in range(clen):
            at = qq + start
            if at >= clen:
                at -= clen
            u = col_units[c0 + at] if active >= 0 else members[at]
            if part[u] >= 0:
                continue
            w = size[u] if weighted else 1
            if method == METHOD_SECHIDIS:
                j = choose_sechidis(parts, tally, active, work, state)
            else:
                j = choose_balanced(units, u, w, col_of, parts, tally, active, work, state)
            part[u] = j
            filled[j] += w
            nt = _count_unit(units, u, j, col_of, got, node, touched, nt)
        if active < 0:
            break
        # the labels whose count fell move to their new bucket, in order of first touch
        # (the last one touched wins the next tie); the active label has none left
        for a in range(nt):
            node[touched[a], TOUCHED] = 0
        queue_refile(q, touched, nt)
    for c in range(lab.shape[0]):
        col_of[lab[c]] = -1
    return got, pos


@njit(cache=True)
def stratify(units, cols, parts, method, seed, shuffle, refine):
    """Parts of all units (int32[n_units]), then ``refine`` swap passes.

    ``cols``: the units' label columns (:func:`label_cols` of their CSC, unit ids
    ascending). With ``shuffle`` every label's units are visited from a seeded random
    start and units without labels in a random order. Swaps (:func:`refine_swaps`) only
    for the balanced method on plain examples.
    """
    n = units.offsets.shape[0] - 1
    k = parts.r.shape[0]
    state = rng_init(seed)
    members = np.arange(n, dtype=np.int64)
    if shuffle:
        rng_shuffle(state, members)
    part = np.empty(n, dtype=np.int32)
    got, pos = stratify_segment(units, members, cols, parts, method, shuffle, state, part)
    if refine > 0 and method == METHOD_BALANCED and units.size.shape[0] == 0:
        for m in range(got.shape[0]):
            c = np.float64(pos[m])
            for j in range(k):
                got[m, j] -= parts.r[j] * c
        refine_swaps(units.offsets, units.indices, part, parts.r, got, refine)
    return part


@njit(cache=True, nogil=True)
def stratified_batches(units, t_offsets, t_indices, batch_sizes, seed, arity):
    """Partition all examples (plain ``units``) into ``len(batch_sizes)`` stratified
    batches; ``t_offsets`` / ``t_indices`` are their CSC (label -> example ids).

    Recursive k-way splitting (k <= ``arity``) with the balanced rule, level by level: a
    segment holding B batches is split into k groups of about B / k batches, each sized
    exactly, until every segment is one batch. The CSC of every child segment is its
    parent's, filtered (one sequential pass), so no level rebuilds it from the rows;
    within a column units stay in id order and are visited from a random start.
    Returns ``(order, starts)``: batch b is ``order[starts[b]:starts[b + 1]]``.
    """
    n = units.offsets.shape[0] - 1
    n_labels = t_offsets.shape[0] - 1
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
            members = order[s:e]
            k = min(arity, nbs)
            for i in range(k + 1):
                bounds[i] = b0 + (i * nbs) // k
            total = e - s
            parts = Parts(np.empty(k, dtype=np.float64), np.empty(k, dtype=np.int64))
            for i in range(k):
                parts.target[i] = starts[bounds[i + 1]] - starts[bounds[i]]
                parts.r[i] = parts.target[i] / total
            got, _ = stratify_segment(units, members, Cols(cstart[c0:c1 + 1], cu,
                                                           clab[c0:c1], local_of),
                                      parts, METHOD_BALANCED, True, state, part)
            # children's units: stable partition of the segment
            for i in range(k):
                fillu[i] = starts[bounds[i]] - s
            for i in range(total):
                u = members[i]
                j = part[u]
                tmp[fillu[j]] = u
                fillu[j] += 1
            for i in range(total):
                members[i] = tmp[i]
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


@njit(cache=True, nogil=True)
def group_batches(offsets, indices, n_labels, rows, batch_sizes, seed, arity):
    """:func:`stratified_batches` of the examples ``rows`` (int64 ids, ascending) of a
    CSR: their rows and CSC are gathered here (no GIL held: groups build in parallel
    threads), and ``order`` holds the original example ids."""
    m = rows.shape[0]
    sub_off = np.empty(m + 1, dtype=np.int64)
    sub_off[0] = 0
    for i in range(m):
        r = rows[i]
        sub_off[i + 1] = sub_off[i] + offsets[r + 1] - offsets[r]
    sub_ind = np.empty(sub_off[m], dtype=np.int32)
    for i in range(m):
        r = rows[i]
        sub_ind[sub_off[i]:sub_off[i + 1]] = indices[offsets[r]:offsets[r + 1]]
    t_off = np.zeros(n_labels + 1, dtype=np.int64)
    for p in range(sub_ind.shape[0]):
        t_off[sub_ind[p] + 1] += 1
    for c in range(n_labels):
        t_off[c + 1] += t_off[c]
    fill = t_off[:-1].copy()
    t_ind = np.empty(sub_ind.shape[0], dtype=np.int32)
    for i in range(m):
        for p in range(sub_off[i], sub_off[i + 1]):
            c = sub_ind[p]
            t_ind[fill[c]] = i
            fill[c] += 1
    units = Units(sub_off, sub_ind, np.empty(0, dtype=np.int32), np.empty(0, dtype=np.int64))
    order, starts = stratified_batches(units, t_off, t_ind, batch_sizes, seed, arity)
    for j in range(order.shape[0]):
        order[j] = rows[order[j]]
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
def _move_change(offsets, indices, x, y, a, b, w, e, mark, d):
    """``d`` plus the change of ``sum_l w_j e_jl^2`` when example ``x`` moves from part
    ``a`` to part ``b`` and ``y`` the other way, from the labels of x that y lacks (the
    shared ones cancel); ``mark`` is all False before and after."""
    for p in range(offsets[y], offsets[y + 1]):
        mark[indices[p]] = True
    for p in range(offsets[x], offsets[x + 1]):
        m = indices[p]
        if not mark[m]:
            d += w[a] * (1.0 - 2.0 * e[m, a]) + w[b] * (1.0 + 2.0 * e[m, b])
    for p in range(offsets[y], offsets[y + 1]):
        mark[indices[p]] = False
    return d


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
                    d = _move_change(offsets, indices, x, y, A, B, w, e, mark, 0.0)
                    d = _move_change(offsets, indices, y, x, B, A, w, e, mark, d)
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
def _count_labels(offsets, indices, rows, acc, touched):
    """Add the labels of ``rows`` to ``acc``; the labels new to it are listed in
    ``touched`` (returns how many)."""
    nt = 0
    for t in range(rows.shape[0]):
        i = rows[t]
        for p in range(offsets[i], offsets[i + 1]):
            m = indices[p]
            if acc[m] == 0:
                touched[nt] = m
                nt += 1
            acc[m] += 1
    return nt


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
        nt = _count_labels(offsets, indices, members[gstart[g]:gstart[g + 1]], acc, touched)
        out_off[g + 1] = out_off[g] + nt
        for a in range(nt):
            acc[touched[a]] = 0
    out_idx = np.empty(out_off[n_groups], dtype=np.int32)
    out_mul = np.empty(out_off[n_groups], dtype=np.int32)
    for g in range(n_groups):
        nt = _count_labels(offsets, indices, members[gstart[g]:gstart[g + 1]], acc, touched)
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
