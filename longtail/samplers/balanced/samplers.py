"""Balancing samplers: weighted, repeat-factor and class-aware, distributed and resumable.

All three are ``torch.utils.data.Sampler`` s built on
:class:`~longtail._core.sampler.EpochSampler`: each epoch is a pure function of
``(seed, epoch)`` (call ``set_epoch`` as with ``DistributedSampler``), computed once in the
main process by a serial Numba kernel, so the order does not depend on the number of
DataLoader workers; ``num_replicas`` / ``rank`` default to the initialised
``torch.distributed`` group and give every rank a disjoint, equally long shard of the
same epoch (padded like ``DistributedSampler``); ``state_dict`` / ``load_state_dict``
resume mid-epoch under torchdata's ``StatefulDataLoader``. With ``prefetch=True`` (the
default) epoch ``e + 1`` is built in a background thread while epoch ``e`` is consumed
(the kernels release the GIL), so an epoch boundary costs the training thread nothing;
the epochs are the same either way. Whatever an epoch needs once (the alias table, the
label -> examples CSC) is built at construction, never by an epoch build.

* :class:`WeightedSampler` -- draws proportional to per-example weights (e.g. from
  :func:`~longtail.sample_weights`), with or without replacement, any number of examples
  (torch's ``WeightedRandomSampler`` stops at 2**24 categories).
* :class:`RepeatFactorSampler` -- repeat-factor sampling (LVIS; detectron2
  ``RepeatFactorTrainingSampler``): example i appears ``r_i`` times per epoch on average,
  by stochastic rounding.
* :class:`ClassAwareSampler` -- pick a label, then an example that has it (mmdetection's
  ``ClassAwareSampler``). With ``batch_size`` it is a batch sampler of
  :class:`~longtail.datasets.IndexBatch` lists; with ``return_labels=True`` as well, every
  batch carries ``extras["sampled_label"]``, the label each example was drawn for, so the
  training loop can weight that label in the loss (label-level balancing, what dense data
  needs). :class:`~longtail.datasets.ArrowDataset` hands the extras on as the fourth
  element of its ``(x, y, index, extras)`` batches.

On dense multilabel data (many labels per example) example-level balancing barely moves
label exposure: every example carries frequent and rare labels at once. At construction
:class:`RepeatFactorSampler` and :class:`ClassAwareSampler` therefore measure what they
do to the rarest and the most frequent tenth of the labels and, when the rare labels are
hardly lifted relative to the frequent ones, say so once with an :class:`ExposureWarning`
(``warn=False`` or ``warnings.filterwarnings("ignore", category=ExposureWarning)``
silences it).

Example
-------
>>> import numpy as np
>>> from longtail.samplers import WeightedSampler
>>> s = WeightedSampler(np.array([1.0, 0.0, 3.0]), num_samples=6, seed=0)
>>> len(list(s)), 1 in list(s)
(6, False)
"""
from __future__ import annotations

import threading
import warnings
from typing import Any

import numpy as np

from longtail.datasets.index_batch import IndexBatch
from longtail.datasets.label_matrix import LabelMatrix
from longtail.samplers.balanced import _kernels as BK
from longtail._core.checks import check_bool, check_positive_int
from longtail._core.sampler import EpochSampler, check_memory, crc_of, labels_crc
from longtail.samplers.weights.weighting import check_weights, sample_weights

__all__ = ["WeightedSampler", "RepeatFactorSampler", "ClassAwareSampler",
           "with_sampled_labels", "sampled_labels", "ExposureWarning"]


# ---------------------------------------------------------------------------- exposure check
class ExposureWarning(UserWarning):
    """A balancing sampler that, on these labels, draws the rarest tenth of the labels
    less than 1.5x as much more often than the most frequent tenth (relative to uniform
    sampling): it makes epochs different, not label exposure flatter.

    Example
    -------
    Every example carries the frequent label 0 and one rare label, so repeating the
    examples of rare labels repeats every example:

    >>> import warnings
    >>> y = LabelMatrix.from_lists([[0, k] for k in range(1, 11)])
    >>> with warnings.catch_warnings(record=True) as seen:
    ...     warnings.simplefilter("always")
    ...     s = RepeatFactorSampler(y, threshold=0.5)
    >>> [w.category.__name__ for w in seen], round(float(s.factors.mean()), 2)
    (['ExposureWarning'], 2.24)
    >>> with warnings.catch_warnings():           # or warn=False
    ...     warnings.simplefilter("error", ExposureWarning)
    ...     s = RepeatFactorSampler(y, threshold=0.5, warn=False)
    """


