"""Start-up of ``newsimg search`` on the sample: a fresh process, from exec to the printed hits.

Each row runs a fresh interpreter ``--repeat`` times (the OS file cache warm, as on a second
call) and reports the median wall time and the median CPU time (user + system) of the child:
on a machine shared with other jobs the wall time stretches with the load, while the CPU time
stays close to what an idle machine's wall time would be (start-up is single-threaded). Ratios
are against ``newsimg search`` itself:

- ``python -c pass``: the interpreter alone;
- ``import torch``: what a torch text tower pays before its first line of work;
- ``newsimg search``: parse, load the params, the model folder, the index, encode, search, print;
  on CPU the text goes through the NumPy tower (:mod:`newsimg.numpy_clip`), so neither torch nor
  transformers is imported;
- ``... --lam``: the same through the LAM (NumPy too);
- ``... --text-tower torch``: the same through the torch tower, as before the NumPy one existed;
- ``... with Lightning imported first``: after ``import pytorch_lightning``, which the search
  path used to pull in through the embedding and LAM modules.

The last line printed is one JSON object of the key figures. Needs the sample's artifacts
(``make repro``)::

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
    parser.add_argument("--lam", type=Path, default=Path("artifacts/models/lam"))
    parser.add_argument("--index", type=Path, default=Path("artifacts/index"))
    parser.add_argument("--params", type=Path, default=Path("params.yaml"))
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()

    search = ["search", QUERY, "--model", str(args.model), "--index", str(args.index)]
    search += ["--params", str(args.params), "-k", "5"]

    def cli(argv: list[str], before: str = "") -> list[str]:
        return [sys.executable, "-c", f"{before}from newsimg.cli import main; main({argv!r})"]

    rows = {
        "python -c pass": [sys.executable, "-c", "pass"],
        "import torch": [sys.executable, "-c", "import torch"],
        "newsimg search": cli(search),
        "newsimg search --lam": cli([*search, "--lam", str(args.lam)]),
        "newsimg search --text-tower torch": cli([*search, "--text-tower", "torch"]),
        "newsimg search, Lightning imported first": cli(search, "import pytorch_lightning; "),
    }
    load_before = os.getloadavg()[0]
    times = {name: timed(argv, args.repeat) for name, argv in rows.items()}
    load = os.getloadavg()[0]
    wall0, cpu0 = times["newsimg search"]
    print(
        f"start-up, median of {args.repeat}; load average {load_before:.1f} before, {load:.1f} "
        f"after, on {os.cpu_count()} CPUs"
    )
    print(f"{'':<44}{'wall s':>8}{'x search':>10}{'CPU s':>8}{'x search':>10}")
    for name, (w, c) in times.items():
        print(f"{name:<44}{w:>8.2f}{w / wall0:>10.2f}{c:>8.2f}{c / cpu0:>10.2f}")

    def figures(name: str, key: str) -> dict[str, float]:
        wall, cpu = times[name]
        return {f"{key}_wall_s": round(wall, 2), f"{key}_cpu_s": round(cpu, 2)}

    print(
        json.dumps(
            {
                **figures("newsimg search", "search"),
                **figures("newsimg search --lam", "search_lam"),
                **figures("newsimg search --text-tower torch", "search_torch_tower"),
                **figures("newsimg search, Lightning imported first", "with_lightning"),
                "torch_import_cpu_s": round(times["import torch"][1], 2),
                "load_average": round(load, 1),
                "load_average_before": round(load_before, 1),
                "cpus": os.cpu_count(),
                "repeat": args.repeat,
            }
        )
    )


if __name__ == "__main__":
    main()
