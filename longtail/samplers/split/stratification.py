"""Iterative stratification of multilabel data, sparse and at scale.

:func:`iterative_stratification` assigns every example to one of k parts with given
fractions so that every label (rare ones included) is spread over the parts in proportion
to the fractions. It works on the CSR :class:`~longtail.datasets.LabelMatrix` and its
cached transpose (CSC), never on a dense matrix: O(nnz * k) work plus a bucket queue keyed
by remaining count (O(1) per update) that picks the rarest remaining label.

Methods
-------
``method="sechidis"``
    The algorithm of Sechidis, Tsoumakas & Vlahavas (2011): take the label with the
    fewest remaining (unassigned) examples; give each of its examples to the part that
    wants that label most (largest remaining demand ``c_j^l = r_j * |D^l| - assigned``),
    ties to the part that wants the most examples, then random. Examples without labels
    go last to the part that wants the most examples. With ``compat="iterstrat"`` the
    parts are *identical* to those of iterative-stratification 0.1.9 for the same
    ``random_state`` (its NumPy ``RandomState`` draws are replayed: the shuffle, then a
    ``choice`` exactly where the package breaks a tie).
``method="balanced"`` (default)
    Same label order, a different part choice. An example ``x`` may only go to a part
    that has not reached its size ``n_j`` (sizes are ``r_j * n`` rounded by largest
    remainder, so every part ends within +-1 of ``r_j * n``: ED < 1). Among those, it
    goes to the part whose squared deviation ``sum_l w_l e_jl^2 / r_j`` grows least,
    where ``e_jl`` = (positives of label l in part j) - ``r_j |D^l|`` and
    ``w_l = 1 / |D^l|`` (the label being placed weighs ``ACTIVE_WEIGHT = 5`` times
    more): the part with the smallest

        v_j(x) = (1 / r_j) * sum_{l in x} w_l * (2 g_jl + 1)

    (``g_jl``: positives of l already in part j). With equal fractions that is the part
    holding the least of the example's labels so far, each relative to the label's
    size; with unequal fractions the ``+ 1`` sends a label's first examples to the
    larger parts, as LD wants. Ties go to the part with the most room, then random.
    Then a few passes of pairwise swaps between parts lower the same objective
    (sizes kept; ``refine``). With ``groups`` the unit is a group: its size is its number of
    examples, its labels carry multiplicities ``m_l`` (``v_j`` sums
    ``w_l m_l (2 g_jl + m_l)``), it goes to a part it fits in, else to the part with the
    most room, and there is no swap pass.

Second order (``order=2``, Szymański & Kajdanowicz 2017): the units of the queue and of
the demand are label pairs ``(a, b)`` with ``a <= b`` present in an example (single
labels included as ``(a, a)``), as in scikit-multilearn. Meant for sparse data (a few
labels per example); refused with the pair count where the pairs would not fit in memory.

The quality of a split is measured by
:func:`~longtail.samplers.split.report.stratification_report`.

Example
-------
>>> from longtail import LabelMatrix, iterative_stratification, stratification_report
>>> y = LabelMatrix.from_lists([[0], [0, 1], [1], [0], [1], [0, 1]] * 10)
>>> parts = iterative_stratification(y, [0.5, 0.5], seed=0)
>>> np.bincount(parts).tolist()
[30, 30]
"""
from __future__ import annotations

from typing import TYPE_CHECKING, Any, Sequence

import numpy as np

from longtail._core.checks import check_bool, check_choice, check_int, freeze
from longtail._core.rng import (
    Stream,
    check_seed_like,
    derive_seed,
    random_state_from,
    seed_from,
)
from longtail.samplers.split import _compat_kernels as C
from longtail.samplers.split import _kernels as K

if TYPE_CHECKING:  # pragma: no cover
    from longtail.datasets.label_matrix import LabelMatrix

__all__ = ["iterative_stratification"]

_METHODS = {"balanced": K.METHOD_BALANCED, "sechidis": K.METHOD_SECHIDIS}
# bytes per second-order entry while building it: keys, sorted copy, inverse, CSR, CSC
_PAIR_BYTES = 40


# ----------------------------------------------------------------------------- inputs
def as_label_matrix(labels: Any, name: str = "labels", *, lists: str = "ids") -> "LabelMatrix":
    """``labels`` through :meth:`LabelMatrix.from_any <longtail.datasets.LabelMatrix.from_any>`
    (``lists``: what Python lists of rows mean), refusing a matrix without any label.

    Example
    -------
    >>> as_label_matrix([[0], [1, 2]]).nnz
    3
    """
    from longtail.datasets.label_matrix import LabelMatrix

    lm = LabelMatrix.from_any(labels, lists=lists)
    if lm.n_labels == 0 or lm.nnz == 0:
        raise ValueError(f"{name} has no labels at all ({len(lm)} examples, "
                         f"{lm.n_labels} labels, 0 positives): nothing to stratify")
    return lm


