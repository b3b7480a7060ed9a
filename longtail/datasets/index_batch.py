"""Batches of indices that carry per-index values drawn with them: the one side channel.

A batch sampler may compute values at draw time that belong to *that* batch:
:class:`~longtail.samplers.HardExampleSampler` its importance weights and draw
probabilities, :class:`~longtail.samplers.ClassAwareSampler` (``return_labels=True,
batch_size=B``) the label each example was drawn for. With DataLoader workers the sampler
runs ``num_workers * prefetch_factor`` batches ahead of the training loop, so asking the
sampler for "the current values" later would race: the values must travel with the
batch. Such a batch sampler therefore yields an :class:`IndexBatch` -- a ``list`` of int
indices (what every DataLoader fetcher accepts) with an ``extras`` dict of arrays aligned
with the indices. It pickles with its extras, so it reaches worker processes intact. This
is the only way values travel with a batch. On the worker side:

* :class:`~longtail.datasets.ArrowDataset` always gives ``(x, y, index, extras)``:
  ``extras`` is the batch's extras as a dict of tensors, ``{}`` when the sampler yields
  plain indices, so the training loop has one layout whatever the sampler;
* any other map-style dataset: wrap it with :func:`with_extras` and use
  :func:`collate_with_extras` as the ``collate_fn``; the collated batch then carries the
  extras as a dict of tensors (the last element of a tuple batch, key ``"extras"`` of a
  dict batch, else ``(batch, extras)``), empty without extras.

Example
-------
>>> import torch
>>> from torch.utils.data import DataLoader
>>> class Squares(torch.utils.data.Dataset):
...     def __len__(self): return 10
...     def __getitem__(self, i): return torch.tensor(float(i * i))
>>> batches = [IndexBatch([1, 3], {"weight": np.array([0.5, 1.0], dtype=np.float32)})]
>>> loader = DataLoader(with_extras(Squares()), batch_sampler=batches,
...                     collate_fn=collate_with_extras)
>>> x, extras = next(iter(loader))
>>> x.tolist(), extras["weight"].tolist()
([1.0, 9.0], [0.5, 1.0])
"""
from __future__ import annotations

import sys
import warnings
from collections.abc import Mapping, Sequence
from typing import Any, Callable, Iterable, Iterator

import numpy as np

__all__ = ["IndexBatch", "ExtrasDataset", "with_extras", "collate_with_extras"]


class IndexBatch(list):
    """A list (of indices, or of the samples fetched for them) with aligned ``extras``.

    Parameters
    ----------
    items : iterable
        The indices (a batch sampler yields ints) or samples.
    extras : dict of str to numpy.ndarray, optional
        Per-item values, each array with ``len(items)`` rows (e.g. ``{"weight":
        float32[B]}``). Kept as given; collation turns them into tensors.

    Notes
    -----
    ``IndexBatch`` compares equal to a plain list with the same items (extras are not
    compared) and pickles with its extras (``__reduce__``), which is what carries them
    through the DataLoader's index queue to worker processes.

    Example
    -------
    >>> import pickle
    >>> b = IndexBatch([4, 2], {"weight": np.array([1.0, 0.25], dtype=np.float32)})
    >>> b == [4, 2], b.extras["weight"].tolist()
    (True, [1.0, 0.25])
    >>> c = pickle.loads(pickle.dumps(b))
    >>> type(c).__name__, c.extras["weight"].tolist()
    ('IndexBatch', [1.0, 0.25])
    """

    __slots__ = ("extras",)

    def __init__(self, items: Iterable[Any] = (), extras: Mapping[str, np.ndarray] | None = None):
        super().__init__(items)
        self.extras: dict[str, np.ndarray] = dict(extras) if extras else {}

    def __reduce__(self) -> tuple:
        return (type(self), (self[:], self.extras))

    def __iter__(self) -> Iterator[Any]:
        if self.extras and not _WARNED and _called_by_torch_fetcher():
            _warn_extras_dropped(self.extras)
        return list.__iter__(self)

    def __repr__(self) -> str:
        return f"IndexBatch({list.__repr__(self)}, extras={sorted(self.extras)})"