# A sampler "helps" when it lifts the rarest tenth of the labels at least this much more
# than the most frequent tenth (the threshold under which exposure_report notes that the
# weights "barely move per-label exposure"); data whose frequent tenth has less than
# _TAILED times the examples of its rare tenth have no long tail to flatten.
_HELPS = 1.5
_TAILED = 2.0
_CHECK_INCIDENCES = 1 << 15   # label incidences looked at (rows subsampled beyond)
_MIN_RARE_INCIDENCES = 64     # fewer in the subsample: no verdict


def _tail_exposure(labels: LabelMatrix, row_weights: Any) -> tuple[float, float, float] | None:
    """How a sampler exposes the label tails, relative to uniform sampling (cheap).

    The present labels are ranked by their number of examples; the rarest tenth and the
    most frequent tenth (at least one label each) are the two tails. A label's *lift* is
    its expected draws under the sampler divided by those under uniform sampling with as
    many draws, i.e. the mean relative weight (mean 1 over all examples) of the examples
    that carry it; a tail's lift is that mean over all its (example, label) incidences.

    Parameters
    ----------
    labels : LabelMatrix
    row_weights : callable ``(rows, sub) -> float64[len(sub)]``
        Relative draw rate (mean 1 over all examples) of the examples ``rows`` (an int64
        array, or ``None`` for all of them) whose labels are ``sub``.

    Returns
    -------
    (count_ratio, rare_lift, frequent_lift) or None
        ``count_ratio``: mean examples per label of the frequent tail over that of the
        rare tail (the tails' exposure ratio under uniform sampling; the sampler's is
        ``count_ratio * frequent_lift / rare_lift``). ``None`` when fewer than two labels
        have examples, or when the subsample holds too few incidences of the rare tail
        to tell. At most ``2**15`` label incidences are read: beyond, rows are
        subsampled (fixed seed), so the cost does not grow with the data.

    Example
    -------
    >>> y = LabelMatrix.from_lists([[0], [0], [0], [1]])
    >>> _tail_exposure(y, lambda rows, sub: np.array([0.5, 0.5, 0.5, 2.5]))
    (3.0, 2.5, 0.5)
    """
    counts = labels.label_counts()
    present = np.flatnonzero(counts > 0)
    if present.size < 2:
        return None
    ranked = present[np.argsort(counts[present], kind="stable")]
    g = max(1, present.size // 10)
    rare, frequent = ranked[:g], ranked[-g:]
    count_ratio = float(counts[frequent].mean() / counts[rare].mean())
    n = len(labels)
    rows = None
    sub = labels
    if labels.nnz > _CHECK_INCIDENCES:
        m = max(1, int(n * _CHECK_INCIDENCES / labels.nnz))
        rows = np.sort(np.random.default_rng(0).integers(0, n, m))
        sub = labels.take(rows)
    tail = np.zeros(labels.n_labels, dtype=np.int8)
    tail[rare], tail[frequent] = 1, 2
    which = tail[sub.indices]
    w = np.asarray(row_weights(rows, sub), dtype=np.float64)
    w_inc = np.repeat(w, sub.row_lengths())       # the weight of every incidence
    in_rare, in_frequent = which == 1, which == 2
    if rows is not None and np.count_nonzero(in_rare) < _MIN_RARE_INCIDENCES:
        return None
    return count_ratio, float(w_inc[in_rare].mean()), float(w_inc[in_frequent].mean())


def _warn_if_flat(name: str, labels: LabelMatrix, row_weights: Any, cost: str = "") -> None:
    """One :class:`ExposureWarning` when the sampler hardly lifts the rare labels."""
    got = _tail_exposure(labels, row_weights)
    if got is None:
        return
    count_ratio, rare, frequent = got
    if count_ratio < _TAILED or rare >= _HELPS * frequent:
        return
    density = labels.nnz / max(len(labels), 1)
    why = (f" With {density:.0f} labels per example, every drawn example carries frequent "
           "and rare labels at once." if density >= 5 else "")
    warnings.warn(
        f"{name} cannot flatten label exposure on these labels: it draws the rarest tenth "
        f"of the labels {rare:.2f}x and the most frequent tenth {frequent:.2f}x as often as "
        f"uniform sampling does, so the exposure gap between them goes from "
        f"{count_ratio:.1f}x (uniform) to {count_ratio * frequent / rare:.1f}x{cost}."
        f"{why} Balance at the label level instead: a per-label loss weighting "
        "(longtail.losses, e.g. a weight or hard_negative_loss) and per-label decision "
        "thresholds (longtail.metrics.tune_thresholds). exposure_report(labels, "
        "sampler.expected_weights()) shows every label; warn=False silences this.",
        ExposureWarning, stacklevel=3)


# ---------------------------------------------------------------------------- weighted
class WeightedSampler(EpochSampler):
    """Draw examples with probability proportional to ``weights``; distributed, resumable.

    With replacement each epoch is ``num_samples`` independent draws from a Walker/Vose
    alias table (built once, O(n); O(1) per draw); without replacement the epoch is the
    ``num_samples`` largest Efraimidis-Spirakis keys ``log(u_i) / w_i`` in decreasing
    order (distributed as successive weighted draws without replacement; O(n) selection
    and O(k log k) for the order). No limit on n (torch's ``WeightedRandomSampler``
    fails beyond 2**24 weights), no Python loop over samples.

    Parameters
    ----------
    weights : array-like of float, shape (n,)
        Finite, >= 0, not all zero (a torch tensor is accepted). Only ratios matter.
    num_samples : int, optional
        Draws per epoch over all ranks (default n); each rank gets
        ``ceil(num_samples / num_replicas)`` (``floor`` with ``drop_last``).
    replacement : bool
        Draw with replacement (default) or without (then ``num_samples`` must not exceed
        the number of positive weights).
    seed : int
        Base seed; epoch ``e`` uses a stream derived from ``(seed, e)``.
    num_replicas, rank : int, optional
        Distributed layout (default: the initialised ``torch.distributed`` group).
    drop_last : bool
        Trim the epoch to a multiple of ``num_replicas`` instead of padding it.
    prefetch : bool
        Build the next epoch in a background thread while this one is consumed (default),
        so that ``iter()`` of the next epoch does not stall; ``False`` builds each epoch
        when its ``iter()`` is made. The epochs are the same either way.

    Example
    -------
    >>> s = WeightedSampler([0.1, 0.0, 0.9], num_samples=4, seed=1)
    >>> len(s), all(i != 1 for i in s)
    (4, True)
    >>> s.set_epoch(1)          # a new order every epoch, the same on every rank
    """

    def __init__(self, weights: Any, num_samples: int | None = None,
                 replacement: bool = True, *, seed: int = 0, num_replicas: int | None = None,
                 rank: int | None = None, drop_last: bool = False,
                 prefetch: bool = True) -> None:
        w = check_weights(weights, "weights")   # an owned, frozen copy
        n = int(w.shape[0])
        m = n if num_samples is None else check_positive_int("num_samples", num_samples)
        replacement = check_bool("replacement", replacement)
        # an epoch holds num_samples int64 indices (and, without replacement, n keys)
        check_memory(f"num_samples={m:,}", 16.0 * m + (0 if replacement else 16.0 * n))
        if not replacement:
            positive = int(np.count_nonzero(w))
            if m > positive:
                raise ValueError(
                    f"replacement=False cannot draw num_samples={m} distinct examples: only "
                    f"{positive} of the {n} weights are positive")
        super().__init__(seed=seed, num_replicas=num_replicas, rank=rank,
                         drop_last=drop_last, prefetch=prefetch)
        self.weights = w
        self.num_samples = int(m)
        self.replacement = bool(replacement)
        # built here, once (O(n)): an epoch build only reads it, from any thread
        self._alias = (BK.interleave_alias(*BK.build_alias(w)) if replacement
                       else np.empty(0))
        self._crc: int | None = None

    def _global_order(self, epoch: int) -> np.ndarray:
        seed = np.uint64(self._epoch_seed(epoch))
        if self.replacement:
            return BK.draw_alias(self._alias, self.num_samples, seed)
        return BK.draw_without_replacement(self.weights, self.num_samples, seed)

    def _global_length(self, epoch: int) -> int:
        return self.num_samples

    def _signature(self) -> dict[str, Any]:
        if self._crc is None:
            self._crc = crc_of(self.weights)
        return {"n": int(self.weights.shape[0]), "num_samples": self.num_samples,
                "replacement": self.replacement, "weights_crc": self._crc}

    def expected_weights(self) -> np.ndarray:
        """Per-example draw rate relative to uniform sampling (the weights at mean 1)."""
        return self.weights / self.weights.mean()

    def __repr__(self) -> str:
        return (f"WeightedSampler(n={self.weights.shape[0]:,}, num_samples="
                f"{self.num_samples:,}, replacement={self.replacement}, seed={self.seed}, "
                f"rank={self.rank}/{self.num_replicas})")


# ---------------------------------------------------------------------------- repeat factor
def _check_epoch_bound(factors: np.ndarray) -> None:
    """Refuse factors whose epochs cannot be built: an epoch has up to
    ``sum(floor(r) + 1)`` int64 items (checked before any kernel allocates them)."""
    with np.errstate(over="ignore"):
        bound = float(np.sum(np.floor(factors))) + factors.shape[0]
    if not bound < 2.0 ** 62:
        pos = int(np.argmax(factors))
        raise ValueError(f"factors give epochs of up to {bound:.3g} items (largest: "
                         f"factors[{pos}] = {float(factors[pos])!r}): too many to build")
    try:
        check_memory(f"an epoch of up to {int(bound):,} items", 16.0 * bound)
    except ValueError as err:
        pos = int(np.argmax(factors))
        raise ValueError(f"factors: {err} (largest: factors[{pos}] = "
                         f"{float(factors[pos])!r})") from None


class RepeatFactorSampler(EpochSampler):
    """Repeat-factor sampling (Gupta et al. 2019, LVIS; detectron2 semantics).

    Each example has a repeat factor ``r_i = max over its labels of max(1, sqrt(t / f_c))``
    (``f_c``: fraction of examples with label c; see
    :func:`~longtail.sample_weights` ``method="repeat_factor"``). Every epoch, example i
    appears ``floor(r_i)`` times plus once more with probability ``frac(r_i)``, and the
    list is shuffled. The epoch length therefore changes from epoch to epoch; ``len()``
    gives this epoch's (all ranks compute the same epoch, so they agree on it).

    Parameters
    ----------
    labels : LabelMatrix or anything :meth:`LabelMatrix.from_any` accepts
    threshold : float
        ``t`` in (0, 1]: labels with a smaller fraction of examples get oversampled.
    sqrt : bool
        ``sqrt(t / f_c)`` (LVIS, default) or ``t / f_c``.
    seed, num_replicas, rank, drop_last
        As for :class:`WeightedSampler`.
    warn : bool
        Emit an :class:`ExposureWarning` when the factors hardly lift the rare labels
        relative to the frequent ones (dense multilabel data: every example carries a
        rare label, so nearly every example is repeated and epochs just get longer).
    prefetch : bool
        Build the next epoch in a background thread while this one is consumed (default),
        so that ``iter()`` of the next epoch does not stall; ``False`` builds each epoch
        when its ``iter()`` is made. The epochs are the same either way.

    Example
    -------
    >>> y = LabelMatrix.from_lists([[0], [0], [0], [1]])
    >>> s = RepeatFactorSampler(y, threshold=0.5, sqrt=False, seed=0)
    >>> s.factors.tolist()          # label 1 is in 1/4 of the examples: 0.5 / 0.25 = 2
    [1.0, 1.0, 1.0, 2.0]
    >>> sorted(s)
    [0, 1, 2, 3, 3]
    """

    def __init__(self, labels: Any, threshold: float, *, sqrt: bool = True, seed: int = 0,
                 num_replicas: int | None = None, rank: int | None = None,
                 drop_last: bool = False, warn: bool = True, prefetch: bool = True) -> None:
        sqrt = check_bool("sqrt", sqrt)
        warn = check_bool("warn", warn)
        y = LabelMatrix.from_any(labels)
        factors = check_weights(sample_weights(y, "repeat_factor", threshold=threshold,
                                               sqrt=sqrt), "factors")
        _check_epoch_bound(factors)
        self._init(factors, seed, num_replicas, rank, drop_last, prefetch)
        self.threshold = float(threshold)
        self.sqrt = bool(sqrt)
        if warn:
            mean = float(factors.mean())
            _warn_if_flat("RepeatFactorSampler", y, lambda rows, sub: (
                factors if rows is None else factors[rows]) / mean,
                f", while each epoch is {mean:.2f}x as long")

    @classmethod
    def from_factors(cls, factors: Any, *, seed: int = 0, num_replicas: int | None = None,
                     rank: int | None = None, drop_last: bool = False,
                     prefetch: bool = True) -> "RepeatFactorSampler":
        """From precomputed repeat factors (e.g. ``longtail weights --method
        repeat_factor -o f.npy``): finite, >= 0, not all zero; factors below 1 drop
        examples with probability ``1 - r``. The other arguments are the constructor's.

        Example
        -------
        >>> s = RepeatFactorSampler.from_factors([1.0, 2.0], seed=0)
        >>> sorted(s)
        [0, 1, 1]
        """
        self = cls.__new__(cls)
        f = check_weights(factors, "factors")
        _check_epoch_bound(f)
        self._init(f, seed, num_replicas, rank, drop_last, prefetch)
        self.threshold = None
        self.sqrt = None
        return self

    def _init(self, factors: np.ndarray, seed: int, num_replicas: int | None,
              rank: int | None, drop_last: bool, prefetch: bool) -> None:
        EpochSampler.__init__(self, seed=seed, num_replicas=num_replicas, rank=rank,
                              drop_last=drop_last, prefetch=prefetch)
        self.factors = factors      # owned and frozen by check_weights
        self._crc = crc_of(factors)

    def _global_order(self, epoch: int) -> np.ndarray:
        return BK.repeat_epoch(self.factors, np.uint64(self._epoch_seed(epoch)))

    def _signature(self) -> dict[str, Any]:
        return {"n": int(self.factors.shape[0]), "threshold": self.threshold,
                "sqrt": self.sqrt, "factors_crc": self._crc}

    def expected_weights(self) -> np.ndarray:
        """Expected appearances per epoch of every example (the repeat factors)."""
        return np.array(self.factors)

    def __repr__(self) -> str:
        return (f"RepeatFactorSampler(n={self.factors.shape[0]:,}, threshold="
                f"{self.threshold}, mean factor={float(self.factors.mean()):.3f}, "
                f"seed={self.seed}, rank={self.rank}/{self.num_replicas})")


# ---------------------------------------------------------------------------- class aware
# Serializes building a LabelMatrix's CSC (``transpose()``, cached on the matrix) between
# the training thread and prefetch threads: ClassAwareSampler builds it in ``__init__``,
# but a copied or unpickled sampler holds a matrix without it.
_CSC_LOCK = threading.Lock()

class _Batches:
    """A chunk of a batch epoch, made into :class:`IndexBatch` lists one batch at a time.

    ``rows`` has one row per batch: ``batch_size`` indices, or ``(index, label)`` pairs
    when the labels travel too, the missing tail of a shorter last batch filled with -1.
    The iterator reports what is left through ``__length_hint__``, which is how
    :class:`~longtail._core.sampler.EpochSampler` counts the batches handed out, so a
    chunk of many batches never exists as Python ints all at once.
    """

    __slots__ = ("rows",)

    def __init__(self, rows: np.ndarray) -> None:
        self.rows = rows

    def __len__(self) -> int:
        return int(self.rows.shape[0])

    def __iter__(self) -> "_BatchIterator":
        return _BatchIterator(self.rows)


class _BatchIterator:
    """Iterator over the batches of :class:`_Batches` that knows how many are left."""

    __slots__ = ("rows", "pos")

    def __init__(self, rows: np.ndarray) -> None:
        self.rows, self.pos = rows, 0

    def __iter__(self) -> "_BatchIterator":
        return self

    def __next__(self) -> IndexBatch:
        if self.pos >= self.rows.shape[0]:
            raise StopIteration
        row = self.rows[self.pos]
        self.pos += 1
        idx = row if row.ndim == 1 else row[:, 0]
        if idx[-1] < 0:                       # the shorter last batch of the epoch
            row = row[:int(np.count_nonzero(idx >= 0))]
            idx = row if row.ndim == 1 else row[:, 0]
        if row.ndim == 1:
            return IndexBatch(idx.tolist())
        return IndexBatch(idx.tolist(), {"sampled_label": row[:, 1].copy()})

    def __length_hint__(self) -> int:
        return int(self.rows.shape[0]) - self.pos


class ClassAwareSampler(EpochSampler):
    """Pick a label, then an example that has it (class-aware sampling).

    mmdetection semantics: labels are visited by cycling through a shuffled list of the
    labels that have examples (reshuffled after each pass) -- or drawn with probability
    proportional to ``class_weights`` -- and each visit takes the next
    ``samples_per_label`` examples of that label from its own shuffled cycle
    (reshuffled whenever it is used up). Every label is drawn about equally often, but
    an example is drawn for each of its labels, so frequent labels still ride along with
    rare ones on multilabel data; ``return_labels=True`` hands on the label each example
    was drawn for, so that the loss can weight that label.

    Without ``batch_size`` this is a ``Sampler`` of Python ints (use it as
    ``DataLoader(sampler=...)``). With ``batch_size`` it is a batch sampler (use it as
    ``DataLoader(batch_sampler=...)``): the same draws, in the same order, cut into
    :class:`~longtail.datasets.IndexBatch` lists of ``batch_size`` indices (on one
    replica, the batches of ``BatchSampler(sampler, batch_size, drop_last)``), and with
    ``return_labels=True`` every batch carries ``extras["sampled_label"]`` (int64, one
    per index), which reaches the training loop intact even when workers prefetch batches
    ahead: :class:`~longtail.datasets.ArrowDataset` batches are
    ``(x, y, index, extras)``.

    Parameters
    ----------
    labels : LabelMatrix or anything :meth:`LabelMatrix.from_any` accepts
    num_samples : int, optional
        Draws per epoch over all ranks (default n).
    class_weights : array-like of float, shape (n_labels,), optional
        Relative probability of visiting each label (>= 0; labels without examples are
        never visited). Default: every label with examples equally, by cycling.
    return_labels : bool
        Give every batch ``extras["sampled_label"]``; needs ``batch_size``.
    batch_size : int, optional
        Yield batches (``IndexBatch``) of this many indices instead of single ints; the
        epoch's last batch is shorter unless ``drop_last``. ``len()`` and the
        ``state_dict`` position then count batches, and ranks get whole batches.
    samples_per_label : int
        Examples taken per label visit (mmdetection's ``num_sample_class``, default 1).
    seed, num_replicas, rank
        As for :class:`WeightedSampler`: rank r gets items r, r + R, ... of the epoch --
        with ``batch_size``, batches r, r + R, ... (as
        :class:`~longtail.samplers.StratifiedBatchSampler` does).
    drop_last : bool
        Trim the epoch to a multiple of ``num_replicas`` items (batches) instead of
        padding it by wrapping around; with ``batch_size`` also drop the shorter last
        batch.
    warn : bool
        Emit an :class:`ExposureWarning` when the sampler hardly lifts the rare labels
        relative to the frequent ones (dense multilabel data, where an example drawn for
        a rare label brings its frequent labels along).
    prefetch : bool
        Build the next epoch in a background thread while this one is consumed (default),
        so that ``iter()`` of the next epoch does not stall; ``False`` builds each epoch
        when its ``iter()`` is made. The epochs are the same either way. The label ->
        examples CSC that every epoch reads (``labels.transpose()``) is built here.

    Example
    -------
    >>> y = LabelMatrix.from_lists([[0], [0], [0], [1]])
    >>> s = ClassAwareSampler(y, num_samples=4, return_labels=True, batch_size=2, seed=0)
    >>> [(list(b), b.extras["sampled_label"].tolist()) for b in s]  # each label twice
    [([0, 3], [0, 1]), ([3, 1], [1, 0])]
    >>> # DataLoader(ArrowDataset(path), batch_sampler=s, collate_fn=ArrowDataset.collate)
    >>> # for x, y, idx, extras in loader: extras["sampled_label"]  # weight y[:, that label]
    """

    def __init__(self, labels: Any, num_samples: int | None = None,
                 class_weights: Any = None, return_labels: bool = False, *,
                 batch_size: int | None = None, samples_per_label: int = 1, seed: int = 0,
                 num_replicas: int | None = None, rank: int | None = None,
                 drop_last: bool = False, warn: bool = True, prefetch: bool = True) -> None:
        y = LabelMatrix.from_any(labels)
        n, L = len(y), y.n_labels
        warn = check_bool("warn", warn)
        m = n if num_samples is None else check_positive_int("num_samples", num_samples)
        k = check_positive_int("samples_per_label", samples_per_label)
        return_labels = check_bool("return_labels", return_labels)
        batch_size = check_positive_int("batch_size", batch_size, allow_none=True)
        if return_labels and batch_size is None:
            raise ValueError(
                "return_labels=True needs batch_size: the sampled labels travel with a "
                "batch, as IndexBatch.extras['sampled_label']. Use ClassAwareSampler(..., "
                "return_labels=True, batch_size=B) as DataLoader(batch_sampler=...), e.g. "
                "with ArrowDataset and collate_fn=ArrowDataset.collate")
        # an epoch holds num_samples (index, label) int64 pairs; a shard and a prefetched
        # epoch as much again
        check_memory(f"num_samples={m:,}", 48.0 * m + 4.0 * y.nnz)
        counts = y.label_counts()
        present = counts > 0
        if class_weights is None:
            classes = np.flatnonzero(present).astype(np.int64)
            cw = None
        else:
            cw = check_weights(class_weights, "class_weights", L, what="label")
            classes = np.flatnonzero(present & (cw > 0)).astype(np.int64)
        if classes.size == 0:
            raise ValueError("no label has both examples and a positive class weight: "
                             "nothing to sample" if cw is not None
                             else "no label has examples: nothing to sample")
        super().__init__(seed=seed, num_replicas=num_replicas, rank=rank,
                         drop_last=drop_last, prefetch=prefetch)
        self.labels = y
        self.num_samples = int(m)
        self.samples_per_label = int(k)
        self.return_labels = return_labels
        self.batch_size = batch_size
        self.class_weights = cw
        self._classes = classes
        if cw is not None:
            sub = np.ascontiguousarray(cw[classes])
            sub.flags.writeable = False       # the same kernel type as WeightedSampler's
            self._prob, self._alias = BK.build_alias(sub)
        else:
            self._prob, self._alias = np.ones(1), np.zeros(1, dtype=np.int64)
        self._crc = None if cw is None else crc_of(cw)
        self._labels_crc: int | None = None
        self._csc()                           # the label -> examples CSC, built once
        if warn:
            _warn_if_flat("ClassAwareSampler", y, self._row_weights)

    def _csc(self) -> LabelMatrix:
        """The labels' CSC (cached on the matrix; built under a lock, never twice)."""
        with _CSC_LOCK:
            return self.labels.transpose()

    def _global_order(self, epoch: int) -> np.ndarray:
        t = self._csc()
        b = self.batch_size
        # one row per draw, or per batch (the items of a shorter last batch followed by
        # -1); the labels ride along as a second column
        rows = self.num_samples if b is None else self._global_length(epoch) * b
        width = 2 if self.return_labels else 1
        out = np.empty((rows, width), dtype=np.int64)
        BK.class_aware_epoch(t.offsets, t.indices, self._classes, self._prob, self._alias,
                             self.class_weights is not None, self.num_samples,
                             min(self.samples_per_label, self.num_samples),
                             np.uint64(self._epoch_seed(epoch)), out)
        if b is None:
            return out.reshape(-1)
        return out.reshape((-1, b, 2) if self.return_labels else (-1, b))

    def _global_length(self, epoch: int) -> int:
        if self.batch_size is None:
            return self.num_samples
        full, rest = divmod(self.num_samples, self.batch_size)
        return full + (1 if rest and not self.drop_last else 0)

    def _materialize(self, chunk: np.ndarray) -> Any:
        return chunk.tolist() if self.batch_size is None else _Batches(chunk)

    def _signature(self) -> dict[str, Any]:
        if self._labels_crc is None:
            self._labels_crc = labels_crc(self.labels)
        return {"n": len(self.labels), "n_labels": self.labels.n_labels,
                "nnz": self.labels.nnz, "labels_crc": self._labels_crc,
                "num_samples": self.num_samples,
                "samples_per_label": self.samples_per_label,
                "return_labels": self.return_labels, "batch_size": self.batch_size,
                "class_weights_crc": self._crc}

    def label_probabilities(self) -> np.ndarray:
        """Probability that a draw is made for each label (float64[n_labels])."""
        p = np.zeros(self.labels.n_labels)
        if self.class_weights is None:
            p[self._classes] = 1.0 / self._classes.size
        else:
            cw = self.class_weights[self._classes]
            p[self._classes] = cw / cw.sum()
        return p

    def _row_weights(self, rows: np.ndarray | None, sub: LabelMatrix) -> np.ndarray:
        """:meth:`expected_weights` of the examples ``rows`` (labels ``sub``) only."""
        counts = self.labels.label_counts()
        lw = np.zeros(self.labels.n_labels)
        nz = counts > 0
        # the draw probabilities sum to 1 over the examples: times n for mean 1
        lw[nz] = self.label_probabilities()[nz] / counts[nz] * len(self.labels)
        row_of = np.repeat(np.arange(len(sub)), sub.row_lengths())
        return np.bincount(row_of, weights=lw[sub.indices], minlength=len(sub))

    def expected_weights(self) -> np.ndarray:
        """Per-example draw rate relative to uniform sampling (mean 1): the sampler draws
        example i with probability ``sum over its labels c of P(c) / n_c``. Give it to
        :func:`~longtail.exposure_report` to see the per-label exposure it yields."""
        counts = self.labels.label_counts()
        lw = np.zeros(self.labels.n_labels)
        nz = counts > 0
        lw[nz] = self.label_probabilities()[nz] / counts[nz]
        rows = np.repeat(np.arange(len(self.labels)), self.labels.row_lengths())
        w = np.bincount(rows, weights=lw[self.labels.indices], minlength=len(self.labels))
        return w / w.mean()

    def __repr__(self) -> str:
        return (f"ClassAwareSampler(n={len(self.labels):,}, labels={self._classes.size:,}, "
                f"num_samples={self.num_samples:,}, return_labels={self.return_labels}, "
                f"batch_size={self.batch_size}, seed={self.seed}, "
                f"rank={self.rank}/{self.num_replicas})")


# ---------------------------------------------------------------------------- deprecated
def sampled_labels(batch: Any) -> np.ndarray:
    """Deprecated: read ``batch.extras["sampled_label"]`` of an :class:`IndexBatch`.

    :class:`ClassAwareSampler` ``(return_labels=True, batch_size=B)`` yields
    :class:`~longtail.datasets.IndexBatch` lists whose ``extras["sampled_label"]`` holds
    the label each index was drawn for; this returns it (``-1`` for every index of a
    batch that carries none).

    Example
    -------
    >>> import warnings; warnings.simplefilter("ignore", DeprecationWarning)
    >>> sampled_labels(IndexBatch([4, 5], {"sampled_label": np.array([2, 0])})).tolist()
    [2, 0]
    """
    warnings.warn("sampled_labels(batch) is deprecated: batches of ClassAwareSampler("
                  "return_labels=True, batch_size=B) are IndexBatch lists, read "
                  "batch.extras['sampled_label'] (with ArrowDataset: the extras dict of "
                  "the (x, y, index, extras) batch)", DeprecationWarning, stacklevel=2)
    extras = getattr(batch, "extras", None) or {}
    if "sampled_label" in extras:
        return np.asarray(extras["sampled_label"])
    return np.full(len(batch), -1, dtype=np.int64)


def with_sampled_labels(dataset: Any, key: str = "sampled_label") -> Any:
    """Deprecated: returns ``dataset`` unchanged (no wrapper is needed any more).

    The labels that :class:`ClassAwareSampler` ``(return_labels=True, batch_size=B)``
    drew travel with each batch as ``IndexBatch.extras["sampled_label"]``;
    :class:`~longtail.datasets.ArrowDataset` batches are ``(x, y, index, extras)``, and
    any other dataset gets them through
    :func:`~longtail.datasets.index_batch.with_extras` and
    :func:`~longtail.datasets.index_batch.collate_with_extras`.

    Example
    -------
    >>> import warnings; warnings.simplefilter("ignore", DeprecationWarning)
    >>> ds = [10, 11, 12]
    >>> with_sampled_labels(ds) is ds
    True
    """
    warnings.warn("with_sampled_labels(dataset) is deprecated and returns the dataset "
                  "unchanged: use ClassAwareSampler(..., return_labels=True, batch_size=B) "
                  "as DataLoader(batch_sampler=...); each batch carries "
                  "extras['sampled_label'] (ArrowDataset batches are (x, y, index, extras))",
                  DeprecationWarning, stacklevel=2)
    if key != "sampled_label":
        raise ValueError(f"with_sampled_labels(key={key!r}): the sampled labels now always "
                         "travel as extras['sampled_label']; another key is not supported")
    return dataset
