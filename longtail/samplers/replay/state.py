"""The state of :class:`~longtail.samplers.HardExampleSampler`: named records for its
kernels and the versioned state-dict codec generated from them.

The kernels (``_kernels.replay_draw`` / ``replay_update``) take a few NumPy structured
arrays instead of dozens of positional numbers:

* :data:`EXAMPLE` -- one 32-byte row per example (``prio``, ``raw``, ``last``,
  ``flight``), so touching an example costs one cache line;
* :data:`SLOT` -- one row per slot of the in-flight ring (``step``, ``live``); the ring's
  example ids are a plain ``int64[slots, hard draws]`` array;
* :data:`COUNTERS` -- a one-element array: the step and every running number (statistics
  of the reported priorities, sweep and loss-history cursors);
* :data:`PARAMS` -- a one-element array: the fixed parameters the kernels read.

The state dict is generated from the same field tables: one key per field of
``EXAMPLE`` (an ``[n]`` array), of ``SLOT`` (``"ring_" + field``, ``[slots]``) and of
``COUNTERS`` (a Python number), plus ``ring``, ``hist``, ``ref``, the sampler header
(:class:`longtail._core.sampler.ResumableSampler`) and ``global_batch``. Its
``"version"`` is :data:`VERSION`; a state of another version, a missing field or an
unknown one is refused with the field named, and every field is checked -- type, dtype,
shape, range, finiteness, consistency -- before anything is applied.

Example
-------
>>> ex = new_examples(3)
>>> ex["prio"].tolist(), ex["flight"].tolist()
([1.0, 1.0, 1.0], [-1, -1, -1])
>>> EXAMPLE.itemsize
32
"""
from __future__ import annotations

from typing import TYPE_CHECKING, Any, Callable, Mapping, NamedTuple

import numpy as np
import torch

from longtail._core.sampler import check_int, state_value

if TYPE_CHECKING:  # pragma: no cover
    from longtail.samplers.replay.sampler import HardExampleSampler

__all__ = ["VERSION", "EXAMPLE", "SLOT", "COUNTERS", "PARAMS", "new_examples", "new_slots",
           "new_counters", "encode", "decode", "Decoded"]

#: version of the state-dict layout (1: the unversioned layout with ``stats`` / ``hstate``)
VERSION = 2
#: steps and report counts stay below 2**53 (exact in a float64 probability computation)
MAX_STEP = 2**53

# A field: (name, dtype, limits). ``limits(sampler, decoded)`` gives ``(low, high,
# allowed)`` for a saved value (``allowed`` also accepted outside the range, None: no
# such value), or None where the checks are done elsewhere; ``decoded`` holds the
# counters decoded so far (they are decoded first, in field order).
Limits = Callable[["HardExampleSampler", dict], "tuple[float, float, float | None] | None"]

_EXAMPLE_FIELDS: tuple[tuple[str, type, Limits], ...] = (
    # priority in force (the tree leaf, but for the in-flight factor)
    ("prio", np.float64, lambda s, d: (0.0, s._max_value, None)),
    # priority reported by the last update (the decay starts from it)
    ("raw", np.float64, lambda s, d: (0.0, s._max_value, None)),
    # step of the last report, -1: never reported
    ("last", np.int64, lambda s, d: (0, d["step"], -1)),
    # step of the hard draw while in flight, -1: not in flight
    ("flight", np.int64, lambda s, d: (0, d["step"] - 1, -1)),
)
_SLOT_FIELDS: tuple[tuple[str, type, Limits], ...] = (
    # the step whose hard draws the slot holds, -1: free (checked with the marks)
    ("step", np.int64, lambda s, d: None),
    # how many of them are still in flight (recomputed from the marks on load)
    ("live", np.int64, lambda s, d: (0, s.n, None)),
)
_COUNTER_FIELDS: tuple[tuple[str, type, Limits], ...] = (
    # global batches drawn so far: the draw of step s uses the stream (seed, s)
    ("step", np.int64, lambda s, d: (0, MAX_STEP - 1, None)),
    # largest priority reported so far (the priority of unseen examples)
    ("max_reported", np.float64, lambda s, d: (0.0, s._max_value, None)),
    # running mean of the reported priorities (the decay's target)
    ("mean_reported", np.float64, lambda s, d: (0.0, s._max_value, None)),
    # losses reported so far, and updates applied
    ("reports", np.int64, lambda s, d: (0, MAX_STEP, None)),
    ("updates", np.int64, lambda s, d: (0, MAX_STEP, None)),
    # next example the staleness sweep revisits
    ("sweep_pos", np.int64, lambda s, d: (0, s.n - 1, None)),
    # loss history: write position, losses held, new since the snapshot, snapshot length
    ("hist_pos", np.int64, lambda s, d: (0, s.history - 1, None)),
    ("hist_count", np.int64, lambda s, d: (0, s.history, None)),
    ("hist_new", np.int64, lambda s, d: (0, s._hist_every - 1, None)),
    ("hist_len", np.int64, lambda s, d: (0, d["hist_count"], None)),
)


