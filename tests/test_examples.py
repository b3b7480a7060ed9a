"""End-to-end runs of the examples on tiny data: the plain loop (train.py), the replay
feedback loop (replay_feedback.py), and the recipe harness behind compare_recipes.py."""
import json
import math
import os
import re
import socket
import subprocess
import sys

import numpy as np
import pytest

EXAMPLES = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
                        "examples")
sys.path.insert(0, EXAMPLES)

import compare_recipes  # noqa: E402
import harness as H  # noqa: E402
import replay_feedback  # noqa: E402
import train as plain  # noqa: E402

TINY = ["--n-examples", "600", "--epochs", "2", "--batch-size", "64", "--hidden", "32"]
TINY_PLAIN = ["--n-examples", "600", "--epochs", "2", "--batch-size", "64"]


@pytest.fixture(scope="module")
def workdir(tmp_path_factory):
    return str(tmp_path_factory.mktemp("runs"))


# ----------------------------------------------------------------------------- train.py
def test_plain_loop_trains_and_calibrates(workdir, capsys):
    result = plain.main([*TINY_PLAIN, "--workdir", workdir])
    out = capsys.readouterr().out
    assert "epoch 1/2" in out and "epoch 2/2" in out and "test macro AUPRC" in out
    assert set(result) == {"ap_macro", "ratio_at_0.5", "ratio_tuned"}
    assert 0 < result["ap_macro"] <= 1
    assert all(0 <= result[k] < float("inf") for k in ("ratio_at_0.5", "ratio_tuned"))
    # the splits are written once, as ArrowDataset files, and reused
    files = plain.prepare_data(workdir, "small", 600)
    sizes = [len(plain.ArrowDataset(files[k])) for k in ("train", "val", "test")]
    assert sum(sizes) == 600 and sizes[0] > sizes[1] > 0 and sizes[2] > 0


def test_plain_loop_resume_equals_uninterrupted_run(workdir, tmp_path):
    import torch

    args = [*TINY_PLAIN, "--epochs", "3", "--workdir", workdir]
    full_ckpt, part_ckpt = str(tmp_path / "full.pt"), str(tmp_path / "part.pt")
    full = plain.main([*args, "--checkpoint", full_ckpt])
    plain.main([*args, "--checkpoint", part_ckpt, "--stop-after", "2"])
    assert torch.load(part_ckpt)["epoch"] == 2
    resumed = plain.main([*args, "--checkpoint", part_ckpt, "--resume"])
    assert resumed == full  # same test metrics, exactly
    a, b = torch.load(full_ckpt), torch.load(part_ckpt)
    assert a["epoch"] == b["epoch"] == 3
    assert a["sampler"] == b["sampler"]
    for name, tensor in a["model"].items():
        assert torch.equal(tensor, b["model"][name]), name
    assert a["scheduler"] == b["scheduler"]


def test_plain_loop_sparse_labels_equal_dense(workdir):
    """Labels sent as CSR ids and expanded on the device train the very same model."""
    args = [*TINY_PLAIN, "--epochs", "2", "--workdir", workdir]
    assert plain.main([*args, "--labels", "sparse"]) == plain.main([*args, "--labels", "dense"])


def _free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_plain_loop_torchrun_two_processes_gloo(workdir, tmp_path):
    ckpt = str(tmp_path / "ddp.pt")
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2",
           "--master_port", str(_free_port()), os.path.join(EXAMPLES, "train.py"),
           *TINY_PLAIN, "--workdir", workdir, "--checkpoint", ckpt]
    env = dict(os.environ, OMP_NUM_THREADS="1")
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=600, env=env)
    assert proc.returncode == 0, proc.stderr[-3000:]
    epochs = re.findall(r"^epoch (\d)/2", proc.stdout, re.M)
    assert epochs == ["1", "2"]  # rank 0 prints, once per epoch
    ap = float(re.search(r"test macro AUPRC ([0-9.]+)", proc.stdout).group(1))
    assert ap > 0
    import torch

    state = torch.load(ckpt)
    assert state["epoch"] == 2 and state["sampler"]["num_replicas"] == 2


