"""Hard-example replay: draw batches with priority by per-example loss (online hard
example mining at the data-loading level).

The training loop reports each example's loss with :meth:`HardExampleSampler.update`;
later batches are a fixed mix of draws from three sources -- *hard* (a float64 sum tree
over priorities derived from the losses), *base* (any static weights, e.g. from
``longtail.sample_weights``) and *uniform* -- and every drawn example carries its exact
draw probability ``q(i)`` and an importance weight that keeps the gradient honest.
Prior art: OHEM (Shrivastava et al. 2016), prioritized replay (Schaul et al. 2016),
online batch selection by rank (Loshchilov & Hutter 2015), Selective-Backprop (Jiang et
al. 2019).
"""
from __future__ import annotations

import hashlib
import math
from typing import Any, Iterator, Literal, Mapping

import numpy as np
import torch
from numpy.typing import ArrayLike
from torch.utils.data import Sampler

from longtail._core.rng import Stream, derive_seed
from longtail.datasets.index_batch import IndexBatch
from longtail.samplers.replay import _kernels as _k
from longtail._core.checks import freeze
from longtail._core.sampler import (
    check_int,
    check_memory,
    check_positive_int,
    check_seed,
    resolve_replicas,
    same_value,
    state_value,
)
from longtail.samplers.replay.sumtree import _tree_size

__all__ = ["HardExampleSampler"]

_KINDS = {"loss": 0, "rank": 1, "percentile": 2}
_NORMS = {"none": 0, "max": 1, "mean": 2}
#: the reductions of longtail.losses.per_example_loss
_REDUCTIONS = ("mean", "sum", "max", "balanced")
#: steps are stored in float64 rows: exact below 2**53
_MAX_STEP = 2**53
_FLOAT_MAX = float(np.finfo(np.float64).max)


def _per_example_loss(losses: Any, reduction: str, targets: Any = None) -> Any:
    """Reduce a ``[B, C]`` element-wise loss to ``[B]`` on its device with
    :func:`longtail.losses.per_example_loss` (numpy input goes through torch)."""
    from longtail.losses import per_example_loss

    if isinstance(losses, np.ndarray):
        losses = torch.from_numpy(np.ascontiguousarray(losses))
    if not losses.is_floating_point():
        losses = losses.to(torch.float64)
    if targets is not None and not isinstance(targets, torch.Tensor):
        targets = torch.as_tensor(np.asarray(targets))
    if targets is not None:
        targets = targets.to(device=losses.device)
    try:
        return per_example_loss(losses, targets=targets, reduction=reduction)
    except TypeError as err:
        raise ValueError(str(err)) from err


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


def _state_array(state: Mapping, key: str, shape: tuple | None, kind: str,
                 ndim: int = 1) -> np.ndarray:
    """``state[key]`` as a fresh float64 (``kind="f"``, finite) or int64 (``"i"``) array
    of ``shape`` (or of ``ndim`` dimensions), else ``TypeError`` / ``ValueError`` naming
    the key, the value and the first bad position."""
    value = state_value(state, key, "HardExampleSampler")
    if isinstance(value, torch.Tensor):
        value = value.detach().cpu().numpy()
    if isinstance(value, (str, bytes, Mapping)) or value is None:
        raise TypeError(f"state_dict[{key!r}] must be an array, got {type(value).__name__}")
    try:
        arr = np.asarray(value)
    except (ValueError, TypeError) as err:
        raise TypeError(f"state_dict[{key!r}] is not an array: {err}") from None
    name = f"state_dict[{key!r}]"
    ok = "fiu" if kind == "f" else "iu"
    if arr.dtype.kind not in ok and not (arr.size == 0 and arr.dtype.kind == "f"):
        raise TypeError(f"{name} must hold {'real numbers' if kind == 'f' else 'integers'}"
                        f", got dtype {arr.dtype}")
    if shape is not None and arr.shape != shape:
        raise ValueError(f"{name} has shape {arr.shape}, expected {shape}")
    if shape is None and arr.ndim != ndim:
        raise ValueError(f"{name} must be {ndim}-D, got shape {arr.shape}")
    if kind == "i":
        if arr.dtype.kind == "u" and arr.size and int(arr.max()) > np.iinfo(np.int64).max:
            pos = int(np.flatnonzero(arr.reshape(-1) > np.iinfo(np.int64).max)[0])
            raise ValueError(f"{name}: entry {pos} = {int(arr.reshape(-1)[pos])} is "
                             "beyond the int64 range")
        return np.array(arr, dtype=np.int64, order="C", copy=True)
    out = np.array(arr, dtype=np.float64, order="C", copy=True)
    bad = ~np.isfinite(out)
    if bad.any():
        pos = int(np.flatnonzero(bad.reshape(-1))[0])
        raise ValueError(f"{name} must be finite; entry {pos} is {out.reshape(-1)[pos]!r}")
    return out