def _dtype(fields: tuple) -> np.dtype:
    return np.dtype([(name, t) for name, t, _ in fields], align=True)


#: one row per example
EXAMPLE = _dtype(_EXAMPLE_FIELDS)
#: one row per slot of the in-flight ring
SLOT = _dtype(_SLOT_FIELDS)
#: the running numbers (a one-element array)
COUNTERS = _dtype(_COUNTER_FIELDS)
#: the fixed parameters the kernels read (a one-element array); not saved: they follow
#: from the constructor's arguments
PARAMS = np.dtype([
    ("kh", np.int64), ("kb", np.int64), ("ku", np.int64),   # draws per source
    ("tu", np.float64), ("tb", np.float64),                 # p_target shares
    ("beta", np.float64), ("norm", np.int64),               # weights: exponent, norm
    ("factor", np.float64),                                 # in-flight factor
    ("seed", np.uint64),                                    # draw stream
    ("kind", np.int64), ("alpha", np.float64), ("eps", np.float64),
    ("pressure", np.float64), ("max_value", np.float64),    # priorities
    ("has_baseline", np.bool_),
    ("half_life", np.float64), ("sweep_chunk", np.int64),   # staleness
    ("hist_every", np.int64),                               # snapshot refresh
], align=True)

#: the line size the per-example rows are aligned to
_LINE = 64


def new_examples(n: int) -> np.ndarray:
    """``n`` fresh :data:`EXAMPLE` rows (priority 1, never reported, not in flight),
    starting on a cache-line boundary so that no row straddles two lines."""
    buf = np.empty(n * EXAMPLE.itemsize + _LINE, dtype=np.uint8)
    skip = -buf.ctypes.data % _LINE
    ex = buf[skip:skip + n * EXAMPLE.itemsize].view(EXAMPLE)
    ex["prio"] = 1.0
    ex["raw"] = 0.0
    ex["last"] = -1
    ex["flight"] = -1
    return ex


def new_slots(k: int) -> np.ndarray:
    """``k`` free :data:`SLOT` rows."""
    slots = np.zeros(k, dtype=SLOT)
    slots["step"] = -1
    return slots


def new_counters() -> np.ndarray:
    """A zeroed one-element :data:`COUNTERS` array."""
    return np.zeros(1, dtype=COUNTERS)


# -----------------------------------------------------------------------------------------
# encoding
# -----------------------------------------------------------------------------------------
def field_keys() -> list[str]:
    """State-dict keys of the fields (after the header), in order."""
    return ([name for name, _, _ in _EXAMPLE_FIELDS] + ["ring"]
            + ["ring_" + name for name, _, _ in _SLOT_FIELDS] + ["hist", "ref"]
            + [name for name, _, _ in _COUNTER_FIELDS])


def encode(s: "HardExampleSampler", header: dict[str, Any]) -> dict[str, Any]:
    """``header`` plus ``global_batch`` and every field: numpy arrays (copies) and Python
    numbers."""
    state = dict(header)
    state["global_batch"] = s.global_batch
    for name in EXAMPLE.names:
        state[name] = s._ex[name].copy()
    state["ring"] = s._ring.copy()
    for name in SLOT.names:
        state["ring_" + name] = s._slots[name].copy()
    state["hist"] = s._hist.copy()
    state["ref"] = s._ref.copy()
    counters = s._counters[0]
    for name in COUNTERS.names:
        state[name] = counters[name].item()
    return state


# -----------------------------------------------------------------------------------------
# decoding
# -----------------------------------------------------------------------------------------
class Decoded(NamedTuple):
    """A checked state, ready to apply."""
    epoch: int
    yielded: int
    ex: np.ndarray
    slots: np.ndarray
    ring: np.ndarray
    hist: np.ndarray
    ref: np.ndarray
    counters: np.ndarray
    #: whether the in-flight marks were kept (same global batch and ring shape)
    keep_marks: bool


