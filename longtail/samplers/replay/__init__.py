"""Loss-driven hard-example replay: the sampler and the sum tree it draws from.

Example
-------
>>> from longtail.samplers.replay import SumTree
>>> tree = SumTree(4)
>>> tree.update([0, 1, 2, 3], [1.0, 1.0, 1.0, 5.0])
>>> float(tree.total)
8.0
"""
from __future__ import annotations

from longtail._core.lazy import lazy_exports

__getattr__, __dir__, __all__, _LAZY = lazy_exports(__name__, globals(), {
    "sampler": "HardExampleSampler", "sumtree": "SumTree"})

# The lazily exported names, for static type checkers (mypy, pyright); never imported
# at run time. tests/test_typing_exports.py checks that they match __all__.
from typing import TYPE_CHECKING  # noqa: E402

if TYPE_CHECKING:
    from longtail.samplers.replay.sampler import HardExampleSampler as HardExampleSampler
    from longtail.samplers.replay.sumtree import SumTree as SumTree
