"""autofaiss 2.9.3 on one folder of float32 .npy vectors: build, search, report (peers' venv).

    .venv-peers/bin/python bench/peers/autofaiss_run.py EMB_DIR QUERIES.npy OUT_DIR \\
        --memory 1234567B [--k 10]

Builds with ``autofaiss.build_index`` (everything else at autofaiss's defaults: it picks the
index from the memory budget and the search parameters for its default 10 ms query-time bound),
searches all queries in one batch with the parameters it picked (queries/s: the fastest of
three), writes the rows found to OUT_DIR/rows.npy and prints one JSON line. Run by
bench/index.py as a subprocess. AUTOFAISS_VERBOSE=1 shows autofaiss's own log."""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).parent))
import shims

shims.apply()

from autofaiss import build_index  # noqa: E402


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("embeddings", type=Path)
    parser.add_argument("queries", type=Path)
    parser.add_argument("out", type=Path)
    parser.add_argument("--memory", default="16G", help="max_index_memory_usage (default 16G)")
    parser.add_argument("--k", type=int, default=10)
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    path = args.out / "knn.index"
    start = time.perf_counter()
    index, infos = build_index(
        embeddings=str(args.embeddings),
        index_path=str(path),
        index_infos_path=str(args.out / "infos.json"),
        max_index_memory_usage=args.memory,
        verbose=logging.INFO if os.environ.get("AUTOFAISS_VERBOSE") else logging.WARNING,
    )
    build_s = time.perf_counter() - start
    if index is None:
        print(f"autofaiss built no index at max_index_memory_usage {args.memory}", file=sys.stderr)
        return 1
    queries = np.ascontiguousarray(np.load(args.queries), dtype=np.float32)
    index.search(queries[:10], args.k)  # warm up
    best = float("inf")
    for _ in range(3):  # the fastest of three batch searches, as bench/index.py times newsimg
        start = time.perf_counter()
        _, rows = index.search(queries, args.k)
        best = min(best, time.perf_counter() - start)
    qps = len(queries) / best
    np.save(args.out / "rows.npy", rows)
    result = {
        "index_key": infos["index_key"],
        "index_param": infos["index_param"],
        "build_s": build_s,
        "qps": qps,
        "bytes_per_vector": path.stat().st_size / index.ntotal,
        "memory": args.memory,
    }
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
