"""benchmarks/bench_loader.py: the table at both presets, the dense skips at ``extreme``,
persistent workers that still get ``set_epoch``, and the wait / step measurements."""
from __future__ import annotations

import importlib.util
import os
import re
import sys
import time

import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader, TensorDataset

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "benchmarks"))
import bench_loader as B  # noqa: E402

from longtail._core.sampler import EpochSampler  # noqa: E402

HAS_HF = importlib.util.find_spec("datasets") is not None

COMMON = ["--rounds", "1", "--warmup", "1", "--batch", "256"]


def tables(out: str) -> dict[str, dict[str, dict[str, str]]]:
    """``{section title: {loader: {column: cell}}}`` of every table printed."""
    res: dict[str, dict[str, dict[str, str]]] = {}
    title, heads = None, None
    for line in out.splitlines():
        if line.startswith("## "):
            title, heads = line[3:].split(" (load average")[0], None
            res[title] = {}
        elif line.startswith("|") and not line.startswith("|-"):
            cells = [c.strip() for c in line.strip("|").split("|")]
            if heads is None:
                heads = cells
            else:
                res[title][cells[0]] = dict(zip(heads, cells))
    return res


def num(cell: str) -> float:
    """A printed figure as a number (units: seconds; MiB; fractions for %)."""
    m = re.fullmatch(r"([\d,.]+)\s*(%|ms|us|s|MiB|x.*)?", cell)
    assert m, f"not a number: {cell!r}"
    v, unit = float(m.group(1).replace(",", "")), m.group(2)
    return {"%": v / 100, "ms": v / 1e3, "us": v / 1e6}.get(unit, v)


def check_row(row: dict[str, str]) -> None:
    assert num(row["examples/s"]) > 0
    assert num(row["bytes/example"]) >= 0
    assert num(row["peak RSS +"]) >= 0
    assert 0 <= num(row["sampler share"]) <= 1
    for col in ("start-up", "epoch-start wait", "sampler at epoch start", "longest wait"):
        assert 0 <= num(row[col]) < 60, col
    assert num(row["epoch-start wait"]) <= num(row["longest wait"])


def test_seed_table_dense_and_sparse_with_anchors(capsys):
    B.main(["--n-examples", "2000", "--samplers", "shuffle", "stratified", "--workers", "0",
            *COMMON])
    out = capsys.readouterr().out
    assert re.search(r"# seed: file generated in [\d.]+ s, written in [\d.]+ s", out)
    t = tables(out)
    assert list(t) == ["seed: num_workers=0, batch=256"]
    rows = t["seed: num_workers=0, batch=256"]
    expected = {"shuffle/dense", "shuffle/sparse", "stratified/dense", "stratified/sparse",
                "anchor:tensor"} | ({"anchor:hf"} if HAS_HF else set())
    assert set(rows) == expected
    for key, row in rows.items():
        check_row(row)
        if not key.startswith("anchor:"):
            assert num(row["vs tensor"]) > 0
    # ours against shuffling with the same labels (the "within 20%" figures)
    assert rows["shuffle/sparse"]["vs shuffle"] == rows["anchor:tensor"]["vs shuffle"] == ""
    for key in ("stratified/dense", "stratified/sparse"):
        assert num(rows[key]["vs shuffle"]) > 0
    dense = num(rows["shuffle/dense"]["bytes/example"])
    assert dense == 128 * 4 + 7_900 * 4          # x + dense float32 y
    assert num(rows["shuffle/sparse"]["bytes/example"]) < dense / 20
    assert num(rows["anchor:tensor"]["bytes/example"]) == dense


def test_extreme_is_labels_only_sparse_only_and_says_why(capsys):
    B.main(["--preset", "extreme", "--n-examples", "20000", "--samplers", "shuffle", "replay",
            "--workers", "0", *COMMON])
    out = capsys.readouterr().out
    assert "20,000 examples x 670,000 labels" in out
    assert "labels only" in out
    assert ("dense labels skipped: one dense float32 batch of 256 rows is 256 x 670,000 x "
            "4 B = 686 MB; sparse only") in out
    assert "tensor anchor skipped: the dense float32 multi-hot would be 20,000 x 670,000" in out
    assert "hf anchor skipped" in out
    rows = tables(out)["extreme: num_workers=0, batch=256"]
    assert set(rows) == {"shuffle/sparse", "replay/sparse"}
    for row in rows.values():
        check_row(row)
        # no features; int64 offset + ~5 int32 ids per example
        assert 20 < num(row["bytes/example"]) < 40


