"""The index folder's format (built by :mod:`newsimg.index`, searched by :mod:`newsimg.searcher`).

- ``index.json``: what building decided, and nothing search-time: ``plan`` (kind, reason, n,
  dim, nlist, pq_bytes, in_memory), ``trained_on`` (the IVF-PQ training sample: size and seed;
  null for exact) and ``embeddings`` (the folder of units it searches and re-ranks from);
- ``keys.parquet``: (key, source); row i is vector i;
- ``index.faiss``: the FAISS IVF-PQ index, for kind ``ivfpq`` only.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pyarrow as pa
import pyarrow.parquet as pq

from newsimg.errors import InputError
from newsimg.store.commit import atomic_path

if TYPE_CHECKING:
    import faiss

MANIFEST, KEYS, FAISS_FILE = "index.json", "keys.parquet", "index.faiss"


def write_index(
    out: Path, *, manifest: dict[str, Any], keys: pa.Table, ann: faiss.Index | None = None
) -> None:
    """Commit an index folder whole: the FAISS index (if any), the keys, then the manifest."""
    with atomic_path(out) as tmp:
        tmp.mkdir()
        if ann is not None:
            import faiss

            faiss.write_index(ann, str(tmp / FAISS_FILE))
        pq.write_table(keys, tmp / KEYS)
        (tmp / MANIFEST).write_text(json.dumps(manifest, indent=2))


def read_manifest(folder: Path) -> dict[str, Any]:
    path = Path(folder) / MANIFEST
    if not path.is_file():
        raise InputError(f"{folder} is not an index folder (no {MANIFEST})")
    try:
        manifest = json.loads(path.read_text())
    except json.JSONDecodeError as err:
        raise InputError(f"{path} is not valid JSON: {err}") from None
    if not isinstance(manifest, dict) or "plan" not in manifest or "embeddings" not in manifest:
        raise InputError(f"{path}: no plan or embeddings folder recorded; rebuild the index")
    return manifest


def read_keys(folder: Path) -> pa.Table:
    return pq.read_table(Path(folder) / KEYS)


def read_ann(folder: Path) -> faiss.Index:
    import faiss

    path = Path(folder) / FAISS_FILE
    if not path.is_file():
        raise InputError(f"{path} is missing: the index plan is ivfpq")
    return faiss.read_index(str(path))
