"""Per-example sampling weights for multilabel data, and what they expose each label to.

Example
-------
>>> from longtail.samplers.weights import sample_weights
>>> sample_weights([[0], [0], [1]], "inverse_frequency").round(3).tolist()
[0.75, 0.75, 1.5]
"""
from __future__ import annotations

from longtail._core.lazy import lazy_exports

_LAZY = {
    "sample_weights": "longtail.samplers.weights.weighting",
    "exposure_report": "longtail.samplers.weights.weighting",
    "ExposureReport": "longtail.samplers.weights.weighting",
    "check_weights": "longtail.samplers.weights.weighting",
    "METHODS": "longtail.samplers.weights.weighting",
}
__all__ = sorted(_LAZY)
__getattr__, __dir__ = lazy_exports(__name__, globals(), _LAZY)
