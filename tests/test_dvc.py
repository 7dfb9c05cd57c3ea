"""The real DVC CLI on the bundled sample, in a temporary git repository.

This is the README's main job (``dvc pull data.dvc && dvc repro``), then what users do next:
a second repro does nothing, ``dvc exp run -S train.loss_weights.ce=0`` re-runs only train
and what follows it, and ``dvc metrics diff`` shows the change.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import ROOT

COPY = [
    "dvc.yaml",
    "params.yaml",
    "data.dvc",
    ".dvcignore",
    ".dvc/config",
    "stages",
    "newsimg",
    "sample-data",
]


def sh(repo: Path, *cmd: str) -> str:
    env = {
        **os.environ,
        "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}",
        "DVC_NO_ANALYTICS": "1",
    }
    proc = subprocess.run(cmd, cwd=repo, env=env, capture_output=True, text=True, check=False)
    assert proc.returncode == 0, f"{' '.join(cmd)} failed:\n{proc.stdout}\n{proc.stderr}"
    return proc.stdout + proc.stderr


def stages_run(output: str) -> set[str]:
    return set(re.findall(r"Running stage '([^']+)'", output))


@pytest.fixture(scope="module")
def repo(tmp_path_factory: pytest.TempPathFactory) -> Path:
    d = tmp_path_factory.mktemp("repo")
    for name in COPY:
        src, dst = ROOT / name, d / name
        if src.is_dir():
            shutil.copytree(src, dst, ignore=shutil.ignore_patterns("__pycache__"))
        else:
            dst.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(src, dst)
    (d / ".gitignore").write_text("/data\n/artifacts\n")
    sh(d, "git", "init", "-q")
    sh(d, "git", "config", "user.email", "ci@newsimg.test")
    sh(d, "git", "config", "user.name", "ci")
    sh(d, "git", "add", "-A")
    sh(d, "git", "commit", "-qm", "sample project")
    sh(d, "dvc", "pull", "data.dvc")
    first = sh(d, "dvc", "repro")
    assert {
        "model",
        "metadata",
        "fetch",
        "leads",
        "embed@pool",
        "embed@n24news",
        "train",
        "index",
        "recall",
        "retrieve@headline",
        "retrieve@headline_lead",
        "retrieve@lam",
        "score",
        "report",
    } <= stages_run(first)
    sh(d, "git", "add", "-A")
    sh(d, "git", "commit", "-qm", "baseline run")
    return d


def test_lam_beats_chance_and_the_untrained_approaches(repo: Path) -> None:
    m = json.loads((repo / "metrics/score.json").read_text())
    chance = m["chance"]["R@10"]
    assert m["pool"]["images"] > 2000
    assert m["lam"]["R@10"] >= 3 * chance
    assert m["lam"]["R@10"] > m["headline"]["R@10"]
    assert m["lam"]["R@10"] > m["headline_lead"]["R@10"]


def test_second_repro_does_nothing(repo: Path) -> None:
    out = sh(repo, "dvc", "repro")
    assert stages_run(out) == set()
    assert "up to date" in sh(repo, "dvc", "status")


def test_experiment_reruns_only_train_and_below(repo: Path) -> None:
    out = sh(repo, "dvc", "exp", "run", "-S", "train.loss_weights.ce=0")
    assert stages_run(out) == {"train", "retrieve@lam", "score", "report"}
    diff = sh(repo, "dvc", "metrics", "diff", "--md")
    assert "lam.R@10" in diff or "lam.MRR@100" in diff
    assert "headline.R@10" not in diff  # untouched approaches keep their numbers
    shown = sh(repo, "dvc", "exp", "show", "--md")
    assert "train.loss_weights.ce" in shown or "loss_weights.ce" in shown


def test_plots_render(repo: Path) -> None:
    sh(repo, "dvc", "plots", "show", "-o", "plots_out")
    page = (repo / "plots_out" / "index.html").read_text()
    assert "recall@k" in page
