"""bench/gpu.sh --cpu: the GPU check's CPU mode runs every check at small sizes and they agree."""

from __future__ import annotations

import json
import os
import subprocess
import sys

from tests.conftest import ROOT


def test_gpu_check_runs_on_the_cpu_and_its_checks_agree() -> None:
    env = {**os.environ, "PYTHON": sys.executable}
    done = subprocess.run(
        ["bash", str(ROOT / "bench" / "gpu.sh"), "--cpu"],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=600, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    lines = done.stdout.strip().splitlines()
    table = "\n".join(lines[:-1])
    for row in ("matmul peak", "embed TINY, model alone", "input pipeline", "exact search",
                "text headline", "text lead", "2 DDP processes"):  # fmt: skip
        assert row in table, row
    figures = json.loads(lines[-1])
    assert figures["search_agreement"] == 1.0  # the searched device finds the CPU's top 10
    assert figures["ddp_equal"] is True  # two processes write one process's embeddings
    assert figures["ddp_max_diff"] == 0.0
    # length-aware text encoding gives full padding's features (float32)
    assert figures["text_headline_max_diff"] < 1e-5
    assert figures["text_lead_max_diff"] < 1e-5
    assert 0 < figures["embed_tiny_mfu"] < 2
