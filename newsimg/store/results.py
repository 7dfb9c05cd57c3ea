"""The retrieval outputs' format (written by :mod:`newsimg.retrieve`, read by score and report).

- ``results/{approach}.parquet``: the long table of :data:`RESULTS`, ``k`` rows per article,
  rank 1 first;
- ``per_article/{approach}.parquet``: :data:`PER_ARTICLE`, one row per article: the LAM head's
  predicted category (null without a LAM), the cosine similarity of its original image (null when
  the original is not in the pool) and of seeded random negative pool images.
"""

from __future__ import annotations

from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from newsimg.store.commit import atomic_path

RESULTS = pa.schema(
    [
        ("article_id", pa.string()),
        ("rank", pa.int32()),
        ("key", pa.string()),
        ("source", pa.string()),
        ("score", pa.float32()),
    ]
)
PER_ARTICLE = pa.schema(
    [
        ("article_id", pa.string()),
        ("category", pa.string()),
        ("original_score", pa.float32()),
        ("negative_keys", pa.list_(pa.string())),
        ("negative_scores", pa.list_(pa.float32())),
    ]
)


def _write(out: Path, table: pa.Table, schema: pa.Schema) -> None:
    if table.schema != schema:
        raise ValueError(f"{out.name}: schema\n{table.schema}\nis not\n{schema}")
    with atomic_path(out) as tmp:
        pq.write_table(table, tmp)


def write_results(out: Path, table: pa.Table) -> None:
    _write(out, table, RESULTS)


def write_per_article(out: Path, table: pa.Table) -> None:
    _write(out, table, PER_ARTICLE)
