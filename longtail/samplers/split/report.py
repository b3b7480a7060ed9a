"""The quality of a split of multilabel data: :func:`stratification_report`.

The measures of Sechidis et al. (2011) and, over label pairs, of Szymański & Kajdanowicz
(2017), for any assignment of examples to parts (iterative stratification's or anyone
else's), next to those of a random assignment with the same part sizes; see
:class:`StratificationReport` for their definitions. Counts come from the CSR label
matrix and its CSC; pairs are counted exactly up to a size, sampled beyond it.

Example
-------
>>> from longtail import LabelMatrix
>>> y = LabelMatrix.from_lists([[0], [0, 1], [1], [0], [1], [0, 1]] * 10)
>>> rep = stratification_report(y, [0, 1] * 30)
>>> rep.sizes, rep.split.ed
((30, 30), 0.0)
"""
from __future__ import annotations

import dataclasses
from typing import TYPE_CHECKING, Any, Sequence

import numpy as np

from longtail._core.checks import check_positive_int, check_seed
from longtail._core.rng import Stream, derive_seed
from longtail.samplers.split import _kernels as K

if TYPE_CHECKING:  # pragma: no cover
    from longtail.datasets.label_matrix import LabelMatrix

__all__ = ["stratification_report", "StratificationReport", "SplitMeasures"]


@dataclasses.dataclass(frozen=True)
class SplitMeasures:
    """The measures of one split (see :class:`StratificationReport`)."""

    ld: float
    ed: float
    fz: int
    flz: int
    lpd: float
    flzp: int

    def to_dict(self) -> dict[str, Any]:
        """Plain-Python dictionary."""
        return dataclasses.asdict(self)


@dataclasses.dataclass(frozen=True)
class StratificationReport:
    """Quality of a split, next to a random split with the same part sizes.

    Measures (Sechidis et al. 2011; pairs: Szymański & Kajdanowicz 2017), for k parts
    ``S_1..S_k`` of data ``D`` (n examples) with desired fractions ``r_j``, ``D^l`` the
    examples with label l and ``S_j^l`` those of part j:

    * **LD** (label distribution): the mean over labels l of
      ``1/k * sum_j | |S_j^l| / |S_j - S_j^l|  -  |D^l| / |D - D^l| |`` (positive to
      negative ratio of each part against the whole). Averaged over labels with at
      least one positive; a label without negatives in D or in some part has no ratio
      and is left out (counted in ``ld_labels_skipped``); empty parts are left out.
    * **ED** (examples distribution): ``1/k * sum_j | |S_j| - r_j * n |``.
    * **FZ**: number of parts with zero positives of at least one label.
    * **FLZ**: number of (part, label) pairs with zero positives (labels with at least one
      positive). A label with c < k positives leaves at least k - c of them whatever the
      split: their sum is ``flz_unavoidable``; ``labels_fewer_than_parts`` counts them.
    * **LPD**, **FLZP**: LD and FLZ over label pairs (a, b), a != b, that occur together
      (``D^{ab}`` = examples with both). All pairs when there are at most
      ``max_pair_occurrences`` pair occurrences, otherwise a sample of ``max_pairs``
      pairs: drawn uniformly among label pairs (those that co-occur are kept), or, when
      too few random pairs co-occur (very sparse data), drawn in proportion to their
      frequency; ``pairs`` says which and how many.

    ``random`` holds the same measures for the parts shuffled (same sizes, random
    membership): the reference a stratified split should beat.
    """

    n_examples: int
    n_labels: int
    n_parts: int
    sizes: tuple[int, ...]
    fractions: tuple[float, ...]
    split: SplitMeasures
    random: SplitMeasures
    labels_fewer_than_parts: int
    flz_unavoidable: int
    ld_labels_skipped: int
    n_pairs: int
    pairs: str

    def to_dict(self) -> dict[str, Any]:
        """Plain-Python dictionary (JSON-ready)."""
        out = {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}
        out["sizes"] = list(self.sizes)
        out["fractions"] = list(self.fractions)
        out["split"] = self.split.to_dict()
        out["random"] = self.random.to_dict()
        return out

    def __str__(self) -> str:
        s, r = self.split, self.random
        rows = [
            ("LD  (label distribution)", f"{s.ld:.3e}", f"{r.ld:.3e}"),
            ("ED  (examples distribution)", f"{s.ed:.3f}", f"{r.ed:.3f}"),
            ("FZ  (parts missing a label)", f"{s.fz:,}", f"{r.fz:,}"),
            ("FLZ (part-label pairs with 0)", f"{s.flz:,}", f"{r.flz:,}"),
            ("LPD (label-pair distribution)", f"{s.lpd:.3e}", f"{r.lpd:.3e}"),
            ("FLZP (part-pair pairs with 0)", f"{s.flzp:,}", f"{r.flzp:,}"),
        ]
        w = max(len(a) for a, _, _ in rows)
        w1 = max(10, *(len(b) for _, b, _ in rows))
        if self.n_parts <= 8:
            head = (f"{self.n_examples:,} examples, {self.n_labels:,} labels, "
                    f"{self.n_parts} parts of {', '.join(f'{x:,}' for x in self.sizes)} "
                    f"(fractions {', '.join(f'{f:g}' for f in self.fractions)})")
        else:
            head = (f"{self.n_examples:,} examples, {self.n_labels:,} labels, "
                    f"{self.n_parts} parts of {min(self.sizes):,}..{max(self.sizes):,} "
                    "examples")
        lines = [head, f"{'measure':<{w}}  {'this split':>{w1}}  {'random split':>12}"]
        lines += [f"{a:<{w}}  {b:>{w1}}  {c:>12}" for a, b, c in rows]
        lines.append(f"labels with fewer positives than parts: {self.labels_fewer_than_parts:,} "
                     f"(unavoidable FLZ {self.flz_unavoidable:,}); pairs: {self.pairs}")
        if self.ld_labels_skipped:
            lines.append(f"labels without a ratio, left out of LD: {self.ld_labels_skipped:,}")
        return "\n".join(lines)


