"""Retrieval: each article's text -> the top-k images of the index, for one approach."""

from __future__ import annotations

import json
import logging
import zlib
from collections import Counter
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from newsimg.errors import InputError
from newsimg.params import RetrieveParams, SearchParams
from newsimg.searcher import Searcher
from newsimg.store import results as result_files
from newsimg.store.names import NEWSIMAGES

log = logging.getLogger(__name__)


def negative_rows(
    article_id: str,
    n_pool: int,
    exclude: set[int],
    n: int,
    seed: int,
    allowed: np.ndarray | None = None,
) -> np.ndarray:
    """``n`` distinct random pool rows for one article, never one of ``exclude`` and, with a
    licence policy, only ``allowed`` rows.

    Seeded by (seed, article id) alone, so every approach scores the same negatives.
    """
    rng = np.random.default_rng([seed, zlib.crc32(article_id.encode())])
    pool = n_pool if allowed is None else int(allowed.sum())
    n = min(n, pool - sum(1 for r in exclude if allowed is None or allowed[r]))
    picked: list[int] = []
    seen = set(exclude)
    while len(picked) < n:
        for row in rng.integers(0, n_pool, size=2 * n).tolist():
            if row not in seen and (allowed is None or allowed[row]):
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
    allowed: np.ndarray | None = None,
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
        rows = negative_rows(article, n_pool, exclude, params.negatives, params.seed, allowed)
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
    metadata: Path | None = None,
) -> pa.Table:
    """Top ``params.k`` images per article by the ``text`` column of ``articles``.

    ``encoder`` is the text side: the base ``model`` folder itself, or a LAM folder (anything
    else is an error naming it). Writes a long table (article_id, rank, key, source, score),
    rank 1 first, and, when ``per_article_out`` is given, the per-article table of
    :func:`per_article`.

    ``params.licences`` (a licence policy, with ``metadata`` the metadata stage's folder): only
    photos under those licences (and the articles' own images) are returned or drawn as
    negatives; each article still gets ``k``. The results' footer records the policy and how
    many IVF-PQ searches had to widen (``newsimg.licences``, ``newsimg.widened``).
    """
    table = pq.read_table(articles)
    if text not in table.column_names:
        raise InputError(f"{articles} has no text column {text!r}")
    texts = table[text].to_pylist()
    lam = None if Path(encoder).resolve() == Path(model).resolve() else Path(encoder)
    searcher = Searcher(model=model, index=index, lam=lam, settings=search, metadata=metadata)
    allowed = searcher.allowed(params.licences)
    queries, categories = searcher.encode_texts_with_categories(
        texts, lam=lam is not None, batch_size=params.batch_size
    )
    stats: Counter[str] = Counter()
    scores, rows = searcher.search(queries, params.k, allowed=allowed, stats=stats)
    k = rows.shape[1]
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
    footer = {
        "newsimg.licences": json.dumps(params.licences),
        "newsimg.widened": str(stats["widened"]),
    }
    result_files.write_results(out, result.replace_schema_metadata(footer))
    if allowed is not None:
        log.info(
            "licence policy %s: %d of %d pool images allowed; %d of %d IVF-PQ searches widened",
            ", ".join(params.licences or []),
            int(allowed.sum()),
            len(allowed),
            stats["widened"],
            stats["queries"],
        )
    if per_article_out is not None:
        extra = per_article(
            params,
            article_ids,
            table["image_id"].to_pylist(),
            queries,
            categories,
            searcher,
            allowed,
        )
        result_files.write_per_article(per_article_out, extra)
    log.info("retrieved top %d for %d articles by %r", k, n, text)
    return result
