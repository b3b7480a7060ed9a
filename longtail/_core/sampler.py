"""Machinery shared by every longtail sampler: seeds, epochs, sharding and resume.

:class:`ResumableSampler` holds what every sampler has: the seed, the replica layout
(``num_replicas`` / ``rank``, from ``torch.distributed`` by default), the epoch
(``set_epoch``), the position in the epoch, and the state-dict header that carries them
(``sampler``, ``seed``, ``epoch``, ``num_replicas``, ``rank``, ``yielded`` and the
sampler's signature), checked as untrusted input on load.

An epoch sampler subclasses :class:`EpochSampler` and implements ``_global_order(epoch)``,
which returns the whole epoch for *all* ranks (an int64 array of indices, a 2-D array with
one row per item, or a list of items such as index lists for a batch sampler) as a pure
function of ``(seed, epoch)``. The base class then

* shards it, always as an array (a list becomes a 1-D object array of its items, see
  :func:`as_order`): the epoch is padded by wrapping around (or trimmed with
  ``drop_last``) to a multiple of ``num_replicas`` and rank ``r`` gets the items
  ``r, r + R, r + 2R, ...`` (the ``DistributedSampler`` layout, :func:`shard_array`), so
  shards are disjoint, equally long, and the same whatever the number of workers;
* hands the shard out in chunks of up to :data:`CHUNK` items (the first one small, see
  :data:`FIRST_CHUNK`): each chunk becomes a Python list
  (``_materialize``) only when the iteration reaches it, so a 100M-draw epoch never
  exists as 100M Python ints at once; the iteration is C-speed (``itertools.chain`` over
  ``list_iterator`` objects) and how far it got is read back exactly with
  ``operator.length_hint``, so ``state_dict()`` knows how many items of the epoch were
  handed out, and ``load_state_dict()`` resumes right after them (torchdata
  ``StatefulDataLoader`` protocol: plain Python ints, epoch included). A shard of
  Python objects (from a list order) is handed out as one plain list iterator, counted
  the same way.

A sampler whose epoch is expensive to build can ask for it ahead (``prefetch=True``):
when the iterator of epoch ``e`` is made, a daemon thread builds epoch ``e + 1``
(``_global_order`` then sharding) while epoch ``e`` is consumed, and the next epoch takes
the result instead of building it, so its first item costs nothing on the training
thread (the kernels building the epoch release the GIL). The epoch is a pure function of
``(seed, epoch)``, so a prefetched epoch equals a freshly built one; a prefetch for an
epoch other than the one asked for (``set_epoch`` jumped), or made in another process
(a fork), or that failed, is discarded and the epoch built synchronously. Pickled (and
deep-copied) samplers carry no thread or future. ``_global_order`` must then not mutate
the sampler (it runs off the main thread).
"""
from __future__ import annotations

import itertools
import operator
import os
import threading
import zlib
from concurrent.futures import Future
from typing import Any, Iterator, Mapping, Sequence

import numpy as np
from torch.utils.data import Sampler

from longtail._core.checks import (  # noqa: F401  (re-exported for the samplers)
    is_int, check_bool, check_int, check_positive_int, check_seed)
from longtail._core.rng import derive_seed


_MAX_REPLICAS = 2**31 - 1
_MAX_EPOCH = 2**63


def resolve_replicas(num_replicas: int | None, rank: int | None) -> tuple[int, int]:
    """Fill ``num_replicas`` / ``rank`` from the initialised ``torch.distributed`` group.

    Without an initialised group the defaults are one replica, rank 0. Both must be
    integers (not floats, not bools): ``num_replicas >= 1``, ``0 <= rank < num_replicas``.

    Example
    -------
    >>> resolve_replicas(None, None)
    (1, 0)
    >>> resolve_replicas(4, 3)
    (4, 3)
    """
    if num_replicas is None or rank is None:
        import torch.distributed as dist

        initialised = dist.is_available() and dist.is_initialized()
        if num_replicas is None:
            num_replicas = dist.get_world_size() if initialised else 1
        if rank is None:
            rank = dist.get_rank() if initialised else 0
    if not is_int(num_replicas) or not 1 <= num_replicas <= _MAX_REPLICAS:
        raise ValueError(f"num_replicas must be a positive integer (at most 2**31 - 1), "
                         f"got {num_replicas!r}")
    if not is_int(rank) or not 0 <= rank < num_replicas:
        raise ValueError(f"rank must be in [0, num_replicas={num_replicas}), "
                         f"got rank={rank!r}")
    return int(num_replicas), int(rank)


