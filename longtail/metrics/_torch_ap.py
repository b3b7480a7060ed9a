"""Average precision where the scores are: the torch path for CUDA validation.

Same definition, conventions and errors as :func:`longtail.metrics.average_precision`
(scikit-learn's AP, scores compared as float32, precision at distinct thresholds so
ties count as there, a label without positives gets 0 and one warning, NaN scores
rejected), computed on the scores' device with float64 accumulation: an 80,000 x 7,900
CUDA score matrix is never copied to the host.

Per label (a block of columns at a time, a few batched kernels per block, no host
synchronisation until the end): sort each column ascending (a segmented sort), gather
the targets in that order, find each entry's tie run start ``j0`` (a batched
``searchsorted`` of the sorted columns into themselves) and, for every positive,
``tp = P - (positives before j0)`` (positives scoring ``>=`` it) and ``ps = n - j0``
(entries scoring ``>=`` it); AP is the mean of ``tp / ps`` over the positives, the
same sum the CPU kernels take per distinct threshold. Micro: the distinct positive
scores ``u`` with multiplicities (sort + ``unique_consecutive``), and the number of
entries ``>= u`` from a ``searchsorted`` of every score into ``u`` and a histogram,
in row chunks. Working memory: about :data:`SHARE` of the score matrix plus
:data:`FIXED_BYTES`.

Bad input is detected on the device (flags read once, at the end) and then reported
by the CPU path's own checks on a host copy, so messages and their order are the CPU
path's exactly.

Example
-------
>>> import torch
>>> y = torch.tensor([[1, 0], [0, 1], [1, 1]])
>>> s = torch.tensor([[0.9, 0.2], [0.3, 0.8], [0.5, 0.1]])
>>> round(average_precision_torch(y, s), 6)
0.916667
"""
from __future__ import annotations

import warnings
from typing import Any

import numpy as np
import torch

from longtail._core.checks import check_choice
from longtail.datasets import LabelMatrix
from longtail.metrics._inputs import as_labels, as_matrix, raise_nan, score_bits

__all__ = ["average_precision_torch"]

#: working memory of a call, as a share of the score matrix's bytes ...
SHARE = 0.2
#: ... plus this many bytes (so that small matrices still get whole blocks)
FIXED_BYTES = 64 << 20
#: working bytes per entry of a column block: sort keys and indices, counts, float64 terms
_BLOCK_ENTRY_BYTES = 40
#: working bytes per entry of a row chunk in the micro average
_CHUNK_ENTRY_BYTES = 16

_NO_POS_LABELS = ("{} label(s) have no positive example; their average precision is 0 "
                  "(scikit-learn's convention)")
_NO_POS_MICRO = ("targets have no positive entry; micro average precision is 0 "
                 "(scikit-learn's convention)")


def average_precision_torch(targets: Any, scores: torch.Tensor, average: str | None = "macro",
                            *, stacklevel: int = 2) -> float | np.ndarray:
    """Average precision computed on the scores' device, equal to the CPU path.

    Parameters
    ----------
    targets : tensor [n, C] (or [n]) of 0/1, LabelMatrix, or anything
        :func:`~longtail.metrics.average_precision` accepts
        A tensor (bool, integer or float) is read block by block on the scores' device;
        a LabelMatrix is expanded there block by block from its CSC view; anything else
        goes through the CPU coercion (:meth:`LabelMatrix.from_any`) first.
    scores : tensor [n, C] or [n]
        float16, bfloat16, float32, float64 (or integer / bool), on any device with
        float64 support (not MPS); compared as float32.
    average : {"macro", "micro", None}
        As in :func:`~longtail.metrics.average_precision`.
    stacklevel : int
        Of the warning about labels without positives (2: the caller of this function).

    Returns
    -------
    float, or numpy.ndarray float64 [C] for ``average=None``

    Example
    -------
    >>> import torch
    >>> y = torch.tensor([[1, 0], [0, 0], [1, 1]], dtype=torch.bool)
    >>> s = torch.tensor([[0.5, 0.2], [0.3, 0.1], [0.5, 0.9]], dtype=torch.float16)
    >>> average_precision_torch(y, s, average=None).tolist()
    [1.0, 1.0]
    """
    check_choice("average", average, ("macro", "micro", None))
    s = _scores_2d(scores, targets)
    t = _targets(targets, scores, *s.shape)
    with torch.no_grad():
        if average == "micro":
            return _micro(t, s, targets, scores, stacklevel + 1)
        ap = _per_label(t, s, targets, scores, stacklevel + 1)
    return ap if average is None else float(np.mean(ap))


