#!/usr/bin/env python
"""Compare training recipes on the same data, split and budget (the main job of `make demo`).

Trains each recipe of ``train_reference.py`` (same generated data, same stratified split,
same number of steps), over one or more seeds, then prints one table (mean +- std of the
last epoch's validation metrics, and the relative change of macro AP vs
``bce-posweight``, the users' current setup), writes ``results.json`` and a PNG plot
(per-label AP and predicted/true label ratio by label-frequency bucket, one line per
recipe).

Example::

    python examples/compare_recipes.py --preset small --epochs 6 \
        --recipes bce bce-posweight bce-posweight-calibrated asl asl+replay
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time
from typing import Any

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import train_reference as T  # noqa: E402

METRICS = [("ap_macro", "macro AP"), ("ap_micro", "micro AP"), ("p_at_5", "P@5"),
           ("ratio_at_0.5", "pred/true @0.5"), ("ratio_tuned", "pred/true tuned"),
           ("sampler_share", "sampler share")]


def summarise(runs: dict[str, list[dict[str, Any]]], baseline: str) -> tuple[str, dict]:
    rows, summary = [], {}
    base = None
    if baseline in runs:
        base = float(np.mean([r["history"][-1]["ap_macro"] for r in runs[baseline]]))
    for recipe, results in runs.items():
        last = [r["history"][-1] for r in results]
        entry = {}
        cells = [recipe]
        for key, _ in METRICS:
            vals = np.array([float(x[key]) for x in last])
            entry[key] = {"mean": float(vals.mean()), "std": float(vals.std())}
            if key == "sampler_share":
                cells.append(f"{vals.mean():.2%}")
            else:
                cells.append(f"{vals.mean():.4f} +- {vals.std():.4f}" if len(vals) > 1
                             else f"{vals.mean():.4f}")
        rel = (entry["ap_macro"]["mean"] / base - 1) if base else float("nan")
        entry["ap_macro_vs_baseline"] = rel
        cells.append(f"{rel:+.1%}" if base else "n/a")
        summary[recipe] = entry
        rows.append(cells)
    headers = ["recipe", *[name for _, name in METRICS], f"macro AP vs {baseline}"]
    widths = [max(len(h), *(len(r[i]) for r in rows)) for i, h in enumerate(headers)]
    line = lambda r: "| " + " | ".join(c.ljust(w) for c, w in zip(r, widths)) + " |"  # noqa
    text = "\n".join([line(headers), "|" + "|".join("-" * (w + 2) for w in widths) + "|",
                      *(line(r) for r in rows)])
    return text, summary


def plot(runs: dict[str, list[dict[str, Any]]], path: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(11, 4))
    x = np.arange(3)
    for recipe, results in runs.items():
        buckets = np.asarray(results[0]["history"][-1]["label_bucket"])  # 0 head .. 2 tail
        ap = np.mean([np.asarray(r["history"][-1]["ap_per_label"]) for r in results], axis=0)
        axes[0].plot(x, [ap[buckets == b].mean() for b in (2, 1, 0)], marker="o", label=recipe)
        ratios = [np.mean([r["history"][-1]["ratio_by_bucket_0.5"].get(name, np.nan)
                           for r in results]) for name in ("tail", "medium", "head")]
        axes[1].plot(x, ratios, marker="o", label=recipe)
    for ax, title in zip(axes, ["mean AP per label", "predicted / true labels at 0.5"]):
        ax.set_xticks(x, ["tail", "medium", "head"])
        ax.set_xlabel("label-frequency bucket (training counts, tertiles)")
        ax.set_title(title)
        ax.grid(alpha=0.3)
    axes[1].axhline(1.0, color="black", lw=0.8)
    axes[1].set_yscale("log")
    axes[0].legend(fontsize=7)
    fig.tight_layout()
    tmp = path + ".tmp.png"
    fig.savefig(tmp, dpi=100)
    plt.close(fig)
    os.replace(tmp, path)


def main(argv: list[str] | None = None) -> dict[str, Any]:
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--recipes", nargs="+", default=list(T.RECIPES), choices=list(T.RECIPES),
                   help="recipes to train (default: all)")
    p.add_argument("--seeds", type=int, nargs="+", default=[0], help="model/sampler seeds")
    p.add_argument("--baseline", default="bce-posweight", help="recipe the others are compared to")
    p.add_argument("--out", default="runs/compare", help="folder for results.json and the plot")
    args, rest = p.parse_known_args(argv)
    os.makedirs(args.out, exist_ok=True)
    runs: dict[str, list[dict[str, Any]]] = {}
    t0 = time.perf_counter()
    for recipe in args.recipes:
        for seed in args.seeds:
            result = T.main([*rest, "--recipe", recipe, "--seed", str(seed)])
            runs.setdefault(recipe, []).append(result)
    text, summary = summarise(runs, args.baseline)
    print()
    print(f"validation metrics after the last epoch ({len(args.seeds)} seed(s); "
          f"{time.perf_counter() - t0:.0f} s in all)")
    print(text)
    results_path = os.path.join(args.out, "results.json")
    with open(results_path + ".tmp", "w") as f:
        json.dump({"summary": summary, "runs": T._jsonable(runs), "argv": argv or sys.argv[1:]},
                  f, indent=1)
    os.replace(results_path + ".tmp", results_path)
    plot_path = os.path.join(args.out, "recipes.png")
    plot(runs, plot_path)
    print(f"wrote {results_path} and {plot_path}")
    return {"summary": summary, "runs": runs, "table": text}


if __name__ == "__main__":
    main()