def available_memory() -> int | None:
    """Bytes of memory available now (``MemAvailable``), or ``None`` if unknown."""
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    try:
        import psutil

        return int(psutil.virtual_memory().available)
    except Exception:  # pragma: no cover - psutil missing or failing
        return None


def check_memory(what: str, nbytes: float) -> None:
    """Refuse, before allocating, work that cannot fit: ``nbytes`` beyond the int64 range
    or beyond the memory available now. ``what`` says which argument asked for it.

    Example
    -------
    >>> check_memory("num_samples=10", 80)
    >>> check_memory("num_samples=10**30", 8e30)
    Traceback (most recent call last):
    ...
    ValueError: num_samples=10**30 needs about 7.5e+21 GiB of memory: that cannot be allocated
    """
    nbytes = float(nbytes)
    if not nbytes < 2.0 ** 62:
        raise ValueError(f"{what} needs about {nbytes / 2**30:.2g} GiB of memory: that "
                         "cannot be allocated")
    avail = available_memory()
    if avail is not None and nbytes > avail:
        raise ValueError(f"{what} needs about {nbytes / 2**30:.3g} GiB of memory, "
                         f"{avail / 2**30:.3g} GiB are available")


def crc_of(*arrays: np.ndarray) -> int:
    """CRC-32 fingerprint of arrays' bytes, in order (part of a state signature)."""
    crc = 0
    for a in arrays:
        crc = zlib.crc32(memoryview(np.ascontiguousarray(a)).cast("B"), crc)
    return int(crc)


def labels_crc(labels: Any) -> int:
    """Fingerprint of a LabelMatrix's content (shape and every label id)."""
    head = np.array([len(labels), labels.n_labels, labels.nnz], dtype=np.int64)
    return crc_of(head, labels.offsets, labels.indices)


def state_value(state: Any, key: str, owner: str) -> Any:
    """``state[key]``, or a ``ValueError`` naming the missing key (not a bare KeyError)."""
    if not isinstance(state, Mapping):
        raise TypeError(f"a {owner} state_dict must be a dict, got {type(state).__name__}")
    if key not in state:
        raise ValueError(f"state_dict has no {key!r}: not a {owner} state")
    return state[key]


def same_value(expected: Any, got: Any) -> bool:
    """Strict equality of two plain state values (an int is not a bool, 1 is not 1.0,
    arrays never equal a scalar)."""
    if expected is None or isinstance(expected, (bool, np.bool_)):
        return (got is None and expected is None) or (
            isinstance(got, (bool, np.bool_)) and bool(got) == bool(expected))
    if is_int(expected):
        return is_int(got) and int(got) == int(expected)
    if isinstance(expected, (float, np.floating)):
        return (isinstance(got, (float, int, np.floating, np.integer))
                and not isinstance(got, (bool, np.bool_)) and float(got) == float(expected))
    if isinstance(expected, str):
        return isinstance(got, str) and got == expected
    return type(got) is type(expected) and got == expected  # pragma: no cover


#: Items per chunk when an epoch is handed out (see the module docstring).
CHUNK = 1 << 16
#: Items in the first chunk of an iterator; each next chunk doubles, up to CHUNK, so the
#: first item of an epoch costs ~0.05 ms of list building, not ~0.6 ms (65,536 ints).
FIRST_CHUNK = 1 << 12


