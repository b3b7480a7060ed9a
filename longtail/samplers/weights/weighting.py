"""Per-example sample weights for multilabel data, and what they do to each label.

:func:`sample_weights` turns a label matrix into one float64 weight per example (to give
to :class:`~longtail.samplers.WeightedSampler`, or to save with ``longtail weights``), by
one of four methods:

``"inverse_frequency"``
    label weight ``n_c ** -power``, aggregated over the example's labels (``agg``: mean,
    max, sum, or the weight of its rarest label); scaled to mean 1.
``"effective_number"``
    label weight ``(1 - beta) / (1 - beta ** n_c)`` (Cui et al. 2019, "Class-Balanced
    Loss Based on Effective Number of Samples"), aggregated the same way; mean 1.
``"repeat_factor"``
    ``r_i = max over the example's labels of max(1, sqrt(threshold / f_c))`` with
    ``f_c`` the fraction of examples that have label c (Gupta et al. 2019, LVIS; the
    ``RepeatFactorTrainingSampler`` of detectron2). Not rescaled: ``r_i`` is how many
    times example i is repeated per epoch on average.
``"exposure"``
    a solver. Oversampling an example for its rare label also oversamples every frequent
    label it carries, so per-label aggregates of label weights cannot make the labels'
    exposure flat. This method chooses the example weights directly: it minimises the
    spread ``max_c / min_c`` of each label's share of the draws relative to a target
    share (default ``prevalence ** (1 - power)``: ``power=1`` is a flat target), subject
    to ``min_weight <= w_i <= max_weight`` (weights at mean 1) and an effective sample
    size of at least ``min_ess * n``. See :func:`sample_weights` for the algorithm.

:func:`exposure_report` judges any weights: expected draws of every label per epoch, the
max/min ratio of those exposures against uniform sampling, and the effective sample
size (Kish). On data with many labels per example (the dense ``seed`` preset: 130),
example weights hardly move per-label exposure -- every example carries frequent and
rare labels at once -- and the report says so; there, balance at the label level
(per-label loss weights, or :class:`~longtail.samplers.ClassAwareSampler` with
``return_labels=True``).

Example
-------
>>> from longtail import LabelMatrix
>>> y = LabelMatrix.from_lists([[0], [0], [0], [1], [0, 1]])
>>> w = sample_weights(y, "inverse_frequency")
>>> w.round(3).tolist()
[0.769, 0.769, 0.769, 1.538, 1.154]
>>> round(exposure_report(y, w).exposure_ratio, 3)   # uniform sampling: 4 / 2 = 2
1.286
"""
from __future__ import annotations

import dataclasses
import inspect
import math
from typing import Any, Callable

import numpy as np

from longtail._core.checks import (
    check_bool,
    check_choice,
    check_number,
    check_positive_int,
    own,
)
from longtail.datasets.label_matrix import LabelMatrix
from longtail.samplers.weights import _kernels as K

__all__ = ["sample_weights", "exposure_report", "ExposureReport", "METHODS"]

_AGG = {"mean": K.AGG_MEAN, "max": K.AGG_MAX, "sum": K.AGG_SUM, "rarest": K.AGG_RAREST}


