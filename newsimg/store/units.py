"""The embedding-unit format: one folder of units, each ``NAME.npy`` + ``NAME.keys.parquet``.

A *unit* is what embed writes at once (a fetch shard, or a chunk of the N24News images):

- ``NAME.npy``: float16 (n, dim), L2-normalised, memory-mappable, one row per embedded image;
  committed last, so its presence marks the unit done;
- ``NAME.keys.parquet``: (key, source), the same order; its footer's :data:`FOOTER` entry
  records what the unit was made from (input and model fingerprints);
- ``NAME.skipped.parquet``: (key, source, reason) of the images that would not read or decode.

Row i of the pool is the i-th row of the units in name order (:class:`Vectors`).
"""

from __future__ import annotations

import sys
from collections.abc import Iterator, Sequence
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from newsimg.errors import InputError
from newsimg.store.commit import atomic_path, remove_temps

UNIT_FILES = (".npy", ".keys.parquet", ".skipped.parquet")  # the .npy first: it marks done
FOOTER = b"newsimg.made_from"  # keys parquet footer: the input's and the model's fingerprints
SUMMARY = "summary.json"


def done_units(folder: Path) -> set[str]:
    """Names of the units whose ``.npy`` has been committed."""
    return {p.name.removesuffix(".npy") for p in Path(folder).glob("*.npy")}


def made_from_of(folder: Path, name: str) -> bytes | None:
    """The footer unit ``name`` was committed with, or None when it is not done."""
    keys = folder / f"{name}.keys.parquet"
    if not ((folder / f"{name}.npy").is_file() and keys.is_file()):
        return None
    return (pq.read_schema(keys).metadata or {}).get(FOOTER)


def write_unit(
    folder: Path, name: str, keys: pa.Table, emb: np.ndarray, reasons: Sequence[str], footer: bytes
) -> int:
    """Commit one unit: drop its old ``.npy`` (the unit is not done until the new one lands),
    write its skipped images (or drop an old list), its keys with ``footer``, then the ``.npy``.
    Each file is atomic. ``keys``/``emb``/``reasons``: every input image, "" = embedded.
    Returns how many were skipped."""
    (folder / f"{name}.npy").unlink(missing_ok=True)
    ok = np.array([not r for r in reasons], dtype=bool)
    skipped_path = folder / f"{name}.skipped.parquet"
    n_skipped = int((~ok).sum())
    if n_skipped == 0:
        skipped_path.unlink(missing_ok=True)
    else:
        skipped = keys.append_column("reason", pa.array(list(reasons))).filter(pa.array(~ok))
        with atomic_path(skipped_path) as tmp:
            pq.write_table(skipped, tmp)
    kept = keys.filter(pa.array(ok)).replace_schema_metadata({FOOTER: footer})
    with atomic_path(folder / f"{name}.keys.parquet") as tmp:
        pq.write_table(kept, tmp)
    with atomic_path(folder / f"{name}.npy") as tmp, open(tmp, "wb") as f:
        np.save(f, emb[ok])  # a file object: np.save would add ".npy" to a bare name
    return n_skipped


def remove_orphans(folder: Path, names: set[str]) -> int:
    """Delete the outputs of units no longer in the input; returns how many units."""
    orphans = done_units(folder) - names
    for name in orphans:
        for suffix in UNIT_FILES:
            (folder / f"{name}{suffix}").unlink(missing_ok=True)
    return len(orphans)


def remove_unit_temps(folder: Path, name: str) -> int:
    """Temporaries a killed writer left for unit ``name``."""
    return remove_temps(folder, *(f"{name}{suffix}" for suffix in UNIT_FILES))


# elements of a block from which to_float32 imports torch to convert it (64 MB of float32)
TORCH_FROM = 1 << 24


def to_float32(block: np.ndarray) -> np.ndarray:
    """float16 rows as float32, exactly (either way below gives the same bits).

    torch converts on all cores (on 2 cores, 65,536 x 768: torch 102 ms, NumPy 2.4 125 ms; more
    cores widen the gap), so it converts when it is imported already or the block has at least
    ``TORCH_FROM`` elements (the 1.7 s import then pays for itself); NumPy converts the rest, so
    loading a small pool or re-ranking a query's candidates never imports torch.
    """
    if block.size < TORCH_FROM and "torch" not in sys.modules:
        return block.astype(np.float32)
    import torch

    return torch.from_numpy(block if block.flags.writeable else np.array(block)).float().numpy()


class Vectors:
    """The float16 units of an embeddings folder, memory-mapped; row i of the pool is the i-th
    row of the units in name order. Read-only: safe to share between threads."""

    def __init__(self, folder: Path) -> None:
        self.folder = Path(folder)
        self.names = sorted(done_units(self.folder))
        if not self.names:
            raise InputError(f"no embeddings in {self.folder}")
        self.units = [np.load(self.folder / f"{n}.npy", mmap_mode="r") for n in self.names]
        dims = {u.shape[1] for u in self.units}
        if len(dims) != 1:
            raise InputError(f"{self.folder}: units of different dimensions {sorted(dims)}")
        self.dim = dims.pop()
        self.starts = np.cumsum([0] + [len(u) for u in self.units])
        self.n = int(self.starts[-1])

    def keys(self) -> pa.Table:
        """(key, source) of every row."""
        return pa.concat_tables(
            [pq.read_table(self.folder / f"{n}.keys.parquet") for n in self.names]
        )

    def blocks(self, rows: int) -> Iterator[tuple[int, np.ndarray]]:
        """(first row, float16 block of at most ``rows`` rows), unit by unit."""
        for start, unit in zip(self.starts, self.units, strict=False):
            for i in range(0, len(unit), rows):
                yield int(start) + i, unit[i : i + rows]

    def take(self, rows: np.ndarray) -> np.ndarray:
        """Rows (any shape of indices) as float32, read unit by unit in row order."""
        rows = np.asarray(rows)
        flat = rows.reshape(-1)
        order = np.argsort(flat, kind="stable")
        sorted_rows = flat[order]
        out = np.empty((len(flat), self.dim), np.float16)
        bounds = np.searchsorted(sorted_rows, self.starts)
        for u, unit in enumerate(self.units):
            lo, hi = bounds[u], bounds[u + 1]
            if hi > lo:
                out[order[lo:hi]] = unit[sorted_rows[lo:hi] - self.starts[u]]
        return to_float32(out).reshape(*rows.shape, self.dim)


def load_embeddings(folder: Path, mmap: bool = True) -> tuple[np.ndarray, pa.Table]:
    """All units of an embeddings folder, in name order: (float16 (N, dim), keys table)."""
    names = sorted(done_units(folder))
    if not names:
        raise InputError(f"no embeddings in {folder}")
    arrays = [np.load(folder / f"{n}.npy", mmap_mode="r" if mmap else None) for n in names]
    keys = pa.concat_tables(
        [pq.read_table(folder / f"{n}.keys.parquet").replace_schema_metadata() for n in names]
    )
    return (arrays[0] if len(arrays) == 1 else np.concatenate(arrays)), keys
