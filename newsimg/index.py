"""The image index: FAISS over the pool's embeddings, with the keys in the same order."""

from __future__ import annotations

import logging
from pathlib import Path

import faiss
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from newsimg.atomic import atomic_path
from newsimg.embed import done_units
from newsimg.errors import InputError
from newsimg.params import IndexParams

log = logging.getLogger(__name__)


def build(params: IndexParams, embeddings: Path, out: Path) -> faiss.Index:
    """Exact inner-product index over every unit in ``embeddings``, added unit by unit.

    Embeddings are L2-normalised, so inner product is cosine similarity.
    """
    names = sorted(done_units(embeddings))
    if not names:
        raise InputError(f"no embeddings in {embeddings}")
    index, keys = None, []
    for name in names:
        vectors = np.load(embeddings / f"{name}.npy", mmap_mode="r")
        if index is None:
            index = faiss.IndexFlatIP(vectors.shape[1])
        index.add(np.ascontiguousarray(vectors, dtype=np.float32))
        keys.append(pq.read_table(embeddings / f"{name}.keys.parquet"))
    with atomic_path(out) as tmp:
        tmp.mkdir()
        faiss.write_index(index, str(tmp / "index.faiss"))
        pq.write_table(pa.concat_tables(keys), tmp / "keys.parquet")
    log.info("index: %d vectors of %d dimensions (%s)", index.ntotal, index.d, params.kind)
    return index


def load(folder: Path) -> tuple[faiss.Index, pa.Table]:
    return faiss.read_index(str(folder / "index.faiss")), pq.read_table(folder / "keys.parquet")
