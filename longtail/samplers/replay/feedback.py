"""Loss feedback for :class:`~longtail.samplers.HardExampleSampler`: reported losses and
indices checked and brought to the host (at most one device-to-host copy), element-wise
``[B, C]`` losses reduced on their device, and the DDP all-gather that hands every rank
the same updates in rank order.

The sampler reduces what it is given: ``[B, C]`` entries are reduced with the sampler's
``loss_reduction`` (and the ``targets`` that ``"balanced"`` needs) as
:func:`longtail.losses.per_example_loss` defines it -- on the host in one Numba pass
(float32 out), on a GPU with ``per_example_loss`` itself; ``[B]`` losses are taken as
they are.

Example
-------
>>> import numpy as np
>>> entries = np.array([[0.5, 1.5, 0.0], [1.0, 1.0, 4.0]])
>>> idx, loss = prepare([2, 0], entries, n=3, reduction="mean", to_host=True)
>>> idx.tolist(), loss.tolist()
([2, 0], [0.6666666865348816, 2.0])
>>> targets = np.array([[1, 0, 0], [0, 0, 1]])
>>> prepare([2, 0], entries, n=3, reduction="balanced", to_host=True,
...         targets=targets)[1].tolist()
[0.625, 2.5]
"""
from __future__ import annotations

from typing import Any

import numpy as np
import torch

from longtail.samplers.replay import _kernels as _k

__all__ = ["prepare", "host_pair", "gather", "check_group"]


def _per_example_loss(losses: Any, reduction: str, targets: Any = None) -> Any:
    """Reduce a ``[B, C]`` element-wise loss to ``[B]``: on the host in one pass of the
    Numba kernel :func:`~longtail.samplers.replay._kernels.reduce_entries` (numpy
    arrays and CPU tensors, read as float32: float32 ``[B]`` out), on another device
    with :func:`longtail.losses.per_example_loss` on that device.

    Both follow ``per_example_loss``'s definitions and agree to float32 rounding (the
    kernel accumulates in float64). On CUDA, ``torch.compile`` could fuse the torch ops
    into one kernel; not done here (compilation time and a dependency on a compiler
    toolchain for a reduction that is memory-bound either way).
    """
    if isinstance(losses, np.ndarray) or losses.device.type == "cpu":
        return _reduce_on_host(losses, reduction, targets)
    from longtail.losses import per_example_loss

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


def _host_float32(name: str, values: Any) -> np.ndarray:
    """``values`` (numpy array or tensor, real) as a C-contiguous writeable float32
    numpy array: no copy when it already is one (one Numba specialisation)."""
    if isinstance(values, torch.Tensor):
        if values.is_complex():
            raise ValueError(f"{name} must be real, got dtype {values.dtype}")
        values = values.detach().cpu()
        if values.dtype in (torch.bfloat16, torch.float16):   # bfloat16: no numpy dtype
            values = values.to(torch.float32)
        values = values.numpy()   # other dtypes: numpy converts (5x torch's speed)
    else:
        values = np.asarray(values)
        if values.dtype.kind not in "biuf":
            raise ValueError(f"{name} must be real numbers, got dtype {values.dtype}")
    out = np.ascontiguousarray(values, dtype=np.float32)
    if not out.flags.writeable:
        out = out.copy()
    return out


def _reduce_on_host(losses: Any, reduction: str, targets: Any) -> np.ndarray:
    """:func:`_per_example_loss` on the host: float32 ``[B]``, one kernel pass."""
    shape = tuple(losses.shape)
    if shape[1] == 0:
        raise ValueError(f"loss has no labels (shape {shape})")
    if targets is not None:
        t_shape = tuple(targets.shape) if hasattr(targets, "shape") else np.shape(targets)
        if t_shape != shape:
            raise ValueError(f"targets has shape {t_shape} but loss has shape {shape}")
    mode = _k.REDUCE_MODES[reduction]
    if mode == 3:
        if targets is None:
            raise ValueError("reduction='balanced' needs targets")
        t = _host_float32("targets", targets)
    else:
        t = _NO_TARGETS   # not read; checked as with "balanced"
        if isinstance(targets, torch.Tensor) and targets.is_complex():
            raise ValueError(f"targets must be real, got dtype {targets.dtype}")
        if targets is not None and not isinstance(targets, torch.Tensor) and \
                np.asarray(targets).dtype.kind not in "biuf":
            raise ValueError(
                f"targets must be real numbers, got dtype {np.asarray(targets).dtype}")
    entries = _host_float32("losses", losses)
    out = np.empty(shape[0], dtype=np.float32)
    _k.reduce_entries(entries, t, mode, out)
    return out