def _name(key: str) -> str:
    return f"state_dict[{key!r}]"


def _scalar(state: Mapping, key: str, kind: str, low: float, high: float) -> int | float:
    """``state[key]``: an integer (``kind="i"``) or a finite real number in range."""
    value = state_value(state, key, "HardExampleSampler")
    if kind == "i":
        return check_int(_name(key), value, int(low), int(high))
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, float, np.integer,
                                                                     np.floating)):
        raise TypeError(f"{_name(key)} must be a real number, got {value!r} "
                        f"({type(value).__name__})")
    try:
        v = float(value)
    except OverflowError:
        v = float("inf")
    if not np.isfinite(v) or not low <= v <= high:
        raise ValueError(f"{_name(key)} = {value!r} is outside [{low:g}, {high:g}]")
    return v


def _array(state: Mapping, key: str, shape: tuple | None, kind: str,
           ndim: int = 1) -> np.ndarray:
    """``state[key]`` as a fresh float64 (``kind="f"``, finite) or int64 (``"i"``) array
    of ``shape`` (or of ``ndim`` dimensions), else ``TypeError`` / ``ValueError`` naming
    the key, the value and the first bad position."""
    value = state_value(state, key, "HardExampleSampler")
    if isinstance(value, torch.Tensor):
        value = value.detach().cpu().numpy()
    if isinstance(value, (str, bytes, Mapping)) or value is None:
        raise TypeError(f"{_name(key)} must be an array, got {type(value).__name__}")
    try:
        arr = np.asarray(value)
    except (ValueError, TypeError) as err:
        raise TypeError(f"{_name(key)} is not an array: {err}") from None
    name = _name(key)
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


def _check_range(key: str, arr: np.ndarray, limits: tuple | None) -> None:
    """Every entry of ``arr`` in ``[low, high]`` (or equal to ``allowed``)."""
    if limits is None or not arr.size:
        return
    low, high, allow = limits
    bad = (arr < low) | (arr > high)
    if allow is not None:
        bad &= arr != allow
    if bad.any():
        pos = int(np.flatnonzero(bad.reshape(-1))[0])
        also = "" if allow is None else f" (or {allow:g})"
        raise ValueError(f"{_name(key)}: entry {pos} = {arr.reshape(-1)[pos]!r} is "
                         f"outside [{low:g}, {high:g}]{also}")


