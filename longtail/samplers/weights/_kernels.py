"""Numba kernels behind :mod:`longtail.samplers.weights.weighting`.

Every kernel takes the canonical LabelMatrix arrays unchanged (``offsets`` int64 and
``indices`` int32, read-only) and float64 vectors, so each compiles once. All kernels are
serial and O(nnz) per pass.
"""
from __future__ import annotations

import numpy as np
from numba import njit

# aggregation of label weights over an example's labels
AGG_MEAN, AGG_MAX, AGG_SUM, AGG_RAREST = 0, 1, 2, 3


@njit(cache=True)
def aggregate_rows(offsets, indices, label_w, counts, agg, empty_value):
    """Per-example aggregate of ``label_w`` over the example's labels (float64[n]).

    ``agg``: AGG_MEAN / AGG_MAX / AGG_SUM, or AGG_RAREST (the weight of the label with
    the fewest examples, the lowest id on ties). Rows without labels get ``empty_value``.
    """
    n = offsets.shape[0] - 1
    out = np.empty(n, dtype=np.float64)
    for i in range(n):
        start = offsets[i]
        stop = offsets[i + 1]
        if stop == start:
            out[i] = empty_value
            continue
        if agg == AGG_RAREST:
            best = indices[start]
            for p in range(start + 1, stop):
                c = indices[p]
                if counts[c] < counts[best]:
                    best = c
            out[i] = label_w[best]
        elif agg == AGG_MAX:
            # two independent chains (branch-free max) so the gathers overlap
            v0 = label_w[indices[start]]
            v1 = v0
            p = start + 1
            while p + 2 <= stop:
                v0 = max(v0, label_w[indices[p]])
                v1 = max(v1, label_w[indices[p + 1]])
                p += 2
            if p < stop:
                v0 = max(v0, label_w[indices[p]])
            out[i] = max(v0, v1)
        else:
            a0 = 0.0
            a1 = 0.0
            a2 = 0.0
            a3 = 0.0
            p = start
            while p + 4 <= stop:
                a0 += label_w[indices[p]]
                a1 += label_w[indices[p + 1]]
                a2 += label_w[indices[p + 2]]
                a3 += label_w[indices[p + 3]]
                p += 4
            while p < stop:
                a0 += label_w[indices[p]]
                p += 1
            acc = (a0 + a1) + (a2 + a3)
            out[i] = acc / (stop - start) if agg == AGG_MEAN else acc
    return out


@njit(cache=True)
def label_mass(offsets, indices, w, n_labels):
    """``s[c] = sum of w[i] over the examples i that carry label c`` (float64[n_labels])."""
    s = np.zeros(n_labels, dtype=np.float64)
    n = offsets.shape[0] - 1
    for i in range(n):
        wi = w[i]
        for p in range(offsets[i], offsets[i + 1]):
            s[indices[p]] += wi
    return s


@njit(cache=True)
def first_bad_weight(w):
    """``(position, code)`` of the first entry that is NaN (1), infinite (2) or negative
    (3); ``(-1, 0)`` when every entry is finite and >= 0. Also returns the sum."""
    total = 0.0
    for i in range(w.shape[0]):
        x = w[i]
        if np.isnan(x):
            return i, 1, total
        if np.isinf(x):
            return i, 2, total
        if x < 0.0:
            return i, 3, total
        total += x
    return -1, 0, total


# ---------------------------------------------------------------------------- solver
#
# Variables: log-weights u, one per labelled example. The weights w = exp(u) are kept at
# mean 1 inside [lo, hi] by the projection (shift u, then clip; a Newton search finds the
# shift). Draw probabilities p = w / sum(w); the share of draws that carry label c is
# s_c = sum_{i has c} p_i and its log-mismatch to the target t_c is e_c = log s_c - log t_c.
# The objective is
#
#     S(u) + lam * log(n * sum p_i^2)
#
# where S is a smooth max-minus-min of e (log-sum-exp with sharpness tau; it tends to
# log(max_c s_c/t_c) - log(min_c s_c/t_c), the log of the exposure ratio, as tau grows)
# and the second term is log(n / ESS) (Kish). It is minimised by a scaled projected
# gradient method (metric diag(w), i.e. multiplicative updates of w) with
# Barzilai-Borwein steps and a non-monotone Armijo search (SPG, Birgin, Martinez & Raydan
# 2000). lam is a multiplier for the constraint ESS >= rho * n, adapted every few
# iterations (raised while the ESS is below the floor, lowered above it); the best iterate
# that keeps the floor is returned. A function evaluation is one pass over the nonzeros
# (label shares), a gradient one more (gathering per-label terms per example).

_TAU = 20.0          # sharpness of the smooth max / min (in log-exposure units)
_DUAL_EVERY = 5      # iterations between multiplier updates