def host_pair(indices: Any, losses: Any) -> tuple[np.ndarray, np.ndarray] | None:
    """``(indices, losses)`` as numpy views when they already are what the update kernel
    reads -- 1-D int64 indices and float32 / float64 losses of the same length, CPU
    tensors or numpy arrays -- else ``None`` (then :func:`prepare` checks and converts).
    The fast path of a training loop's per-batch ``update``: a few attribute reads.

    Example
    -------
    >>> i, l = host_pair(torch.tensor([3, 1]), torch.tensor([0.5, 2.0]))
    >>> i.dtype.name, l.dtype.name
    ('int64', 'float32')
    >>> host_pair([3, 1], [0.5, 2.0]) is None      # lists: the general path
    True
    """
    if type(indices) is torch.Tensor and type(losses) is torch.Tensor:
        if (indices.dtype is not torch.int64 or losses.dtype not in _HOST_FLOATS
                or indices.device.type != "cpu" or losses.device.type != "cpu"):
            return None
        indices, losses = indices.numpy(), losses.detach().numpy()
    elif not (type(indices) is np.ndarray and type(losses) is np.ndarray
              and indices.dtype == np.int64 and losses.dtype in _NP_FLOATS):
        return None
    if indices.ndim != 1 or losses.shape != indices.shape:
        return None
    return indices, losses


_HOST_FLOATS = (torch.float32, torch.float64)
_NP_FLOATS = (np.dtype(np.float32), np.dtype(np.float64))

#: the ``targets`` the kernel gets when its reduction does not read them
_NO_TARGETS = np.zeros((1, 1), dtype=np.float32)


def prepare(indices: Any, losses: Any, *, n: int, reduction: str, to_host: bool,
            targets: Any = None) -> tuple[Any, Any]:
    """Check shapes and types, reduce ``[B, C]`` losses with ``reduction`` (on their
    device). With ``to_host``: numpy (indices, losses) after at most one device-to-host
    copy; else the checked inputs as they are (for :func:`gather`). ``ValueError`` on
    bad input."""
    if isinstance(losses, torch.Tensor):
        losses = losses.detach()
        if losses.dtype == torch.bool or losses.is_complex():
            raise ValueError(f"losses must be real numbers, got dtype {losses.dtype}")
    else:
        losses = np.asarray(losses)
        if losses.dtype.kind not in "fiu":
            raise ValueError(f"losses must be real numbers, got dtype {losses.dtype}")
    if losses.ndim == 2:
        losses = _per_example_loss(losses, reduction, targets)
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
                    raise ValueError(f"indices[{pos}] is outside [0, {n})")
                return idx_f.astype(np.int64), both[b:]
            losses = losses.cpu()
        losses = losses.numpy()
    if isinstance(indices, torch.Tensor):
        indices = indices.cpu().numpy()
    return indices, losses


def gather(indices: Any, losses: Any, num_replicas: int,
           error: Exception | None = None) -> tuple[np.ndarray, np.ndarray]:
    """All-gather (indices int64, losses float32) from every rank, in rank order.

    A first all-gather of the sizes also carries "my input was invalid" (-1), so a bad
    call on one rank raises ``ValueError`` on every rank instead of hanging: with
    ``error``, this rank says so and raises it.
    """
    import torch.distributed as dist

    device = torch.device("cpu")
    if dist.get_backend() == "nccl":
        device = torch.device("cuda", torch.cuda.current_device())
    count = -1 if error is not None else int(indices.shape[0])
    size = torch.tensor([count], dtype=torch.int64, device=device)
    sizes = [torch.empty_like(size) for _ in range(num_replicas)]
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
    all_idx = [torch.empty_like(idx_t) for _ in range(num_replicas)]
    all_loss = [torch.empty_like(loss_t) for _ in range(num_replicas)]
    dist.all_gather(all_idx, idx_t)
    dist.all_gather(all_loss, loss_t)
    # one device-to-host copy; float64 carries the indices exactly (n < 2**53)
    packed = torch.cat([torch.stack(all_idx).to(torch.float64),
                        torch.stack(all_loss).to(torch.float64)]).cpu().numpy()
    idx_rows, loss_rows = packed[:num_replicas], packed[num_replicas:]
    keep = np.concatenate([np.arange(c) + r * width for r, c in enumerate(counts)])
    return idx_rows.reshape(-1)[keep].astype(np.int64), loss_rows.reshape(-1)[keep]


def check_group(num_replicas: int, rank: int) -> bool:
    """True when ``torch.distributed`` is initialised and agrees with the layout
    ``(num_replicas, rank)``; ``ValueError`` when it is initialised and does not (so
    replicas cannot silently diverge); False without a process group. One replica is
    local: it does not look at the group."""
    import torch.distributed as dist

    if not (dist.is_available() and dist.is_initialized()):
        return False
    if num_replicas == 1:
        return False
    world, group_rank = dist.get_world_size(), dist.get_rank()
    if world != num_replicas:
        raise ValueError(
            f"num_replicas={num_replicas} but the torch.distributed group has "
            f"{world} process(es): update() all-gathers over the whole group, so "
            f"every process must run one replica (pass num_replicas={world}, or leave "
            "it None)")
    if group_rank != rank:
        raise ValueError(
            f"rank={rank} but this process is rank {group_rank} of the "
            "torch.distributed group: the replicas would draw overlapping slices "
            f"(pass rank={group_rank}, or leave it None)")
    return True
