#!/usr/bin/env python
"""Compare training recipes on the same data, split and step budget (``make demo``).

Each recipe (a loss, a sampler, a calibration; see ``RECIPES`` in ``harness.py``) trains
the MLP of ``train.py`` on the same generated data and split with the same number of steps
per epoch; one table compares them (mean +- std over seeds of the last epoch's metrics,
steps per epoch, macro AP relative to ``bce-posweight``). ``results.json`` and a plot go
to ``--out`` (the plot needs matplotlib: ``pip install 'longtail[plot]'``; without it, a
warning at the start, and the table and ``results.json`` all the same). ``--help`` lists
every option, those of each run included (the same as ``python examples/harness.py``).

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
