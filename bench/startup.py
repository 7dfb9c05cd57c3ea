"""Start-up of ``newsimg search`` on the sample: a fresh process, from exec to the printed hits.

Each row runs a fresh interpreter ``--repeat`` times (the OS file cache warm, as on a second
call) and reports the median wall time; ratios are against ``newsimg search`` itself:

- ``python -c pass``: the interpreter alone;
- ``import torch``: the floor any CLIP encoder pays;
- ``newsimg search``: parse, load the params, the model folder, the index, encode, search, print;
- ``... with Lightning imported``: the same after ``import pytorch_lightning``, which the search
  path used to pull in through the embedding and LAM modules.

Needs the sample's artifacts (``make repro``)::

    .venv/bin/python bench/startup.py [--model artifacts/models/base] [--index artifacts/index]
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import time
from pathlib import Path

QUERY = "Three red kites fly over a snowy field"


def wall(argv: list[str], repeat: int) -> float:
    """Median seconds of ``repeat`` runs of ``argv`` (each must exit 0)."""
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        subprocess.run(argv, check=True, capture_output=True)
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", type=Path, default=Path("artifacts/models/base"))
    parser.add_argument("--index", type=Path, default=Path("artifacts/index"))
    parser.add_argument("--params", type=Path, default=Path("params.yaml"))
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()

    search = [
        "search",
        QUERY,
        "--model",
        str(args.model),
        "--index",
        str(args.index),
        "--params",
        str(args.params),
        "-k",
        "5",
    ]
    cli = f"from newsimg.cli import main; main({search!r})"
    py = sys.executable
    rows = {
        "python -c pass": [py, "-c", "pass"],
        "import torch": [py, "-c", "import torch"],
        "newsimg search": [py, "-c", cli],
        "newsimg search, Lightning imported first": [py, "-c", f"import pytorch_lightning; {cli}"],
    }
    times = {name: wall(argv, args.repeat) for name, argv in rows.items()}
    base = times["newsimg search"]
    print(f"{'start-up (median of ' + str(args.repeat) + ')':<44}{'s':>8}{'x search':>10}")
    for name, t in times.items():
        print(f"{name:<44}{t:>8.2f}{t / base:>10.2f}")
    print(
        json.dumps(
            {
                "search_s": round(base, 2),
                "torch_import_s": round(times["import torch"], 2),
                "with_lightning_s": round(times["newsimg search, Lightning imported first"], 2),
                "interpreter_s": round(times["python -c pass"], 2),
            }
        )
    )


if __name__ == "__main__":
    main()