def shard_length(total: int, num_replicas: int, drop_last: bool) -> int:
    """Items per rank for an epoch of ``total`` items (padding, or trimming if ``drop_last``).

    Example
    -------
    >>> shard_length(5, 2, drop_last=False), shard_length(5, 2, drop_last=True)
    (3, 2)
    """
    if num_replicas == 1:
        return int(total)
    return int(total // num_replicas if drop_last else -(-total // num_replicas))


def shard_array(order: np.ndarray, num_replicas: int, rank: int, drop_last: bool) -> np.ndarray:
    """Rank ``rank``'s part of a global epoch held in an array (items along axis 0).

    The order is padded by wrapping around (or trimmed when ``drop_last``) to a multiple
    of ``num_replicas``; rank ``r`` takes positions ``r::num_replicas`` (the
    ``DistributedSampler`` layout). Only this rank's positions are made, never the padded
    epoch of all ranks; one replica gets the array itself.

    Example
    -------
    >>> shard_array(np.arange(5), 2, 1, drop_last=False).tolist()
    [1, 3, 0]
    """
    if num_replicas == 1:
        return order
    total = order.shape[0]
    size = shard_length(total, num_replicas, drop_last) * num_replicas
    if size > total and total:
        positions = np.arange(rank, size, num_replicas, dtype=np.int64) % total
        return order[positions]
    return order[rank:size:num_replicas].copy()


def as_order(order: np.ndarray | Sequence[Any]) -> np.ndarray:
    """A global epoch as an array: a numpy array as it is, any other sequence of items (a
    list of batches) as a 1-D object array holding those very items.

    Example
    -------
    >>> as_order([[3, 1], [2]]).tolist()
    [[3, 1], [2]]
    """
    if isinstance(order, np.ndarray):
        return order
    return np.fromiter(order, dtype=object, count=len(order))


class ResumableSampler(Sampler):
    """What every longtail sampler shares: seed, replica layout, epoch, the position in the
    epoch and the state-dict header that carries them.

    Subclasses report how many items of the epoch were handed out (:meth:`_consumed`)
    and may extend :meth:`_signature` with whatever must match for a saved state to
    apply. :meth:`state_dict` gives ``{"sampler", "seed", "epoch", "num_replicas",
    "rank", "yielded"}`` plus the signature; :meth:`_load_header` checks them.

    Parameters
    ----------
    seed : int
        Base seed of every stream the sampler draws from.
    num_replicas, rank : int, optional
        Distributed layout; default to the initialised ``torch.distributed`` group.
    """

    #: whether a saved state must come from the same number of replicas (a sampler whose
    #: state does not depend on the layout sets it False: only the rank is checked then)
    _same_replicas = True

    def __init__(self, *, seed: int = 0, num_replicas: int | None = None,
                 rank: int | None = None) -> None:
        self.seed = check_seed(seed)
        self.num_replicas, self.rank = resolve_replicas(num_replicas, rank)
        self.epoch = 0
        self._resume_at = 0

    # -- to implement -------------------------------------------------------------------
    def _signature(self) -> dict[str, Any]:
        """Values that must match for :meth:`load_state_dict` to accept a state."""
        return {}

    def _consumed(self) -> int:
        """Items of the current epoch handed out so far."""
        raise NotImplementedError

    def _restart(self) -> None:
        """Called when :meth:`set_epoch` selects another epoch (its position restarts)."""
        self._resume_at = 0

    # -- shared ----------------------------------------------------------------------------
    def _epoch_seed(self, epoch: int, *keys: int) -> int:
        """64-bit seed of this sampler for ``epoch`` (and optional sub-stream keys)."""
        return derive_seed(self.seed, epoch, *keys)

    def set_epoch(self, epoch: int) -> None:
        """Select the epoch whose order the next ``iter()`` produces (as DistributedSampler)."""
        if not is_int(epoch) or not 0 <= epoch < _MAX_EPOCH:
            raise ValueError(f"epoch must be a non-negative integer below 2**63, got {epoch!r}")
        if int(epoch) != self.epoch:
            self._restart()
        self.epoch = int(epoch)

    def _header_keys(self) -> list[str]:
        """The keys of the :meth:`state_dict` header, signature included."""
        return ["sampler", "seed", "epoch", "num_replicas", "rank", "yielded",
                *self._signature()]

    def state_dict(self) -> dict[str, Any]:
        """Position in the epoch: plain Python values (``StatefulDataLoader`` protocol)."""
        state = {
            "sampler": type(self).__name__,
            "seed": self.seed,
            "epoch": self.epoch,
            "num_replicas": self.num_replicas,
            "rank": self.rank,
            "yielded": int(self._consumed()),
        }
        state.update(self._signature())
        return state

    def _load_header(self, state: Any) -> tuple[int, int]:
        """Check the header of a state (untrusted input) and return ``(epoch, yielded)``.

        The sampler class, seed, signature (and number of replicas, unless
        ``_same_replicas`` is False) must match; ``rank``, ``epoch`` and ``yielded`` must
        be integers in range (``yielded`` >= 0; its upper bound is the caller's).
        Nothing is applied.
        """
        owner = type(self).__name__
        expected = {"sampler": owner, "seed": self.seed}
        if self._same_replicas:
            expected["num_replicas"] = self.num_replicas
        expected.update(self._signature())
        for key, value in expected.items():
            got = state_value(state, key, owner)
            if not same_value(value, got):
                raise ValueError(
                    f"state_dict was saved with {key}={got!r}, this {owner} has "
                    f"{key}={value!r}"
                )
        if self._same_replicas:
            replicas = self.num_replicas   # the saved rank may differ (equal shards)
        else:
            replicas = check_int("state_dict['num_replicas']",
                                 state_value(state, "num_replicas", owner), 1)
        check_int("state_dict['rank']", state_value(state, "rank", owner), 0, replicas - 1)
        epoch = check_int("state_dict['epoch']", state_value(state, "epoch", owner), 0,
                          _MAX_EPOCH - 1)
        yielded = check_int("state_dict['yielded']", state_value(state, "yielded", owner), 0)
        return epoch, yielded


class EpochSampler(ResumableSampler):
    """Base class: deterministic per ``(seed, epoch)``, sharded, resumable.

    Subclasses implement :meth:`_global_order` and may extend :meth:`_signature` with
    whatever must match for a saved state to apply (dataset size, parameters).

    Parameters
    ----------
    seed : int
        Base seed; every epoch derives its own stream from ``(seed, epoch)``.
    num_replicas, rank : int, optional
        Distributed layout; default to the initialised ``torch.distributed`` group.
    drop_last : bool
        Trim the epoch to a multiple of ``num_replicas`` instead of padding it.
    prefetch : bool
        Build epoch ``e + 1`` in a background thread when the iterator of epoch ``e`` is
        made (see the module docstring); for samplers whose epoch is slow to build.
    """

    def __init__(
        self,
        *,
        seed: int = 0,
        num_replicas: int | None = None,
        rank: int | None = None,
        drop_last: bool = False,
        prefetch: bool = False,
    ) -> None:
        super().__init__(seed=seed, num_replicas=num_replicas, rank=rank)
        self.drop_last = check_bool("drop_last", drop_last)
        self.prefetch = check_bool("prefetch", prefetch)
        #: (pid, epoch, future of that epoch's shard) of the prefetch in flight, if any
        self._pending: tuple[int, int, Future] | None = None
        self._cached_epoch: int | None = None
        self._cached_shard: np.ndarray | None = None
        self._iterator: Iterator | None = None
        self._chunk_base = 0
        self._chunk_len = 0
        self._chunk_it: Iterator = iter(())
        self._iter_start, self._iter_epoch = 0, -1   # where the last iter() began

    # -- to implement ---------------------------------------------------------------
    def _global_order(self, epoch: int) -> np.ndarray | list:
        """The whole epoch for all ranks, a pure function of ``(self.seed, epoch)``."""
        raise NotImplementedError

    def _global_length(self, epoch: int) -> int | None:
        """Length of the global epoch when known without building it (else ``None``)."""
        return None

    def _materialize(self, chunk: np.ndarray) -> list:
        """Python items for a chunk of the epoch (default: ``chunk.tolist()``)."""
        return chunk.tolist()

    # -- helpers ----------------------------------------------------------------------
    def _build_shard(self, epoch: int) -> np.ndarray:
        """This rank's shard of ``epoch``, built from scratch (reads, never writes, self)."""
        order = as_order(self._global_order(epoch))
        return shard_array(order, self.num_replicas, self.rank, self.drop_last)

    def _take_prefetched(self, epoch: int) -> np.ndarray | None:
        """The prefetched shard of ``epoch`` (waiting for it if still building), or
        ``None``: nothing prefetched, another epoch (dropped), another process, failed."""
        pending, self._pending = getattr(self, "_pending", None), None
        if pending is None:
            return None
        pid, ahead, future = pending
        if ahead != epoch or pid != os.getpid():
            return None      # the thread finishes on its own; its result is dropped
        try:
            return future.result()
        except Exception:
            return None      # build again on this thread: its error, if any, surfaces here

    def _start_prefetch(self, epoch: int) -> None:
        """Build the shard of ``epoch`` in a daemon thread (once; not if cached)."""
        pending = getattr(self, "_pending", None)
        if (not getattr(self, "prefetch", False) or epoch >= _MAX_EPOCH
                or self._cached_epoch == epoch
                or (pending is not None and pending[:2] == (os.getpid(), epoch))):
            return
        future: Future = Future()

        def build() -> None:
            try:
                future.set_result(self._build_shard(epoch))
            except BaseException as exc:  # noqa: BLE001 - handed to the consumer
                future.set_exception(exc)

        self._pending = (os.getpid(), epoch, future)
        threading.Thread(target=build, name=f"longtail-prefetch-{epoch}",
                         daemon=True).start()

    def _shard_for(self, epoch: int) -> np.ndarray:
        if self._cached_epoch != epoch:
            shard = self._take_prefetched(epoch)
            self._cached_shard = self._build_shard(epoch) if shard is None else shard
            self._cached_epoch = epoch
        return self._cached_shard  # type: ignore[return-value]

    def __getstate__(self) -> dict[str, Any]:
        state = self.__dict__.copy()
        state["_pending"] = None     # no thread or future in a pickle or a copy
        return state

    def _chunks(self, order: np.ndarray, start: int) -> Iterator[Iterator]:
        """List iterators over successive chunks of the shard, from ``start``: the first
        of :data:`FIRST_CHUNK` items, then each twice the last, up to :data:`CHUNK`."""
        pos, end = start, order.shape[0]
        size = min(FIRST_CHUNK, CHUNK)
        while pos < end:
            items = self._materialize(order[pos:pos + size])
            it = iter(items)
            self._chunk_base, self._chunk_len, self._chunk_it = pos, len(items), it
            yield it
            pos += size
            size = min(2 * size, CHUNK)

    # -- Sampler protocol ---------------------------------------------------------------
    def __iter__(self) -> Iterator:
        order = self._shard_for(self.epoch)
        self._start_prefetch(self.epoch + 1)
        start, self._resume_at = self._resume_at, 0
        if (start == 0 and self._iterator is not None and self._iter_start > 0
                and self._iter_epoch == self.epoch and self._consumed() == self._iter_start):
            # the previous iterator of a resumed epoch handed out nothing: resume there
            # again (torch's multi-worker DataLoader calls iter(batch_sampler) twice)
            start = self._iter_start
        self._iter_start, self._iter_epoch = start, self.epoch
        if order.dtype == object:
            # the items are Python objects already (a list order, e.g. batches: few of
            # them): one plain list iterator, which pickles with the sampler
            items = order[start:].tolist()
            it = iter(items)
            self._chunk_base, self._chunk_len, self._chunk_it = start, len(items), it
            self._iterator = it
        else:
            self._chunk_base, self._chunk_len, self._chunk_it = start, 0, iter(())
            self._iterator = itertools.chain.from_iterable(self._chunks(order, start))
        return self._iterator

    def __len__(self) -> int:
        if self._cached_epoch != self.epoch:
            total = self._global_length(self.epoch)
            if total is not None:
                return shard_length(total, self.num_replicas, self.drop_last)
        return len(self._shard_for(self.epoch))

    # -- resume ------------------------------------------------------------------------
    def _consumed(self) -> int:
        if self._iterator is None:
            return self._resume_at
        return self._chunk_base + self._chunk_len - operator.length_hint(self._chunk_it)

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Resume: the next ``iter()`` continues the saved epoch right after ``yielded``.

        A state is untrusted input: every field is checked (type, range, and the
        signature -- sampler class, seed, number of replicas, dataset fingerprint and
        parameters -- must match this sampler) before anything is applied, so on
        ``ValueError`` / ``TypeError`` the sampler is unchanged. Extra keys are ignored.
        """
        epoch, yielded = self._load_header(state)
        if self._cached_epoch == epoch or self._global_length(epoch) is None:
            length = len(self._shard_for(epoch))   # a pure function of the epoch
        else:
            length = shard_length(self._global_length(epoch), self.num_replicas,
                                  self.drop_last)
        if yielded > length:
            raise ValueError(f"state_dict yielded={yielded} is outside [0, {length}] "
                             f"(the length of epoch {epoch} on this rank)")
        self.set_epoch(epoch)
        self._iterator = None
        self._resume_at = yielded
