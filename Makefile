# Two commands for a newcomer:  `make demo`  and  `make test`.
# Both create a virtual environment in .venv (Python 3.10+) and install what they need.
PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
PIP    := $(PY) -m pip
# torch is pinned to the CPU build that this kind of machine carries on disk; a plain
# `pip install torch` would pull a multi-GB CUDA build. Override with `make TORCH=torch==X`.
TORCH  ?= torch==2.13.0

.PHONY: demo test bench clean venv docs wheel-check

$(VENV)/.created:
	$(PYTHON) -m venv $(VENV)
	$(PIP) install -q --upgrade pip
	touch $@

$(VENV)/.base: pyproject.toml $(VENV)/.created
	$(PIP) install -q "$(TORCH)"
	$(PIP) install -q -e ".[plot]"
	touch $@

$(VENV)/.test: pyproject.toml $(VENV)/.base
	$(PIP) install -q -e ".[test,plot]"
	touch $@

$(VENV)/.bench: pyproject.toml $(VENV)/.test
	$(PIP) install -q -e ".[test,plot,bench]"
	touch $@

$(VENV)/.docs: pyproject.toml $(VENV)/.base
	$(PIP) install -q -e ".[plot,docs,dev]"
	touch $@

venv: $(VENV)/.base

## the main job: reference training recipes on built-in generated data
DEMO_RECIPES ?= bce bce-posweight bce-posweight-calibrated asl asl+replay asl+stratified-batches

demo: $(VENV)/.base
	$(PY) examples/compare_recipes.py --preset small --epochs 8 --workdir runs \
		--out runs/demo --recipes $(DEMO_RECIPES)

## the whole test suite
test: $(VENV)/.test
	$(PY) -m pytest -q

## the HTML API reference from the docstrings (docs/_build/html); a warning is an error
docs: $(VENV)/.docs
	$(PY) -m sphinx -b html -E -W --keep-going -q docs docs/_build/html
	@echo "API reference: docs/_build/html/index.html"

## build the wheel, install it into a fresh virtual environment (CPU torch, pip's cache)
## and run it there: import, `longtail --help`, one sampler epoch; a build warning fails
WHEEL_CHECK ?= build/wheel-check
wheel-check: $(VENV)/.docs
	PY="$(abspath $(PY))" PYTHON="$(PYTHON)" TORCH="$(TORCH)" WHEEL_CHECK="$(WHEEL_CHECK)" \
		bash .ci/wheel_check.sh

bench: $(VENV)/.bench
	for b in benchmarks/bench_*.py; do $(PY) $$b || exit 1; done

clean:
	rm -rf $(VENV) build dist *.egg-info .pytest_cache docs/_build