def check_fractions(fractions: Any) -> np.ndarray:
    """Validate part fractions: at least 2, finite, >= 0, summing to 1 (float64 copy)."""
    try:
        r = np.array(fractions, dtype=np.float64).reshape(-1)
    except (TypeError, ValueError):
        raise ValueError(f"fractions must be a sequence of numbers, got {fractions!r}") from None
    if r.size < 2:
        raise ValueError(f"fractions must name at least 2 parts, got {fractions!r}")
    if not np.all(np.isfinite(r)):
        raise ValueError(f"fractions must be finite, got {fractions!r}")
    if np.any(r < 0):
        j = int(np.flatnonzero(r < 0)[0])
        raise ValueError(f"fractions must be >= 0, got {r[j]!r} at position {j}")
    s = float(r.sum())
    if abs(s - 1.0) > 1e-6:
        raise ValueError(f"fractions must sum to 1, got {fractions!r} (sum {s!r})")
    return r


def sizes_from_fractions(r: np.ndarray, n: int) -> np.ndarray:
    """Part sizes summing to ``n``, each within 1 of ``r_j * n`` (largest remainder)."""
    # rounded to 1e-9 so that float noise (0.7 + 0.2 + 0.1 != 1) never decides a tie
    exact = np.round(np.asarray(r, dtype=np.float64) / float(np.sum(r)) * n, 9)
    sizes = np.floor(exact).astype(np.int64)
    short = int(n - sizes.sum())
    if short > 0:
        order = np.argsort(-(exact - sizes), kind="stable")
        sizes[order[:short]] += 1
    return sizes