# ---------------------------------------------------------------------------- checks
def check_weights(weights: Any, name: str = "weights", n: int | None = None,
                  what: str = "example") -> np.ndarray:
    """Validate per-item weights; return them as an owned, frozen float64 C-contiguous array.

    The result never aliases a writable input (it is a copy, read-only for good:
    ``flags.writeable = True`` raises), so mutating the argument afterwards changes
    nothing that was validated.

    Raises ``ValueError`` for a wrong shape or length, a NaN, infinite or negative entry
    (naming the first position) and for all-zero weights; ``TypeError`` for non-numbers.

    Example
    -------
    >>> check_weights([1, 0, 2]).dtype
    dtype('float64')
    >>> check_weights([1.0, -1.0])
    Traceback (most recent call last):
    ...
    ValueError: weights[1] is negative (-1.0): weights must be finite and >= 0
    """
    if hasattr(weights, "detach"):  # torch tensor
        weights = weights.detach().cpu().numpy()
    a = np.asarray(weights)
    if a.dtype == object or not (np.issubdtype(a.dtype, np.number) or a.dtype == bool):
        raise TypeError(f"{name} must be numbers, got dtype {a.dtype}")
    if np.issubdtype(a.dtype, np.complexfloating):
        raise TypeError(f"{name} must be real numbers, got dtype {a.dtype}")
    if a.ndim != 1:
        raise ValueError(f"{name} must be 1-D (one weight per {what}), got shape {a.shape}")
    if n is not None and a.shape[0] != n:
        raise ValueError(f"{name} has length {a.shape[0]}, expected {n} (one per {what})")
    if a.shape[0] == 0:
        raise ValueError(f"{name} is empty")
    # own what is validated: a private copy (unless already immutable), frozen so that
    # neither the caller nor a later ``flags.writeable = True`` can change it
    a = own(a, np.float64)
    pos, code, total = K.first_bad_weight(a)
    if code:
        kind = {1: "NaN", 2: "infinite", 3: "negative"}[code]
        raise ValueError(f"{name}[{pos}] is {kind} ({float(a[pos])!r}): {name} must be finite "
                         "and >= 0")
    if not total > 0.0:
        raise ValueError(f"{name} are all zero: at least one {what} needs a positive weight")
    if not math.isfinite(total):
        raise ValueError(f"{name} sum to infinity: rescale them (largest entry "
                         f"{float(a.max())!r})")
    return a


def _labels(labels: Any) -> LabelMatrix:
    return labels if isinstance(labels, LabelMatrix) else LabelMatrix.from_any(labels)


def _finish(labels: LabelMatrix, w_rows: np.ndarray, empty_weight: float,
            normalize: bool) -> np.ndarray:
    """Scale the labelled rows to mean 1 (if ``normalize``), set the empty rows."""
    lengths = labels.row_lengths()
    labelled = lengths > 0
    n_labelled = int(np.count_nonzero(labelled))
    if n_labelled == len(labels):
        if normalize:
            w_rows /= w_rows.mean()
        out = w_rows
    else:
        out = np.full(len(labels), empty_weight, dtype=np.float64)
        if n_labelled:
            sub = w_rows[labelled]
            if normalize:
                sub /= sub.mean()
            out[labelled] = sub
    if not out.any():
        raise ValueError("every example would get weight 0 (no example has labels and "
                         f"empty_weight={empty_weight!r}); pass a positive empty_weight")
    return out


def _present(labels: LabelMatrix) -> tuple[np.ndarray, np.ndarray]:
    counts = labels.label_counts()
    return counts, counts > 0


# ---------------------------------------------------------------------------- methods
def _aggregated(labels: LabelMatrix, agg: str, empty_weight: float,
                label_weight: Callable[[np.ndarray], np.ndarray]) -> np.ndarray:
    """Example weights from per-label weights ``label_weight(counts of present labels)``
    aggregated over each example's labels (``agg``), scaled to mean 1."""
    code = _AGG[check_choice("agg", agg, sorted(_AGG))]
    empty_weight = check_number("empty_weight", empty_weight, 0.0)
    counts, present = _present(labels)
    lw = np.zeros(labels.n_labels, dtype=np.float64)
    if present.any():
        lw[present] = label_weight(counts[present].astype(np.float64))
    w = K.aggregate_rows(labels.offsets, labels.indices, lw, counts, code, 0.0)
    return _finish(labels, w, empty_weight, normalize=True)


def _inverse_frequency(labels: LabelMatrix, *, power: float = 1.0, agg: str = "mean",
                       empty_weight: float = 1.0) -> np.ndarray:
    power = check_number("power", power, 0.0)
    # (n_min / n_c) ** power: in (0, 1], no overflow whatever the power
    return _aggregated(labels, agg, empty_weight,
                       lambda c: np.exp(-power * (np.log(c) - np.log(c.min()))))