# ---------------------------------------------------------------------------------
# checks (shape and type here; values on the device, reported by the CPU checks)
# ---------------------------------------------------------------------------------
def _raise_like_cpu(targets: Any, scores: Any) -> None:
    """Raise the CPU path's error for these inputs (host copies: an error path)."""
    bits = score_bits(scores, check_nan=False)
    as_labels(targets, *bits.shape)
    raise_nan(bits)
    raise AssertionError("the device found a bad value that the CPU checks did not")


def _scores_2d(scores: Any, targets: Any) -> torch.Tensor:
    if not isinstance(scores, torch.Tensor):
        raise TypeError(f"scores must be a torch tensor, got {type(scores).__name__} "
                        "(use longtail.metrics.average_precision)")
    if scores.layout != torch.strided or scores.is_complex():
        _raise_like_cpu(targets, scores)  # the CPU path's TypeError
    return as_matrix(scores.detach(), "scores", nonempty=True)


def _targets(targets: Any, scores: Any, n: int, c: int) -> torch.Tensor | LabelMatrix:
    """A 2-D dense tensor (values checked later, on the device) or a LabelMatrix."""
    if isinstance(targets, torch.Tensor) and targets.layout == torch.strided \
            and not targets.is_complex():
        t = as_matrix(targets.detach(), "targets")
        if tuple(t.shape) != (n, c):
            raise ValueError(f"targets has shape {tuple(t.shape)} but scores have shape "
                             f"({n}, {c})")
        return t
    if not isinstance(targets, LabelMatrix):
        return as_labels(targets, n, c)  # the one coercion (host), with its errors
    if targets.shape != (n, c):
        raise ValueError(f"targets has shape {targets.shape} but scores have shape "
                         f"({n}, {c})")
    return targets


class _Flags:
    """Bad-value flags kept on the device: read once, at the end."""

    def __init__(self, device: torch.device) -> None:
        self.over = torch.zeros((), dtype=torch.bool, device=device)
        self.target = torch.zeros((), dtype=torch.bool, device=device)
        self.nan = torch.zeros((), dtype=torch.bool, device=device)

    def float32(self, part: torch.Tensor, out: torch.Tensor | None = None) -> torch.Tensor:
        """``part`` as float32 (into ``out`` if given); NaN and float32 overflow noted."""
        out = part.to(torch.float32) if out is None else out.copy_(part)
        if part.is_floating_point():
            self.nan |= torch.isnan(out).any()
            if part.dtype == torch.float64:
                self.over |= (torch.isinf(out) & torch.isfinite(part)).any()
        return out

    def positive(self, part: torch.Tensor) -> torch.Tensor:
        """``part != 0`` (bool); entries other than 0 and 1 noted."""
        if part.dtype == torch.bool:
            return part
        pos = part != 0
        self.target |= (pos & (part != 1)).any()
        return pos

    def check(self, targets: Any, scores: Any, nan: bool = True) -> None:
        over, target, has_nan = torch.stack([self.over, self.target, self.nan]).tolist()
        if over or target or (nan and has_nan):
            _raise_like_cpu(targets, scores)


