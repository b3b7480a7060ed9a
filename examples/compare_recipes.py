#!/usr/bin/env python
"""Compare training recipes on the same data, split and step budget (``make demo``).

Each recipe (a loss, a sampler, a calibration; see ``RECIPES`` in ``harness.py``) trains
the MLP of ``train.py`` on the same generated data and split with the same number of steps
per epoch; one table compares them (mean +- std over seeds of the last epoch's metrics,
steps per epoch, macro AP relative to ``bce-posweight``). ``results.json`` and a plot go
to ``--out``. Any other argument goes to every run: ``python examples/harness.py --help``.

Example::

    python examples/compare_recipes.py --preset small --epochs 6 \\
        --recipes bce bce-posweight bce-posweight-calibrated asl asl+replay
"""
from __future__ import annotations

import os
import sys
from typing import Any

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402


def main(argv: list[str] | None = None) -> dict[str, Any]:
    return harness.compare(argv)


if __name__ == "__main__":
    main()
