"""Hard-example replay: draw batches with priority by per-example loss (online hard
example mining at the data-loading level).

The training loop reports each example's loss with :meth:`HardExampleSampler.update`;
later batches are a fixed mix of draws from three sources -- *hard* (a float64
:class:`~longtail.samplers.SumTree` over priorities derived from the losses), *base*
(any static weights, e.g. from ``longtail.sample_weights``) and *uniform* -- and every
drawn example carries its exact draw probability ``q(i)`` and an importance weight that
keeps the gradient honest. Prior art: OHEM (Shrivastava et al. 2016), prioritized replay
(Schaul et al. 2016), online batch selection by rank (Loshchilov & Hutter 2015),
Selective-Backprop (Jiang et al. 2019).

The state the kernels work on is a few named records
(:mod:`longtail.samplers.replay.state`, which also holds the state-dict codec); loss
input and the DDP gather are in :mod:`longtail.samplers.replay.feedback`.
"""
from __future__ import annotations

import hashlib
import math
from typing import Any, Iterator, Literal, Mapping

import numpy as np
import torch
from numpy.typing import ArrayLike

from longtail._core.checks import freeze
from longtail._core.rng import Stream, derive_seed
from longtail._core.sampler import ResumableSampler, check_memory, check_positive_int
from longtail.datasets.index_batch import IndexBatch
from longtail.samplers.replay import _kernels as _k
from longtail.samplers.replay import feedback
from longtail.samplers.replay.state import (PARAMS, VERSION, decode, encode, new_counters,
                                            new_examples, new_slots)
from longtail.samplers.replay.sumtree import SumTree

__all__ = ["HardExampleSampler"]

_KINDS = {"loss": 0, "rank": 1, "percentile": 2}
_NORMS = {"none": 0, "max": 1, "mean": 2}
#: the reductions of longtail.losses.per_example_loss
_REDUCTIONS = ("mean", "sum", "max", "balanced")


def _check_fraction(name: str, value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)):
        raise ValueError(f"{name} must be a number in [0, 1], got {value!r}")
    v = float(value)
    if not 0.0 <= v <= 1.0:
        raise ValueError(f"{name} must be in [0, 1], got {value!r}")
    return v


def _check_real(name: str, value: Any, *, low: float, low_open: bool = False,
                high: float = math.inf) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)):
        raise ValueError(f"{name} must be a real number, got {value!r}")
    v = float(value)
    if not math.isfinite(v):
        raise ValueError(f"{name} must be finite, got {value!r}")
    if v < low or (low_open and v == low) or v > high:
        bracket = "(" if low_open else "["
        raise ValueError(f"{name} must be in {bracket}{low}, {high}], got {value!r}")
    return v


def _check_array(name: str, values: Any, n: int, *, nonneg: bool) -> np.ndarray:
    """A validated float64 ``[n]`` copy of ``values``, frozen (never the caller's array)."""
    if isinstance(values, torch.Tensor):
        values = values.detach().cpu().numpy()
    arr = np.asarray(values)
    if arr.dtype.kind not in "fiu":
        raise ValueError(f"{name} must be a real array, got dtype {arr.dtype}")
    if arr.shape != (n,):
        raise ValueError(f"{name} must have shape ({n},), got {arr.shape}")
    arr = np.array(arr, dtype=np.float64, order="C", copy=True)
    bad = ~np.isfinite(arr)
    if nonneg:
        bad |= arr < 0
    if bad.any():
        pos = int(np.flatnonzero(bad)[0])
        what = "finite and >= 0" if nonneg else "finite"
        raise ValueError(f"{name} must be {what}; {name}[{pos}] = {arr[pos]!r}")
    return freeze(arr)


def _split_counts(total: int, fractions: list[float]) -> list[int]:
    """Integer counts summing to ``total`` closest to ``fractions * total`` (largest
    remainder; ties go to the earlier source)."""
    raw = [f * total for f in fractions]
    counts = [int(math.floor(r + 1e-9)) for r in raw]
    rest = total - sum(counts)
    order = sorted(range(len(raw)), key=lambda s: (-(raw[s] - counts[s]), s))
    for s in order[:max(rest, 0)]:
        counts[s] += 1
    return counts


#: the baseline a sampler without one hands its kernel (frozen like a real one: one
#: Numba specialisation for both)
_NO_BASELINE = freeze(np.zeros(1, dtype=np.float64))


