"""Retrieval: each article's text -> the top-k images of the index, for one approach."""

from __future__ import annotations

import logging
import time
import zlib
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import torch

from newsimg import index as image_index
from newsimg.atomic import atomic_path
from newsimg.clip import Clip, l2_normalize, resolve_device
from newsimg.errors import InputError
from newsimg.lam import is_lam, load_lam
from newsimg.params import RetrieveParams

log = logging.getLogger(__name__)

ORIGINAL_SOURCE = "newsimages"


class TextEncoder:
    """Texts -> L2-normalised query vectors: the base model, or the base model with a LAM."""

    def __init__(self, model: Path, encoder: Path | None = None) -> None:
        self.clip = Clip(model, device=resolve_device())
        self.lam = load_lam(encoder) if encoder is not None and is_lam(encoder) else None

    def encode(self, texts: list[str], batch_size: int = 64) -> np.ndarray:
        return self.encode_with_categories(texts, batch_size)[0]

    def encode_with_categories(
        self, texts: list[str], batch_size: int = 64
    ) -> tuple[np.ndarray, list[str | None]]:
        """Query vectors and, with a LAM, its category head's predicted section per text."""
        hidden = self.clip.text_hidden(texts, batch_size)
        if self.lam is None:
            return l2_normalize(self.clip.project_text(hidden)), [None] * len(texts)
        with torch.no_grad():
            h, logits = self.lam(torch.from_numpy(hidden))
        classes = self.lam.config.classes
        return l2_normalize(h.numpy()), [classes[i] for i in logits.argmax(dim=-1).tolist()]


def search(
    texts: list[str], model: Path, index: Path, encoder: Path | None = None, k: int = 10
) -> list[list[tuple[str, str, float]]]:
    """Rank the index's images for any texts: per text, ``k`` (key, source, score), best first.

    Logs the time to encode the texts and to search them (the interactive latency).
    """
    images = image_index.load(index)
    t0 = time.perf_counter()
    queries = TextEncoder(model, encoder).encode(texts)
    t1 = time.perf_counter()
    scores, rows = images.search(queries, k)
    t2 = time.perf_counter()
    log.info(
        "%d text(s): encoded in %.0f ms, searched in %.0f ms (%s index of %d images)",
        len(texts),
        1000 * (t1 - t0),
        1000 * (t2 - t1),
        images.plan.kind,
        images.ntotal,
    )
    hits = []
    for row, score in zip(rows, scores, strict=True):
        found = images.keys.take(row).to_pydict()
        hits.append(list(zip(found["key"], found["source"], score.tolist(), strict=True)))
    return hits


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
    images: image_index.Index,
) -> pa.Table:
    """One row per article: the predicted category, the cosine similarity of its original image
    and of ``params.negatives`` seeded random pool images (never an original of any article).

    Columns: article_id, category (null without a LAM), original_score (null when the original
    is not in the pool), negative_keys, negative_scores.
    """
    # vectorised over the pool: a real pool holds ~100M keys, too many for Python lists
    keys = images.keys
    orig_rows = np.flatnonzero(np.asarray(pc.equal(keys["source"], ORIGINAL_SOURCE)))
    originals = dict(zip(keys["key"].take(orig_rows).to_pylist(), orig_rows.tolist(), strict=True))
    exclude = set(orig_rows.tolist())
    n_pool = keys.num_rows
    orig_scores: list[float | None] = []
    neg_keys: list[list[str]] = []
    neg_scores: list[list[float]] = []
    for q, article, image in zip(queries, article_ids, image_ids, strict=True):
        row = originals.get(image)
        orig_scores.append(None if row is None else float(images.vectors.take(np.array(row)) @ q))
        rows = negative_rows(article, n_pool, exclude, params.negatives, params.seed)
        neg_keys.append(keys["key"].take(rows).to_pylist())
        neg_scores.append((images.vectors.take(rows) @ q).astype(np.float32).tolist())
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
    articles: Path,
    text: str,
    model: Path,
    encoder: Path,
    index: Path,
    out: Path,
    per_article_out: Path | None = None,
) -> pa.Table:
    """Top ``params.k`` images per article by the ``text`` column of ``articles``.

    Writes a long table (article_id, rank, key, source, score), rank 1 first, and, when
    ``per_article_out`` is given, the per-article table of :func:`per_article`.
    """
    table = pq.read_table(articles)
    if text not in table.column_names:
        raise InputError(f"{articles} has no text column {text!r}")
    texts = table[text].to_pylist()
    queries, categories = TextEncoder(model, encoder).encode_with_categories(
        texts, params.batch_size
    )
    images = image_index.load(index)
    k = min(params.k, images.ntotal)
    scores, rows = images.search(queries, k)
    n = len(texts)
    flat = rows.reshape(-1)
    article_ids = table["article_id"].to_pylist()
    result = pa.table(
        {
            "article_id": np.repeat(np.asarray(article_ids, dtype=object), k),
            "rank": np.tile(np.arange(1, k + 1, dtype=np.int32), n),
            "key": images.keys["key"].take(flat),
            "source": images.keys["source"].take(flat),
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
            images,
        )
        with atomic_path(per_article_out) as tmp:
            pq.write_table(extra, tmp)
    log.info("retrieved top %d for %d articles by %r", k, n, text)
    return result
