"""Automatic scores of retrieval results: recall@k and MRR of each article's original image."""

from __future__ import annotations

import csv
import json
import logging
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq

from newsimg import atomic
from newsimg.params import ScoreParams

log = logging.getLogger(__name__)


def original_ranks(results: Path, truth: Mapping[str, str]) -> np.ndarray:
    """Rank (1-based) of each article's original image in its results; 0 when not retrieved.

    ``truth`` maps article_id -> image_id; results hold (article_id, rank, key, source).
    """
    table = pq.read_table(results, columns=["article_id", "rank", "key", "source"]).to_pydict()
    found: dict[str, int] = {}
    for article, rank, key, source in zip(
        table["article_id"], table["rank"], table["key"], table["source"], strict=True
    ):
        if source == "newsimages" and truth.get(article) == key:
            found[article] = min(rank, found.get(article, rank))
    return np.array([found.get(a, 0) for a in truth], dtype=np.int64)


def recall_at(ranks: np.ndarray, k: int) -> float:
    return float(np.mean((ranks > 0) & (ranks <= k)))


def mrr_at(ranks: np.ndarray, k: int) -> float:
    hit = (ranks > 0) & (ranks <= k)
    return float(np.mean(np.where(hit, 1.0 / np.maximum(ranks, 1), 0.0)))


def score(ranks: np.ndarray, params: ScoreParams) -> dict[str, float]:
    out = {f"R@{k}": recall_at(ranks, k) for k in params.ks}
    out[f"MRR@{params.mrr_at}"] = mrr_at(ranks, params.mrr_at)
    return out


def run(
    params: ScoreParams,
    articles: Path,
    results: Sequence[Path],
    index_keys: Path,
    out: Path,
    plots: Path,
) -> dict:
    """Score every results file (named by approach: ``results/headline.parquet``).

    Writes ``out`` (metrics JSON, one object per approach, plus the pool size and the chance
    level of each R@k) and ``plots/recall_at_k.csv`` (k, one recall column per approach).
    """
    table = pq.read_table(articles, columns=["article_id", "image_id"]).to_pydict()
    truth = dict(zip(table["article_id"], table["image_id"], strict=True))
    pool = pq.read_metadata(index_keys).num_rows
    ranks = {path.stem: original_ranks(path, truth) for path in sorted(results)}
    metrics: dict = {name: score(r, params) for name, r in ranks.items()}
    metrics["pool"] = {"images": pool, "articles": len(truth)}
    metrics["chance"] = {f"R@{k}": min(k / pool, 1.0) for k in params.ks}
    atomic.write_text(out, json.dumps(metrics, indent=2) + "\n")
    ks = range(1, max(params.ks) + 1)
    rows = [[k, *(round(recall_at(r, k), 6) for r in ranks.values())] for k in ks]
    with atomic.atomic_path(plots / "recall_at_k.csv") as tmp, open(tmp, "w", newline="") as f:
        csv.writer(f).writerows([["k", *ranks], *rows])
    for name, m in metrics.items():
        log.info("%s: %s", name, m)
    return metrics