_WARNED = False


def _called_by_torch_fetcher() -> bool:
    """Whether the caller of ``__iter__`` is torch's map-style fetcher, i.e. the dataset
    has no ``__getitems__`` and the batch's extras cannot reach the collate function."""
    frame = sys._getframe(2)
    return frame.f_code.co_filename.replace("\\", "/").endswith("torch/utils/data/_utils/fetch.py")


def _warn_extras_dropped(extras: Mapping[str, np.ndarray]) -> None:
    global _WARNED
    _WARNED = True
    warnings.warn(
        f"the batch sampler sends {sorted(extras)} with each batch (IndexBatch.extras), but "
        "this dataset has no __getitems__ that reads them, so the DataLoader drops them. "
        "Wrap it: DataLoader(longtail.with_extras(dataset), batch_sampler=..., "
        "collate_fn=longtail.collate_with_extras), or use ArrowDataset / MultilabelDataset "
        "(their collate returns (x, y, index, extras)). Warned once per process.",
        UserWarning, stacklevel=3)


class ExtrasDataset:
    """Map-style dataset wrapper whose ``__getitems__`` keeps the batch's ``extras``.

    Fetches ``dataset.__getitems__(indices)`` when the dataset has it, else
    ``[dataset[i] for i in indices]``, and returns the samples as an :class:`IndexBatch`
    carrying ``indices.extras`` (empty when the batch sampler yields plain lists).
    Everything else (``len``, ``[i]``, attributes) is delegated to ``dataset``.
    """

    def __init__(self, dataset: Any) -> None:
        self.dataset = dataset

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, index: Any) -> Any:
        return self.dataset[index]

    def __getitems__(self, indices: Sequence[int]) -> IndexBatch:
        getitems = getattr(self.dataset, "__getitems__", None)
        samples = getitems(indices) if getitems else [self.dataset[i] for i in indices]
        return IndexBatch(samples, getattr(indices, "extras", None))

    def __getattr__(self, name: str) -> Any:
        if name == "dataset":  # not set yet (unpickling)
            raise AttributeError(name)
        return getattr(self.dataset, name)


def with_extras(dataset: Any) -> ExtrasDataset:
    """Wrap a map-style dataset so that batches keep their sampler ``extras``.

    Use together with ``collate_fn=collate_with_extras`` (see the module example).
    """
    return ExtrasDataset(dataset)


def collate_with_extras(samples: Sequence[Any], collate_fn: Callable[[list], Any] | None = None) -> Any:
    """DataLoader ``collate_fn`` that attaches the batch's extras as tensors.

    ``samples`` is what the dataset fetched for one batch; when it carries ``extras``
    (an :class:`IndexBatch` from :class:`ExtrasDataset`), the collated batch gets them as
    a dict of tensors: appended as the last element of a tuple/list batch (the layout of
    :class:`~longtail.datasets.ArrowDataset`: ``(x, y, index, extras)``), under the key
    ``"extras"`` of a dict batch, else returned as ``(batch, extras)``. Without extras
    the dict is empty, so the layout does not depend on the sampler.

    Parameters
    ----------
    samples : sequence
        Per-index samples of one batch.
    collate_fn : callable, optional
        How to collate the samples themselves (default
        ``torch.utils.data.default_collate``); bind it with ``functools.partial``.
    """
    import torch
    from torch.utils.data import default_collate

    extras = getattr(samples, "extras", None) or {}
    batch = (collate_fn or default_collate)(list(samples))
    tensors = {k: torch.as_tensor(np.asarray(v)) for k, v in extras.items()}
    if isinstance(batch, tuple) and not hasattr(batch, "_fields"):
        return batch + (tensors,)
    if isinstance(batch, list):
        return [*batch, tensors]
    if isinstance(batch, Mapping):
        if "extras" in batch:
            raise ValueError("the collated batch already has a key 'extras'")
        out = dict(batch)
        out["extras"] = tensors
        return out
    return (batch, tensors)
