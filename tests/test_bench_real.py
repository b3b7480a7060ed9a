"""benchmarks/bench_real.py: every recipe runs, the test part never steers a choice, the
oracle ceiling is a ceiling, and the real sets are read in place when present."""
from __future__ import annotations

import os
import sys

import numpy as np
import pytest
import scipy.sparse as sp

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "benchmarks"))
import bench_real as B  # noqa: E402


def _toy_set(folder: str, name: str = "toy", seed: int = 0, n: int = 600, d: int = 60,
             n_labels: int = 12) -> str:
    """A small real-set folder (X.npz, Y.npz, split.npy) with learnable labels."""
    rng = np.random.default_rng(seed)
    x = (rng.random((n, d)) < 0.1).astype(np.float32)
    w = rng.standard_normal((d, n_labels))
    bias = np.linspace(-2.5, -0.5, n_labels)
    y = ((x @ w) * 0.8 + bias + rng.standard_normal((n, n_labels)) > 0).astype(np.int8)
    y[0] = 0  # an example without labels, as delicious has
    path = os.path.join(folder, name)
    os.makedirs(path)
    sp.save_npz(os.path.join(path, "X.npz"), sp.csr_matrix(x))
    sp.save_npz(os.path.join(path, "Y.npz"), sp.csr_matrix(y))
    np.save(os.path.join(path, "split.npy"), (np.arange(n) % 4 == 0).astype(np.int8))
    return path


def test_every_recipe_runs_and_reports(tmp_path, capsys):
    _toy_set(str(tmp_path))
    res = B.main(["--data-dir", str(tmp_path), "--sets", "toy", "--quick", "--epochs", "1"])
    recipes = res["toy"]["recipes"]
    assert set(recipes) == set(B.RECIPES)
    for name, r in recipes.items():
        assert 0 < r["mean"]["macro"] <= 1, name
        assert 0 <= r["mean"]["tail"] <= 1, name
        assert r["epochs"] == 1, name
        assert r["params"][B.RECIPES[name].key] in B.RECIPES[name].values, name
        assert "psp@5" in r["mean"] and r["mean"]["psp@5"] > 0, name
    out = capsys.readouterr().out
    assert "### toy" in out and "### Summary" in out
    # post hoc logit adjustment leaves each label's ranking, hence macro AP, unchanged
    assert recipes["bce+la-posthoc"]["mean"]["macro"] == pytest.approx(
        recipes["bce"]["mean"]["macro"], abs=1e-6)


def test_test_labels_never_steer_a_choice(tmp_path):
    """Scramble the test labels: every choice (configuration, epochs, thresholds' source)
    stays the same; only the measured figures move."""
    _toy_set(str(tmp_path))
    ds = B.load_real(str(tmp_path), "toy")
    scrambled = B.DataSet(ds.name, ds.x, dict(ds.y, test=ds.y["test"][::-1]), ds.sparse)
    names = ["bce", "asl", "bce+crt-sqrt", "bce+la-posthoc"]
    a = B.run_set(ds, names, seeds=1, epochs=3, log=lambda m: None)["recipes"]
    b = B.run_set(scrambled, names, seeds=1, epochs=3, log=lambda m: None)["recipes"]
    for name in names:
        assert a[name]["params"] == b[name]["params"]
        assert a[name]["epochs"] == b[name]["epochs"]
        assert a[name]["tune_ap"] == b[name]["tune_ap"]
    assert a["bce"]["mean"]["macro"] != b["bce"]["mean"]["macro"]


def test_generated_set_has_the_oracle_ceiling_above_every_recipe(capsys):
    ds = B.load_generated("small", limit=3000)
    assert ds.ceiling is not None and ds.ceiling.shape == ds.y["test"].shape
    res = B.run_set(ds, ["bce", "asl"], seeds=1, epochs=2, log=lambda m: None)
    ceiling = res["ceiling"]["macro"]
    for r in res["recipes"].values():
        assert r["mean"]["macro"] < ceiling
    assert "(oracle ceiling)" in B.report("small", res)


def test_seeds_give_mean_and_std(tmp_path):
    _toy_set(str(tmp_path))
    ds = B.load_real(str(tmp_path), "toy")
    r = B.run_set(ds, ["bce"], seeds=2, epochs=2, log=lambda m: None)["recipes"]["bce"]
    assert len(r["seeds"]) == 2
    macro = [s["macro"] for s in r["seeds"]]
    assert r["mean"]["macro"] == pytest.approx(np.mean(macro))
    assert r["std"]["macro"] == pytest.approx(np.std(macro))
    assert macro[0] != macro[1]  # the seed changes the model


def test_absent_real_set_is_skipped_with_a_message(tmp_path, capsys):
    res = B.main(["--data-dir", str(tmp_path), "--sets", "bibtex", "--quick"])
    assert res == {}
    assert "skipping bibtex" in capsys.readouterr().out


REAL = os.path.normpath(B.DEFAULT_DATA)


@pytest.mark.skipif(not os.path.isdir(os.path.join(REAL, "bibtex")),
                    reason=f"the real data sets are not here ({REAL}); see benchmarks/README.md")
def test_real_set_is_read_in_place():
    ds = B.load_real(REAL, "bibtex", limit=800)
    assert ds.n_labels == 159 and ds.sparse
    assert ds.y["test"].shape[0] == 800
    assert ds.y["fit"].shape[0] + ds.y["tune"].shape[0] == 800
    res = B.run_set(ds, ["bce"], seeds=1, epochs=1, log=lambda m: None)
    assert 0 < res["recipes"]["bce"]["mean"]["macro"] < 1