def _ld(pos: np.ndarray, sizes: np.ndarray, total_pos: np.ndarray, n: int
        ) -> tuple[float, int]:
    """Mean LD over items (columns of ``pos``: k x m), and how many were skipped."""
    present = total_pos > 0
    neg_d = n - total_pos
    keep_parts = sizes > 0
    pos = pos[keep_parts]
    neg = sizes[keep_parts, None] - pos
    valid = present & (neg_d > 0) & np.all(neg > 0, axis=0)
    skipped = int(present.sum() - valid.sum())
    if not valid.any():
        return 0.0, skipped
    pv = pos[:, valid].astype(np.float64)
    ratio = pv / neg[:, valid]
    ratio_d = total_pos[valid] / neg_d[valid]
    return float(np.mean(np.abs(ratio - ratio_d[None, :]).mean(axis=0))), skipped


def _pairs_for_report(lm: "LabelMatrix", parts_sets: np.ndarray, k: int, max_pairs: int,
                      max_occ: int, seed: int) -> tuple[np.ndarray, str]:
    """Per-part counts of label pairs: int64[n_sets, n_pairs, k] and a description."""
    n_sets = parts_sets.shape[0]
    lengths = lm.row_lengths()
    occ = int(np.sum(lengths * (lengths - 1) // 2))
    if occ == 0:
        return np.zeros((n_sets, 0, k), dtype=np.int64), "none (no example has 2 labels)"
    if occ <= max_occ:
        off, keys = K.pair_keys(lm.offsets, lm.indices, lm.n_labels)
        per_row = np.diff(off)
        rows = np.repeat(np.arange(len(lm)), per_row)
        a, b = np.divmod(keys, lm.n_labels)
        keep = a != b
        keys, rows = keys[keep], rows[keep]
        uniq, inv = np.unique(keys, return_inverse=True)
        inv = inv.reshape(-1)
        out = np.empty((n_sets, uniq.size, k), dtype=np.int64)
        for s in range(n_sets):
            out[s] = np.bincount(inv * k + parts_sets[s, rows],
                                 minlength=uniq.size * k).reshape(uniq.size, k)
        return out, f"all {uniq.size:,}"
    t = lm.transpose()
    counts = lm.label_counts()
    present = np.flatnonzero(counts > 0)
    rng = np.random.default_rng(derive_seed(seed, Stream.REPORT_PAIRS))
    how = "uniform sample"
    pa = pb = np.empty(0, dtype=np.int64)
    if present.size >= 2:
        draws = 2 * max_pairs
        a = rng.choice(present, draws)
        b = rng.choice(present, draws)
        lo, hi = np.minimum(a, b), np.maximum(a, b)
        ok = lo != hi
        key = np.unique(lo[ok] * lm.n_labels + hi[ok])
        rng.shuffle(key)
        pa, pb = np.divmod(key, lm.n_labels)
        both = K.pair_part_counts(t.offsets, t.indices, pa, pb, parts_sets, k)
        co = both[0].sum(axis=1) > 0
        if co.sum() >= max_pairs // 4:
            sel = np.flatnonzero(co)[:max_pairs]
            return both[:, sel], f"uniform sample of {sel.size:,} co-occurring pairs"
    how = "frequency-weighted sample"
    cum = np.cumsum(lengths * (lengths - 1) // 2)
    pair_seed = np.uint64(derive_seed(seed, Stream.REPORT_PAIR_KEYS))
    keys = np.unique(K.sample_pair_occurrences(lm.offsets, lm.indices, cum, 4 * max_pairs,
                                               pair_seed))
    rng.shuffle(keys)
    keys = keys[:max_pairs]
    pa, pb = keys >> 32, keys & 0xFFFFFFFF
    both = K.pair_part_counts(t.offsets, t.indices, pa, pb, parts_sets, k)
    return both, f"{how} of {keys.size:,} pairs"


def _label_measures_dense(lm: "LabelMatrix", parts: np.ndarray, sizes: np.ndarray,
                          label_counts: np.ndarray, k: int) -> tuple[float, int, int, int]:
    """(LD, labels skipped, FZ, FLZ) from the k x n_labels count matrix."""
    counts_kl = K.part_label_counts(lm.offsets, lm.indices, parts, k, lm.n_labels)
    ld, skipped = _ld(counts_kl, sizes, label_counts, len(lm))
    zero = counts_kl[:, label_counts > 0] == 0
    return ld, skipped, int(np.sum(zero.any(axis=1))), int(zero.sum())


def _label_measures_sparse(lm: "LabelMatrix", parts: np.ndarray, sizes: np.ndarray,
                           label_counts: np.ndarray, k: int) -> tuple[float, int, int, int]:
    """The same from the nonzero (part, label) counts only (many parts x many labels)."""
    n, L = len(lm), lm.n_labels
    key = np.repeat(parts.astype(np.int64), np.diff(lm.offsets)) * L + lm.indices
    uk, c = np.unique(key, return_counts=True)
    del key
    j, lab = np.divmod(uk, L)
    present = label_counts > 0
    neg_d = n - label_counts
    ratio_d = np.divide(label_counts, neg_d, out=np.zeros(L), where=neg_d > 0)
    n_nonempty = int(np.sum(sizes > 0))
    neg = sizes[j] - c
    bad = np.zeros(L, dtype=bool)
    bad[lab[neg <= 0]] = True
    valid = present & (neg_d > 0) & ~bad
    parts_with = np.bincount(lab, minlength=L)
    terms = np.abs(c / np.maximum(neg, 1) - ratio_d[lab])
    per_label = np.bincount(lab, weights=terms, minlength=L) \
        + (n_nonempty - parts_with) * ratio_d
    ld = float(np.mean(per_label[valid] / n_nonempty)) if valid.any() else 0.0
    n_present = int(present.sum())
    labels_in_part = np.bincount(j, minlength=k)
    return (ld, int(n_present - valid.sum()), int(np.sum(labels_in_part < n_present)),
            int(np.sum(k - parts_with[present])))


#: above this many (part, label) cells the report counts only the nonzero ones
_DENSE_CELLS = 50_000_000


def _measures(lm: "LabelMatrix", parts: np.ndarray, sizes: np.ndarray,
              label_counts: np.ndarray, k: int, r: np.ndarray,
              pair_counts: np.ndarray) -> tuple[SplitMeasures, int]:
    n = len(lm)
    how = _label_measures_dense if k * lm.n_labels <= _DENSE_CELLS else _label_measures_sparse
    ld, skipped, fz, flz = how(lm, parts, sizes, label_counts, k)
    ed = float(np.mean(np.abs(sizes - r * n)))
    if pair_counts.shape[0]:
        pc = pair_counts.T  # k x pairs
        lpd, _ = _ld(pc, sizes, pair_counts.sum(axis=1), n)
        flzp = int(np.sum(pc == 0))
    else:
        lpd, flzp = 0.0, 0
    return SplitMeasures(ld=ld, ed=ed, fz=fz, flz=flz, lpd=lpd, flzp=flzp), skipped


def stratification_report(
    labels: Any,
    parts: Any,
    *,
    fractions: Sequence[float] | None = None,
    n_parts: int | None = None,
    max_pairs: int = 10_000,
    max_pair_occurrences: int = 5_000_000,
    seed: int = 0,
) -> StratificationReport:
    """Measure how well ``parts`` stratify ``labels`` (LD, ED, FZ, FLZ, LPD, FLZP).

    Parameters
    ----------
    labels : LabelMatrix or anything :func:`iterative_stratification` accepts
        The multilabel targets.
    parts : array-like of int, shape (n,)
        Part of every example, in ``[0, k)``.
    fractions : sequence of float, optional
        Desired fractions (for ED); default equal parts ``1 / k``.
    n_parts : int, optional
        Number of parts k; default ``max(parts) + 1`` (or ``len(fractions)``).
    max_pairs, max_pair_occurrences : int
        Label pairs: all of them when the data have at most ``max_pair_occurrences``
        pair occurrences, else a sample of ``max_pairs`` (see :class:`StratificationReport`);
        both are lowered to keep ``pairs x parts`` under 20 million counts. With more
        than 50 million (part, label) cells (many parts of very many labels) the label
        measures are computed from the nonzero cells only (same values).
    seed : int
        Seed of the random reference split and of the pair sample.

    Returns
    -------
    StratificationReport
        Printable (``str(report)``) and ``to_dict()``; see its documentation for the
        definitions of the measures.

    Example
    -------
    >>> from longtail import LabelMatrix
    >>> y = LabelMatrix.from_lists([[0], [0], [1], [1]])
    >>> rep = stratification_report(y, [0, 1, 0, 1])
    >>> rep.split.ld, rep.split.ed, rep.split.flz
    (0.0, 0.0, 0)
    """
    from longtail.samplers.split.stratification import as_label_matrix, check_fractions

    max_pairs = check_positive_int("max_pairs", max_pairs)
    max_pair_occurrences = check_positive_int("max_pair_occurrences", max_pair_occurrences)
    seed = check_seed(seed)
    n_parts = check_positive_int("n_parts", n_parts, allow_none=True)
    r = None if fractions is None else check_fractions(fractions)
    lm = as_label_matrix(labels)
    n = len(lm)
    if hasattr(parts, "detach"):
        parts = parts.detach().cpu().numpy()
    p = np.asarray(parts)
    if p.shape != (n,):
        raise ValueError(f"parts must have shape ({n},), got {p.shape}")
    if p.size and not np.issubdtype(p.dtype, np.integer):
        raise TypeError(f"parts must be integers, got dtype {p.dtype}")
    # checked on the original dtype (a uint64 id is never read as a negative one)
    if p.min() < 0:
        raise ValueError(f"parts must be >= 0, got {int(p.min())} at example "
                         f"{int(np.argmin(p))}")
    # more parts than examples leaves parts empty for sure: refused before any
    # per-part array is allocated (one stray id 2**31 would ask for 16 GiB)
    limit = max(n, 2) if r is None else max(n, 2, r.size)
    if r is not None:
        k = r.size
    else:
        k = int(n_parts) if n_parts is not None else int(p.max()) + 1
        if k > limit:
            if n_parts is not None:
                raise ValueError(f"n_parts={n_parts} is more than the number of "
                                 f"examples ({n})")
            pos = int(np.argmax(p))
            raise ValueError(f"part id {int(p[pos])} at example {pos} is beyond the number "
                             f"of examples ({n}): more parts than examples")
        r = np.full(k, 1.0 / k)
    if n_parts is not None and int(n_parts) != k:
        raise ValueError(f"n_parts={n_parts} but fractions name {k} parts")
    if p.max() >= k:
        pos = int(np.argmax(p))
        raise ValueError(f"part id {int(p[pos])} >= number of parts {k} at example {pos}")
    p32 = np.ascontiguousarray(p, dtype=np.int32)
    rng = np.random.default_rng(derive_seed(seed, Stream.COMPAT_ORDER))
    p_rand = p32[rng.permutation(n)]
    sizes = np.bincount(p32, minlength=k).astype(np.int64)
    counts = lm.label_counts()
    both = np.stack([p32, p_rand])
    # keep the (pairs x parts) count arrays within ~20 million cells
    max_pairs = min(int(max_pairs), max(100, 20_000_000 // k))
    max_occ = min(int(max_pair_occurrences), max(1_000, 20_000_000 // k))
    pair_counts, how = _pairs_for_report(lm, both, k, max_pairs, max_occ, seed)
    m_split, skipped = _measures(lm, p32, sizes, counts, k, r, pair_counts[0])
    m_rand, _ = _measures(lm, p_rand, sizes, counts, k, r, pair_counts[1])
    few = (counts > 0) & (counts < k)
    return StratificationReport(
        n_examples=n, n_labels=lm.n_labels, n_parts=k, sizes=tuple(int(x) for x in sizes),
        fractions=tuple(float(x) for x in r), split=m_split, random=m_rand,
        labels_fewer_than_parts=int(few.sum()),
        flz_unavoidable=int(np.sum(k - counts[few])), ld_labels_skipped=skipped,
        n_pairs=int(pair_counts.shape[1]), pairs=how)