# ----------------------------------------------------------------------------- replay_feedback.py
def test_replay_feedback_loop(workdir, capsys):
    result = replay_feedback.main(["--n-examples", "600", "--epochs", "2", "--batch-size", "64",
                                   "--workdir", workdir])
    out = capsys.readouterr().out
    assert "epoch 2/2" in out
    assert 0 < result["ap_macro"] <= 1
    # the reported losses made the draws non-uniform: the top 10% get more than 10%
    assert 0.1 < result["top_share"] <= 1


# ----------------------------------------------------------------------------- harness
@pytest.mark.parametrize("recipe", sorted(H.RECIPES))
def test_every_recipe_trains(recipe, workdir):
    result = H.run([*TINY, "--workdir", workdir, "--recipe", recipe])
    hist = result["history"]
    assert len(hist) == 2
    last = hist[-1]
    for key in ("ap_macro", "ap_micro", "p_at_5", "ratio_at_0.5", "ratio_tuned"):
        assert 0 <= last[key] < float("inf"), (key, last[key])
    assert 0 <= last["sampler_share"] < 1
    for h in hist:  # one-time kernel compilation apart from the sampler's share
        assert h["compile_s"] >= 0 and 0 <= h["sampler_s"] <= h["epoch_s"] - h["compile_s"]
    assert last["ap_macro"] > 0.0
    # the equal step budget: ceil(n_train / batch) steps, never more than the sampler has
    budget = math.ceil(_n_train(workdir) / 64)
    for h in hist:
        assert h["steps"] == min(budget, h["sampler_steps"])


def _n_train(workdir):
    return len(plain.ArrowDataset(plain.prepare_data(workdir, "small", 600)["train"]))


def test_step_cap_is_reported_never_silent(workdir, capsys):
    """RepeatFactorSampler's epoch is longer than the equal budget: the cap shows in the
    log, in each epoch's record and in the table; --steps-per-epoch 0 lifts it."""
    capped = H.run([*TINY, "--workdir", workdir, "--recipe", "asl+repeat-factor"])
    log = capsys.readouterr().out
    last = capped["history"][-1]
    assert last["steps"] == math.ceil(_n_train(workdir) / 64) < last["sampler_steps"]
    assert f"trains {last['steps']} of the sampler's {last['sampler_steps']} batches" in log
    text, summary = H.summarise({"asl+repeat-factor": [capped]}, "asl+repeat-factor")
    assert f"{last['steps']} of {last['sampler_steps']}" in text and "steps/epoch" in text
    assert summary["asl+repeat-factor"]["steps"] == [last["steps"]]
    full = H.run([*TINY, "--workdir", workdir, "--recipe", "asl+repeat-factor",
                  "--steps-per-epoch", "0"])
    assert all(h["steps"] == h["sampler_steps"] for h in full["history"])
    text, _ = H.summarise({"asl+repeat-factor": [full]}, "asl+repeat-factor")
    assert " of " not in text
    assert "trains" not in capsys.readouterr().out


def test_gpu_code_path_on_cpu(workdir):
    """bf16 autocast (the CUDA default) exercised on CPU; the device-specific calls
    (pinned memory) are guarded by the device type."""
    import torch

    seen = []
    real = torch.autocast

    class Spy(real):
        def __init__(self, device_type, *a, **kw):
            seen.append((device_type, kw.get("dtype"), kw.get("enabled", True)))
            super().__init__(device_type, *a, **kw)

    torch.autocast = Spy
    try:
        result = H.run([*TINY, "--workdir", workdir, "--recipe", "asl+replay",
                        "--bf16", "on", "--device", "cpu"])
    finally:
        torch.autocast = real
    assert ("cpu", torch.bfloat16, True) in seen
    assert result["history"][-1]["ap_macro"] > 0.0
    assert H.autocast(torch.device("cpu")).fast_dtype == torch.bfloat16
    assert not H.autocast(torch.device("cpu"))._enabled