def _check_range(name: str, arr: np.ndarray, low: float, high: float,
                 allow: float | None = None) -> None:
    """Every entry of ``arr`` in ``[low, high]`` (or equal to ``allow``)."""
    if not arr.size:
        return
    bad = (arr < low) | (arr > high)
    if allow is not None:
        bad &= arr != allow
    if bad.any():
        pos = int(np.flatnonzero(bad.reshape(-1))[0])
        also = "" if allow is None else f" (or {allow:g})"
        raise ValueError(f"state_dict[{name!r}]: entry {pos} = {arr.reshape(-1)[pos]!r} is "
                         f"outside [{low:g}, {high:g}]{also}")


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


class HardExampleSampler(Sampler[IndexBatch]):
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
    arrays and Python numbers; randomness is a pure function of ``(seed, step)``, so a
    sampler restored with :meth:`load_state_dict` draws exactly the batches the saved one
    would have drawn, given the same updates. (``torch.load`` needs
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
        Reduction of ``[B, C]`` losses passed to :meth:`update`
        (:func:`longtail.losses.per_example_loss`; ``"balanced"`` needs ``targets``).
    seed : int
        Base seed; step ``s`` draws from the stream ``(seed, s)``.
    num_replicas, rank : int, optional
        Distributed layout; default to the initialised ``torch.distributed`` group.

    Example
    -------
    The obvious training loop (any loss giving one value per example works;
    ``[B, C]`` element-wise losses are reduced with ``loss_reduction``):

    >>> import torch
    >>> from torch.utils.data import DataLoader, TensorDataset
    >>> from longtail.datasets.index_batch import with_extras, collate_with_extras
    >>> from longtail.losses import asymmetric_loss
    >>> x, y = torch.randn(100, 8), (torch.rand(100, 5) < 0.2).float()
    >>> sampler = HardExampleSampler(100, batch_size=16, hard_fraction=0.5, seed=0)
    >>> loader = DataLoader(with_extras(TensorDataset(x, y)), batch_sampler=sampler,
    ...                     collate_fn=collate_with_extras)   # ArrowDataset: no wrapper
    >>> model = torch.nn.Linear(8, 5)
    >>> for xb, yb, extras in loader:
    ...     losses = asymmetric_loss(model(xb), yb, reduction="sample")   # [B]
    ...     (extras["weight"] * losses).mean().backward()
    ...     sampler.update(extras["index"], losses)        # detached, copied once
    >>> len(sampler), sampler.step
    (7, 7)

    Element-wise ``[B, C]`` losses work too: ``sampler.update(idx, loss_bc)`` reduces them
    with ``loss_reduction`` (``"balanced"`` with ``targets=yb``).
    """

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
        self.seed = check_seed(seed)
        self.num_replicas, self.rank = resolve_replicas(num_replicas, rank)
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

        epoch_len = len(self)
        if staleness_half_life == "epoch":
            self.staleness_half_life: float | None = float(epoch_len)
        elif staleness_half_life is None:
            self.staleness_half_life = None
        else:
            self.staleness_half_life = _check_real("staleness_half_life", staleness_half_life,
                                                   low=0.0, low_open=True, high=1e300)
        self._sweep_chunk = -(-self.n // max(1, epoch_len // 2))

        self._base_seed = np.uint64(derive_seed(self.seed, Stream.HARD_DRAW))
        slots = self.in_flight_timeout + 1 if self.in_flight_timeout > 0 else 1
        # per example: two trees (hard, base; 16 + 16 bytes), one 32-byte row; the ring
        check_memory(f"n={self.n:,}, in_flight_timeout={self.in_flight_timeout:,}",
                     72.0 * self.n + 32.0 * self.history
                     + 8.0 * slots * (max(self._kh, 1) + 2) + 32.0 * self.global_batch)
        self._size = _tree_size(self.n)
        self._max_value = _FLOAT_MAX / (2 * self._size)
        if self.priority == "percentile" and \
                self.alpha * math.log1p(self.eps) > math.log(self._max_value):
            raise ValueError(
                f"priority='percentile' with eps={self.eps!r} and alpha={self.alpha!r} "
                f"gives priorities up to (1 + eps) ** alpha, beyond {self._max_value:.3g} "
                "(the sums would overflow): lower eps or alpha")
        if self._base is not None:
            self._bsize = self._size
            self._btree = np.zeros(2 * self._bsize, dtype=np.float64)
            self._btree[self._bsize:self._bsize + self.n] = self._base
            _k.tree_build(self._btree, self._bsize)
        else:
            self._bsize = 2
            self._btree = np.zeros(4, dtype=np.float64)
        self.epoch = 0
        self._yielded = 0
        self._resume_at = 0
        self._reset_state()

    # ------------------------------------------------------------------------------
    # state
    # ------------------------------------------------------------------------------
    def _reset_state(self) -> None:
        n = self.n
        self._step = 0
        self._tree = np.zeros(2 * self._size, dtype=np.float64)
        # one row per example: [priority, reported priority, step reported, step drawn
        # while in flight]; -1 = never / not in flight
        self._ex = np.empty((n, 4), dtype=np.float64)
        self._ex[:, _k.PRIO] = 1.0
        self._ex[:, _k.RAW] = 0.0
        self._ex[:, _k.LAST] = -1.0
        self._ex[:, _k.FLIGHT] = -1.0
        self._tree[self._size:self._size + n] = 1.0
        _k.tree_build(self._tree, self._size)
        slots = self.in_flight_timeout + 1 if self.in_flight_timeout > 0 else 1
        self._ring = np.zeros((slots, max(self._kh, 1)), dtype=np.int64)
        self._ring_step = np.full(slots, -1, dtype=np.int64)
        self._ring_live = np.zeros(slots, dtype=np.int64)
        # [max reported priority, running mean, reports so far, updates applied]
        self._stats = np.zeros(4, dtype=np.float64)
        self._sweep = np.array([0, self._sweep_chunk], dtype=np.int64)
        h = self.history
        self._hist = np.zeros(h, dtype=np.float64)
        self._ref = np.zeros(h, dtype=np.float64)
        # [write position, count, new since refresh, refresh every, snapshot length]
        self._hstate = np.array([0, 0, 0, max(1, h // 4), 0], dtype=np.int64)
        self._err = np.zeros(2, dtype=np.int64)
        self._no_baseline = np.zeros(1, dtype=np.float64)

    @property
    def beta(self) -> float:
        """Importance-weight exponent (set it to anneal toward 1)."""
        return self._beta

    @beta.setter
    def beta(self, value: float) -> None:
        self._beta = _check_real("beta", value, low=0.0, high=1e6)

    @property
    def step(self) -> int:
        """Global batches drawn so far (the draw of step ``s`` uses stream ``(seed, s)``)."""
        return self._step

    @property
    def fractions(self) -> dict[str, float]:
        """Effective shares of the global batch: ``{"hard", "base", "uniform"}``."""
        g = self.global_batch
        return {"hard": self._kh / g, "base": self._kb / g, "uniform": self._ku / g}

    @property
    def priorities(self) -> np.ndarray:
        """Current hard-source priorities (in-flight reduction included), a copy."""
        return self._tree[self._size:self._size + self.n].copy()

    @property
    def in_flight(self) -> np.ndarray:
        """Boolean mask of examples hard-drawn and not reported yet (nor timed out)."""
        return self._ex[:, _k.FLIGHT] >= 0

    def probabilities(self) -> np.ndarray:
        """Draw probability ``q`` of every example for the next draw, float64 ``[n]``.

        What the next batch's ``extras["prob"]`` reports for the examples it holds (to
        rounding; the batch's own in-flight marks apply from the draw after it).
        """
        g = self.global_batch
        q = np.full(self.n, (self._ku / g) / self.n)
        if self._kh:
            total = self._tree[1]
            if total > 0:
                q += (self._kh / g) * self._tree[self._size:self._size + self.n] / total
            elif not (self._ex[:, _k.PRIO] > 0).any():
                q += (self._kh / g) / self.n
            else:  # every positive priority is in flight: the marks will be lifted
                prio = self._ex[:, _k.PRIO]
                q += (self._kh / g) * prio / prio.sum()
        if self._kb:
            q += (self._kb / g) * self._base / self._btree[1]
        return q

    def target_probabilities(self) -> np.ndarray:
        """``p_target``, the non-hard part of the mix, float64 ``[n]``."""
        p = np.full(self.n, self._tu / self.n)
        if self._tb:
            p += self._tb * self._base / self._btree[1]
        return p

    def digest(self) -> str:
        """Hex fingerprint of the sampler state (tree, marks, step) for replica checks."""
        h = hashlib.sha1()
        for arr in (self._tree, self._ex, self._stats, self._ring_step, self._ring_live):
            h.update(np.ascontiguousarray(arr).tobytes())
        h.update(str(self._step).encode())
        return h.hexdigest()

    # ------------------------------------------------------------------------------
    # drawing
    # ------------------------------------------------------------------------------
    def __len__(self) -> int:
        """Batches per epoch: ``ceil(n / (batch_size * num_replicas))``."""
        return -(-self.n // (self.batch_size * self.num_replicas))

    def set_epoch(self, epoch: int) -> None:
        """Start epoch ``epoch`` (its first ``iter()`` yields ``len(self)`` batches).

        Draws depend on ``(seed, step)``, steps keep counting across epochs.
        """
        if isinstance(epoch, bool) or not isinstance(epoch, (int, np.integer)) or epoch < 0:
            raise ValueError(f"epoch must be a non-negative integer, got {epoch!r}")
        if int(epoch) != self.epoch:
            self._resume_at = 0
            self._yielded = 0
        self.epoch = int(epoch)

    def _draw_global(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        g = self.global_batch
        idx = np.empty(g, dtype=np.int64)
        w = np.empty(g, dtype=np.float32)
        q = np.empty(g, dtype=np.float64)
        _k.replay_draw(self._tree, self._size, self._btree, self._bsize, self.n,
                       self._kh, self._kb, self._ku, self._base_seed, self._step,
                       self._beta, _NORMS[self.normalize], self._tu, self._tb,
                       self._ex, self.in_flight_factor, self._ring, self._ring_step,
                       self._ring_live, idx, w, q)
        self._step += 1
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
    def _prepare(self, indices: Any, losses: Any, to_host: bool,
                 targets: Any = None) -> tuple[Any, Any]:
        """Check shapes and types, reduce ``[B, C]`` losses (on their device). With
        ``to_host``: numpy (indices, losses) after at most one device-to-host copy."""
        if isinstance(losses, torch.Tensor):
            losses = losses.detach()
            if losses.dtype == torch.bool or losses.is_complex():
                raise ValueError(f"losses must be real numbers, got dtype {losses.dtype}")
        else:
            losses = np.asarray(losses)
            if losses.dtype.kind not in "fiu":
                raise ValueError(f"losses must be real numbers, got dtype {losses.dtype}")
        if losses.ndim == 2:
            losses = _per_example_loss(losses, self.loss_reduction, targets).detach()
        elif targets is not None:
            raise ValueError("targets are only used with [B, C] losses")
        if losses.ndim != 1:
            raise ValueError(f"losses must have shape [B] or [B, C], got {tuple(losses.shape)}")
        if isinstance(indices, torch.Tensor):
            if indices.dtype == torch.bool or indices.is_floating_point() or indices.is_complex():
                raise ValueError(f"indices must be integers, got dtype {indices.dtype}")
        else:
            indices = np.asarray(indices)
            if indices.dtype.kind not in "iu" and indices.size:
                raise ValueError(f"indices must be integers, got dtype {indices.dtype}")
        if indices.ndim != 1:
            raise ValueError(f"indices must be 1-D, got shape {tuple(indices.shape)}")
        if indices.shape[0] != losses.shape[0]:
            raise ValueError(
                f"indices and losses disagree: {indices.shape[0]} indices, "
                f"{losses.shape[0]} losses"
            )
        if not to_host:
            return indices, losses
        if isinstance(losses, torch.Tensor):
            if losses.dtype not in (torch.float32, torch.float64):
                losses = losses.to(torch.float64)
            if losses.device.type != "cpu":
                if isinstance(indices, torch.Tensor) and indices.device == losses.device:
                    # one copy for both: float64 carries indices exactly below 2**53
                    both = torch.cat([indices.to(torch.float64),
                                      losses.to(torch.float64)]).cpu().numpy()
                    b = indices.shape[0]
                    idx_f = both[:b]
                    if b and not (np.abs(idx_f) < 2.0 ** 53).all():
                        pos = int(np.flatnonzero(~(np.abs(idx_f) < 2.0 ** 53))[0])
                        raise ValueError(f"indices[{pos}] is outside [0, {self.n})")
                    return idx_f.astype(np.int64), both[b:]
                losses = losses.cpu()
            losses = losses.numpy()
        if isinstance(indices, torch.Tensor):
            indices = indices.cpu().numpy()
        return indices, losses

    def _gather(self, indices: Any, losses: Any,
                error: Exception | None = None) -> tuple[np.ndarray, np.ndarray]:
        """All-gather (indices int64, losses float32) from every rank, in rank order.

        A first all-gather of the sizes also carries "my input was invalid" (-1), so a
        bad call on one rank raises ``ValueError`` on every rank instead of hanging.
        """
        import torch.distributed as dist

        device = torch.device("cpu")
        if dist.get_backend() == "nccl":
            device = torch.device("cuda", torch.cuda.current_device())
        count = -1 if error is not None else int(indices.shape[0])
        size = torch.tensor([count], dtype=torch.int64, device=device)
        sizes = [torch.empty_like(size) for _ in range(self.num_replicas)]
        dist.all_gather(sizes, size)
        counts = torch.cat(sizes).cpu().tolist()
        if error is not None:
            raise error
        bad = [r for r, c in enumerate(counts) if c < 0]
        if bad:
            raise ValueError(f"update() got invalid input on rank(s) {bad}: nothing applied")
        width = max(counts)
        if width == 0:
            return np.empty(0, np.int64), np.empty(0, np.float64)
        idx_t = torch.as_tensor(indices).to(device=device, dtype=torch.int64)
        loss_t = torch.as_tensor(losses).to(device=device, dtype=torch.float32)
        pad = width - idx_t.shape[0]
        if pad:
            idx_t = torch.cat([idx_t, idx_t.new_zeros(pad)])
            loss_t = torch.cat([loss_t, loss_t.new_zeros(pad)])
        all_idx = [torch.empty_like(idx_t) for _ in range(self.num_replicas)]
        all_loss = [torch.empty_like(loss_t) for _ in range(self.num_replicas)]
        dist.all_gather(all_idx, idx_t)
        dist.all_gather(all_loss, loss_t)
        # one device-to-host copy; float64 carries the indices exactly (n < 2**53)
        packed = torch.cat([torch.stack(all_idx).to(torch.float64),
                            torch.stack(all_loss).to(torch.float64)]).cpu().numpy()
        idx_rows, loss_rows = packed[:self.num_replicas], packed[self.num_replicas:]
        keep = np.concatenate([np.arange(c) + r * width for r, c in enumerate(counts)])
        return idx_rows.reshape(-1)[keep].astype(np.int64), loss_rows.reshape(-1)[keep]

    def update(self, indices: ArrayLike, losses: Any, *, targets: Any = None,
               gather: bool | None = None) -> None:
        """Report per-example losses of a batch; they set the examples' priorities.

        Parameters
        ----------
        indices : array_like or torch.Tensor of int, shape [B]
            Example ids (``extras["index"]`` of the batch, or the dataset's index).
        losses : array_like or torch.Tensor, shape [B] or [B, C]
            Per-example losses (e.g. ``longtail.losses.asymmetric_loss(logits, y,
            reduction="sample")``), or element-wise multilabel losses, reduced to [B]
            with ``loss_reduction`` (``longtail.losses.per_example_loss``) on their
            device. Any device: one device-to-host copy. Applied as float32 (what the
            DDP gather sends).
        targets : torch.Tensor [B, C], optional
            Multi-hot targets for ``loss_reduction="balanced"`` (mean over positives and
            mean over negatives weighed equally: recommended on dense label sets, where
            the mean is dominated by thousands of easy negatives).
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
            idx, loss = self._prepare(indices, losses, to_host=not gather, targets=targets)
        except ValueError as err:
            if gather:
                self._gather(None, None, error=err)  # tell the other ranks, then raise
            raise
        if gather:
            idx, loss = self._gather(idx, loss)
        self._apply(idx, loss)

    def _check_group(self) -> bool:
        """True when ``torch.distributed`` is initialised and agrees with this sampler's
        layout; ``ValueError`` when it is initialised and does not (so replicas cannot
        silently diverge); False without a process group. A sampler with
        ``num_replicas=1`` is local: it does not look at the group."""
        import torch.distributed as dist

        if not (dist.is_available() and dist.is_initialized()):
            return False
        if self.num_replicas == 1:
            return False
        world, rank = dist.get_world_size(), dist.get_rank()
        if world != self.num_replicas:
            raise ValueError(
                f"num_replicas={self.num_replicas} but the torch.distributed group has "
                f"{world} process(es): update() all-gathers over the whole group, so "
                f"every process must run one replica (pass num_replicas={world}, or leave "
                "it None)")
        if rank != self.rank:
            raise ValueError(
                f"rank={self.rank} but this process is rank {rank} of the "
                "torch.distributed group: the replicas would draw overlapping slices "
                f"(pass rank={rank}, or leave it None)")
        return True

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
        err = self._err
        err[:] = 0
        has_base = self.baseline is not None
        hl = self.staleness_half_life if self.staleness_half_life is not None else 0.0
        _k.replay_update(self._tree, self._size, self.n, idx, loss, _KINDS[self.priority],
                         self.alpha, self.eps, self.selection_pressure,
                         self.baseline if has_base else self._no_baseline, has_base,
                         self._hist, self._ref, self._hstate, self._max_value, self._ex,
                         self.in_flight_factor, self._step, self._stats, self._sweep, hl,
                         self._ring_step, self._ring_live, err)
        if err[0]:
            code, pos = int(err[0]), int(err[1])
            if code == 1:
                raise ValueError(f"indices[{pos}] = {int(idx[pos])} is outside [0, {self.n})")
            if code == 2:
                raise ValueError(f"losses must be finite (as float32); losses[{pos}] = "
                                 f"{loss[pos]!r} (example {int(idx[pos])})")
            raise ValueError(
                f"the priority of losses[{pos}] = {loss[pos]!r} overflows (alpha="
                f"{self.alpha}): priorities must stay <= {self._max_value:.3g}"
            )

    # ------------------------------------------------------------------------------
    # resume
    # ------------------------------------------------------------------------------
    def _position(self) -> int:
        return self._yielded if self._resume_at == 0 else self._resume_at

    def state_dict(self) -> dict[str, Any]:
        """Everything needed to continue exactly: priorities, marks, step, epoch, position.

        Plain Python values and numpy arrays (``torch.save`` / ``StatefulDataLoader``).
        The randomness is a pure function of ``(seed, step)``, so ``step`` is the RNG
        state.
        """
        return {
            "sampler": type(self).__name__,
            "n": self.n,
            "priority": self.priority,
            "seed": self.seed,
            "num_replicas": self.num_replicas,
            "rank": self.rank,
            "global_batch": self.global_batch,
            "epoch": self.epoch,
            "yielded": int(self._position()),
            "step": int(self._step),
            "prio": self._ex[:, _k.PRIO].copy(),
            "raw": self._ex[:, _k.RAW].copy(),
            "last": self._ex[:, _k.LAST].astype(np.int64),
            "flight": self._ex[:, _k.FLIGHT].astype(np.int64),
            "ring": self._ring.copy(),
            "ring_step": self._ring_step.copy(),
            "ring_live": self._ring_live.copy(),
            "stats": self._stats.tolist(),
            "sweep_pos": int(self._sweep[0]),
            "hist": self._hist.copy(),
            "ref": self._ref.copy(),
            "hstate": self._hstate.tolist(),
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore :meth:`state_dict`; the next batches are the ones the saved sampler
        would have drawn (given the same updates).

        A state is untrusted input (a file): every field is checked -- type, dtype,
        shape, range, finiteness, and the consistency of the arrays with each other
        (steps against ``step``, in-flight marks against the ring, loss history
        against its cursor, running statistics against the reports) -- before anything
        is applied, so the Numba kernels only ever see arrays whose invariants hold, and
        on error the sampler is unchanged.

        Raises
        ------
        TypeError
            A field of the wrong type (``yielded=1.7``, a string array...).
        ValueError
            A missing key (named), a value out of range or inconsistent, NaN or
            infinity, or a state that is not a ``HardExampleSampler`` state or was saved
            for another ``n``, ``priority``, ``seed`` or ``history``. A state saved with
            another global batch size keeps the priorities but lifts every in-flight
            mark (and restarts the epoch if its position is past this epoch's end).
        """
        owner = type(self).__name__
        if not isinstance(state, Mapping):
            raise TypeError(f"a {owner} state_dict must be a dict, got {type(state).__name__}")
        if not same_value(owner, state_value(state, "sampler", owner)):
            raise ValueError(f"state_dict is not a {owner} state "
                             f"(sampler={state.get('sampler')!r})")
        for key in ("n", "priority", "seed"):
            got = state_value(state, key, owner)
            if not same_value(getattr(self, key), got):
                raise ValueError(
                    f"state_dict was saved with {key}={got!r}, this sampler has "
                    f"{key}={getattr(self, key)!r}"
                )
        n, h = self.n, self.history
        saved_replicas = check_int("state_dict['num_replicas']",
                                   state_value(state, "num_replicas", owner), 1)
        check_int("state_dict['rank']", state_value(state, "rank", owner), 0,
                  saved_replicas - 1)
        global_batch = check_int("state_dict['global_batch']",
                                 state_value(state, "global_batch", owner), 1)
        epoch = check_int("state_dict['epoch']", state_value(state, "epoch", owner), 0,
                          2**63 - 1)
        yielded = check_int("state_dict['yielded']", state_value(state, "yielded", owner), 0)
        step = check_int("state_dict['step']", state_value(state, "step", owner), 0,
                         _MAX_STEP - 1)
        same_batch = global_batch == self.global_batch
        if same_batch and yielded > len(self):
            raise ValueError(f"state_dict['yielded']={yielded} is outside [0, {len(self)}] "
                             "(batches per epoch)")
        sweep_pos = check_int("state_dict['sweep_pos']", state_value(state, "sweep_pos", owner),
                              0, n - 1)

        # per-example arrays
        prio = _state_array(state, "prio", (n,), "f")
        raw = _state_array(state, "raw", (n,), "f")
        _check_range("prio", prio, 0.0, self._max_value)
        _check_range("raw", raw, 0.0, self._max_value)
        last = _state_array(state, "last", (n,), "i")
        _check_range("last", last, 0, step, allow=-1)
        flight = _state_array(state, "flight", (n,), "i")
        _check_range("flight", flight, 0, step - 1, allow=-1)

        # running statistics: [max reported priority, mean, reports, updates]
        stats = _state_array(state, "stats", (4,), "f")
        _check_range("stats", stats[:2], 0.0, self._max_value)
        _check_range("stats", stats[2:], 0.0, float(_MAX_STEP))
        if np.any(stats[2:] != np.floor(stats[2:])):
            raise ValueError(f"state_dict['stats'] counts must be whole numbers, got "
                             f"{stats[2:].tolist()}")
        reported = last >= 0
        n_reported = int(np.count_nonzero(reported))
        if (stats[3] == 0) != (n_reported == 0):
            raise ValueError(f"state_dict is inconsistent: {int(stats[3])} updates applied "
                             f"(stats[3]) but {n_reported} examples reported ('last')")
        if stats[2] < n_reported:
            raise ValueError(f"state_dict is inconsistent: {int(stats[2])} reports "
                             f"(stats[2]) but {n_reported} examples reported ('last')")
        if n_reported and float(raw[reported].max()) > stats[0]:
            pos = int(np.flatnonzero(reported & (raw > stats[0]))[0])
            raise ValueError(f"state_dict is inconsistent: raw[{pos}] = {raw[pos]!r} is "
                             f"above the largest reported priority stats[0] = {stats[0]!r}")

        # loss history: [write position, count, new since refresh, refresh every,
        # snapshot length]
        hist = _state_array(state, "hist", None, "f")
        if hist.shape != (h,):
            raise ValueError(
                f"state_dict was saved with history={hist.shape[0]}, this sampler has "
                f"history={h}"
            )
        ref = _state_array(state, "ref", (h,), "f")
        hstate = _state_array(state, "hstate", (5,), "i")
        pos_w, count, new, every, length = (int(x) for x in hstate)
        expected_every = max(1, h // 4)
        if not (0 <= count <= h and 0 <= pos_w < h and every == expected_every
                and 0 <= new < every and 0 <= length <= count
                and (count == h or pos_w == count)):
            raise ValueError(
                f"state_dict['hstate'] = {hstate.tolist()} is inconsistent with history={h} "
                f"(expected [write position < {h}, count <= {h}, new since refresh < "
                f"{expected_every}, {expected_every}, snapshot length <= count])")
        if length > 1 and np.any(np.diff(ref[:length]) < 0):
            pos = int(np.flatnonzero(np.diff(ref[:length]) < 0)[0]) + 1
            raise ValueError(f"state_dict['ref'] must be sorted over its first {length} "
                             f"entries; ref[{pos}] = {ref[pos]!r} < ref[{pos - 1}]")

        # in-flight marks and their ring: [slots, hard draws per step]
        ring = _state_array(state, "ring", None, "i", ndim=2)
        ring_step = _state_array(state, "ring_step", None, "i")
        ring_live = _state_array(state, "ring_live", None, "i")
        if ring_step.shape != (ring.shape[0],) or ring_live.shape != (ring.shape[0],):
            raise ValueError(
                f"state_dict ring arrays disagree: ring {ring.shape}, ring_step "
                f"{ring_step.shape}, ring_live {ring_live.shape}")
        _check_range("ring_live", ring_live, 0, n)
        keep_marks = same_batch and ring.shape == self._ring.shape
        if keep_marks:
            # the live-mark counts are derived data: recomputed, not trusted (states
            # saved before a counting fix may hold too many)
            ring_live = self._check_marks(ring, ring_step, flight, step)
        if not same_batch and not 0 <= yielded <= len(self):
            yielded = 0

        # everything checked: apply
        ex = np.empty((n, 4), dtype=np.float64)
        ex[:, _k.PRIO] = prio
        ex[:, _k.RAW] = raw
        ex[:, _k.LAST] = last
        ex[:, _k.FLIGHT] = flight
        if keep_marks:
            new_ring = (ring, ring_step, ring_live)
        else:
            ex[:, _k.FLIGHT] = -1.0
            new_ring = (np.zeros_like(self._ring), np.full_like(self._ring_step, -1),
                        np.zeros_like(self._ring_live))
        factor = self.in_flight_factor
        leaves = np.where(ex[:, _k.FLIGHT] >= 0, ex[:, _k.PRIO] * factor, ex[:, _k.PRIO])
        tree = np.zeros_like(self._tree)
        tree[self._size:self._size + n] = leaves
        _k.tree_build(tree, self._size)
        self._ex = ex
        self._tree = tree
        self._ring, self._ring_step, self._ring_live = new_ring
        self._hist, self._ref, self._hstate = hist, ref, hstate
        self._stats = stats
        self._sweep = np.array([sweep_pos, self._sweep_chunk], dtype=np.int64)
        self._step = step
        self.epoch = epoch
        self._resume_at = yielded
        self._yielded = yielded

    def _check_marks(self, ring: np.ndarray, ring_step: np.ndarray, flight: np.ndarray,
                     step: int) -> np.ndarray:
        """Check the invariants the draw kernel relies on (it reads ``ring`` rows as
        example ids; a mark ``f`` lives in slot ``f % slots`` while that slot holds step
        ``f``, among the last ``slots - 1`` steps, and its example is listed in the
        slot's row) and return the live-mark count of every slot."""
        n = self.n
        slots = ring.shape[0]
        _check_range("ring", ring, 0, n - 1)
        live = ring_step >= 0
        t = np.arange(slots)
        bad = live & ((ring_step < step - slots + 1) | (ring_step > step - 1)
                      | (ring_step % slots != t))
        bad |= ring_step < -1
        if bad.any():
            p = int(np.flatnonzero(bad)[0])
            raise ValueError(f"state_dict['ring_step'][{p}] = {int(ring_step[p])} is not "
                             f"one of the last {slots - 1} steps held by slot {p} "
                             f"(step={step})")
        marked = flight >= 0
        counts = np.zeros(slots, dtype=np.int64)
        if marked.any():
            f = flight[marked]
            slot = f % slots
            wrong = ring_step[slot] != f
            if wrong.any():
                p = int(np.flatnonzero(marked)[int(np.flatnonzero(wrong)[0])])
                raise ValueError(f"state_dict['flight'][{p}] = {int(flight[p])} has no "
                                 f"live ring slot (ring_step[{int(flight[p]) % slots}] = "
                                 f"{int(ring_step[int(flight[p]) % slots])})")
            counts = np.bincount(slot, minlength=slots).astype(np.int64)
        listed = np.zeros(n, dtype=bool)
        for p in np.flatnonzero(counts > 0):
            ids = ring[p, :self._kh]
            listed[ids[flight[ids] == ring_step[p]]] = True
        if np.any(listed != marked):
            p = int(np.flatnonzero(listed != marked)[0])
            raise ValueError(f"state_dict['flight'][{p}] = {int(flight[p])}: example {p} is "
                             "not in the ring row of its step")
        return counts

    def __repr__(self) -> str:
        f = self.fractions
        return (f"HardExampleSampler(n={self.n}, batch_size={self.batch_size}, "
                f"priority={self.priority!r}, hard={f['hard']:.3g}, base={f['base']:.3g}, "
                f"uniform={f['uniform']:.3g}, step={self._step})")