def test_two_presets_one_size_each(capsys):
    B.main(["--preset", "seed", "extreme", "--n-examples", "1000", "5000", "--samplers",
            "weighted", "--labels", "sparse", "--no-anchors", "--workers", "0", *COMMON])
    out = capsys.readouterr().out
    assert "1,000 examples x 7,900 labels" in out and "5,000 examples x 670,000" in out
    t = tables(out)
    assert set(t) == {"seed: num_workers=0, batch=256", "extreme: num_workers=0, batch=256"}
    assert all(set(r) == {"weighted/sparse"} for r in t.values())


def test_persistent_workers_table(capsys):
    B.main(["--n-examples", "2000", "--samplers", "stratified", "--labels", "sparse",
            "--no-anchors", "--workers", "2", *COMMON])
    out = capsys.readouterr().out
    rows = tables(out)["seed: num_workers=2 (persistent), batch=256"]
    assert set(rows) == {"stratified/sparse"}
    check_row(rows["stratified/sparse"])


@pytest.fixture(scope="module")
def seed_file(tmp_path_factory):
    path, features = B.write_preset("seed", 1000, str(tmp_path_factory.mktemp("bench")))
    return path, features


def test_persistent_workers_get_set_epoch(seed_file):
    path, features = seed_file
    run = B.make_ours(path, features, "stratified", "sparse", 2, 256, 1000,
                      torch.device("cpu"))
    assert run.loader.persistent_workers and run.loader.num_workers == 2
    recs = [run() for _ in range(3)]
    assert [r["epoch"] for r in recs] == [0, 1, 2]
    assert run.sampler.epoch == 2
    assert [r["n"] for r in recs] == [1000] * 3
    assert run.startup == recs[0]["first"] > 0
    run.close()


def test_a_lost_set_epoch_is_caught(seed_file):
    path, features = seed_file
    run = B.make_ours(path, features, "shuffle", "sparse", 0, 256, 1000, torch.device("cpu"))
    run()
    run.sampler.set_epoch = lambda epoch: None       # set_epoch no longer reaches it
    with pytest.raises(RuntimeError, match=r"set_epoch\(1\) did not reach the sampler"):
        run()


def test_steps_cap_the_rate(seed_file):
    path, features = seed_file
    run = B.make_ours(path, features, "shuffle", "sparse", 0, 250, 1000, torch.device("cpu"),
                      step_s=0.1)
    rec = run()
    assert rec["n"] == 1000 and rec["s"] >= 4 * 0.1      # 4 batches, 4 steps
    assert rec["n"] / rec["s"] <= 250 / 0.1              # the ceiling: batch / step
    # a wait excludes the step before it: 1,000 local rows never take 100 ms to load
    assert rec["longest"] < 0.1


class SlowEpochs(EpochSampler):
    """A permutation of ``n`` that takes ``delay`` seconds to build (no prefetch)."""

    def __init__(self, n, delay):
        super().__init__(seed=0)
        self.n, self.delay = n, delay

    def _signature(self):
        return {"n": self.n}

    def _global_order(self, epoch):
        time.sleep(self.delay)
        return np.random.default_rng([self.seed, epoch]).permutation(self.n)

    def __len__(self):
        return self.n


def test_the_epoch_start_wait_and_the_sampler_part_are_measured():
    clock = B.Clock()
    sampler = SlowEpochs(100, 0.05)
    timed = B.TimedBatches(sampler, clock, 10, limit=100)
    data = TensorDataset(torch.zeros(100, 2), torch.zeros(100, 3))
    run = B.AnchorRun(DataLoader(data, batch_sampler=timed), clock, 100, torch.device("cpu"),
                      sampler=sampler)
    recs = [run(), run()]
    for rec in recs:
        assert rec["n"] == 100
        assert rec["first"] >= 0.05 and rec["sampler_first"] >= 0.05
        assert rec["longest"] == rec["first"]        # the other batches are fast
        assert rec["sampler"] >= rec["sampler_first"]
    assert [r["epoch"] for r in recs] == [0, 1]


