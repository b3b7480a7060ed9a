"""benchmarks/gpu_check.py runs end to end on the CPU (the GPU code path: sparse labels
expanded on the device, the reference MLP, the timers) and prints its figures."""
import json
import os
import re
import subprocess
import sys

import torch

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SCRIPT = os.path.join(ROOT, "benchmarks", "gpu_check.py")
sys.path.insert(0, os.path.join(ROOT, "benchmarks"))

import gpu_check  # noqa: E402


def run(*extra: str) -> tuple[str, dict]:
    out = subprocess.run([sys.executable, SCRIPT, "--device", "cpu", "--n-examples", "1200",
                          "--steps", "6", "--warmup-steps", "2", "--batch-size", "128", *extra],
                         capture_output=True, text=True, timeout=120, cwd=ROOT)
    assert out.returncode == 0, out.stderr[-3000:]
    return out.stdout, json.loads(out.stdout.strip().splitlines()[-1])


def test_cpu_run_prints_every_figure():
    text, res = run("--workers", "2")
    assert re.search(r"^samples/s: [\d,]+$", text, re.M)
    assert re.search(r"^gpu_util: n/a$", text, re.M)  # no CUDA, no nvidia-smi sampling
    assert re.search(r"^stall: \d+\.\d% of the time waiting for the next batch "
                     r"\(\d+\.\d+ ms per step\)$", text, re.M)
    assert re.search(r"^sampler_share: \d+\.\d%$", text, re.M)
    assert "1,200 examples x 7,900 labels, 128 features" in text
    assert res["device"] == "cpu" and res["workers"] == 2 and res["batch_size"] == 128
    assert res["steps"] == 6
    assert res["samples_per_s"] > 0
    assert res["gpu_util"] == "n/a" and res["gpu_util_mean"] is None
    assert 0 <= res["stall_share"] < 1 and res["stall_ms_per_step"] >= 0
    assert 0 <= res["sampler_share"] < 1
    assert 0 < res["loss"] < 10  # a finite training loss: the step really ran


def test_cpu_run_shuffle_no_workers():
    text, res = run("--workers", "0", "--sampler", "shuffle")
    assert "sampler shuffle" in text and res["workers"] == 0 and res["steps"] == 6
    assert 0 <= res["sampler_share"] < 1 and res["samples_per_s"] > 0


def test_timed_batch_sampler_passes_batches_through_and_counts_time():
    inner = [[0, 1], [2], [3, 4, 5]]
    timed = gpu_check.TimedBatchSampler(inner)
    assert list(timed) == inner and len(timed) == 3
    assert timed.seconds > 0


def test_gpu_util_is_na_without_cuda():
    util = gpu_check.GpuUtil(torch.device("cpu"))
    util.start()
    util.stop()
    assert util.cmd is None and util.summary() == "n/a"
    util.samples = [50.0, 70.0, 90.0]
    assert util.summary() == "70% mean, 70% median (3 samples)"
