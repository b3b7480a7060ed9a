"""First use (issue 15 #7): one line on stderr when kernels compile, ``longtail warmup``
compiles every kernel ahead. Each run is a fresh process with its own Numba cache."""
import json
import os
import subprocess
import sys
import textwrap

import pytest

from longtail._core import compile_notice

NOTICE = "longtail: compiling Numba kernels on first use"


def _run(code, cache, **env):
    e = {k: v for k, v in os.environ.items() if k != compile_notice.QUIET_ENV}
    e.update(NUMBA_CACHE_DIR=str(cache), **env)
    proc = subprocess.run([sys.executable, "-c", textwrap.dedent(code)], env=e,
                          capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return proc


SMALL = """
    {first}
    from numba import njit

    @njit
    def user_kernel(x):          # someone else's kernel: no message for it
        return x + 1

    user_kernel(1)
    from longtail import LabelMatrix
    y = LabelMatrix.from_lists([[0, 1], [1]])
    y.label_counts(), y.transpose()
    from longtail._core.compile_notice import compiled_kernels
    print(len(compiled_kernels()))
"""


@pytest.mark.parametrize("first", ["import longtail", "import numba; import longtail"])
def test_one_line_when_kernels_compile_then_silence(tmp_path, first):
    cold = _run(SMALL.format(first=first), tmp_path)
    assert int(cold.stdout) >= 2                      # several kernels compiled ...
    assert cold.stderr.count(NOTICE) == 1, cold.stderr  # ... one line said so
    assert "longtail warmup" in cold.stderr and "LONGTAIL_QUIET=1" in cold.stderr
    warm = _run(SMALL.format(first=first), tmp_path)  # the cache is warm now
    assert int(warm.stdout) == 0 and NOTICE not in warm.stderr


def test_quiet_env_hides_it(tmp_path):
    proc = _run(SMALL.format(first="import longtail"), tmp_path, LONGTAIL_QUIET="1")
    assert int(proc.stdout) >= 2 and NOTICE not in proc.stderr


def test_import_longtail_stays_light():
    code = "import sys, longtail; print('numba' in sys.modules, 'torch' in sys.modules)"
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=120)
    assert proc.stdout.split() == ["False", "False"], proc.stderr


WARMUP = """
    import importlib, json, pkgutil, sys
    import longtail
    from longtail.cli import main
    assert main(["warmup"]) == 0
    from numba.core.registry import CPUDispatcher
    from longtail._core.compile_notice import compiled_kernels
    missing, kernels = [], 0
    for info in pkgutil.walk_packages(longtail.__path__, "longtail."):
        if info.name.endswith("__main__"):
            continue
        module = importlib.import_module(info.name)
        for name, obj in vars(module).items():
            if isinstance(obj, CPUDispatcher) and obj.py_func.__module__ == info.name:
                if obj.targetoptions.get("inline") == "always":
                    continue             # compiled into its callers, never on its own
                kernels += 1
                if not obj.signatures:
                    missing.append(info.name + "." + name)
    print(json.dumps({"kernels": kernels, "missing": missing,
                      "compiled": len(compiled_kernels())}))
"""

CORE_LOOP = """
    import numpy as np
    import longtail as lt
    from longtail.metrics import average_precision
    from longtail._core.compile_notice import compiled_kernels
    rng = np.random.default_rng(0)
    rows = [np.flatnonzero(rng.random(50) < 0.1).tolist() for _ in range(300)]
    y = lt.LabelMatrix.from_lists(rows, n_labels=50)
    lt.stratified_split(y, {"train": 0.8, "val": 0.2})
    lt.sample_weights(y, "inverse_frequency")
    list(lt.ClassAwareSampler(y, warn=False))
    average_precision(y, rng.random((300, 50)).astype(np.float32))
    print(compiled_kernels())
"""

# kernels no public call on small data reaches
UNREACHABLE = {
    "longtail.metrics._kernels.block_ap",          # average_precision beyond 2**31 rows
    "longtail.datasets._kernels.row_lengths",      # no caller
}


@pytest.mark.slow
def test_warmup_compiles_every_kernel_so_the_core_loop_compiles_none(tmp_path):
    proc = _run(WARMUP, tmp_path)
    assert NOTICE not in proc.stderr            # warmup says what it does itself
    assert "longtail warmup: done in" in proc.stdout
    got = json.loads(proc.stdout.strip().splitlines()[-1])
    assert got["kernels"] > 50 and got["compiled"] >= got["kernels"] - len(UNREACHABLE)
    assert set(got["missing"]) <= UNREACHABLE, got["missing"]
    after = _run(CORE_LOOP, tmp_path)                  # a fresh process, same cache
    assert after.stdout.strip() == "[]" and NOTICE not in after.stderr
