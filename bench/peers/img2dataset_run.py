"""img2dataset 1.47 over one URL list: download, resize, store; time and CPU (peers' venv).

    .venv-peers/bin/python bench/peers/img2dataset_run.py URLS.txt OUT_DIR \\
        --processes 2 --threads 64 --per-shard 3000 [--size 384] [--quality 90]

Stores what newsimg's fetch stores: the longer side resized to ``--size`` (``keep_ratio_largest``,
INTER_AREA when shrinking), JPEG at ``--quality``, in Parquet shards; everything else at
img2dataset's defaults. The clock and the CPU count start after img2dataset is imported (as
bench/fetch.py starts newsimg's process before its clock) and include img2dataset's worker
processes. Prints one JSON line: seconds, CPU seconds, images stored. Run by bench/fetch.py.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

from img2dataset import download


def _cpu() -> float:
    t = os.times()  # children: img2dataset's pool processes, joined before download returns
    return t.user + t.system + t.children_user + t.children_system


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("urls", type=Path)
    parser.add_argument("out", type=Path)
    parser.add_argument("--processes", type=int, default=1)
    parser.add_argument("--threads", type=int, default=256)
    parser.add_argument("--per-shard", type=int, default=10000)
    parser.add_argument("--size", type=int, default=384)
    parser.add_argument("--quality", type=int, default=90)
    args = parser.parse_args()
    cpu, start = _cpu(), time.perf_counter()
    download(
        url_list=str(args.urls),
        output_folder=str(args.out),
        input_format="txt",
        output_format="parquet",
        processes_count=args.processes,
        thread_count=args.threads,
        number_sample_per_shard=args.per_shard,
        image_size=args.size,
        resize_mode="keep_ratio_largest",
        encode_quality=args.quality,
        encode_format="jpg",
        timeout=30,
        retries=3,
        enable_wandb=False,
    )
    seconds, cpu = time.perf_counter() - start, _cpu() - cpu
    ok = sum(json.loads(p.read_text())["successes"] for p in args.out.glob("*_stats.json"))
    print(json.dumps({"seconds": seconds, "cpu_s": cpu, "ok": ok}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
