# Two commands on a fresh machine:  `make repro` (install, fetch the sample, run the pipeline)
# and `make test`. Everything installs into .venv; nothing is downloaded at run time.
VENV ?= .venv
PYTHON ?= python3
BIN := $(abspath $(VENV))/bin
export PATH := $(BIN):$(PATH)
export DVC_NO_ANALYTICS := 1

.PHONY: install repro test lint bench bench-peers clean serve

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q -U pip
	# The CPU wheel first, so nothing pulls a multi-GB CUDA build (GPU nodes: install torch first).
	$(BIN)/pip install -q torch==2.13.0
	$(BIN)/pip install -q -e '.[dev]'
	touch $@

install: $(VENV)/.installed

repro: install
	dvc pull data.dvc pretrained.dvc
	dvc repro

test: install
	pytest -q

lint: install
	ruff check . && ruff format --check .

bench: install
	python bench/throughput.py

# The peers (img2dataset, autofaiss: pyproject's `bench` group) in a venv of their own, then the
# fetch and index benchmarks with them in the same run. Both exit 1 if newsimg falls behind.
# PEERS_ARGS=--quick: reduced sizes (a few minutes).
PEERS ?= .venv-peers
PEERS_ARGS ?=
$(PEERS)/.installed: pyproject.toml
	$(PYTHON) -m venv $(PEERS)
	$(PEERS)/bin/pip install -q -U pip
	$(PYTHON) -c "import tomllib; print(*tomllib.load(open('pyproject.toml', 'rb'))['project']['optional-dependencies']['bench'], sep='\n')" > $(PEERS)/requirements.txt
	$(PEERS)/bin/pip install -q -r $(PEERS)/requirements.txt
	touch $@

bench-peers: install $(PEERS)/.installed
	python bench/fetch.py --peer-python $(PEERS)/bin/python $(PEERS_ARGS)
	python bench/index.py --peer-python $(PEERS)/bin/python $(PEERS_ARGS)

# The photo desk over what `make repro` built: http://127.0.0.1:8000 (serve section of params.yaml)
serve: install
	newsimg serve
