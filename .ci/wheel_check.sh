#!/usr/bin/env bash
# `make wheel-check`: build the wheel, install it into a fresh virtual environment and
# run it there (import, `longtail --help`, one sampler epoch). Fails on any warning of
# the build (e.g. setuptools deprecations of our pyproject.toml).
# Environment: PY (a python with `build`), PYTHON (the interpreter of the new venv),
# TORCH (the torch requirement: the CPU pin of the Makefile), WHEEL_CHECK (work folder).
set -euo pipefail
cd "$(dirname "$0")/.."
: "${PY:?}" "${PYTHON:?}" "${TORCH:?}" "${WHEEL_CHECK:=build/wheel-check}"
rm -rf "$WHEEL_CHECK"
mkdir -p "$WHEEL_CHECK"
log="$WHEEL_CHECK/build.log"

start=$SECONDS
# byte-compiling off (PYTHONDONTWRITEBYTECODE) makes setuptools warn: not ours
if ! env -u PYTHONDONTWRITEBYTECODE "$PY" -m build --wheel --outdir "$WHEEL_CHECK/dist" . \
        > "$log" 2>&1; then
    cat "$log"; echo "wheel-check: the build failed" >&2; exit 1
fi
if grep -n -i -E "warning|deprecat" "$log"; then
    echo "wheel-check: the build printed warnings (above; full log: $log)" >&2; exit 1
fi
wheel=$(ls "$WHEEL_CHECK"/dist/longtail-*.whl)
echo "wheel-check: built $(basename "$wheel") in $((SECONDS - start)) s"

"$PYTHON" -m venv "$WHEEL_CHECK/venv"
venv_py="$(cd "$WHEEL_CHECK/venv/bin" && pwd)/python"
# (pip's notes on this machine's missing index folders are noise: filtered)
"$venv_py" -m pip install -q "$TORCH" "$wheel" 2>&1 | { grep -v "^WARNING: Location '.*' is ignored" || true; }
echo "wheel-check: installed into a fresh venv in $((SECONDS - start)) s"

# outside the repository, so that only the installed package can be imported
cd "$WHEEL_CHECK"
venv/bin/longtail --help > /dev/null
echo "wheel-check: \`longtail --help\` ran at $((SECONDS - start)) s"
"$venv_py" - <<'PY'
import pathlib
import time
import warnings

import longtail

where = pathlib.Path(longtail.__file__).resolve()
assert "site-packages" in where.parts, f"imported from {where}, not the installed wheel"
assert (where.parent / "py.typed").is_file(), "py.typed is not in the wheel"
t0 = time.perf_counter()
with warnings.catch_warnings():
    warnings.simplefilter("ignore")   # advice on these 4 toy examples is not the point
    sampler = longtail.RepeatFactorSampler([[0], [0], [0], [1]], threshold=0.5, seed=0)
    epoch = sorted(sampler)
assert epoch == [0, 1, 2, 3, 3], epoch
print(f"wheel-check: longtail {longtail.__version__} from {where.parent}: import, "
      f"`longtail --help` and one sampler epoch {epoch} OK (the epoch, Numba's first "
      f"compilation included: {time.perf_counter() - t0:.1f} s)")
PY
cd - > /dev/null
echo "wheel-check: smoke test done at $((SECONDS - start)) s"
rm -rf "$WHEEL_CHECK"
echo "wheel-check: passed in $((SECONDS - start)) s"
