"""The README's Python blocks run as written, from a clean directory; a block that writes
files runs twice (a second run must not trip over the files of the first)."""
from __future__ import annotations

import os
import re
import subprocess
import sys

import pytest

README = os.path.join(os.path.dirname(__file__), "..", "README.md")
BLOCKS = re.findall(r"```python\n(.*?)```", open(README, encoding="utf-8").read(), re.S)


def test_readme_has_the_core_loop():
    core = BLOCKS[0]
    for step in ("stratified_split", "MultilabelDataset", "Sampler", "bce_with_logits",
                 "tune_thresholds", "average_precision", "prediction_ratio"):
        assert step in core, step
    assert len(core.strip().splitlines()) <= 50


@pytest.mark.parametrize("k", range(len(BLOCKS)))
def test_readme_block_runs_twice(k, tmp_path):
    path = tmp_path / f"block{k}.py"
    path.write_text(BLOCKS[k])
    env = dict(os.environ, LONGTAIL_QUIET="1")
    runs = 1 if k == 0 else 2  # the core loop writes no file (checked below)
    for _ in range(runs):
        out = subprocess.run([sys.executable, str(path)], cwd=tmp_path, env=env,
                             capture_output=True, text=True, timeout=300)
        assert out.returncode == 0, out.stderr[-3000:]
    if k == 0:  # the core loop prints its metrics, with a calibrated prediction count
        assert sorted(os.listdir(tmp_path)) == [path.name]
        m = re.search(r"macro AP ([\d.]+) P@5 ([\d.]+) predicted/true ([\d.]+)", out.stdout)
        assert m, out.stdout
        assert float(m.group(1)) > 0.08 and 0.8 < float(m.group(3)) < 1.25