def test_replay_recipe_trains_on_mean_loss_and_ranks_by_balanced_loss():
    import torch

    import longtail
    from longtail import losses as L

    replay = H.RECIPES["asl+replay"]
    # example 0: 1 positive (badly predicted) among 9 easy negatives; example 1: all easy
    entries = torch.tensor([[4.0] + [0.1] * 9, [0.2] * 10])
    y = torch.tensor([[1.0] + [0.0] * 9, [1.0] + [0.0] * 9])
    train = L.per_example_loss(entries, y, reduction=replay.sample_reduction)
    assert train[0].item() == pytest.approx(entries[0].mean().item())  # no implicit pos_weight
    assert replay.sample_reduction == H.RECIPES["asl"].sample_reduction

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
        full = H.run([*TINY, "--workdir", workdir, "--recipe", recipe, "--epochs", "3"])
        ckpt = str(tmp_path / f"{recipe}.pt")
        first = H.run([*TINY, "--workdir", workdir, "--recipe", recipe, "--epochs", "3",
                       "--stop-after", "2", "--checkpoint", ckpt])
        assert len(first["history"]) == 2
        resumed = H.run([*TINY, "--workdir", workdir, "--recipe", recipe, "--epochs", "3",
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
    assert "steps/epoch" in printed
    data = json.load(open(os.path.join(out, "results.json")))
    assert set(data["summary"]) == {"bce-posweight", "bce-posweight-calibrated"}
    assert data["summary"]["bce-posweight"]["ap_macro_vs_baseline"] == 0.0
    assert open(os.path.join(out, "recipes.png"), "rb").read(4) == b"\x89PNG"
    assert "+-" in result["table"]  # two seeds: mean +- std


def test_output_json(workdir, tmp_path):
    out = str(tmp_path / "one.json")
    H.run([*TINY, "--workdir", workdir, "--recipe", "asl", "--output", out])
    hist = json.load(open(out))["history"]
    assert len(hist) == 2 and hist[-1]["ap_macro"] > 0


# ----------------------------------------------------------------------------- compare: small things
REPO = os.path.dirname(EXAMPLES)
PER_RUN_ONLY = {"--recipe", "--seed", "--checkpoint", "--resume", "--stop-after", "--output"}


def _option_blocks(help_text):
    """{option: its help text} from an argparse --help output."""
    blocks, name = {}, None
    for line in help_text.splitlines():
        m = re.match(r"  (--[a-z][a-z0-9-]*)", line)
        if m:
            name = m.group(1)
            blocks[name] = ""
        if name and not line.strip() == "":
            blocks[name] += " " + line.strip()
        else:
            name = None
    return blocks


def test_compare_help_lists_the_makefile_options_with_defaults(capsys):
    with pytest.raises(SystemExit) as stop:
        compare_recipes.main(["--help"])
    assert stop.value.code == 0
    blocks = _option_blocks(capsys.readouterr().out)
    demo = open(os.path.join(REPO, "Makefile")).read().split("\ndemo:")[1].split("\n\n")[0]
    passed = set(re.findall(r"(--[a-z][a-z0-9-]*)", demo))
    assert {"--preset", "--epochs", "--workdir", "--out", "--recipes"} <= passed
    for option in passed:
        assert option in blocks, option
        assert "default" in blocks[option], (option, blocks[option])
    assert "(default: 8)" in blocks["--epochs"] and "(default: small)" in blocks["--preset"]
    # every option of a run is an option of the comparison, but those of one run only
    run_options = set(_option_blocks(H.build_parser().format_help())) - {"--help"}
    assert run_options - PER_RUN_ONLY <= set(blocks)
    assert not PER_RUN_ONLY & set(blocks)
    with pytest.raises(SystemExit):  # no longer passed on silently to every run
        H.compare_parser().parse_args(["--checkpoint", "x.pt"])


class _Trained(Exception):
    pass


def test_compare_without_matplotlib_warns_before_training(workdir, tmp_path, monkeypatch,
                                                          capsys):
    monkeypatch.setitem(sys.modules, "matplotlib", None)  # `import matplotlib` fails
    assert not H.plot_available()

    def no_training(args):
        raise _Trained

    with monkeypatch.context() as m:
        m.setattr(H, "train", no_training)
        with pytest.raises(_Trained):
            H.compare(["--recipes", "asl", "--out", str(tmp_path / "a"), *TINY])
    assert "pip install 'longtail[plot]'" in capsys.readouterr().err  # said before training
    # the table and results.json all the same, no plot; --no-plot: no warning
    out = tmp_path / "b"
    result = H.compare(["--recipes", "asl", "--out", str(out), *TINY, "--workdir", workdir])
    captured = capsys.readouterr()
    assert "matplotlib is not installed" in captured.err and "| asl" in captured.out
    assert "asl" in result["table"] and (out / "results.json").exists()
    assert not (out / "recipes.png").exists()
    with monkeypatch.context() as m:
        m.setattr(H, "train", no_training)
        with pytest.raises(_Trained):
            H.compare(["--recipes", "asl", "--no-plot", "--out", str(tmp_path / "c")])
    assert "matplotlib" not in capsys.readouterr().err


def _fake_run(ap_level, ratios, n_labels=30):
    bucket = np.arange(n_labels) % 3  # 0 head, 1 medium, 2 tail
    ap = ap_level + 0.01 * bucket
    record = {"label_bucket": bucket, "ap_per_label": ap,
              "ratio_by_bucket_0.5": dict(zip(("tail", "medium", "head"), ratios))}
    return {"history": [record]}


def test_plot_fits_the_data_and_keeps_every_recipe_visible(tmp_path, monkeypatch):
    import matplotlib.pyplot as plt

    figures = []
    monkeypatch.setattr(plt, "close", figures.append)
    # nine recipes, eight of them on the very same values; one ratio of 0
    runs = {f"r{i}": [_fake_run(0.40, (2.0, 1.5, 1.2))] for i in range(8)}
    runs["r8"] = [_fake_run(0.45, (0.0, 0.05, 0.8))]
    limits = H.plot(runs, str(tmp_path / "p.png"))
    assert open(tmp_path / "p.png", "rb").read(4) == b"\x89PNG"
    lo, hi = limits["ap"]  # AP values span 0.40 .. 0.47
    assert 0.38 < lo < 0.40 and 0.47 < hi < 0.49
    lo, hi = limits["ratio"]  # positive ratios span 0.05 .. 2.0 (and the line at 1)
    assert 0.02 < lo < 0.05 and 2.0 < hi < 3.0
    lines = figures[0].axes[0].get_lines()
    assert len(lines) == 9
    styles = {(ln.get_marker(), ln.get_linestyle(), ln.get_color()) for ln in lines}
    assert len(styles) == 9
    assert len({float(ln.get_xdata()[0]) for ln in lines}) == 9  # coinciding points shifted
    # the limits helper itself
    assert H.data_ylim([0.12, 0.22], margin=0.1) == pytest.approx((0.11, 0.23))
    assert H.data_ylim([0.01, 10.0], log=True, margin=0.0) == pytest.approx((0.01, 10.0))
    assert H.data_ylim([0.5, np.nan], log=True, include=(1.0,), margin=0.0) == \
        pytest.approx((0.5, 1.0))


def test_kernel_compilation_is_kept_out_of_the_sampler_share():
    import numba

    clock = H.SamplerClock(H.CompileClock.shared())

    @numba.njit
    def fresh_kernel(x):
        return x + 1

    before = clock.compile.seconds
    with clock.section():
        fresh_kernel(1)
    compiled = clock.compile.seconds - before
    assert compiled > 0 and 0 <= clock.seconds < compiled
    # a last epoch that compiled: its share is marked, the seconds in a footnote
    record = {"ap_macro": 0.5, "ap_micro": 0.5, "p_at_5": 0.5, "ratio_at_0.5": 1.0,
              "ratio_tuned": 1.0, "sampler_share": 0.004, "steps": 3, "sampler_steps": 3}
    text, summary = H.summarise({"a": [{"history": [{**record, "compile_s": 12.3}]}]}, "a")
    assert "0.40%*" in text and "12.3 s" in text and summary["a"]["compile_s"] == [12.3]
    text, _ = H.summarise({"a": [{"history": [{**record, "compile_s": 0.0}]}]}, "a")
    assert "*" not in text and "compil" not in text