def _block_len(total_bytes: int, entry_bytes: int, width: int) -> int:
    """Rows (of ``width`` entries) of a working block within the memory budget."""
    return max(1, (int(SHARE * total_bytes) + FIXED_BYTES) // (entry_bytes * width))


# ---------------------------------------------------------------------------------
# per label
# ---------------------------------------------------------------------------------
def _per_label(t: torch.Tensor | LabelMatrix, s: torch.Tensor, targets: Any, scores: Any,
               stacklevel: int) -> np.ndarray:
    n, c = s.shape
    dev = s.device
    flags = _Flags(dev)
    nb = min(c, _block_len(s.numel() * s.element_size(), _BLOCK_ENTRY_BYTES, n))
    if isinstance(t, LabelMatrix):
        csc = t.transpose()
        col_off = csc.offsets
        rows_of = torch.tensor(csc.indices, device=dev)
        counts = torch.tensor(np.diff(col_off), device=dev)
    ap = torch.empty(c, dtype=torch.float64, device=dev)
    npos = torch.empty(c, dtype=torch.int64, device=dev)
    for c0 in range(0, c, nb):
        c1 = min(c, c0 + nb)
        keys = flags.float32(s[:, c0:c1].T, torch.empty((c1 - c0, n), dtype=torch.float32,
                                                        device=dev))
        y = torch.empty((c1 - c0, n), dtype=torch.uint8, device=dev)
        if isinstance(t, LabelMatrix):
            a, e = int(col_off[c0]), int(col_off[c1])
            y.zero_()
            cols = torch.repeat_interleave(torch.arange(c1 - c0, device=dev),
                                           counts[c0:c1], output_size=e - a)
            y[cols, rows_of[a:e].long()] = 1
        else:
            y.copy_(flags.positive(t[:, c0:c1].to(dev)).T)
        _block_ap(keys, y, ap[c0:c1], npos[c0:c1])
        del keys, y
    flags.check(targets, scores)
    out = ap.cpu().numpy()
    empty = int((npos == 0).sum())
    if empty:
        warnings.warn(_NO_POS_LABELS.format(empty), UserWarning, stacklevel=stacklevel)
    return out


def _block_ap(keys: torch.Tensor, y: torch.Tensor, ap_out: torch.Tensor,
              npos_out: torch.Tensor) -> None:
    """AP of each row of a block (one label per row: ``keys`` float32 ``[b, n]`` scores,
    ``y`` uint8 ``[b, n]`` 0/1); written to ``ap_out`` (float64) and ``npos_out``."""
    n = keys.shape[1]
    v, order = torch.sort(keys, dim=1)  # ascending; ties in any order
    del keys
    y = torch.gather(y, 1, order)
    del order
    below = torch.cumsum(y, 1, dtype=torch.int32)
    npos = below[:, -1].to(torch.int64)
    below.sub_(y)                                   # positives strictly before each entry
    j0 = torch.searchsorted(v, v)                   # start of each entry's tie run
    j0.clamp_(max=n - 1)                            # (a NaN, reported later, finds none)
    del v
    tp = torch.gather(below, 1, j0)                 # positives scoring < the entry
    del below
    tp.neg_().add_(npos[:, None].to(torch.int32))   # positives scoring >= the entry
    ps = j0.neg_().add_(n)                          # entries scoring >= the entry
    q = tp.to(torch.float64).div_(ps).mul_(y)       # precision at each positive's threshold
    total = q.sum(1)
    npos_out.copy_(npos)
    ap_out.copy_(torch.where(npos > 0, total / npos.clamp(min=1), 0.0))


# ---------------------------------------------------------------------------------
# micro average
# ---------------------------------------------------------------------------------
def _micro(t: torch.Tensor | LabelMatrix, s: torch.Tensor, targets: Any, scores: Any,
           stacklevel: int) -> float:
    n, c = s.shape
    dev = s.device
    flags = _Flags(dev)
    rows = _block_len(s.numel() * s.element_size(), _CHUNK_ENTRY_BYTES, c)
    if isinstance(t, LabelMatrix):
        nnz = t.nnz
        r = torch.repeat_interleave(torch.arange(n, device=dev),
                                    torch.tensor(t.row_lengths(), device=dev), output_size=nnz)
        pos = s[r, torch.tensor(t.indices, device=dev).long()].to(torch.float32)
        del r
    else:
        parts = []
        for r0 in range(0, n, rows):
            hit = flags.positive(t[r0:r0 + rows].to(dev))
            parts.append(s[r0:r0 + rows][hit].to(torch.float32))
        pos = torch.cat(parts)
        nnz = pos.shape[0]
        del parts
    if nnz == 0:  # as the CPU path: no NaN check then
        if s.dtype == torch.float64:
            for r0 in range(0, n, rows):
                flags.float32(s[r0:r0 + rows])
        flags.check(targets, scores, nan=False)
        warnings.warn(_NO_POS_MICRO, UserWarning, stacklevel=stacklevel)
        return 0.0
    u, mult = torch.unique_consecutive(torch.sort(pos).values, return_counts=True)
    del pos
    hist = torch.zeros(u.shape[0] + 1, dtype=torch.int64, device=dev)
    for r0 in range(0, n, rows):
        chunk = flags.float32(s[r0:r0 + rows]).reshape(-1)
        k = torch.searchsorted(u, chunk, right=True)  # how many distinct u are <= x
        hist += torch.bincount(k, minlength=u.shape[0] + 1)
        del chunk, k
    flags.check(targets, scores)
    ge = hist.flip(0).cumsum(0).flip(0)[1:]   # entries scoring >= u
    tp = mult.flip(0).cumsum(0).flip(0)       # positives scoring >= u
    return float((mult.double() * (tp.double() / ge.double())).sum().item() / nnz)