def _pair_units(lm: "LabelMatrix") -> tuple[np.ndarray, np.ndarray, int]:
    """Second-order unit matrix: every row's label pairs (a <= b) as ids in [0, P)."""
    from longtail._core.sampler import available_memory

    entries = int(K.pair_entries(lm.offsets, lm.indices))
    need = entries * _PAIR_BYTES
    avail = available_memory()
    if entries > np.iinfo(np.int32).max or (avail is not None and need > avail // 2):
        have = "" if avail is None else f", {avail / 2**30:.1f} GiB available"
        raise ValueError(
            f"order=2 needs {entries:,} label-pair entries (about {need / 2**30:.1f} GiB"
            f"{have}): they do not fit in memory. Second order is meant for sparse label "
            f"data (a few labels per example; this data has {lm.nnz / len(lm):.1f}); "
            "use order=1")
    off, keys = K.pair_keys(lm.offsets, lm.indices, lm.n_labels)
    uniq, inv = np.unique(keys, return_inverse=True)
    del keys
    return freeze(off), freeze(inv.astype(np.int32).reshape(-1)), int(uniq.size)


def _group_kind(x: Any) -> str:
    """``"int"``, ``"float"``, ``"str"``, ``"bytes"``, ``"none"``, ``"nan"`` or ``"other"``."""
    if x is None:
        return "none"
    if isinstance(x, (bool, np.bool_)):
        return "other"
    if isinstance(x, (int, np.integer)):
        return "int"
    if isinstance(x, (float, np.floating)):
        return "nan" if x != x else "float"
    if isinstance(x, str):
        return "str"
    if isinstance(x, bytes):
        return "bytes"
    return "other"


def _check_object_groups(g: np.ndarray) -> None:
    """Object group ids: no None, no NaN, one kind (numbers, or strings, or bytes);
    the error names the first bad example."""
    kinds = [_group_kind(x) for x in g.tolist()]
    numeric = {"int", "float"}
    first = None
    for pos, kind in enumerate(kinds):
        if kind == "none":
            raise ValueError(f"groups: example {pos} has no group (None)")
        if kind == "nan":
            raise ValueError(f"groups: example {pos} has group NaN")
        if kind == "other":
            raise TypeError(f"groups must be ints or strings; example {pos} has group "
                            f"{g[pos]!r} ({type(g[pos]).__name__})")
        family = "number" if kind in numeric else kind
        if first is None:
            first = (family, pos)
        elif family != first[0]:
            raise TypeError(
                f"groups mix kinds of ids: example {first[1]} has group {g[first[1]]!r} "
                f"({first[0]}) but example {pos} has {g[pos]!r} ({family})")


def _group_index(groups: Any, n: int) -> tuple[np.ndarray, int]:
    if hasattr(groups, "detach"):
        groups = groups.detach().cpu().numpy()
    g = np.asarray(groups)
    if g.ndim != 1 or g.shape[0] != n:
        raise ValueError(f"groups must be 1-D with one id per example ({n}), got shape {g.shape}")
    if g.dtype == object:
        _check_object_groups(g)
    elif g.dtype.kind not in "iufUSbMm":
        raise TypeError(f"groups must be ints or strings, got dtype {g.dtype}")
    if g.dtype.kind == "f" and np.isnan(g).any():
        raise ValueError(f"groups: example {int(np.flatnonzero(np.isnan(g))[0])} has group NaN")
    try:
        _, inv = np.unique(g, return_inverse=True)
    except TypeError as exc:
        raise TypeError(f"groups must be sortable ids (ints or strings): {exc}") from None
    inv = inv.reshape(-1).astype(np.int64)
    return inv, int(inv.max()) + 1 if n else 0


# ----------------------------------------------------------------------------- core
def default_refine(fractions: Sequence[float] | np.ndarray) -> int:
    """Swap passes used by default: 3 for two parts, 0 for three or more equal parts (k
    folds), otherwise 2 (1 beyond five parts).

    Measured at seed scale (LD, 2 seeds): swaps cut it by 30% for 80/20 and 80/10/10
    and 31% for 70/10/10/10, but by 1-3% for equal folds, where the greedy rule alone
    is as good and a pass would add ~20% to the run time (a pass costs O(nnz * k)).

    Example
    -------
    >>> [default_refine(f) for f in ([0.8, 0.2], [0.2] * 5, [0.8, 0.1, 0.1], [0.25] * 4)]
    [3, 0, 2, 0]
    """
    r = np.asarray(fractions, dtype=np.float64)
    if r.size == 2:
        return 3
    if float(r.max() - r.min()) < 1e-9:
        return 0
    return 2 if r.size <= 5 else 1


def _stratify(lm: "LabelMatrix", r: np.ndarray, sizes: np.ndarray, *, order: int, seed: int,
              method: str, groups: Any, shuffle: bool, refine: int | None = None
              ) -> np.ndarray:
    """Parts (int32[n]) for validated inputs; ``sizes`` are the exact part sizes."""
    if refine is None:
        refine = default_refine(r)
    if order == 2:
        offsets, indices, n_units_labels = _pair_units(lm)
    else:
        offsets, indices, n_units_labels = lm.offsets, lm.indices, lm.n_labels
    s = np.uint64(derive_seed(seed, Stream.STRATIFY))
    parts = K.Parts(np.ascontiguousarray(r, dtype=np.float64),
                    np.ascontiguousarray(sizes, dtype=np.int64))
    if groups is None:
        if order == 1:
            t = lm.transpose()  # cached on the LabelMatrix
            t_off, t_idx = t.offsets, t.indices
        else:
            t_off, t_idx = _csc(offsets, indices, n_units_labels)
        return K.stratify(K.plain_units(offsets, indices), K.label_cols(t_off, t_idx), parts,
                          _METHODS[method], s, bool(shuffle), int(refine))
    g, n_groups = _group_index(groups, len(lm))
    goff, gidx, gmul, gsize = K.group_rows(offsets, indices, g, n_groups, n_units_labels)
    goff, gidx = freeze(goff), freeze(gidx)
    t_off, t_idx = _csc(goff, gidx, n_units_labels)
    gparts = K.stratify(K.Units(goff, gidx, gmul, gsize), K.label_cols(t_off, t_idx), parts,
                        _METHODS[method], s, bool(shuffle), 0)
    return gparts[g]


def _csc(offsets: np.ndarray, indices: np.ndarray, n_cols: int) -> tuple[np.ndarray, np.ndarray]:
    """Read-only CSC (column -> sorted row ids) of a CSR unit matrix."""
    from longtail.datasets import LabelMatrix

    t = LabelMatrix(offsets, indices, n_cols).transpose()
    return t.offsets, t.indices


def _compat_parts(lm: "LabelMatrix", r: np.ndarray, random_state: Any,
                  shuffle: bool) -> np.ndarray:
    """iterative-stratification 0.1.9, part for part (advances ``random_state``)."""
    rs = random_state_from(random_state)
    n = len(lm)
    perm = np.arange(n)
    if shuffle:
        rs.shuffle(perm)
    state = rs.get_state(legacy=True)
    if state[0] != "MT19937":  # pragma: no cover - RandomState is always MT19937
        raise ValueError("compat='iterstrat' needs an MT19937 RandomState")
    key = np.array(state[1], dtype=np.uint32)
    pos = np.array([state[2]], dtype=np.int64)
    fold = C.iterstrat_compat(lm.offsets, lm.indices, lm.n_labels, perm.astype(np.int64),
                              np.ascontiguousarray(r, dtype=np.float64), key, pos)
    rs.set_state(("MT19937", key, int(pos[0]), state[3], state[4]))
    return fold


def check_options(order: int, method: str, compat: str | None, groups: Any) -> None:
    """Validate ``order`` / ``method`` / ``compat`` and their combinations."""
    if check_int("order", order) not in (1, 2):
        raise ValueError(f"order must be 1 or 2, got {order!r}")
    check_choice("method", method, tuple(_METHODS))
    check_choice("compat", compat, (None, "iterstrat"))
    if compat is not None:
        if method != "sechidis":
            raise ValueError("compat='iterstrat' reproduces the paper's rule: pass "
                             f"method='sechidis' (got method={method!r})")
        if order != 1:
            raise ValueError("compat='iterstrat' is first order only (order=1)")
        if groups is not None:
            raise ValueError("compat='iterstrat' does not support groups "
                             "(iterative-stratification has none)")


def iterative_stratification(
    labels: Any,
    fractions: Sequence[float] | np.ndarray,
    order: int = 1,
    seed: Any = 0,
    method: str = "balanced",
    groups: Any = None,
    *,
    compat: str | None = None,
    shuffle: bool = True,
    refine: int | None = None,
) -> np.ndarray:
    """Assign every example to one of ``len(fractions)`` parts, stratified by label.

    Parameters
    ----------
    labels : LabelMatrix, scipy sparse, dense 0/1 array, Arrow list array or id lists
        The multilabel targets (never densified).
    fractions : sequence of float
        Share of the examples for each part; at least 2, each >= 0, summing to 1.
    order : {1, 2}
        1: labels (Sechidis et al. 2011). 2: label pairs (Szymański & Kajdanowicz 2017),
        for sparse data; refused where the pairs would not fit in memory.
    seed : int (or numpy RandomState / Generator)
        Same seed, same parts. With ``compat="iterstrat"``: the package's
        ``random_state`` (int, RandomState, or None for NumPy's global state).
    method : {"balanced", "sechidis"}
        The part choice; see the module documentation. ``balanced`` gives exact sizes
        (each within 1 of ``fractions[j] * n``) and a lower label distribution error.
    groups : array-like of shape (n,), optional
        Group id per example (patient, document, user): a group is never split.
    compat : {None, "iterstrat"}
        ``"iterstrat"`` (with ``method="sechidis"``): exactly the parts of
        iterative-stratification 0.1.9's ``IterativeStratification(y, r, random_state)``
        (with ``shuffle=True``: of its ``MultilabelStratifiedKFold(shuffle=True)``).
    shuffle : bool
        Visit every label's examples from a seeded random start, and examples without
        labels in a seeded random order (default), rather than in index order.
    refine : int, optional
        ``balanced`` only, without ``groups``: passes of pairwise swaps between parts
        that lower ``sum_j sum_l w_l e_jl^2 / r_j`` (see above); sizes are kept. 0 turns
        it off. Default ``default_refine(fractions)``: 3 passes for two parts, none for equal
        folds (where they gain 1-3%), 2 otherwise (1 beyond five parts).

    Returns
    -------
    ndarray of int32, shape (n,)
        The part of every example.

    Example
    -------
    >>> from longtail.datasets import make_long_tail
    >>> y = make_long_tail("small", seed=0, n_examples=2_000).labels
    >>> parts = iterative_stratification(y, [0.8, 0.2], seed=1)
    >>> np.bincount(parts).tolist()
    [1600, 400]
    """
    check_options(order, method, compat, groups)
    r = check_fractions(fractions)
    refine = check_int("refine", default_refine(r) if refine is None else refine, 0)
    check_bool("shuffle", shuffle)
    if compat is None:
        check_seed_like(seed)
    else:
        random_state_from(seed, "seed")    # validates, draws nothing
    lm = as_label_matrix(labels)
    if r.size > len(lm):
        raise ValueError(f"{r.size} parts is more than the number of examples ({len(lm)})")
    if groups is not None:
        _, n_groups = _group_index(groups, len(lm))
        wanted = int(np.sum(r > 0))
        if n_groups < wanted:
            raise ValueError(f"groups: {n_groups} groups cannot fill {wanted} parts")
    if compat is not None:
        return _compat_parts(lm, r, seed, shuffle)
    sizes = sizes_from_fractions(r, len(lm))
    # a pass without a swap ends the refinement: more passes than 2**31 change nothing
    return _stratify(lm, r / r.sum(), sizes, order=order, seed=seed_from(seed), method=method,
                     groups=groups, shuffle=shuffle, refine=min(refine, 2**31))
