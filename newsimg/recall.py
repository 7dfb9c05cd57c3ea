"""The index's recall against exact search (metrics/index.json), measured through the searcher.

Recall@k here is ann-benchmarks' *ann recall*: the share of the found results scoring at least
the k-th exact score of their query. (``metrics.recall_at`` is the other, retrieval meaning: the
share of articles whose original image ranks within k.)
"""

from __future__ import annotations

import json
import logging
import time
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow.parquet as pq

from newsimg.params import RecallParams, SearchParams
from newsimg.searcher import Searcher
from newsimg.store.commit import write_text

log = logging.getLogger(__name__)

TIE_TOLERANCE = 1e-5  # scores closer than this are ties (float32 sums in another order differ)


def ann_recall(found_scores: np.ndarray, truth_scores: np.ndarray) -> float:
    """Recall@k from exact scores: the share of found results (nq, k) scoring at least the k-th
    exact score of their query (truth (nq, k), best first), as ann-benchmarks counts.

    Images tied with the k-th are equally right answers: counting rows instead would charge an
    exact search with float rounding's choice among near-duplicates.
    """
    return float(np.mean(found_scores >= truth_scores[:, -1:] - TIE_TOLERANCE))


def exact_scores(searcher: Searcher, queries: np.ndarray, rows: np.ndarray) -> np.ndarray:
    """Exact dot products of each query (nq, d) with its found rows (nq, k)."""
    return np.einsum("qd,qkd->qk", queries, searcher.vectors(rows))


def measure(
    searcher: Searcher, text_queries: np.ndarray, image_queries: np.ndarray, k: int
) -> dict[str, Any]:
    """Recall@k of the index against exact search, for text and for image queries."""
    images = searcher.index
    out: dict[str, Any] = {"kind": images.plan.kind, "reason": images.plan.reason}
    out["n"] = images.ntotal
    out["bytes_per_vector"] = images.bytes_per_vector
    for name, queries in (("text", text_queries), ("image", image_queries)):
        t0 = time.perf_counter()
        _, found = searcher.search(queries, k)
        elapsed = time.perf_counter() - t0
        truth, _ = images.search_exact(queries, k)
        recall = ann_recall(exact_scores(searcher, queries, found), truth)
        out[f"recall@{k}_{name}"] = round(recall, 4)
        out[f"queries_{name}"] = len(queries)
        log.info(
            "%s queries: recall@%d %.4f, %.0f queries/s",
            name,
            k,
            out[f"recall@{k}_{name}"],
            len(queries) / max(elapsed, 1e-9),
        )
    return out


def run(
    params: RecallParams,
    *,
    search: SearchParams,
    index: Path,
    articles: Path,
    model: Path,
    out: Path,
) -> dict[str, Any]:
    """The recall stage: recall@k against exact search on a seeded sample of the articles'
    ``params.text`` (encoded by the base model) and of the pool's own images."""
    searcher = Searcher(model=model, index=index, settings=search)
    table = pq.read_table(articles, columns=[params.text])
    rng = np.random.default_rng(params.seed)
    picked = rng.choice(table.num_rows, min(params.queries, table.num_rows), replace=False)
    texts = table[params.text].take(np.sort(picked)).to_pylist()
    text_queries = searcher.encode_texts(texts)
    n = searcher.ntotal
    rows = np.sort(rng.choice(n, min(params.queries, n), replace=False))
    result = measure(searcher, text_queries, searcher.vectors(rows), params.k)
    write_text(out, json.dumps(result, indent=2) + "\n")
    return result
