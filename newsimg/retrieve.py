"""Retrieval: each article's text -> the top-k images of the index, for one approach."""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import torch

from newsimg import index as image_index
from newsimg.atomic import atomic_path
from newsimg.clip import Clip, l2_normalize, resolve_device
from newsimg.errors import InputError
from newsimg.lam import is_lam, load_lam
from newsimg.params import RetrieveParams

log = logging.getLogger(__name__)


class TextEncoder:
    """Texts -> L2-normalised query vectors: the base model, or the base model with a LAM."""

    def __init__(self, model: Path, encoder: Path | None = None) -> None:
        self.clip = Clip(model, device=resolve_device())
        self.lam = load_lam(encoder) if encoder is not None and is_lam(encoder) else None

    def encode(self, texts: list[str], batch_size: int = 64) -> np.ndarray:
        hidden = self.clip.text_hidden(texts, batch_size)
        if self.lam is None:
            return l2_normalize(self.clip.project_text(hidden))
        with torch.no_grad():
            h, _ = self.lam(torch.from_numpy(hidden))
        return l2_normalize(h.numpy())


def run(
    params: RetrieveParams,
    articles: Path,
    text: str,
    model: Path,
    encoder: Path,
    index: Path,
    out: Path,
) -> pa.Table:
    """Top ``params.k`` images per article by the ``text`` column of ``articles``.

    Writes a long table (article_id, rank, key, source, score), rank 1 first.
    """
    table = pq.read_table(articles)
    if text not in table.column_names:
        raise InputError(f"{articles} has no text column {text!r}")
    texts = table[text].to_pylist()
    queries = TextEncoder(model, encoder).encode(texts, params.batch_size)
    faiss_index, keys = image_index.load(index)
    k = min(params.k, faiss_index.ntotal)
    scores, rows = faiss_index.search(queries.astype(np.float32), k)
    n = len(texts)
    flat = rows.reshape(-1)
    result = pa.table(
        {
            "article_id": np.repeat(np.asarray(table["article_id"].to_pylist(), dtype=object), k),
            "rank": np.tile(np.arange(1, k + 1, dtype=np.int32), n),
            "key": keys["key"].take(flat),
            "source": keys["source"].take(flat),
            "score": scores.reshape(-1).astype(np.float32),
        }
    )
    with atomic_path(out) as tmp:
        pq.write_table(result, tmp)
    log.info("retrieved top %d for %d articles by %r", k, n, text)
    return result
