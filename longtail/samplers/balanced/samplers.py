"""Balancing samplers: weighted, repeat-factor and class-aware, distributed and resumable.

All three are ``torch.utils.data.Sampler`` s built on
:class:`~longtail._core.sampler.EpochSampler`: each epoch is a pure function of
``(seed, epoch)`` (call ``set_epoch`` as with ``DistributedSampler``), computed once in the
main process by a serial Numba kernel, so the order does not depend on the number of
DataLoader workers; ``num_replicas`` / ``rank`` default to the initialised
``torch.distributed`` group and give every rank a disjoint, equally long shard of the
same epoch (padded like ``DistributedSampler``); ``state_dict`` / ``load_state_dict``
resume mid-epoch under torchdata's ``StatefulDataLoader``.

* :class:`WeightedSampler` -- draws proportional to per-example weights (e.g. from
  :func:`~longtail.sample_weights`), with or without replacement, any number of examples
  (torch's ``WeightedRandomSampler`` stops at 2**24 categories).
* :class:`RepeatFactorSampler` -- repeat-factor sampling (LVIS; detectron2
  ``RepeatFactorTrainingSampler``): example i appears ``r_i`` times per epoch on average,
  by stochastic rounding.
* :class:`ClassAwareSampler` -- pick a label, then an example that has it (mmdetection's
  ``ClassAwareSampler``); with ``return_labels=True`` it yields :class:`LabelledIndex`
  items that remember the label they were drawn for, so the training loop can weight
  that label in the loss (label-level balancing, what dense data needs).

Example
-------
>>> import numpy as np
>>> from longtail.samplers import WeightedSampler
>>> s = WeightedSampler(np.array([1.0, 0.0, 3.0]), num_samples=6, seed=0)
>>> len(list(s)), 1 in list(s)
(6, False)
"""
from __future__ import annotations

import gc
import operator
import zlib
from typing import Any, Sequence

import numpy as np

from longtail.datasets.index_batch import IndexBatch
from longtail.datasets.label_matrix import LabelMatrix
from longtail.samplers.balanced import _kernels as BK
from longtail._core.sampler import (
    EpochSampler,
    check_memory,
    check_positive_int,
    labels_crc,
)
from longtail.samplers.weights.weighting import check_weights, sample_weights

__all__ = ["WeightedSampler", "RepeatFactorSampler", "ClassAwareSampler", "LabelledIndex",
           "with_sampled_labels", "sampled_labels"]


def _crc(a: np.ndarray) -> int:
    """Fingerprint of an array's bytes (part of a sampler's state signature)."""
    return int(zlib.crc32(memoryview(np.ascontiguousarray(a)).cast("B")))


