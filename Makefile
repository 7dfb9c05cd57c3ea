# Two commands on a fresh machine:  `make repro` (install, fetch the sample, run the pipeline)
# and `make test`. Everything installs into .venv; nothing is downloaded at run time.
VENV ?= .venv
PYTHON ?= python3
BIN := $(abspath $(VENV))/bin
export PATH := $(BIN):$(PATH)
export DVC_NO_ANALYTICS := 1

.PHONY: install repro test lint bench clean serve

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q -U pip
	# The CPU wheel first, so nothing pulls a multi-GB CUDA build (GPU nodes: install torch first).
	$(BIN)/pip install -q torch==2.13.0
	$(BIN)/pip install -q -e '.[dev]'
	touch $@

install: $(VENV)/.installed

repro: install
	dvc pull data.dvc
	dvc repro

test: install
	pytest -q

lint: install
	ruff check . && ruff format --check .

bench: install
	python bench/throughput.py

# The photo desk over what `make repro` built: http://127.0.0.1:8000 (serve section of params.yaml)
serve: install
	newsimg serve
