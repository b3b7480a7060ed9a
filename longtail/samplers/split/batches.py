"""StratifiedBatchSampler: every batch carries the label distribution of the whole data.

Each epoch the examples are partitioned into ``ceil(n / batch_size)`` batches by iterative
stratification, so a rare label's examples are spread over the batches instead of being
clumped by chance, and the batch order is shuffled. A set of examples holding B batches is
split into B parts with the balanced rule of :func:`~longtail.iterative_stratification`
(exact sizes, parts scored on all of an example's labels) -- in one level while B <= 64,
else recursively into k groups of about B / k batches (the fewest levels with k <= 64),
each level's label columns filtered from its parent's.

An epoch of more than :data:`GROUP_BATCHES` batches is first dealt into groups of at most
that many batches -- the examples sorted by their rarest label (ties at random) and dealt
evenly, so each group gets its share of every label's examples to within one as far as
it is their rarest label (a cheap O(n log n) step, not a level of splitting) -- and each
group is stratified on its own, in one level; the groups build in parallel threads (the
kernel holds no GIL). At the seed scale (313 batches of 256, 10 million label
entries) that is 10 groups of ~31 batches: 277 ms on one thread instead of 450-500 ms for
two levels of 18 parts, with the same per-label spread over the batches (1.41 vs 1.40
examples; 1.89 for random batches; figures in benchmarks/README.md).
"""
from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import numpy as np

from longtail._core.checks import check_positive_int
from longtail._core.rng import Stream, derive_seed, kernel_seed
from longtail._core.sampler import EpochSampler, labels_crc
from longtail.samplers.split import _kernels as K
from longtail.samplers.split.stratification import as_label_matrix

__all__ = ["StratifiedBatchSampler"]

#: most parts one recursive split makes
MAX_ARITY = 64
#: most batches of a group stratified on its own (an epoch with more is cut into random
#: groups of at most this many batches)
GROUP_BATCHES = 32


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