@njit(cache=True)
def _project(u, lo_log, hi_log, out, w):
    """``out = clip(u + t, lo_log, hi_log)`` with t such that mean(exp(out)) == 1;
    ``w = exp(out)``. Newton on t (the clipped mean is increasing and piecewise smooth in
    t), safeguarded by bisection; one exponential per entry."""
    n = u.shape[0]
    umax = u[0]
    umin = u[0]
    for i in range(n):
        if u[i] > umax:
            umax = u[i]
        if u[i] < umin:
            umin = u[i]
    acc = 0.0
    for i in range(n):
        w[i] = np.exp(u[i] - umax)
        acc += w[i]
    lo = np.exp(lo_log)
    hi = np.exp(hi_log)
    t = -(umax + np.log(acc / n))        # the shift without clipping
    a = lo_log - umax - 1.0               # every entry clipped low: mean < 1
    b = hi_log - umin + 1.0               # every entry clipped high: mean > 1
    for _ in range(200):
        big_t = np.exp(t + umax)
        tot = 0.0
        der = 0.0
        for i in range(n):
            v = w[i] * big_t
            if v <= lo:
                tot += lo
            elif v >= hi:
                tot += hi
            else:
                tot += v
                der += v
        f = tot / n - 1.0
        if abs(f) < 1e-13:
            break
        if f > 0.0:
            b = t
        else:
            a = t
        if b - a < 1e-15:
            break
        t_new = t - f * n / der if der > 0.0 else 0.5 * (a + b)
        if not (a < t_new < b):
            t_new = 0.5 * (a + b)
        t = t_new
    big_t = np.exp(t + umax)
    for i in range(n):
        v = u[i] + t
        if v <= lo_log:
            out[i] = lo_log
            w[i] = lo
        elif v >= hi_log:
            out[i] = hi_log
            w[i] = hi
        else:
            out[i] = v
            w[i] = w[i] * big_t


@njit(cache=True)
def _evaluate(w, offsets, indices, logt, m, tau, s, g):
    """Spread S and penalty at weights ``w``; fills s (label shares) and g (dS/de_c / s_c).

    Returns ``(spread, log(n sum p^2), sum p^2)``."""
    n = w.shape[0]
    L = logt.shape[0]
    total = 0.0
    for i in range(n):
        total += w[i]
    inv = 1.0 / total
    p2 = 0.0
    s[:] = 0.0
    for i in range(n):
        p = w[i] * inv
        p2 += p * p
        for q in range(offsets[i], offsets[i + 1]):
            s[indices[q]] += p
    emax = -np.inf
    emin = np.inf
    for c in range(L):
        if m[c] > 0.0:
            e = np.log(s[c]) - logt[c]
            g[c] = e
            if e > emax:
                emax = e
            if e < emin:
                emin = e
        else:
            g[c] = 0.0
    if not emax > emin:               # nothing to balance (at most one target label)
        g[:] = 0.0
        return 0.0, np.log(n * p2), p2
    zp = 0.0
    zm = 0.0
    for c in range(L):
        if m[c] > 0.0:
            zp += m[c] * np.exp(tau * (g[c] - emax))
            zm += m[c] * np.exp(-tau * (g[c] - emin))
    spread = (emax + np.log(zp) / tau) - (emin - np.log(zm) / tau)
    for c in range(L):
        if m[c] > 0.0:
            e = g[c]
            gc = m[c] * (np.exp(tau * (e - emax)) / zp - np.exp(-tau * (e - emin)) / zm)
            g[c] = gc / s[c]
    return spread, np.log(n * p2), p2


@njit(cache=True)
def _grad_parts(offsets, indices, w, g, p2, gs, gp):
    """Gradients in u of the spread (gs) and of the penalty log(n sum p^2) (gp)."""
    n = w.shape[0]
    total = 0.0
    for i in range(n):
        total += w[i]
    inv = 1.0 / total
    for i in range(n):
        p = w[i] * inv
        a0 = 0.0
        a1 = 0.0
        q = offsets[i]
        stop = offsets[i + 1]
        while q + 2 <= stop:
            a0 += g[indices[q]]
            a1 += g[indices[q + 1]]
            q += 2
        if q < stop:
            a0 += g[indices[q]]
        gs[i] = p * (a0 + a1)
        gp[i] = 2.0 * (p * p / p2 - p)


@njit(cache=True)
def _ess_fraction(w):
    tot = 0.0
    sq = 0.0
    for i in range(w.shape[0]):
        tot += w[i]
        sq += w[i] * w[i]
    return tot * tot / (w.shape[0] * sq)