class HardExampleSampler(ResumableSampler):
    """Batch sampler that replays hard examples, with loss feedback from training.

    Each global batch (``batch_size * num_replicas`` draws, with replacement) is a fixed
    mix: ``k_h`` draws from the *hard* source (probability proportional to a priority
    derived from the example's last reported loss), ``k_b`` from the *base* weights and
    ``k_u`` uniform, ``k_* = round(fraction * global batch)`` (largest remainder; the
    effective fractions ``k_* / global batch`` are in :attr:`fractions`). Every draw knows
    its exact probability, the mixture

        ``q(i) = k_h/B * prio(i)/sum(prio) + k_b/B * base(i)/sum(base) + k_u/B / n``

    (the probability that a random slot of the batch holds ``i``), and gets the
    importance weight ``w = (p_target(i) / q(i)) ** beta``, where ``p_target`` is the
    non-hard part of the mix renormalised (``k_u`` and ``k_b`` shares of uniform and
    base; the base weights alone, or uniform, when every draw is hard). With ``beta = 1``
    the weighted loss is an unbiased estimate of the loss under ``p_target``. Weights are
    normalised over the *global* batch: ``"max"`` divides by the batch maximum (as in
    PER, so ``w <= 1``), ``"mean"`` by the batch mean, ``"none"`` leaves them.

    **Weights travel with the batch.** The sampler yields
    :class:`~longtail.datasets.IndexBatch` objects: a list of int indices with
    ``extras = {"index": int64[B], "weight": float32[B], "prob": float64[B]}`` computed
    at draw time. The extras are pickled with the indices into the worker that fetches
    the batch and come back collated with it (``ArrowDataset`` appends them as a fourth
    element; other datasets: ``with_extras(dataset)`` plus
    ``collate_fn=collate_with_extras``). So however many batches workers prefetch (the
    sampler runs ``num_workers * prefetch_factor`` batches ahead of training), each batch
    has exactly the weights it was drawn with; nothing is looked up later.

    **Priority** (``priority=``), from the loss minus the optional per-example
    ``baseline`` (e.g. a reference model's loss: RHO-LOSS style "reducible loss"):

    * ``"loss"``: ``(max(loss - baseline, 0) + eps) ** alpha`` (PER / OHEM);
    * ``"rank"`` (Loshchilov & Hutter 2015): ``selection_pressure ** (pct - 1)``, i.e.
      ``exp(-ln(s) * rank / N)`` -- the hardest example is ``s`` times as likely as the
      easiest; the rank is estimated as ``N * (1 - pct)``;
    * ``"percentile"`` (Selective-Backprop): ``(pct + eps) ** alpha``;

    where ``pct`` is the loss's mid-rank percentile among a sorted snapshot of the last
    ``history`` reported losses, re-sorted every ``history // 4`` reports (O(B log H) per
    update instead of re-ranking all ``n`` examples).

    **Unseen examples** have, from the first update on, the largest priority reported so
    far (PER's rule: they come before any seen example); before the first update every
    priority is 1 (the hard source is uniform).

    **Staleness.** Each :meth:`update` also revisits the next ``ceil(n / (len(self) //
    2))`` examples cyclically (every example about twice per epoch of updates; an
    unseen one gets the current largest priority) and sets a reported example's
    priority to ``m + (p_reported - m) * 2 ** (-age / half_life)``: ``age`` is the number
    of global steps since its report, ``m`` the running mean of reported priorities (mean
    of each update's priorities, averaged with weight ``b / min(n, reports so far)``).
    ``staleness_half_life`` is in steps: ``"epoch"`` (default) for ``len(self)``,
    ``None`` to disable.

    **In flight.** An example drawn by the hard source has its priority multiplied by
    ``in_flight_factor`` (default 0: it is not hard-drawn again) from that draw until
    its loss comes back through :meth:`update`, or at most ``in_flight_timeout``
    further steps (for batches whose loss is never reported). So while workers prefetch
    ``num_workers * prefetch_factor`` batches, the hard source does not keep drawing the
    same high-loss example whose new loss is not known yet. Uniform and base draws are
    not marked (they do not follow the priorities, and leaving them unmarked keeps the
    draw cheap: the hard draws' tree paths are in cache, theirs are not): such an
    example can be hard-drawn once more before its loss returns, and is marked then.
    Draw probabilities and weights always use the priorities in force at draw time, so
    the weights stay exact. If every priority is 0 or in flight when a hard draw is
    due, the marks are lifted first; if every priority is still 0 the hard source
    draws uniformly.

    **DDP.** Every rank keeps an identical tree: :meth:`update` all-gathers indices
    (int64) and losses (float32) from all ranks and applies them in rank order (last
    write wins within a rank, higher ranks after lower ones). Every rank draws the same
    global batch from ``(seed, step)`` and takes its slice ``[rank * B, (rank + 1) * B)``:
    no communication when sampling. This needs every rank to interleave draws and
    updates the same way, which holds with the same DataLoader settings on every rank
    (the DataLoader advances the batch sampler at fixed points: ``num_workers *
    prefetch_factor`` batches at the start of an epoch, then one per batch returned).
    :meth:`digest` gives a fingerprint of the tree to check. A layout that cannot keep
    the replicas identical is an error, never a silent local update: with an
    initialised group, ``num_replicas`` must be the group's size and ``rank`` this
    process's rank (checked at construction, and again at each update in case the group
    is initialised later); with ``num_replicas > 1`` and no group, :meth:`update`
    raises unless ``gather=False`` says that the caller passes every rank's losses
    itself. ``num_replicas=1`` is a local sampler (no communication, whatever the group).

    **Resume.** :meth:`state_dict` holds the priorities, reported priorities and steps,
    in-flight marks, loss history, step, epoch and position in the epoch as plain numpy
    arrays and Python numbers, one key per field of the kernels' records
    (:mod:`longtail.samplers.replay.state`, layout version ``state_dict()["version"]``);
    randomness is a pure function of ``(seed, step)``, so a sampler restored with
    :meth:`load_state_dict` draws exactly the batches the saved one would have drawn,
    given the same updates. (``torch.load`` needs
    ``weights_only=False`` for the numpy arrays.) Draws are with replacement; an epoch is
    ``len(self) = ceil(n / (batch_size * num_replicas))`` batches.

    Parameters
    ----------
    n : int
        Number of examples.
    batch_size : int
        Examples per batch on each rank.
    hard_fraction : float
        Share of each batch drawn by priority.
    base_weights : array_like, optional
        float64 ``[n]``, finite, >= 0, not all zero (e.g. ``longtail.sample_weights``).
    base_fraction : float, optional
        Share drawn from ``base_weights``; default ``1 - hard_fraction`` when weights are
        given, else 0. The uniform share is ``1 - hard_fraction - base_fraction``.
    priority : {"loss", "rank", "percentile"}
        How a loss becomes a priority (above).
    alpha, eps : float
        Exponent and offset of ``"loss"`` / ``"percentile"`` priorities (PER: 0.6, 1e-6).
    beta : float
        Importance-weight exponent (settable: anneal it toward 1 during training).
    selection_pressure : float
        Ratio of largest to smallest ``"rank"`` priority (> 1).
    history : int
        Reported losses kept for ``"rank"`` / ``"percentile"`` (at most ``n``).
    baseline : array_like, optional
        float ``[n]`` subtracted from each reported loss first.
    normalize : {"max", "mean", "none"}
        Normalisation of the importance weights over the global batch.
    staleness_half_life : float, "epoch" or None
        Steps after which a reported priority is half way back to the running mean.
    in_flight_factor : float
        Multiplier in [0, 1] of a hard-drawn example's priority until its loss returns.
    in_flight_timeout : int
        Steps after which an unreported in-flight mark is lifted (0: no marks).
    loss_reduction : {"mean", "sum", "max", "balanced"}
        How the sampler turns the ``[B, C]`` entries passed to :meth:`update` into one
        priority loss per example (:func:`longtail.losses.per_example_loss`;
        ``"balanced"`` needs ``targets``, and is the one to use on dense label sets).
        It only sets priorities: the loss you train on stays yours.
    seed : int
        Base seed; step ``s`` draws from the stream ``(seed, s)``.
    num_replicas, rank : int, optional
        Distributed layout; default to the initialised ``torch.distributed`` group.

    Example
    -------
    Train on your own loss (here the usual mean, importance-weighted) and hand the
    sampler the detached element-wise ``[B, C]`` losses with their targets: it reduces
    them with its ``loss_reduction`` itself. (Training on the ``"balanced"`` reduction
    instead, because the sampler wants it, made a model predict 23.9x the true number
    of labels on the seed shape: it weighs an example's few positives as much as its
    thousands of negatives.)

    >>> import torch
    >>> from torch.utils.data import DataLoader, TensorDataset
    >>> from longtail.datasets.index_batch import with_extras, collate_with_extras
    >>> from longtail.losses import asymmetric_loss
    >>> x, y = torch.randn(100, 8), (torch.rand(100, 5) < 0.2).float()
    >>> sampler = HardExampleSampler(100, batch_size=16, hard_fraction=0.5, seed=0,
    ...                              loss_reduction="balanced")
    >>> loader = DataLoader(with_extras(TensorDataset(x, y)), batch_sampler=sampler,
    ...                     collate_fn=collate_with_extras)   # ArrowDataset: no wrapper
    >>> model = torch.nn.Linear(8, 5)
    >>> for xb, yb, extras in loader:
    ...     entries = asymmetric_loss(model(xb), yb, reduction="none")   # [B, C]
    ...     (extras["weight"][:, None] * entries).mean().backward()      # your loss
    ...     sampler.update(extras["index"], entries.detach(), targets=yb)
    >>> len(sampler), sampler.step
    (7, 7)

    Per-example losses ``[B]`` are taken as they are (``loss_reduction`` is not
    applied to them): ``sampler.update(idx, per_example_loss(entries, yb,
    "balanced"))`` is the same update as above.
    """

    #: a state saved with another global batch (replicas x batch size) still applies
    _same_replicas = False

    def __init__(
        self,
        n: int,
        batch_size: int,
        *,
        hard_fraction: float = 0.5,
        base_weights: ArrayLike | None = None,
        base_fraction: float | None = None,
        priority: Literal["loss", "rank", "percentile"] = "loss",
        alpha: float = 0.6,
        beta: float = 0.4,
        eps: float = 1e-6,
        selection_pressure: float = 100.0,
        history: int = 4096,
        baseline: ArrayLike | None = None,
        normalize: Literal["max", "mean", "none"] = "max",
        staleness_half_life: float | str | None = "epoch",
        in_flight_factor: float = 0.0,
        in_flight_timeout: int = 128,
        loss_reduction: str = "mean",
        seed: int = 0,
        num_replicas: int | None = None,
        rank: int | None = None,
    ) -> None:
        self.n = check_positive_int("n", n)
        self.batch_size = check_positive_int("batch_size", batch_size)
        super().__init__(seed=seed, num_replicas=num_replicas, rank=rank)
        if priority not in _KINDS:
            raise ValueError(f"priority must be one of {sorted(_KINDS)}, got {priority!r}")
        self.priority = priority
        if normalize not in _NORMS:
            raise ValueError(f"normalize must be one of {sorted(_NORMS)}, got {normalize!r}")
        self.normalize = normalize
        self.alpha = _check_real("alpha", alpha, low=0.0, high=1e6)
        self._beta = _check_real("beta", beta, low=0.0, high=1e6)
        self.eps = _check_real("eps", eps, low=0.0, high=1e300)
        self.selection_pressure = _check_real("selection_pressure", selection_pressure,
                                              low=1.0, low_open=True, high=1e300)
        self.in_flight_factor = _check_fraction("in_flight_factor", in_flight_factor)
        if isinstance(in_flight_timeout, bool) or not isinstance(in_flight_timeout, (int, np.integer)) \
                or in_flight_timeout < 0:
            raise ValueError(f"in_flight_timeout must be an integer >= 0, got {in_flight_timeout!r}")
        self.in_flight_timeout = int(in_flight_timeout)
        if not isinstance(loss_reduction, str) or loss_reduction not in _REDUCTIONS:
            raise ValueError(f"loss_reduction must be one of {list(_REDUCTIONS)}, got "
                             f"{loss_reduction!r}")
        self.loss_reduction = loss_reduction
        self._check_group()   # a torch.distributed group that disagrees: say so now

        # sources
        h = _check_fraction("hard_fraction", hard_fraction)
        if base_weights is not None:
            base = _check_array("base_weights", base_weights, self.n, nonneg=True)
            if not base.max() > 0:
                raise ValueError("base_weights must not be all zero")
            # only ratios matter: at max 1 neither tiny (subnormal) nor huge weights can
            # underflow or overflow the base tree's sums
            self._base = freeze(base / base.max())
            b = 1.0 - h if base_fraction is None else _check_fraction("base_fraction", base_fraction)
        else:
            self._base = None
            if base_fraction not in (None, 0, 0.0):
                raise ValueError(f"base_fraction={base_fraction!r} needs base_weights")
            b = 0.0
        if h + b > 1.0 + 1e-12:
            raise ValueError(
                f"hard_fraction + base_fraction must be <= 1, got {h} + {b} = {h + b}"
            )
        u = max(0.0, 1.0 - h - b)
        self.global_batch = self.batch_size * self.num_replicas
        self._kh, self._kb, self._ku = _split_counts(self.global_batch, [h, b, u])
        nonhard = self._kb + self._ku
        if nonhard > 0:
            self._tu, self._tb = self._ku / nonhard, self._kb / nonhard
        elif self._base is not None:
            self._tu, self._tb = 0.0, 1.0
        else:
            self._tu, self._tb = 1.0, 0.0

        self.baseline = None if baseline is None else _check_array("baseline", baseline, self.n,
                                                                   nonneg=False)
        if isinstance(history, bool) or not isinstance(history, (int, np.integer)) or history < 1:
            raise ValueError(f"history must be a positive integer, got {history!r}")
        self.history = int(min(history, self.n))
        self._hist_every = max(1, self.history // 4)

        epoch_len = len(self)
        if staleness_half_life == "epoch":
            self.staleness_half_life: float | None = float(epoch_len)
        elif staleness_half_life is None:
            self.staleness_half_life = None
        else:
            self.staleness_half_life = _check_real("staleness_half_life", staleness_half_life,
                                                   low=0.0, low_open=True, high=1e300)
        self._sweep_chunk = -(-self.n // max(1, epoch_len // 2))

        n_slots = self.in_flight_timeout + 1 if self.in_flight_timeout > 0 else 1
        # per example: two trees (hard, base; 16 + 16 bytes), one 32-byte row; the ring
        check_memory(f"n={self.n:,}, in_flight_timeout={self.in_flight_timeout:,}",
                     72.0 * self.n + 32.0 * self.history
                     + 8.0 * n_slots * (max(self._kh, 1) + 2) + 32.0 * self.global_batch)
        # the hard source: every priority 1 until the first update
        self._tree = SumTree(self.n, values=np.ones(self.n), seed=self.seed)
        self._max_value = self._tree.max_value
        if self.priority == "percentile" and \
                self.alpha * math.log1p(self.eps) > math.log(self._max_value):
            raise ValueError(
                f"priority='percentile' with eps={self.eps!r} and alpha={self.alpha!r} "
                f"gives priorities up to (1 + eps) ** alpha, beyond {self._max_value:.3g} "
                "(the sums would overflow): lower eps or alpha")
        self._base_tree = (SumTree(self.n, values=self._base, seed=self.seed)
                           if self._base is not None else SumTree(1, seed=self.seed))
        self._params = self._kernel_params()

        # the kernels' state (records of longtail.samplers.replay.state)
        self._ex = new_examples(self.n)
        self._ring = np.zeros((n_slots, max(self._kh, 1)), dtype=np.int64)
        self._slots = new_slots(n_slots)
        self._counters = new_counters()
        self._hist = np.zeros(self.history, dtype=np.float64)
        self._ref = np.zeros(self.history, dtype=np.float64)
        self._yielded = 0

    def _kernel_params(self) -> np.ndarray:
        """The fixed parameters as the kernels read them (a one-element ``PARAMS``)."""
        p = np.zeros(1, dtype=PARAMS)
        values = dict(
            kh=self._kh, kb=self._kb, ku=self._ku, tu=self._tu, tb=self._tb,
            beta=self._beta, norm=_NORMS[self.normalize], factor=self.in_flight_factor,
            seed=np.uint64(derive_seed(self.seed, Stream.HARD_DRAW)),
            kind=_KINDS[self.priority], alpha=self.alpha, eps=self.eps,
            pressure=self.selection_pressure, max_value=self._max_value,
            has_baseline=self.baseline is not None,
            half_life=self.staleness_half_life or 0.0, sweep_chunk=self._sweep_chunk,
            hist_every=self._hist_every)
        for name in PARAMS.names:
            p[name] = values[name]
        return p

    # ------------------------------------------------------------------------------
    # state
    # ------------------------------------------------------------------------------
    @property
    def beta(self) -> float:
        """Importance-weight exponent (set it to anneal toward 1)."""
        return self._beta

    @beta.setter
    def beta(self, value: float) -> None:
        self._beta = _check_real("beta", value, low=0.0, high=1e6)
        self._params["beta"] = self._beta

    @property
    def step(self) -> int:
        """Global batches drawn so far (the draw of step ``s`` uses stream ``(seed, s)``)."""
        return int(self._counters["step"][0])

    @property
    def fractions(self) -> dict[str, float]:
        """Effective shares of the global batch: ``{"hard", "base", "uniform"}``."""
        g = self.global_batch
        return {"hard": self._kh / g, "base": self._kb / g, "uniform": self._ku / g}

    @property
    def priorities(self) -> np.ndarray:
        """Current hard-source priorities (in-flight reduction included), a copy."""
        return np.array(self._tree.values)

    @property
    def in_flight(self) -> np.ndarray:
        """Boolean mask of examples hard-drawn and not reported yet (nor timed out)."""
        return self._ex["flight"] >= 0

    def probabilities(self) -> np.ndarray:
        """Draw probability ``q`` of every example for the next draw, float64 ``[n]``.

        What the next batch's ``extras["prob"]`` reports for the examples it holds (to
        rounding; the batch's own in-flight marks apply from the draw after it).
        """
        g = self.global_batch
        q = np.full(self.n, (self._ku / g) / self.n)
        if self._kh:
            total = self._tree.total
            if total > 0:
                q += (self._kh / g) * self._tree.values / total
            elif not (self._ex["prio"] > 0).any():
                q += (self._kh / g) / self.n
            else:  # every positive priority is in flight: the marks will be lifted
                prio = self._ex["prio"]
                q += (self._kh / g) * prio / prio.sum()
        if self._kb:
            q += (self._kb / g) * self._base / self._base_tree.total
        return q

    def target_probabilities(self) -> np.ndarray:
        """``p_target``, the non-hard part of the mix, float64 ``[n]``."""
        p = np.full(self.n, self._tu / self.n)
        if self._tb:
            p += self._tb * self._base / self._base_tree.total
        return p

    def digest(self) -> str:
        """Hex fingerprint of the sampler state (tree, marks, step) for replica checks."""
        h = hashlib.sha1()
        for arr in (self._tree._tree, self._ex, self._counters, self._slots):
            h.update(np.ascontiguousarray(arr).tobytes())
        return h.hexdigest()

    # ------------------------------------------------------------------------------
    # drawing
    # ------------------------------------------------------------------------------
    def __len__(self) -> int:
        """Batches per epoch: ``ceil(n / (batch_size * num_replicas))``."""
        return -(-self.n // (self.batch_size * self.num_replicas))

    def _restart(self) -> None:
        # another epoch (set_epoch): its first iter() yields len(self) batches; draws
        # depend on (seed, step) and steps keep counting across epochs
        super()._restart()
        self._yielded = 0

    def _draw_global(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        g = self.global_batch
        idx = np.empty(g, dtype=np.int64)
        w = np.empty(g, dtype=np.float32)
        q = np.empty(g, dtype=np.float64)
        _k.replay_draw(self._tree._tree, self._base_tree._tree, self._ex, self._slots,
                       self._ring, self._params, self._counters, idx, w, q)
        return idx, w, q

    def sample(self) -> IndexBatch:
        """Draw the next global batch and return this rank's slice.

        Returns
        -------
        IndexBatch
            ``batch_size`` indices with ``extras`` ``"index"`` (int64), ``"weight"``
            (float32 importance weights) and ``"prob"`` (float64 ``q``).
        """
        idx, w, q = self._draw_global()
        if self.num_replicas > 1:
            lo = self.rank * self.batch_size
            hi = lo + self.batch_size
            idx, w, q = idx[lo:hi].copy(), w[lo:hi].copy(), q[lo:hi].copy()
        return IndexBatch(idx.tolist(), {"index": idx, "weight": w, "prob": q})

    def __iter__(self) -> Iterator[IndexBatch]:
        start, self._resume_at = self._resume_at, 0
        self._yielded = start
        for _ in range(start, len(self)):
            batch = self.sample()
            self._yielded += 1
            yield batch

    # ------------------------------------------------------------------------------
    # feedback
    # ------------------------------------------------------------------------------
    def update(self, indices: ArrayLike, losses: Any, *, targets: Any = None,
               gather: bool | None = None) -> None:
        """Report per-example losses of a batch; they set the examples' priorities.

        Parameters
        ----------
        indices : array_like or torch.Tensor of int, shape [B]
            Example ids (``extras["index"]`` of the batch, or the dataset's index).
        losses : array_like or torch.Tensor, shape [B, C] or [B]
            Element-wise multilabel losses (e.g. ``longtail.losses.asymmetric_loss(
            logits, y, reduction="none")``, detached or not: the sampler detaches),
            reduced to [B] with the sampler's ``loss_reduction`` as
            ``longtail.losses.per_example_loss`` defines it (equal to float32
            rounding): numpy and CPU tensors in one Numba pass, read as float32; other
            devices with ``per_example_loss`` on the device. Or per-example losses
            [B], taken as they are. Any device: one device-to-host copy.
            Applied as float32 (what the DDP gather sends).
        targets : array_like or torch.Tensor [B, C], optional
            Multi-hot targets of ``[B, C]`` losses, needed by ``loss_reduction=
            "balanced"`` (mean over positives and mean over negatives weighed equally:
            recommended on dense label sets, where the mean is dominated by thousands
            of easy negatives); refused with [B] losses.
        gather : bool, optional
            All-gather from every rank first (default: when ``num_replicas > 1``, which
            then needs an initialised ``torch.distributed`` group of ``num_replicas``
            processes). Every rank must call ``update`` the same number of times.
            ``gather=False`` applies the given indices and losses as they are: use it
            only with the losses of *every* rank (gathered by yourself), else the
            replicas' priorities diverge.

        Raises
        ------
        ValueError
            Non-finite losses, out-of-range or non-integer indices, mismatched shapes;
            ``num_replicas > 1`` (or ``gather=True``) without an initialised process
            group, or a group whose size or rank disagrees with ``num_replicas`` /
            ``rank``. Nothing is changed then (under DDP every rank raises, no rank
            applies).
        """
        if self.num_replicas == 1 and targets is None:
            fast = feedback.host_pair(indices, losses)
            if fast is not None:   # [B] int64 / float CPU tensors or arrays: checked by
                self._apply(*fast)  # the kernel (range, finiteness) as on the full path
                return
        if gather is None or self.num_replicas == 1:
            gather = self.num_replicas > 1   # one replica: gathering is the identity
        if gather and not self._check_group():
            raise ValueError(
                f"update() must all-gather the losses of the {self.num_replicas} replicas "
                f"(num_replicas={self.num_replicas}), but torch.distributed is not "
                "initialised: applying this rank's losses alone would make the replicas' "
                "priorities diverge. Initialise the process group before the first "
                "update, or gather every rank's indices and losses yourself and pass them "
                "all with gather=False.")
        try:
            idx, loss = feedback.prepare(indices, losses, n=self.n,
                                         reduction=self.loss_reduction, to_host=not gather,
                                         targets=targets)
        except ValueError as err:
            if gather:   # tell the other ranks, then raise
                feedback.gather(None, None, self.num_replicas, error=err)
            raise
        if gather:
            idx, loss = feedback.gather(idx, loss, self.num_replicas)
        self._apply(idx, loss)

    def _check_group(self) -> bool:
        """True when ``torch.distributed`` is initialised and agrees with this sampler's
        layout (checked at construction, and again at each update in case the group is
        initialised later); see :func:`longtail.samplers.replay.feedback.check_group`."""
        return feedback.check_group(self.num_replicas, self.rank)

    def _apply(self, idx: np.ndarray, loss: np.ndarray) -> None:
        idx = np.asarray(idx)
        if idx.dtype.kind == "u" and idx.size and int(idx.max()) >= self.n:
            # checked before the cast: a uint64 2**64 - 5 is reported as itself
            pos = int(np.flatnonzero(idx >= self.n)[0])
            raise ValueError(f"indices[{pos}] = {int(idx[pos])} is outside [0, {self.n})")
        idx = np.ascontiguousarray(idx, dtype=np.int64)
        loss = np.ascontiguousarray(loss, dtype=np.float64)
        if not idx.flags.writeable:
            idx = idx.copy()
        if not loss.flags.writeable:
            loss = loss.copy()
        baseline = self.baseline if self.baseline is not None else _NO_BASELINE
        code, pos = _k.replay_update(self._tree._tree, self._ex, self._slots, idx, loss,
                                     baseline, self._hist, self._ref, self._params,
                                     self._counters)
        if code == 1:
            raise ValueError(f"indices[{pos}] = {int(idx[pos])} is outside [0, {self.n})")
        if code == 2:
            raise ValueError(f"losses must be finite (as float32); losses[{pos}] = "
                             f"{loss[pos]!r} (example {int(idx[pos])})")
        if code == 3:
            raise ValueError(
                f"the priority of losses[{pos}] = {loss[pos]!r} overflows (alpha="
                f"{self.alpha}): priorities must stay <= {self._max_value:.3g}"
            )

    # ------------------------------------------------------------------------------
    # resume
    # ------------------------------------------------------------------------------
    def _signature(self) -> dict[str, Any]:
        return {"version": VERSION, "n": self.n, "priority": self.priority,
                "history": self.history}

    def _consumed(self) -> int:
        return self._yielded if self._resume_at == 0 else self._resume_at

    def state_dict(self) -> dict[str, Any]:
        """Everything needed to continue exactly: priorities, marks, step, epoch, position.

        Plain Python values and numpy arrays (``torch.save`` / ``StatefulDataLoader``):
        the header of every longtail sampler (``sampler``, ``seed``, ``epoch``,
        ``num_replicas``, ``rank``, ``yielded``), the signature (``version``, ``n``,
        ``priority``, ``history``), ``global_batch``, and one key per field of the
        kernels' records (:mod:`longtail.samplers.replay.state`). The randomness is a
        pure function of ``(seed, step)``, so ``step`` is the RNG state.
        """
        return encode(self, super().state_dict())

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore :meth:`state_dict`; the next batches are the ones the saved sampler
        would have drawn (given the same updates).

        A state is untrusted input (a file): every field is checked -- type, dtype,
        shape, range, finiteness, and the consistency of the arrays with each other
        (steps against ``step``, in-flight marks against the ring, loss history
        against its cursors, running statistics against the reports) -- before anything
        is applied, so the Numba kernels only ever see arrays whose invariants hold, and
        on error the sampler is unchanged.

        Raises
        ------
        TypeError
            A field of the wrong type (``yielded=1.7``, a string array...).
        ValueError
            A missing or unknown key (named), a value out of range or inconsistent, NaN
            or infinity, or a state that is not a ``HardExampleSampler`` state, has
            another layout ``version``, or was saved for another ``n``, ``priority``,
            ``seed`` or ``history``. A state saved with another global batch size keeps
            the priorities but lifts every in-flight mark (and restarts the epoch if its
            position is past this epoch's end).
        """
        if isinstance(state, Mapping) and "version" not in state and "hstate" in state:
            raise ValueError(
                "state_dict has no 'version': it is a version-1 HardExampleSampler state "
                f"('stats' / 'hstate' layout), this one reads version {VERSION}")
        epoch, yielded = self._load_header(state)
        d = decode(self, state, epoch, yielded)
        # everything checked: apply (the tree first: its own checks cannot fail now)
        prio = d.ex["prio"]
        self._tree.set_all(np.where(d.ex["flight"] >= 0, prio * self.in_flight_factor, prio))
        self._ex, self._slots, self._ring = d.ex, d.slots, d.ring
        self._hist, self._ref, self._counters = d.hist, d.ref, d.counters
        self.epoch = d.epoch
        self._resume_at = self._yielded = d.yielded

    def __setstate__(self, state: dict[str, Any]) -> None:
        # unpickling gives fresh writable arrays: the owned inputs are frozen again (and
        # the kernels keep one specialisation), the rows realigned to cache lines
        self.__dict__.update(state)
        for name in ("baseline", "_base"):
            if getattr(self, name) is not None:
                setattr(self, name, freeze(getattr(self, name)))
        ex = new_examples(self.n)
        ex[...] = self._ex
        self._ex = ex

    def __repr__(self) -> str:
        f = self.fractions
        return (f"HardExampleSampler(n={self.n}, batch_size={self.batch_size}, "
                f"priority={self.priority!r}, hard={f['hard']:.3g}, base={f['base']:.3g}, "
                f"uniform={f['uniform']:.3g}, step={self.step})")