def _labels(labels: Any) -> LabelMatrix:
    return labels if isinstance(labels, LabelMatrix) else LabelMatrix.from_any(labels)


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

    Example
    -------
    >>> s = WeightedSampler([0.1, 0.0, 0.9], num_samples=4, seed=1)
    >>> len(s), all(i != 1 for i in s)
    (4, True)
    >>> s.set_epoch(1)          # a new order every epoch, the same on every rank
    """

    def __init__(self, weights: Any, num_samples: int | None = None,
                 replacement: bool = True, *, seed: int = 0, num_replicas: int | None = None,
                 rank: int | None = None, drop_last: bool = False) -> None:
        w = check_weights(weights, "weights")   # an owned, frozen copy
        n = int(w.shape[0])
        m = n if num_samples is None else check_positive_int("num_samples", num_samples)
        if not isinstance(replacement, (bool, np.bool_)):
            raise ValueError(f"replacement must be True or False, got {replacement!r}")
        # an epoch holds num_samples int64 indices (and, without replacement, n keys)
        check_memory(f"num_samples={m:,}", 16.0 * m + (0 if replacement else 16.0 * n))
        if not replacement:
            positive = int(np.count_nonzero(w))
            if m > positive:
                raise ValueError(
                    f"replacement=False cannot draw num_samples={m} distinct examples: only "
                    f"{positive} of the {n} weights are positive")
        super().__init__(seed=seed, num_replicas=num_replicas, rank=rank,
                         drop_last=drop_last)
        self.weights = w
        self.num_samples = int(m)
        self.replacement = bool(replacement)
        self._alias: np.ndarray | None = None
        self._crc: int | None = None

    def _global_order(self, epoch: int) -> np.ndarray:
        seed = np.uint64(self._epoch_seed(epoch))
        if self.replacement:
            if self._alias is None:
                self._alias = BK.interleave_alias(*BK.build_alias(self.weights))
            return BK.draw_alias(self._alias, self.num_samples, seed)
        return BK.draw_without_replacement(self.weights, self.num_samples, seed)

    def _global_length(self, epoch: int) -> int:
        return self.num_samples

    def _signature(self) -> dict[str, Any]:
        if self._crc is None:
            self._crc = _crc(self.weights)
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
                 drop_last: bool = False) -> None:
        factors = check_weights(sample_weights(labels, "repeat_factor", threshold=threshold,
                                               sqrt=sqrt), "factors")
        _check_epoch_bound(factors)
        self._init(factors, seed, num_replicas, rank, drop_last)
        self.threshold = float(threshold)
        self.sqrt = bool(sqrt)

    @classmethod
    def from_factors(cls, factors: Any, *, seed: int = 0, num_replicas: int | None = None,
                     rank: int | None = None, drop_last: bool = False
                     ) -> "RepeatFactorSampler":
        """From precomputed repeat factors (e.g. ``longtail weights --method
        repeat_factor -o f.npy``): finite, >= 0, not all zero; factors below 1 drop
        examples with probability ``1 - r``.

        Example
        -------
        >>> s = RepeatFactorSampler.from_factors([1.0, 2.0], seed=0)
        >>> sorted(s)
        [0, 1, 1]
        """
        self = cls.__new__(cls)
        f = check_weights(factors, "factors")
        _check_epoch_bound(f)
        self._init(f, seed, num_replicas, rank, drop_last)
        self.threshold = None
        self.sqrt = None
        return self

    def _init(self, factors: np.ndarray, seed: int, num_replicas: int | None,
              rank: int | None, drop_last: bool) -> None:
        EpochSampler.__init__(self, seed=seed, num_replicas=num_replicas, rank=rank,
                              drop_last=drop_last)
        self.factors = factors      # owned and frozen by check_weights
        self._crc = _crc(factors)

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
class LabelledIndex(int):
    """An example index (an ``int``) that remembers the label it was drawn for.

    Any map-style dataset accepts it as an index (``dataset[i]``, ``operator.index``);
    ``i.label`` is the label. It pickles with its label, so it reaches DataLoader
    workers intact.

    Example
    -------
    >>> i = LabelledIndex(7, label=3)
    >>> i == 7, i.label, [10, 11, 12, 13, 14, 15, 16, 17][i]
    (True, 3, 17)
    """

    label: int

    def __new__(cls, index: int, label: int) -> "LabelledIndex":
        obj = super().__new__(cls, index)
        obj.label = label
        return obj

    def __reduce__(self) -> tuple:
        return (LabelledIndex, (int(self), self.label))

    def __repr__(self) -> str:
        return f"LabelledIndex({int(self)}, label={self.label})"


def sampled_labels(indices: Sequence[Any]) -> np.ndarray:
    """The ``label`` of each :class:`LabelledIndex` in a batch (-1 for plain ints).

    Example
    -------
    >>> sampled_labels([LabelledIndex(4, 2), 5]).tolist()
    [2, -1]
    """
    return np.fromiter((getattr(i, "label", -1) for i in indices), dtype=np.int64,
                       count=len(indices))


class SampledLabelsDataset:
    """Dataset wrapper that hands each batch's sampled labels on as ``extras``.

    See :func:`with_sampled_labels`.
    """

    def __init__(self, dataset: Any, key: str = "sampled_label") -> None:
        self.dataset = dataset
        self.key = key

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, index: Any) -> Any:
        return self.dataset[index]

    def __getitems__(self, indices: Sequence[Any]) -> Any:
        from longtail.datasets.arrow_dataset import ArrowDataset

        extras = dict(getattr(indices, "extras", None) or {})
        extras[self.key] = sampled_labels(indices)
        batch = IndexBatch([operator.index(i) for i in indices], extras)
        if isinstance(self.dataset, ArrowDataset):
            return self.dataset.__getitems__(batch)   # passes extras through
        getitems = getattr(self.dataset, "__getitems__", None)
        samples = getitems(batch) if getitems else [self.dataset[i] for i in batch]
        return IndexBatch(samples, extras)

    def __getattr__(self, name: str) -> Any:
        if name in ("dataset", "key"):  # not set yet (unpickling)
            raise AttributeError(name)
        return getattr(self.dataset, name)


def with_sampled_labels(dataset: Any, key: str = "sampled_label") -> SampledLabelsDataset:
    """Wrap a map-style dataset so that each batch carries the labels a
    :class:`ClassAwareSampler` (``return_labels=True``) drew its examples for.

    With :class:`~longtail.datasets.ArrowDataset` and ``collate_fn=ArrowDataset.collate``
    batches become ``(x, y, index, {"sampled_label": LongTensor[B]})``; with any other
    dataset use ``collate_fn=longtail.datasets.index_batch.collate_with_extras`` (the
    extras dict is appended to a tuple batch). Needs automatic batching (``batch_size``
    set): ``__getitems__`` receives the whole batch.

    Example
    -------
    >>> # ds = with_sampled_labels(ArrowDataset("train.arrow"))
    >>> # sampler = ClassAwareSampler(ds.labels, return_labels=True)
    >>> # loader = DataLoader(ds, sampler=sampler, batch_size=256,
    >>> #                     collate_fn=ArrowDataset.collate)
    >>> # for x, y, idx, extras in loader: c = extras["sampled_label"]  # weight y[:, c]
    """
    return SampledLabelsDataset(dataset, key)


class ClassAwareSampler(EpochSampler):
    """Pick a label, then an example that has it (class-aware sampling).

    mmdetection semantics: labels are visited by cycling through a shuffled list of the
    labels that have examples (reshuffled after each pass) -- or drawn with probability
    proportional to ``class_weights`` -- and each visit takes the next
    ``samples_per_label`` examples of that label from its own shuffled cycle
    (reshuffled whenever it is used up). Every label is drawn about equally often, but
    an example is drawn for each of its labels, so frequent labels still ride along with
    rare ones on multilabel data; ``return_labels=True`` yields
    :class:`LabelledIndex` items (``int`` with ``.label``) so that the loss can weight
    the label the example was drawn for (see :func:`with_sampled_labels`).

    Parameters
    ----------
    labels : LabelMatrix or anything :meth:`LabelMatrix.from_any` accepts
    num_samples : int, optional
        Draws per epoch over all ranks (default n).
    class_weights : array-like of float, shape (n_labels,), optional
        Relative probability of visiting each label (>= 0; labels without examples are
        never visited). Default: every label with examples equally, by cycling.
    return_labels : bool
        Yield :class:`LabelledIndex` items instead of plain ints.
    samples_per_label : int
        Examples taken per label visit (mmdetection's ``num_sample_class``, default 1).
    seed, num_replicas, rank, drop_last
        As for :class:`WeightedSampler`.

    Example
    -------
    >>> y = LabelMatrix.from_lists([[0], [0], [0], [1]])
    >>> s = ClassAwareSampler(y, num_samples=4, return_labels=True, seed=0)
    >>> sorted(i.label for i in s)       # both labels visited equally often
    [0, 0, 1, 1]
    """

    def __init__(self, labels: Any, num_samples: int | None = None,
                 class_weights: Any = None, return_labels: bool = False, *,
                 samples_per_label: int = 1, seed: int = 0, num_replicas: int | None = None,
                 rank: int | None = None, drop_last: bool = False) -> None:
        y = _labels(labels)
        n, L = len(y), y.n_labels
        m = n if num_samples is None else check_positive_int("num_samples", num_samples)
        k = check_positive_int("samples_per_label", samples_per_label)
        if not isinstance(return_labels, (bool, np.bool_)):
            raise ValueError(f"return_labels must be True or False, got {return_labels!r}")
        # an epoch holds num_samples (index, label) int64 pairs, stacked once more
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
                         drop_last=drop_last)
        self.labels = y
        self.num_samples = int(m)
        self.samples_per_label = int(k)
        self.return_labels = bool(return_labels)
        self.class_weights = cw
        self._classes = classes
        if cw is not None:
            sub = np.ascontiguousarray(cw[classes])
            sub.flags.writeable = False       # the same kernel type as WeightedSampler's
            self._prob, self._alias = BK.build_alias(sub)
        else:
            self._prob, self._alias = np.ones(1), np.zeros(1, dtype=np.int64)
        self._crc = None if cw is None else _crc(cw)
        self._labels_crc: int | None = None

    def _global_order(self, epoch: int) -> np.ndarray:
        t = self.labels.transpose()
        idx, lab = BK.class_aware_epoch(t.offsets, t.indices, self._classes, self._prob,
                                        self._alias, self.class_weights is not None,
                                        self.num_samples,
                                        min(self.samples_per_label, self.num_samples),
                                        np.uint64(self._epoch_seed(epoch)))
        if self.return_labels:
            return np.stack([idx, lab], axis=1)
        return idx

    def _materialize(self, chunk: np.ndarray) -> list:
        if chunk.ndim == 2:
            # a chunk of 65,536 small objects with attribute dicts: the cyclic GC would
            # scan the heap several times while they are made (4x the cost); none of them
            # is in a cycle, so collection pauses for the few milliseconds this takes
            enabled = gc.isenabled()
            gc.disable()
            try:
                return list(map(LabelledIndex, chunk[:, 0].tolist(), chunk[:, 1].tolist()))
            finally:
                if enabled:
                    gc.enable()
        return chunk.tolist()

    def _global_length(self, epoch: int) -> int:
        return self.num_samples

    def _signature(self) -> dict[str, Any]:
        if self._labels_crc is None:
            self._labels_crc = labels_crc(self.labels)
        return {"n": len(self.labels), "n_labels": self.labels.n_labels,
                "nnz": self.labels.nnz, "labels_crc": self._labels_crc,
                "num_samples": self.num_samples,
                "samples_per_label": self.samples_per_label,
                "return_labels": self.return_labels, "class_weights_crc": self._crc}

    def label_probabilities(self) -> np.ndarray:
        """Probability that a draw is made for each label (float64[n_labels])."""
        p = np.zeros(self.labels.n_labels)
        if self.class_weights is None:
            p[self._classes] = 1.0 / self._classes.size
        else:
            cw = self.class_weights[self._classes]
            p[self._classes] = cw / cw.sum()
        return p

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
                f"seed={self.seed}, rank={self.rank}/{self.num_replicas})")