def test_timed_batches_stop_at_the_limit():
    clock = B.Clock()
    batches = list(B.TimedBatches(range(1000), clock, 64, limit=200))
    assert [len(b) for b in batches] == [64, 64, 64, 64]      # the 4th reaches 200
    assert sum(batches, []) == list(range(256))
    assert len(B.TimedBatches(range(1000), clock, 64, limit=200)) == 4
    assert len(B.TimedBatches(range(100), clock, 64)) == 2
    whole = list(B.TimedBatches([[1, 2], [3], [4, 5]], clock, None, limit=3))
    assert whole == [[1, 2], [3]]


def test_dense_skips_and_sizes():
    assert B.dense_skips(80_000, 7_900, [256, 4096]) == (None, None)
    why_dense, why_tensor = B.dense_skips(3_000_000, 670_000, [256, 4096])
    assert why_dense == ("one dense float32 batch of 256 rows is 256 x 670,000 x 4 B = "
                         "686 MB (4,096 rows: 11.0 GB)")
    assert why_tensor == ("the dense float32 multi-hot would be 3,000,000 x 670,000 x 4 B = "
                          "8.0 TB")
    assert B.fmt_bytes(512) == "512 B" and B.fmt_bytes(32_112) == "32.1 kB"


def test_repeat_factor_threshold_keeps_extreme_epochs_short():
    assert B.rf_threshold("seed", 80_000) == 0.05
    assert B.rf_threshold("extreme", 3_000_000) == pytest.approx(1e-5)
    assert B.rf_threshold("extreme", 20) == 1.0


@pytest.mark.parametrize("argv, message", [
    (["--preset", "seed", "extreme", "--n-examples", "1", "2", "3"], "1 value or one per"),
    (["--n-examples", "0"], "--n-examples must be >= 1"),
    (["--steps-ms", "-1"], "--steps-ms must be >= 0"),
    (["--workers", "-1"], "--workers >= 0"),
])
def test_bad_arguments(argv, message, capsys):
    with pytest.raises(SystemExit):
        B.main(argv)
    assert message in capsys.readouterr().err


class SlowPrefetched(SlowEpochs):
    """SlowEpochs whose next epoch is built in the background (EpochSampler prefetch)."""

    def __init__(self, n, delay):
        super().__init__(n, delay)
        self.prefetch = True


def test_the_epoch_boundary_is_taken_back_to_back_inside_a_run():
    # a 0.3 s epoch build, prefetched; a fast loop: between runs the build has time (the
    # test sleeps as the other loaders' runs would), between the epochs of a run it has not
    clock = B.Clock()
    sampler = SlowPrefetched(100, 0.3)
    timed = B.TimedBatches(sampler, clock, 10, limit=100)
    data = TensorDataset(torch.zeros(100, 2), torch.zeros(100, 3))
    run = B.AnchorRun(DataLoader(data, batch_sampler=timed), clock, 100, torch.device("cpu"),
                      sampler=sampler)
    run()                                   # epoch 0 (built in place), prefetch of 1 starts
    time.sleep(0.5)                         # the prefetch of epoch 1 finishes
    one = run()                             # epoch 1 alone: its start looks free
    assert one["first"] < 0.2
    time.sleep(0.5)
    run.epochs_per_run = 2
    two = run()                             # epochs 2 and 3: 3 follows 2 back to back
    assert two["n"] == 200 and two["epoch"] == 3
    assert two["first"] >= 0.2              # the wait for epoch 3's build is seen
    assert two["sampler_first"] >= 0.2


def test_epochs_per_run_is_checked(capsys):
    with pytest.raises(SystemExit):
        B.main(["--epochs-per-run", "0", "--quick"])
    assert "--epochs-per-run >= 1" in capsys.readouterr().err
