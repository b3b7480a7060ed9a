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
