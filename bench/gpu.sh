#!/usr/bin/env bash
# The GPU check (bench/gpu.py): one table of embed, input pipeline, exact search, text encoding
# and DDP figures. On a CUDA machine it runs in under 8 minutes (the timeout stops it at 8);
# `bench/gpu.sh --cpu` runs the same checks at small sizes on the CPU (the test suite does).
#
# PYTHON: an interpreter with CUDA torch and newsimg installed (default: .venv/bin/python).
# On a fresh GPU node: python -m venv .venv && .venv/bin/pip install torch && \
#   .venv/bin/pip install -e '.[gpu]'   (PyPI's default Linux torch wheel is the CUDA build)
set -euo pipefail
cd "$(dirname "$0")/.."
PY="${PYTHON:-.venv/bin/python}"
exec timeout 480 "$PY" bench/gpu.py "$@"
