"""Recipe comparison at the `medium` preset (the seed shape scaled for a CPU), 3 seeds.

Run: ``python benchmarks/bench_recipes.py [--seeds 0 1 2] [--epochs 10]``

Same data (``make_long_tail("medium")``: 20,000 x 2,000, ~33 labels/example, prevalence
1.1%..15%), same stratified split (70/15/15: train / val for threshold tuning / test
for the metrics), same model (MLP 512-512), same step budget per epoch for every recipe
(a sampler epoch cut short by it is reported in the table as "a of b"); the anchor is
``bce-posweight`` (``BCEWithLogitsLoss(pos_weight=neg/pos)``, the users' setup). Prints
mean +- std over seeds of the last epoch's held-out metrics and writes
``runs/bench_recipes/results.json`` and ``recipes.png``.
"""
from __future__ import annotations

import argparse
import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(os.path.dirname(HERE), "examples"))
import harness  # noqa: E402  (examples/harness.py: the recipe comparison)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    p.add_argument("--epochs", type=int, default=10)
    p.add_argument("--out", default="runs/bench_recipes")
    args = p.parse_args()
    harness.compare(["--seeds", *map(str, args.seeds), "--out", args.out,
                     "--preset", "medium", "--epochs", str(args.epochs), "--workdir", "runs"])


if __name__ == "__main__":
    main()