@njit(cache=True)
def solve_exposure(offsets, indices, logt, m, lo, hi, rho, lam0, max_iter):
    """Exposure-targeting weights for every row of a matrix whose rows all have labels.

    Parameters: target log-shares ``logt`` and label mask/weights ``m`` (> 0 for the
    labels that count), bounds ``lo <= w <= hi`` at mean 1, ESS floor ``rho`` (fraction of
    n; <= 0 for none), initial multiplier ``lam0`` and the number of iterations.

    Returns ``(w, spread, ess_fraction, iterations, lam)``.
    """
    n = offsets.shape[0] - 1
    L = logt.shape[0]
    tau = _TAU
    lo_log = np.log(lo)
    hi_log = np.log(hi)
    u = np.zeros(n)
    w = np.empty(n)
    best_u = np.empty(n)
    s = np.empty(L)
    g = np.empty(L)
    gs = np.empty(n)
    gp = np.empty(n)
    grad = np.empty(n)
    old = np.empty(n)
    u_new = np.empty(n)
    w_new = np.empty(n)
    d = np.empty(n)
    _project(np.zeros(n), lo_log, hi_log, u, w)
    lam = lam0 if rho > 0.0 else 0.0
    spread, pen, p2 = _evaluate(w, offsets, indices, logt, m, tau, s, g)
    _grad_parts(offsets, indices, w, g, p2, gs, gp)
    f = spread + lam * pen
    best_u[:] = u
    best_spread = spread
    hist = np.full(8, -np.inf)
    hist[0] = f
    gmax = 0.0
    for i in range(n):
        grad[i] = gs[i] + lam * gp[i]
        if abs(grad[i] / w[i]) > gmax:
            gmax = abs(grad[i] / w[i])
    if gmax == 0.0:
        return w.copy(), spread, _ess_fraction(w), 0, lam
    alpha = 1.0 / gmax            # first step moves the largest log-weight by about 1
    it = 0
    while it < max_iter:
        it += 1
        gd = 0.0
        for _ in range(20):
            for i in range(n):
                d[i] = u[i] - alpha * grad[i] / w[i]
            _project(d, lo_log, hi_log, u_new, w_new)
            gd = 0.0
            for i in range(n):
                d[i] = u_new[i] - u[i]
                gd += grad[i] * d[i]
            if gd < 0.0:
                break
            # the shift that restores mean 1 moved the clipping: a shorter step descends
            alpha *= 0.25
        if not gd < 0.0:
            break                  # stationary within the bounds
        fref = hist[0]
        for k in range(hist.shape[0]):
            if hist[k] > fref:
                fref = hist[k]
        step = 1.0
        ok = False
        for _ in range(40):
            if step < 1.0:
                for i in range(n):
                    u_new[i] = u[i] + step * d[i]
                    w_new[i] = np.exp(u_new[i])
            spread_new, pen_new, p2_new = _evaluate(w_new, offsets, indices, logt, m, tau,
                                                    s, g)
            f_new = spread_new + lam * pen_new
            if f_new <= fref + 1e-4 * step * gd:
                ok = True
                break
            step *= 0.5
        if not ok:
            break
        ss = 0.0
        for i in range(n):
            d[i] = step * d[i]
            u[i] = u_new[i]
            w[i] = w_new[i]
            ss += d[i] * d[i] * w[i]
            old[i] = grad[i]
        spread, pen, p2 = spread_new, pen_new, p2_new
        if (rho <= 0.0 or np.exp(-pen) >= rho) and spread < best_spread:
            best_spread = spread
            best_u[:] = u
        _grad_parts(offsets, indices, w, g, p2, gs, gp)
        if rho > 0.0 and it % _DUAL_EVERY == 0:
            # multiplier update: raise lam while the ESS is below the floor, lower above
            r = np.log(np.exp(-pen)) / np.log(rho)
            r = min(max(r, 0.5), 2.0)
            lam *= r
            hist[:] = -np.inf
        f = spread + lam * pen
        sy = 0.0
        for i in range(n):
            grad[i] = gs[i] + lam * gp[i]
            sy += d[i] * (grad[i] - old[i])
        alpha = ss / sy if sy > 0.0 else alpha * 4.0
        hist[it % hist.shape[0]] = f
    if rho > 0.0 and _ess_fraction(w) < rho:
        # pull the last iterate towards uniform weights until the floor holds
        a_lo = 0.0
        a_hi = 1.0
        for _ in range(40):
            a = 0.5 * (a_lo + a_hi)
            for i in range(n):
                d[i] = a * u[i]
            _project(d, lo_log, hi_log, u_new, w_new)
            if _ess_fraction(w_new) >= rho:
                a_lo = a
            else:
                a_hi = a
        for i in range(n):
            d[i] = a_lo * u[i]
        _project(d, lo_log, hi_log, u, w)
    else:
        _project(u.copy(), lo_log, hi_log, u, w)
    spread, pen, p2 = _evaluate(w, offsets, indices, logt, m, tau, s, g)
    if spread > best_spread:
        _project(best_u, lo_log, hi_log, u, w)
        spread, pen, p2 = _evaluate(w, offsets, indices, logt, m, tau, s, g)
    return w.copy(), spread, _ess_fraction(w), it, lam
