"""StratifiedBatchSampler: every batch carries the label distribution of the whole data.

Each epoch the examples are partitioned into ``ceil(n / batch_size)`` batches by iterative
stratification, so a rare label's examples are spread over the batches instead of being
clumped by chance, and the batch order is shuffled. With 313 batches and 10 million label
entries (seed scale) a flat k-way assignment would score 313 parts per example; instead
the batches are built by recursive splitting: a set of examples holding B batches is split
into k groups of about B / k batches with the balanced rule of
:func:`~longtail.iterative_stratification` (exact sizes, parts scored on all of an
example's labels), and each group again, until every group is one batch. k is chosen for
the fewest levels with k <= 64 (55 batches: one level; 313 batches: 2 levels of 18), so an
epoch is a few passes over the label entries; each level's label columns are its
parent's, filtered. A level costs about a fixed pass over the label entries plus a small
share of it per part, so one wide level beats two narrow ones (figures in
benchmarks/README.md, "Design measurements").
"""
from __future__ import annotations

from typing import Any

import numpy as np

from longtail._core.checks import check_positive_int
from longtail._core.rng import Stream, derive_seed
from longtail._core.sampler import EpochSampler, labels_crc
from longtail.samplers.split import _kernels as K
from longtail.samplers.split.stratification import as_label_matrix

__all__ = ["StratifiedBatchSampler"]

#: most parts one recursive split makes
MAX_ARITY = 64


def split_arity(n_batches: int) -> int:
    """Parts per split: the fewest levels with at most MAX_ARITY parts, balanced.

    Example
    -------
    >>> split_arity(313), split_arity(20), split_arity(11_719)
    (18, 20, 23)
    """
    levels, reach = 1, MAX_ARITY
    while reach < n_batches:
        levels += 1
        reach *= MAX_ARITY
    arity = max(2, int(np.ceil(n_batches ** (1.0 / levels) - 1e-9)))
    while arity ** levels < n_batches:
        arity += 1
    return arity


class StratifiedBatchSampler(EpochSampler):
    """A batch sampler whose batches are stratified partitions of the data, per epoch.

    Parameters
    ----------
    labels : LabelMatrix or any input :func:`~longtail.iterative_stratification` accepts
        One row per dataset example.
    batch_size : int
        Examples per batch; the last batch holds the remainder ``n % batch_size``.
    drop_last : bool
        Drop the smaller last batch (its examples are then a stratified sample of the
        data, a different one each epoch) and, under DDP, trim the batches to a multiple
        of ``num_replicas`` instead of padding.
    seed : int
        Base seed: the partition and the batch order are a function of ``(seed, epoch)``.
    num_replicas, rank : int, optional
        DDP layout (default: the initialised ``torch.distributed`` group). Every rank gets
        whole batches, the same number of them (padded by wrapping around, like
        ``DistributedSampler``, unless ``drop_last``); rank r gets batches r, r + R, ...
    prefetch : bool
        Build the next epoch's batches in a background thread while this epoch is
        consumed (the kernel releases the GIL), so no epoch's first batch waits for the
        partition (about 0.5 s at the seed scale). The batches are the same either way.

    Example
    -------
    >>> from longtail.datasets import make_long_tail
    >>> y = make_long_tail("small", seed=0, n_examples=1_000).labels
    >>> sampler = StratifiedBatchSampler(y, batch_size=100, seed=0)
    >>> sampler.set_epoch(1)
    >>> batches = list(sampler)
    >>> len(batches), sorted(len(b) for b in batches) == [100] * 10
    (10, True)
    >>> # DataLoader(dataset, batch_sampler=sampler)
    """

    def __init__(
        self,
        labels: Any,
        batch_size: int,
        drop_last: bool = False,
        seed: int = 0,
        *,
        num_replicas: int | None = None,
        rank: int | None = None,
        prefetch: bool = True,
    ) -> None:
        self.batch_size = check_positive_int("batch_size", batch_size)
        super().__init__(seed=seed, num_replicas=num_replicas, rank=rank, drop_last=drop_last,
                         prefetch=prefetch)
        self.labels = as_label_matrix(labels)
        n = len(self.labels)
        full, rest = divmod(n, self.batch_size)
        self._sizes = np.full(full + (1 if rest else 0), min(self.batch_size, max(n, 1)),
                              dtype=np.int64)
        if rest:
            self._sizes[-1] = rest
        self._has_partial = bool(rest)
        self._labels_crc: int | None = None

    def _signature(self) -> dict[str, Any]:
        if self._labels_crc is None:
            self._labels_crc = labels_crc(self.labels)
        return {"n": len(self.labels), "n_labels": self.labels.n_labels,
                "labels_crc": self._labels_crc, "batch_size": self.batch_size,
                "drop_last": self.drop_last}

    def batches(self, epoch: int) -> list[np.ndarray]:
        """The epoch's stratified batches (all ranks), as int64 index arrays, in order.

        A pure function of ``(seed, epoch)`` that writes nothing on the sampler (it runs
        in the prefetch thread); the kernel holds no GIL."""
        y = self.labels
        t = y.transpose()  # cached on the LabelMatrix
        order, starts = K.stratified_batches(
            K.plain_units(y.offsets, y.indices), t.offsets, t.indices, self._sizes,
            np.uint64(self._epoch_seed(epoch)), split_arity(len(self._sizes)))
        nb = self._sizes.shape[0]
        n_full = nb - 1 if self._has_partial else nb
        rng = np.random.default_rng(derive_seed(self.seed, epoch, Stream.STRATIFIED_BATCHES))
        perm = rng.permutation(n_full)
        out = [order[starts[b]:starts[b + 1]] for b in perm]
        if self._has_partial and not self.drop_last:
            out.append(order[starts[nb - 1]:starts[nb]])
        return out

    def _global_length(self, epoch: int) -> int:
        return len(self._sizes) - (1 if self._has_partial and self.drop_last else 0)

    def _global_order(self, epoch: int) -> list:
        return [b.tolist() for b in self.batches(epoch)]
