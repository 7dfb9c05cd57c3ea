"""Retrieval: each article's text -> the top-k images of the index, for one approach."""

from __future__ import annotations

import logging
import zlib
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from newsimg.errors import InputError
from newsimg.params import RetrieveParams, SearchParams
from newsimg.searcher import Searcher
from newsimg.store.commit import atomic_path
from newsimg.store.names import NEWSIMAGES

log = logging.getLogger(__name__)


def negative_rows(article_id: str, n_pool: int, exclude: set[int], n: int, seed: int) -> np.ndarray:
    """``n`` distinct random pool rows for one article, never one of ``exclude``.

    Seeded by (seed, article id) alone, so every approach scores the same negatives.
    """
    rng = np.random.default_rng([seed, zlib.crc32(article_id.encode())])
    n = min(n, n_pool - len(exclude))
    picked: list[int] = []
    seen = set(exclude)
    while len(picked) < n:
        for row in rng.integers(0, n_pool, size=2 * n).tolist():
            if row not in seen:
                seen.add(row)
                picked.append(row)
                if len(picked) == n:
                    break
    return np.asarray(picked, dtype=np.int64)


def per_article(
    params: RetrieveParams,
    article_ids: list[str],
    image_ids: list[str],
    queries: np.ndarray,
    categories: list[str | None],
    searcher: Searcher,
) -> pa.Table:
    """One row per article: the predicted category, the cosine similarity of its original image
    and of ``params.negatives`` seeded random pool images (never an original of any article).

    Columns: article_id, category (null without a LAM), original_score (null when the original
    is not in the pool), negative_keys, negative_scores.
    """
    # vectorised over the pool: a real pool holds ~100M keys, too many for Python lists
    keys = searcher.keys
    orig_rows = np.flatnonzero(np.asarray(pc.equal(keys["source"], NEWSIMAGES)))
    originals = dict(zip(keys["key"].take(orig_rows).to_pylist(), orig_rows.tolist(), strict=True))
    exclude = set(orig_rows.tolist())
    n_pool = keys.num_rows
    orig_scores: list[float | None] = []
    neg_keys: list[list[str]] = []
    neg_scores: list[list[float]] = []
    for q, article, image in zip(queries, article_ids, image_ids, strict=True):
        row = originals.get(image)
        orig_scores.append(None if row is None else float(searcher.vectors(np.array(row)) @ q))
        rows = negative_rows(article, n_pool, exclude, params.negatives, params.seed)
        neg_keys.append(keys["key"].take(rows).to_pylist())
        neg_scores.append((searcher.vectors(rows) @ q).astype(np.float32).tolist())
    return pa.table(
        {
            "article_id": pa.array(article_ids, pa.string()),
            "category": pa.array(categories, pa.string()),
            "original_score": pa.array(orig_scores, pa.float32()),
            "negative_keys": pa.array(neg_keys, pa.list_(pa.string())),
            "negative_scores": pa.array(neg_scores, pa.list_(pa.float32())),
        }
    )


def run(
    params: RetrieveParams,
    *,
    search: SearchParams,
    articles: Path,
    text: str,
    model: Path,
    encoder: Path,
    index: Path,
    out: Path,
    per_article_out: Path | None = None,
) -> pa.Table:
    """Top ``params.k`` images per article by the ``text`` column of ``articles``.

    ``encoder`` is the text side: the base ``model`` folder itself, or a LAM folder (anything
    else is an error naming it). Writes a long table (article_id, rank, key, source, score),
    rank 1 first, and, when ``per_article_out`` is given, the per-article table of
    :func:`per_article`.
    """
    table = pq.read_table(articles)
    if text not in table.column_names:
        raise InputError(f"{articles} has no text column {text!r}")
    texts = table[text].to_pylist()
    lam = None if Path(encoder).resolve() == Path(model).resolve() else Path(encoder)
    searcher = Searcher(model=model, index=index, lam=lam, settings=search)
    queries, categories = searcher.encode_texts_with_categories(
        texts, lam=lam is not None, batch_size=params.batch_size
    )
    k = min(params.k, searcher.ntotal)
    scores, rows = searcher.search(queries, k)
    n = len(texts)
    flat = rows.reshape(-1)
    article_ids = table["article_id"].to_pylist()
    result = pa.table(
        {
            "article_id": np.repeat(np.asarray(article_ids, dtype=object), k),
            "rank": np.tile(np.arange(1, k + 1, dtype=np.int32), n),
            "key": searcher.keys["key"].take(flat),
            "source": searcher.keys["source"].take(flat),
            "score": scores.reshape(-1).astype(np.float32),
        }
    )
    with atomic_path(out) as tmp:
        pq.write_table(result, tmp)
    if per_article_out is not None:
        extra = per_article(
            params,
            article_ids,
            table["image_id"].to_pylist(),
            queries,
            categories,
            searcher,
        )
        with atomic_path(per_article_out) as tmp:
            pq.write_table(extra, tmp)
    log.info("retrieved top %d for %d articles by %r", k, n, text)
    return result
