"""End-to-end runs of the reference training loop and the recipe comparison (tiny data)."""
import json
import os
import socket
import subprocess
import sys

import numpy as np
import pytest

EXAMPLES = os.path.join(os.path.dirname(os.path.dirname(__file__)), "examples")
sys.path.insert(0, EXAMPLES)

import compare_recipes  # noqa: E402
import train_reference as T  # noqa: E402

TINY = ["--n-examples", "600", "--epochs", "2", "--batch-size", "64", "--hidden", "32"]


@pytest.fixture(scope="module")
def workdir(tmp_path_factory):
    return str(tmp_path_factory.mktemp("runs"))


@pytest.mark.parametrize("recipe", sorted(T.RECIPES))
def test_every_recipe_trains(recipe, workdir):
    result = T.main([*TINY, "--workdir", workdir, "--recipe", recipe])
    hist = result["history"]
    assert len(hist) == 2
    last = hist[-1]
    for key in ("ap_macro", "ap_micro", "p_at_5", "ratio_at_0.5", "ratio_tuned"):
        assert 0 <= last[key] < float("inf"), (key, last[key])
    assert 0 <= last["sampler_share"] < 1
    assert last["ap_macro"] > 0.0


def test_gpu_code_path_on_cpu(workdir):
    """bf16 autocast (the CUDA default) exercised on CPU; the device-specific calls
    (pinned memory, CUDA device selection) are guarded by the device type."""
    import torch

    seen = []
    real = torch.autocast

    class Spy(real):
        def __init__(self, device_type, *a, **kw):
            seen.append((device_type, kw.get("dtype"), kw.get("enabled", True)))
            super().__init__(device_type, *a, **kw)

    torch.autocast = Spy
    try:
        result = T.main([*TINY, "--workdir", workdir, "--recipe", "asl+replay",
                         "--bf16", "on", "--device", "cpu"])
    finally:
        torch.autocast = real
    assert ("cpu", torch.bfloat16, True) in seen
    assert result["history"][-1]["ap_macro"] > 0.0
    assert T.autocast(torch.device("cpu")).fast_dtype == torch.bfloat16
    assert not T.autocast(torch.device("cpu"))._enabled


def test_replay_recipe_trains_on_mean_loss_and_ranks_by_balanced_loss():
    import torch

    import longtail
    from longtail import losses as L

    replay = T.RECIPES["asl+replay"]
    # example 0: 1 positive (badly predicted) among 9 easy negatives; example 1: all easy
    entries = torch.tensor([[4.0] + [0.1] * 9, [0.2] * 10])
    y = torch.tensor([[1.0] + [0.0] * 9, [1.0] + [0.0] * 9])
    train = L.per_example_loss(entries, y, reduction=replay.sample_reduction)
    assert train[0].item() == pytest.approx(entries[0].mean().item())  # no implicit pos_weight
    assert replay.sample_reduction == T.RECIPES["asl"].sample_reduction

    def priorities(losses, targets=None):
        s = longtail.HardExampleSampler(2, 2, **dict(replay.sampler_params))
        s.update(torch.tensor([0, 1]), losses, targets=targets)
        return s.priorities

    fed = priorities(entries, y)              # [B, C] + targets, the recipe's reduction
    balanced = torch.tensor([0.5 * (4.0 + 0.1), 0.2])                # positives count half
    assert np.allclose(fed, priorities(balanced))
    assert not np.allclose(fed, priorities(entries.mean(1)))


def test_resume_continues_with_identical_sampler_order(workdir, tmp_path):
    for recipe in ("asl+replay", "asl+repeat-factor"):
        full = T.main([*TINY, "--workdir", workdir, "--recipe", recipe, "--epochs", "3"])
        ckpt = str(tmp_path / f"{recipe}.pt")
        first = T.main([*TINY, "--workdir", workdir, "--recipe", recipe, "--epochs", "3",
                        "--stop-after", "2", "--checkpoint", ckpt])
        assert len(first["history"]) == 2
        resumed = T.main([*TINY, "--workdir", workdir, "--recipe", recipe, "--epochs", "3",
                          "--resume", ckpt])
        assert [h["epoch"] for h in resumed["history"]] == [1, 2, 3]
        assert resumed["history"][2]["sampler_digest"] == full["history"][2]["sampler_digest"]
        assert resumed["history"][2]["ap_macro"] == pytest.approx(full["history"][2]["ap_macro"],
                                                                  rel=1e-4)


def test_compare_recipes_writes_table_json_and_plot(workdir, tmp_path, capsys):
    out = str(tmp_path / "cmp")
    result = compare_recipes.main(["--recipes", "bce-posweight", "bce-posweight-calibrated",
                                   "--seeds", "0", "1", "--out", out, *TINY,
                                   "--workdir", workdir])
    printed = capsys.readouterr().out
    assert "bce-posweight-calibrated" in printed and "macro AP vs bce-posweight" in printed
    data = json.load(open(os.path.join(out, "results.json")))
    assert set(data["summary"]) == {"bce-posweight", "bce-posweight-calibrated"}
    assert data["summary"]["bce-posweight"]["ap_macro_vs_baseline"] == 0.0
    assert open(os.path.join(out, "recipes.png"), "rb").read(4) == b"\x89PNG"
    assert "+-" in result["table"]  # two seeds: mean +- std


def _free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_torchrun_two_processes_gloo(workdir, tmp_path):
    out = str(tmp_path / "ddp.json")
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2",
           "--master_port", str(_free_port()), os.path.join(EXAMPLES, "train_reference.py"),
           *TINY, "--workdir", workdir, "--recipe", "asl+replay", "--output", out]
    env = dict(os.environ, OMP_NUM_THREADS="1")
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=600, env=env)
    assert proc.returncode == 0, proc.stderr[-3000:]
    hist = json.load(open(out))["history"]
    assert len(hist) == 2 and hist[-1]["ap_macro"] > 0
