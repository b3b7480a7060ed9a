"""Per-example sampling weights for multilabel data, and what they expose each label to.

Example
-------
>>> from longtail.samplers.weights import sample_weights
>>> sample_weights([[0], [0], [1]], "inverse_frequency").round(3).tolist()
[0.75, 0.75, 1.5]
"""
from __future__ import annotations

from longtail._core.lazy import lazy_exports

__getattr__, __dir__, __all__, _LAZY = lazy_exports(__name__, globals(), {
    "weighting": "sample_weights exposure_report ExposureReport",
})

# The lazily exported names, for static type checkers (mypy, pyright); never imported
# at run time. tests/test_typing_exports.py checks that they match __all__.
from typing import TYPE_CHECKING  # noqa: E402

if TYPE_CHECKING:
    from longtail.samplers.weights.weighting import (
        exposure_report as exposure_report,
        ExposureReport as ExposureReport,
        sample_weights as sample_weights,
    )