def decode(s: "HardExampleSampler", state: Any, epoch: int, yielded: int) -> Decoded:
    """Check every field of ``state`` (whose header ``s`` has checked: ``epoch`` and
    ``yielded`` come from it) against sampler ``s``; nothing is applied."""
    n, h = s.n, s.history
    known = set(s._header_keys()) | {"global_batch"} | set(field_keys())
    for key in state:
        if key not in known:
            raise ValueError(f"state_dict has an unknown field {key!r}: not a version-"
                             f"{VERSION} HardExampleSampler state")
    global_batch = check_int("state_dict['global_batch']",
                             state_value(state, "global_batch", "HardExampleSampler"), 1)
    same_batch = global_batch == s.global_batch
    if same_batch and yielded > len(s):
        raise ValueError(f"state_dict['yielded']={yielded} is outside [0, {len(s)}] "
                         "(batches per epoch)")

    # the running numbers first: the other fields' limits depend on them
    counters = new_counters()
    decoded: dict[str, Any] = {}
    for name, t, limits in _COUNTER_FIELDS:
        low, high, _ = limits(s, decoded)
        decoded[name] = _scalar(state, name, np.dtype(t).kind, low, high)
        counters[0][name] = decoded[name]
    step = decoded["step"]

    # per-example rows
    cols = {}
    for name, t, limits in _EXAMPLE_FIELDS:
        cols[name] = _array(state, name, (n,), np.dtype(t).kind)
        _check_range(name, cols[name], limits(s, decoded))
    reported = cols["last"] >= 0
    n_reported = int(np.count_nonzero(reported))
    if (decoded["updates"] == 0) != (n_reported == 0):
        raise ValueError(f"state_dict is inconsistent: {decoded['updates']} updates applied "
                         f"('updates') but {n_reported} examples reported ('last')")
    if decoded["reports"] < n_reported:
        raise ValueError(f"state_dict is inconsistent: {decoded['reports']} reports "
                         f"('reports') but {n_reported} examples reported ('last')")
    raw, top = cols["raw"], decoded["max_reported"]
    if n_reported and float(raw[reported].max()) > top:
        pos = int(np.flatnonzero(reported & (raw > top))[0])
        raise ValueError(f"state_dict is inconsistent: raw[{pos}] = {raw[pos]!r} is "
                         f"above the largest reported priority max_reported = {top!r}")

    # loss history and its sorted snapshot
    hist = _array(state, "hist", (h,), "f")
    ref = _array(state, "ref", (h,), "f")
    pos_w, count, length = decoded["hist_pos"], decoded["hist_count"], decoded["hist_len"]
    if not (count == h or pos_w == count):
        raise ValueError(f"state_dict is inconsistent: hist_pos = {pos_w} but hist_count = "
                         f"{count} < history = {h} (the history fills from position 0)")
    if length > 1 and np.any(np.diff(ref[:length]) < 0):
        p = int(np.flatnonzero(np.diff(ref[:length]) < 0)[0]) + 1
        raise ValueError(f"state_dict['ref'] must be sorted over its first {length} "
                         f"entries; ref[{p}] = {ref[p]!r} < ref[{p - 1}]")

    # in-flight marks: the ring of hard draws and its slots
    ring = _array(state, "ring", None, "i", ndim=2)
    slot_cols = {}
    for name, t, limits in _SLOT_FIELDS:
        key = "ring_" + name
        slot_cols[name] = _array(state, key, None, np.dtype(t).kind)
        if slot_cols[name].shape != (ring.shape[0],):
            raise ValueError(f"state_dict ring arrays disagree: ring {ring.shape}, {key} "
                             f"{slot_cols[name].shape}")
        _check_range(key, slot_cols[name], limits(s, decoded))
    keep_marks = same_batch and ring.shape == s._ring.shape
    if keep_marks:
        # the live-mark counts are derived data: recomputed, not trusted (states saved
        # before a counting fix may hold too many)
        slot_cols["live"] = _check_marks(s, ring, slot_cols["step"], cols["flight"], step)
        slots = np.empty(ring.shape[0], dtype=SLOT)
        for name in SLOT.names:
            slots[name] = slot_cols[name]
    else:
        cols["flight"][:] = -1
        ring, slots = np.zeros_like(s._ring), new_slots(s._slots.shape[0])
    if not same_batch and not 0 <= yielded <= len(s):
        yielded = 0
    ex = new_examples(n)
    for name in EXAMPLE.names:
        ex[name] = cols[name]
    return Decoded(epoch, yielded, ex, slots, ring, hist, ref, counters, keep_marks)


def _check_marks(s: "HardExampleSampler", ring: np.ndarray, ring_step: np.ndarray,
                 flight: np.ndarray, step: int) -> np.ndarray:
    """Check the invariants the draw kernel relies on (it reads ``ring`` rows as example
    ids; a mark ``f`` lives in slot ``f % slots`` while that slot holds step ``f``, among
    the last ``slots - 1`` steps, and its example is listed in the slot's row) and return
    the live-mark count of every slot."""
    n = s.n
    k = ring.shape[0]
    _check_range("ring", ring, (0, n - 1, None))
    live = ring_step >= 0
    t = np.arange(k)
    bad = live & ((ring_step < step - k + 1) | (ring_step > step - 1) | (ring_step % k != t))
    bad |= ring_step < -1
    if bad.any():
        p = int(np.flatnonzero(bad)[0])
        raise ValueError(f"state_dict['ring_step'][{p}] = {int(ring_step[p])} is not "
                         f"one of the last {k - 1} steps held by slot {p} (step={step})")
    marked = flight >= 0
    counts = np.zeros(k, dtype=np.int64)
    if marked.any():
        f = flight[marked]
        slot = f % k
        wrong = ring_step[slot] != f
        if wrong.any():
            p = int(np.flatnonzero(marked)[int(np.flatnonzero(wrong)[0])])
            raise ValueError(f"state_dict['flight'][{p}] = {int(flight[p])} has no live ring "
                             f"slot (ring_step[{int(flight[p]) % k}] = "
                             f"{int(ring_step[int(flight[p]) % k])})")
        counts = np.bincount(slot, minlength=k).astype(np.int64)
    listed = np.zeros(n, dtype=bool)
    for p in np.flatnonzero(counts > 0):
        ids = ring[p, :s._kh]
        listed[ids[flight[ids] == ring_step[p]]] = True
    if np.any(listed != marked):
        p = int(np.flatnonzero(listed != marked)[0])
        raise ValueError(f"state_dict['flight'][{p}] = {int(flight[p])}: example {p} is "
                         "not in the ring row of its step")
    return counts