def _group_layout(labels: Any, sizes: np.ndarray) -> tuple:
    """What every epoch's groups share: group g holds batches ``bounds[g]:bounds[g + 1]``;
    position p of the sorted examples goes to the group ``by_group`` lists it under
    (positions dealt evenly: each group's positions are spread over the whole order),
    group g's examples being ``gstart[g]:gstart[g + 1]`` of that listing; ``rarest``
    is each example's rarest label as a rank (the least frequent label 0; no labels:
    last)."""
    nb = sizes.shape[0]
    n_groups = -(-nb // GROUP_BATCHES)
    bounds = [g * nb // n_groups for g in range(n_groups + 1)]
    ends = np.concatenate([[0], np.cumsum(sizes)])
    group_sizes = np.array([ends[bounds[g + 1]] - ends[bounds[g]] for g in range(n_groups)])
    # position p -> group: group g's j-th position at key (j + 0.5) / size_g
    keys = np.concatenate([(np.arange(m) + 0.5) / m for m in group_sizes])
    seq = np.repeat(np.arange(n_groups), group_sizes)[np.argsort(keys, kind="stable")]
    by_group = np.argsort(seq, kind="stable")
    gstart = np.concatenate([[0], np.cumsum(group_sizes)])
    counts = labels.label_counts()
    rank = np.empty(counts.shape[0], dtype=np.int32)
    rank[np.argsort(counts, kind="stable")] = np.arange(counts.shape[0], dtype=np.int32)
    offsets = np.asarray(labels.offsets)
    lens = np.diff(offsets)
    rarest = np.full(len(labels), counts.shape[0], dtype=np.int32)
    has = lens > 0
    if has.any():
        entry_rank = rank[np.asarray(labels.indices)]
        rarest[has] = np.minimum.reduceat(entry_rank, offsets[:-1][has])
    return bounds, gstart, by_group, rarest


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
        partition (about 0.3 s at the seed scale on one thread). The batches are the
        same either way.
    num_threads : int, optional
        Threads that build the groups of an epoch of more than :data:`GROUP_BATCHES`
        batches (default: half the CPUs, at least 1: the training loop keeps the
        others). The batches do not depend on it.

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
        num_threads: int | None = None,
    ) -> None:
        self.batch_size = check_positive_int("batch_size", batch_size)
        self.num_threads = (max(1, (os.cpu_count() or 1) // 2) if num_threads is None
                            else check_positive_int("num_threads", num_threads))
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
        if self._sizes.shape[0] > GROUP_BATCHES:
            self._layout = _group_layout(self.labels, self._sizes)

    def _signature(self) -> dict[str, Any]:
        if self._labels_crc is None:
            self._labels_crc = labels_crc(self.labels)
        return {"n": len(self.labels), "n_labels": self.labels.n_labels,
                "labels_crc": self._labels_crc, "batch_size": self.batch_size,
                "drop_last": self.drop_last}

    def batches(self, epoch: int) -> list[np.ndarray]:
        """The epoch's stratified batches (all ranks), as int64 index arrays, in order.

        A pure function of ``(seed, epoch)`` that writes nothing on the sampler (it runs
        in the prefetch thread); the kernels hold no GIL."""
        nb = self._sizes.shape[0]
        parts = self._groups(epoch) if nb > GROUP_BATCHES else self._one_group(epoch)
        n_full = nb - 1 if self._has_partial else nb
        rng = np.random.default_rng(derive_seed(self.seed, epoch, Stream.STRATIFIED_BATCHES))
        perm = rng.permutation(n_full)
        out = [parts[b] for b in perm]
        if self._has_partial and not self.drop_last:
            out.append(parts[nb - 1])
        return out

    def _one_group(self, epoch: int) -> list[np.ndarray]:
        """Every batch at once, recursively split (the layout of every epoch of at most
        :data:`GROUP_BATCHES` batches)."""
        y = self.labels
        t = y.transpose()  # cached on the LabelMatrix
        order, starts = K.stratified_batches(
            K.plain_units(y.offsets, y.indices), t.offsets, t.indices, self._sizes,
            np.uint64(self._epoch_seed(epoch)), split_arity(len(self._sizes)))
        return [order[starts[b]:starts[b + 1]] for b in range(self._sizes.shape[0])]

    def _groups(self, epoch: int) -> list[np.ndarray]:
        """Batches in groups of at most :data:`GROUP_BATCHES`, each stratified on its own
        (in parallel threads); the partial batch, if any, stays last. The groups are
        dealt from the examples sorted by their rarest label (ties at random), so every
        group gets its share of each label's examples to within one, as far as the
        label is the rarest of its examples."""
        y, sizes = self.labels, self._sizes
        bounds, gstart, by_group, rarest = self._layout
        rng = np.random.default_rng(derive_seed(self.seed, epoch, Stream.STRATIFIED_GROUPS))
        perm = rng.permutation(len(y))
        members = perm[np.argsort(rarest[perm], kind="stable")][by_group]

        def build(g: int) -> list[np.ndarray]:
            b0, b1 = bounds[g], bounds[g + 1]
            rows = np.sort(members[gstart[g]:gstart[g + 1]])
            order, starts = K.group_batches(
                y.offsets, y.indices, y.n_labels, rows, sizes[b0:b1],
                kernel_seed(self.seed, epoch, Stream.STRATIFIED_GROUPS, g),
                split_arity(b1 - b0))
            return [order[starts[b]:starts[b + 1]] for b in range(b1 - b0)]

        n_groups = len(bounds) - 1
        threads = min(self.num_threads, n_groups)
        if threads > 1:
            with ThreadPoolExecutor(threads, thread_name_prefix="longtail-groups") as pool:
                built = list(pool.map(build, range(n_groups)))
        else:
            built = [build(g) for g in range(n_groups)]
        return [b for group in built for b in group]

    def _global_length(self, epoch: int) -> int:
        return len(self._sizes) - (1 if self._has_partial and self.drop_last else 0)

    def _global_order(self, epoch: int) -> list:
        return [b.tolist() for b in self.batches(epoch)]
