"""Start-up of ``newsimg search`` on the sample: a fresh process, from exec to the printed hits.

Each row runs a fresh interpreter ``--repeat`` times (the OS file cache warm, as on a second
call) and reports the median wall time and the median CPU time (user + system) of the child:
on a machine shared with other jobs the wall time stretches with the load, while the CPU time
stays close to what an idle machine's wall time would be (start-up is single-threaded). Ratios
are against ``newsimg search`` itself:

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
import os
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

QUERY = "Three red kites fly over a snowy field"


def timed(argv: list[str], repeat: int) -> tuple[float, float]:
    """Median (wall, CPU) seconds of ``repeat`` runs of ``argv`` (each must exit 0)."""
    walls, cpus = [], []
    for _ in range(repeat):
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        t0 = time.perf_counter()
        subprocess.run(argv, check=True, capture_output=True)
        walls.append(time.perf_counter() - t0)
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        cpus.append(after.ru_utime - before.ru_utime + after.ru_stime - before.ru_stime)
    return statistics.median(walls), statistics.median(cpus)


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
    times = {name: timed(argv, args.repeat) for name, argv in rows.items()}
    wall0, cpu0 = times["newsimg search"]
    load = os.getloadavg()[0]
    print(f"start-up, median of {args.repeat}; load average {load:.1f} on {os.cpu_count()} CPUs")
    print(f"{'':<44}{'wall s':>8}{'x search':>10}{'CPU s':>8}{'x search':>10}")
    for name, (w, c) in times.items():
        print(f"{name:<44}{w:>8.2f}{w / wall0:>10.2f}{c:>8.2f}{c / cpu0:>10.2f}")
    lightning = times["newsimg search, Lightning imported first"]
    print(
        json.dumps(
            {
                "search_wall_s": round(wall0, 2),
                "search_cpu_s": round(cpu0, 2),
                "with_lightning_wall_s": round(lightning[0], 2),
                "with_lightning_cpu_s": round(lightning[1], 2),
                "torch_import_cpu_s": round(times["import torch"][1], 2),
                "load_average": round(load, 1),
            }
        )
    )


if __name__ == "__main__":
    main()