def _effective_number(labels: LabelMatrix, *, beta: float = 0.999, agg: str = "mean",
                      empty_weight: float = 1.0) -> np.ndarray:
    beta = check_number("beta", beta, 0.0, 1.0, high_open=True)

    def label_weight(c: np.ndarray) -> np.ndarray:
        if beta == 0.0:
            return np.ones_like(c)
        # (1 - beta) / (1 - beta**n), relative to the rarest label: in (0, 1]
        e = -np.expm1(c * math.log(beta))
        return -math.expm1(c.min() * math.log(beta)) / e

    return _aggregated(labels, agg, empty_weight, label_weight)


def _repeat_factor(labels: LabelMatrix, *, threshold: float = 0.001, sqrt: bool = True,
                   empty_weight: float = 1.0) -> np.ndarray:
    threshold = check_number("threshold", threshold, 0.0, 1.0, low_open=True)
    sqrt = check_bool("sqrt", sqrt)
    empty_weight = check_number("empty_weight", empty_weight, 0.0)
    counts, present = _present(labels)
    r = np.zeros(labels.n_labels, dtype=np.float64)
    if present.any():
        ratio = threshold / (counts[present] / float(len(labels)))
        r[present] = np.maximum(1.0, np.sqrt(ratio) if sqrt else ratio)
    w = K.aggregate_rows(labels.offsets, labels.indices, r, counts, K.AGG_MAX, 0.0)
    return _finish(labels, w, empty_weight, normalize=False)


