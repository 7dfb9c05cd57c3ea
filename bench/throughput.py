"""Throughput of the pipeline's hot loops on the bundled sample, each against a baseline.

    python bench/throughput.py [--data data] [--repeat 3]

- fetch: fetch.run (read, validate, resize, write shards) vs reading the same objects' bytes
- embed: decode + preprocess + tiny CLIP in batches vs decode + preprocess alone
- search: FAISS exact top-100 vs numpy matmul + argpartition top-100
- leads: leads.run on the saved pages vs reading the pages

Prints a table (items/s, ratio to the baseline) and ends with one JSON line of the key figures.
Needs the sample in --data (`dvc pull data.dvc`).
"""

from __future__ import annotations

import argparse
import io
import json
import logging
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import faiss
import numpy as np
import torch
from PIL import Image

from newsimg import clip, fetch, leads
from newsimg.params import FetchParams, LeadsParams
from newsimg.sources import read_newsimages_csv, read_yfcc_manifest


def best_of(repeat: int, fn: Callable[[], int]) -> float:
    """Items/s of the fastest of ``repeat`` runs of ``fn``, which returns its item count."""
    best = 0.0
    for _ in range(repeat):
        start = time.perf_counter()
        n = fn()
        best = max(best, n / (time.perf_counter() - start))
    return best


def bench_fetch(data: Path, repeat: int) -> tuple[float, float]:
    rows = list(read_yfcc_manifest(data / "yfcc/manifest.txt"))
    bucket = data / "yfcc/bucket"

    def baseline() -> int:
        for r in rows:
            path = bucket / r.key
            if path.exists():
                path.read_bytes()
        return len(rows)

    def measured() -> int:
        with tempfile.TemporaryDirectory() as tmp:
            empty = Path(tmp) / "none"
            empty.mkdir()
            # One process: spawned workers would re-import this script, torch and all.
            params = FetchParams(source=str(bucket), shard_size=500, processes=1, workers=8)
            fetch.run(
                params,
                manifest=data / "yfcc/manifest.txt",
                newsimages=empty,
                out=Path(tmp) / "shards",
            )
        return len(rows)

    return best_of(repeat, measured), best_of(repeat, baseline)


def bench_embed(data: Path, repeat: int, n: int = 512) -> tuple[float, float]:
    files = sorted((data / "n24news/imgs").glob("*.jpg"))[:n]
    blobs = [f.read_bytes() for f in files]
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp) / "tiny"
        clip.save_model(clip.make_tiny(0), folder)
        model = clip.Clip(folder)
    size = model.image_size

    def pixels() -> np.ndarray:
        return np.stack([clip.preprocess(Image.open(io.BytesIO(b)), size) for b in blobs])

    def measured() -> int:
        x = torch.from_numpy(pixels())
        for i in range(0, len(x), 128):
            model.image_features(x[i : i + 128])
        return len(blobs)

    def baseline() -> int:
        pixels()
        return len(blobs)

    return best_of(repeat, measured), best_of(repeat, baseline)


def bench_search(repeat: int, pool: int = 200_000, dim: int = 256, queries: int = 256):
    rng = np.random.default_rng(0)
    x = rng.standard_normal((pool, dim), dtype=np.float32)
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    q = x[rng.choice(pool, queries, replace=False)]
    index = faiss.IndexFlatIP(dim)
    index.add(x)

    def measured() -> int:
        index.search(q, 100)
        return queries

    def baseline() -> int:
        s = q @ x.T
        top = np.argpartition(-s, 100, axis=1)[:, :100]
        np.take_along_axis(s, top, axis=1).argsort(axis=1)
        return queries

    return best_of(repeat, measured), best_of(repeat, baseline)


def bench_leads(data: Path, repeat: int) -> tuple[float, float]:
    pages = sorted((data / "html").glob("*.html"))
    n = len(read_newsimages_csv(data / "articles.csv"))

    def measured() -> int:
        with tempfile.TemporaryDirectory() as tmp:
            leads.run(LeadsParams(), data / "articles.csv", data / "html", Path(tmp) / "a.parquet")
        return n

    def baseline() -> int:
        for p in pages:
            p.read_text()
        return n

    measured()  # warm-up: newspaper's first import is not part of the per-article cost
    return best_of(repeat, measured), best_of(repeat, baseline)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=Path("data"))
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING)
    if not (args.data / "yfcc/manifest.txt").exists():
        print(f"no sample in {args.data}: run `dvc pull data.dvc` first", file=sys.stderr)
        return 2
    rows = {
        "fetch (images/s)": bench_fetch(args.data, args.repeat),
        "embed tiny CLIP (images/s)": bench_embed(args.data, args.repeat),
        "search exact top-100, 200k x 256 (queries/s)": bench_search(args.repeat),
        "leads (articles/s)": bench_leads(args.data, args.repeat),
    }
    width = max(map(len, rows))
    print(f"{'what':<{width}}  {'measured':>10}  {'baseline':>10}  {'ratio':>7}")
    for name, (measured, baseline) in rows.items():
        print(f"{name:<{width}}  {measured:>10.1f}  {baseline:>10.1f}  {measured / baseline:>7.3f}")
    figures = {
        "fetch_images_per_s": round(rows["fetch (images/s)"][0], 1),
        "embed_images_per_s": round(rows["embed tiny CLIP (images/s)"][0], 1),
        "search_queries_per_s": round(rows["search exact top-100, 200k x 256 (queries/s)"][0], 1),
        "leads_articles_per_s": round(rows["leads (articles/s)"][0], 1),
        "cores": torch.get_num_threads(),
    }
    print(json.dumps(figures))
    return 0


if __name__ == "__main__":
    sys.exit(main())