def _default_max_iter(nnz: int, n: int) -> int:
    # about 3e8 nonzero visits: ~200 iterations on sparse data, ~28 at seed scale (where
    # the solver converges in ~20 and each iteration reads 10M nonzeros twice)
    return int(min(200, max(25, 3e8 // max(nnz + 2 * n, 1))))


def _exposure(labels: LabelMatrix, *, power: float = 1.0, target: Any = None,
              min_weight: float = 0.01, max_weight: float = 100.0, min_ess: float = 0.5,
              max_iter: int | None = None, empty_weight: float = 1.0) -> np.ndarray:
    power = check_number("power", power, 0.0)
    min_weight = check_number("min_weight", min_weight, 0.0, 1.0, low_open=True)
    max_weight = check_number("max_weight", max_weight, 1.0)
    min_ess = check_number("min_ess", min_ess, 0.0, 1.0)
    empty_weight = check_number("empty_weight", empty_weight, 0.0)
    max_iter = check_positive_int("max_iter", max_iter, allow_none=True)
    L = labels.n_labels
    counts, present = _present(labels)
    if target is None:
        t = np.zeros(L)
        t[present] = (counts[present] / float(len(labels))) ** (1.0 - power)
    else:
        t = np.array(check_weights(target, "target", L, what="label"))
    active = present & (t > 0)
    labelled = labels.row_lengths() > 0
    n_labelled = int(np.count_nonzero(labelled))
    if n_labelled == 0 or np.count_nonzero(active) < 2 or min_ess >= 1.0:
        # nothing to balance (or no room to): uniform weights
        return _finish(labels, np.ones(len(labels)), empty_weight, normalize=True)
    sub = labels if n_labelled == len(labels) else labels.take(np.flatnonzero(labelled))
    logt = np.zeros(L)
    logt[active] = np.log(t[active])
    m = active / float(np.count_nonzero(active))
    iters = _default_max_iter(sub.nnz, len(sub)) if max_iter is None else max_iter
    w, _spread, _ess, _it, _lam = K.solve_exposure(
        sub.offsets, sub.indices, logt, m, min_weight, max_weight, min_ess, 1.0, iters)
    if n_labelled == len(labels):
        return w
    out = np.full(len(labels), empty_weight, dtype=np.float64)
    out[labelled] = w
    return out


#: method name -> implementation (its keyword arguments are the method's parameters)
METHODS: dict[str, Callable[..., np.ndarray]] = {
    "inverse_frequency": _inverse_frequency,
    "effective_number": _effective_number,
    "repeat_factor": _repeat_factor,
    "exposure": _exposure,
}


def sample_weights(labels: Any, method: str, **params: Any) -> np.ndarray:
    """One float64 weight per example that rebalances labels when examples are drawn
    proportionally to it (or used as per-example loss weights).

    Parameters
    ----------
    labels : LabelMatrix or anything :meth:`LabelMatrix.from_any` accepts
        The training labels.
    method : {"inverse_frequency", "effective_number", "repeat_factor", "exposure"}
        See the module docstring; the parameters of each:

        * ``inverse_frequency``: ``power=1.0`` (label weight ``n_c ** -power``),
          ``agg="mean"`` (``"mean"``, ``"max"``, ``"sum"`` or ``"rarest"``: the weight
          of the example's label with the fewest examples -- with these decreasing label
          weights the same as ``"max"``).
        * ``effective_number``: ``beta=0.999`` in [0, 1), ``agg="mean"``.
        * ``repeat_factor``: ``threshold=0.001`` in (0, 1], ``sqrt=True``.
        * ``exposure``: ``power=1.0`` (target share ``prevalence ** (1 - power)``; 1 is
          flat, 0 keeps the natural shares), or ``target`` (one relative share per label,
          >= 0; labels with target 0 are ignored), ``min_weight=0.01`` and
          ``max_weight=100.0`` (bounds of the weights at mean 1: no example drawn less
          than 1/100 or more than 100 times as often as under uniform sampling),
          ``min_ess=0.5`` (effective sample size floor, a fraction of the labelled
          examples; 0 for none), ``max_iter`` (default: ``3e8 / (nnz + 2 n)`` clipped
          to [25, 200]: 200 on the sparse preset, 28 at seed scale, 25 at extreme
          scale).

        Every method takes ``empty_weight=1.0``: the weight of examples without labels
        (1 = drawn as often as an average labelled example, or not repeated for
        ``repeat_factor``; 0 = never drawn).

    Returns
    -------
    numpy.ndarray of float64, shape (n,)
        Finite, >= 0, not all zero. ``inverse_frequency``, ``effective_number`` and
        ``exposure`` have mean 1 over the labelled examples; ``repeat_factor`` gives the
        factors themselves (>= 1).

    Notes
    -----
    The ``exposure`` solver works on log-weights ``u``. With ``p = softmax(u)`` the
    share of draws carrying label c is ``s_c = sum of p_i over its examples``; the
    objective is a smooth (log-sum-exp) max minus min of ``log(s_c / t_c)`` -- the log of
    the max/min exposure ratio against the target -- plus ``lam * log(n / ESS)``. The
    weights are kept at mean 1 within the bounds by a projection (shift, then clip).
    It is minimised by a scaled projected-gradient method (metric ``diag(w)``: a
    multiplicative update of the weights) with Barzilai-Borwein steps and a non-monotone
    line search; ``lam`` is a multiplier adapted every 5 iterations (raised while the
    ESS is below ``min_ess``, lowered above it), and the best iterate above the floor
    is returned (the last one pulled towards uniform until it holds, if that is
    better). Each iteration reads the nonzeros twice (label shares, then the gradient):
    O(nnz), serial Numba (timings: benchmarks/README.md, sample weights).

    Example
    -------
    >>> from longtail import LabelMatrix
    >>> y = LabelMatrix.from_lists([[0], [0], [0], [1], [0, 1]])
    >>> sample_weights(y, "repeat_factor", threshold=0.5).round(3).tolist()
    [1.0, 1.0, 1.0, 1.118, 1.118]
    >>> w = sample_weights(y, "exposure", min_ess=0.0)
    >>> exposure_report(y, w).exposure_ratio < 1.01
    True
    """
    impl = METHODS[check_choice("method", method, sorted(METHODS))]
    allowed = [p for p in inspect.signature(impl).parameters if p != "labels"]
    unknown = sorted(set(params) - set(allowed))
    if unknown:
        raise TypeError(f"method {method!r} takes no parameter {unknown[0]!r} "
                        f"(its parameters: {', '.join(allowed)})")
    y = _labels(labels)
    w = impl(y, **params)
    # the contract: float64, finite, >= 0, not all zero (checked, never assumed)
    check_weights(w, "sample weights", len(y))
    return w


# ---------------------------------------------------------------------------- report
@dataclasses.dataclass(frozen=True)
class ExposureReport:
    """What a weighting does to each label (see :func:`exposure_report`).

    Attributes
    ----------
    n_examples, n_labels : int
    num_samples : int
        Draws per epoch the expectations are given for.
    expected_draws : ndarray of float64, shape (n_labels,)
        Expected number of drawn examples carrying each label per epoch.
    uniform_draws : ndarray of float64, shape (n_labels,)
        The same under uniform sampling (the label counts scaled to ``num_samples``).
    exposure_ratio, uniform_ratio : float
        max / min of those over the labels that have examples (``inf`` when a label
        with examples gets weight 0 on all of them).
    ess, ess_fraction : float
        Kish effective sample size ``(sum w)^2 / sum w^2`` and its fraction of n.
    labels_without_examples : int
        Labels no example carries (never drawn; left out of the ratios).
    zero_weight_examples : int
    max_weight_ratio : float
        Largest weight / mean weight (how often the heaviest example is drawn relative to
        uniform sampling).
    labels_per_example : float
    most_exposed, least_exposed : int
        Label ids at the two ends of the ratio (-1 if none).
    """

    n_examples: int
    n_labels: int
    num_samples: int
    expected_draws: np.ndarray
    uniform_draws: np.ndarray
    exposure_ratio: float
    uniform_ratio: float
    ess: float
    ess_fraction: float
    labels_without_examples: int
    zero_weight_examples: int
    max_weight_ratio: float
    labels_per_example: float
    most_exposed: int
    least_exposed: int

    @property
    def improvement(self) -> float:
        """``uniform_ratio / exposure_ratio``: how much flatter than uniform sampling."""
        if self.exposure_ratio == 0 or not math.isfinite(self.exposure_ratio):
            return 0.0
        return self.uniform_ratio / self.exposure_ratio

    def to_dict(self, per_label: bool = False) -> dict[str, Any]:
        """Plain-Python dictionary (JSON-ready); ``per_label`` adds both draw lists."""
        out: dict[str, Any] = {}
        for f in dataclasses.fields(self):
            v = getattr(self, f.name)
            if isinstance(v, np.ndarray):
                if per_label:
                    out[f.name] = v.tolist()
                continue
            out[f.name] = None if isinstance(v, float) and not math.isfinite(v) else v
        out["improvement"] = self.improvement
        return out

    def _draws_summary(self, draws: np.ndarray) -> str:
        present = self.uniform_draws > 0
        d = draws[present]
        if d.size == 0:
            return "-"
        lo, med, hi = np.quantile(d, [0.0, 0.5, 1.0])
        return f"{lo:,.3g} / {med:,.3g} / {hi:,.3g}"

    def __str__(self) -> str:
        def ratio(x: float) -> str:
            return f"{x:,.1f}" if math.isfinite(x) else "inf"

        rows = [
            ("", "uniform", "these weights"),
            ("label exposure max/min", ratio(self.uniform_ratio), ratio(self.exposure_ratio)),
            ("draws per label min/med/max", self._draws_summary(self.uniform_draws),
             self._draws_summary(self.expected_draws)),
            ("effective sample size", "100.0%",
             f"{self.ess_fraction:.1%} ({self.ess:,.0f})"),
            ("largest weight / mean", "1.0", f"{self.max_weight_ratio:,.2f}"),
        ]
        w0 = max(len(r[0]) for r in rows)
        w1 = max(len(r[1]) for r in rows)
        head = (f"exposure report: {self.n_examples:,} examples, {self.n_labels:,} labels, "
                f"{self.labels_per_example:.1f} labels/example, {self.num_samples:,} draws "
                "per epoch")
        lines = [head] + [f"  {a:<{w0}}  {b:>{w1}}  {c}" for a, b, c in rows]
        if self.labels_without_examples:
            lines.append(f"  {self.labels_without_examples:,} labels have no examples "
                         "(never drawn; left out of the ratios)")
        if self.zero_weight_examples:
            lines.append(f"  {self.zero_weight_examples:,} examples have weight 0 (never "
                         "drawn)")
        imp = self.improvement
        if math.isfinite(self.exposure_ratio):
            lines.append(f"  the weights make label exposure {imp:.2f}x "
                         f"{'flatter' if imp >= 1 else 'steeper'} than uniform sampling")
        if self.uniform_ratio > 1.0 and 0.0 < imp < 1.5 and self.max_weight_ratio > 1.0001:
            lines.append(
                f"  note: example weights barely move per-label exposure here "
                f"({ratio(self.uniform_ratio)} -> {ratio(self.exposure_ratio)})"
                + (f": with {self.labels_per_example:.0f} labels per example every "
                   "example carries frequent and rare labels at once"
                   if self.labels_per_example >= 10 else "")
                + ". Balance at the label level instead: per-label loss weights, or "
                "ClassAwareSampler(return_labels=True) weighting the drawn label.")
        return "\n".join(lines)


def exposure_report(labels: Any, weights: Any, num_samples: int | None = None
                    ) -> ExposureReport:
    """Per-label exposure of sampling examples proportionally to ``weights``.

    Parameters
    ----------
    labels : LabelMatrix or anything :meth:`LabelMatrix.from_any` accepts
    weights : array-like of float, shape (n,)
        Finite, >= 0, not all zero (e.g. from :func:`sample_weights`, a sampler's
        ``expected_weights()``, or repeat factors).
    num_samples : int, optional
        Draws per epoch (default n).

    Returns
    -------
    ExposureReport
        ``print()`` it for a summary; ``to_dict()`` for JSON.

    Example
    -------
    >>> from longtail import LabelMatrix
    >>> y = LabelMatrix.from_lists([[0], [0], [0], [1]])
    >>> r = exposure_report(y, [1, 1, 1, 3])
    >>> r.expected_draws.tolist(), r.exposure_ratio, round(r.ess_fraction, 3)
    ([2.0, 2.0], 1.0, 0.75)
    """
    y = _labels(labels)
    n = len(y)
    w = check_weights(weights, "weights", n)
    num_samples = n if num_samples is None else check_positive_int("num_samples", num_samples)
    # scale-free: at max 1, tiny (subnormal) weights cannot underflow the sums to 0 nor
    # overflow num_samples / total (a NaN or inf report); only ratios matter
    scaled = w / w.max()
    total = float(scaled.sum())
    mass = K.label_mass(y.offsets, y.indices, scaled, y.n_labels)
    expected = mass * (num_samples / total)
    counts = y.label_counts()
    uniform = counts * (num_samples / float(n))
    present = counts > 0

    def ratio(d: np.ndarray) -> tuple[float, int, int]:
        if not present.any():
            return 1.0, -1, -1
        ids = np.flatnonzero(present)
        vals = d[ids]
        hi, lo = int(np.argmax(vals)), int(np.argmin(vals))
        with np.errstate(over="ignore"):
            r = float(vals[hi] / vals[lo]) if vals[lo] > 0 else math.inf
        return r, int(ids[hi]), int(ids[lo])

    r, most, least = ratio(expected)
    r0, _, _ = ratio(uniform)
    ess = total ** 2 / float(np.dot(scaled, scaled))
    return ExposureReport(
        n_examples=n, n_labels=y.n_labels, num_samples=num_samples,
        expected_draws=expected, uniform_draws=uniform,
        exposure_ratio=r, uniform_ratio=r0, ess=ess, ess_fraction=ess / n,
        labels_without_examples=int(y.n_labels - np.count_nonzero(present)),
        zero_weight_examples=int(n - np.count_nonzero(w)),
        max_weight_ratio=float(1.0 / (total / n)),
        labels_per_example=float(y.nnz / n),
        most_exposed=most, least_exposed=least,
    )
