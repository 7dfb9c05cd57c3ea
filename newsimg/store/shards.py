"""The image shard format: Parquet files of resized JPEGs, written atomically, read in streams.

A shard directory holds, for each source (``yfcc``, ``newsimages``) and shard index::

    {source}-{index:05d}.parquet           one row per stored image (see SCHEMA)
    {source}-{index:05d}_stats.json        counts by status, bytes stored, durations
    {source}-{index:05d}_failures.parquet  one row per image that could not be stored

Each file is written under a hidden temporary name in the same directory and moved into place
with ``os.replace``; the image parquet is moved LAST, so its presence means the shard is complete.
Everything here reads only complete shards: a killed run leaves at most temporary files (ignored,
and removed by :func:`remove_temp_files`) and side files of an unfinished shard (ignored).
Temporary names, fsync and the renames are :mod:`newsimg.store.commit`'s, as for every artifact.
"""

from __future__ import annotations

import hashlib
import json
import re
import time
from collections import Counter
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from newsimg.store import commit

SCHEMA = pa.schema(
    [
        pa.field("key", pa.string(), nullable=False),  # YFCC hash or NewsImages image_id
        pa.field("source", pa.string(), nullable=False),  # YFCC or NEWSIMAGES (store.names)
        pa.field("photo_id", pa.int64()),  # YFCC photo id; null for newsimages / hash-only lists
        pa.field("jpeg", pa.binary(), nullable=False),  # the stored RGB JPEG
        pa.field("width", pa.int32(), nullable=False),  # original size, before resizing
        pa.field("height", pa.int32(), nullable=False),
        pa.field("sha256", pa.string(), nullable=False),  # hex digest of `jpeg`
    ]
)
FAILURE_SCHEMA = pa.schema(
    [
        pa.field("key", pa.string(), nullable=False),
        pa.field("source", pa.string(), nullable=False),
        pa.field("reason", pa.string(), nullable=False),
    ]
)
ROW_GROUP_SIZE = 1_000  # small enough to stream a 10k-image shard, big enough to stay efficient
METADATA_PREFIX = "newsimg."  # key prefix of our entries in the parquet footer

_SHARD = re.compile(r"^(?P<source>[A-Za-z0-9_]+)-(?P<index>\d{5,})\.parquet$")


@dataclass(frozen=True)
class ImageRow:
    """One stored image; ``sha256`` is computed by :func:`write_shard` from ``jpeg``."""

    key: str
    source: str
    photo_id: int | None
    jpeg: bytes
    width: int
    height: int


@dataclass(frozen=True)
class Failure:
    """One image that could not be stored, with a short machine-readable reason."""

    key: str
    source: str
    reason: str  # "not_found", "truncated", ... or "error: <detail>"


def shard_name(source: str, index: int) -> str:
    """``{source}-{index:05d}``: the stem shared by a shard's three files."""
    return f"{source}-{index:05d}"


def shard_path(directory: Path, source: str, index: int) -> Path:
    """Path of the image parquet of shard ``index`` of ``source`` (it may not exist yet)."""
    return Path(directory) / f"{shard_name(source, index)}.parquet"


def stats_path(shard: Path) -> Path:
    return shard.with_name(f"{shard.stem}_stats.json")


def failures_path(shard: Path) -> Path:
    return shard.with_name(f"{shard.stem}_failures.parquet")


def status_of(reason: str) -> str:
    """The status a failure counts under in stats: the reason, with ``error: ...`` as ``error``."""
    return reason.split(":", 1)[0]


def write_shard(
    directory: Path,
    source: str,
    index: int,
    rows: Sequence[ImageRow],
    failures: Sequence[Failure],
    *,
    durations: Mapping[str, float] | None = None,
    metadata: Mapping[str, str] | None = None,
) -> dict[str, Any]:
    """Write shard ``index`` of ``source`` into ``directory`` atomically and return its stats.

    ``rows`` are stored in the given order, in row groups of :data:`ROW_GROUP_SIZE`; ``sha256`` is
    computed here from each row's ``jpeg``. ``failures`` go to the ``_failures.parquet`` file.
    ``durations`` (``read_s``, ``decode_s``, ...) are copied into the stats, ``write_s`` is
    measured here. ``metadata`` (string pairs) is stored in the parquet footer (prefixed with
    ``newsimg.``, read back by :func:`read_metadata`) and in the stats.

    The stats, then the failures, then the image parquet are moved into place with ``os.replace``;
    a shard whose image parquet exists is complete. Returns the stats dict written to
    ``_stats.json``: ``shard``, ``source``, ``index``, ``attempted``, ``ok``, ``failed``,
    ``status`` (counts: ``ok`` and one entry per failure status), ``bytes`` (JPEG bytes stored),
    ``durations`` (seconds), ``metadata``.
    """
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    final = shard_path(directory, source, index)
    start = time.perf_counter()
    images = _image_table(rows, metadata or {})
    tmp_images = commit.temp_name(final)
    _write_parquet(images, tmp_images)
    tmp_failures = commit.temp_name(failures_path(final))
    _write_parquet(_failure_table(failures), tmp_failures)
    status = Counter({"ok": len(rows)})
    status.update(status_of(f.reason) for f in failures)
    stats: dict[str, Any] = {
        "shard": final.stem,
        "source": source,
        "index": index,
        "attempted": len(rows) + len(failures),
        "ok": len(rows),
        "failed": len(failures),
        "status": dict(sorted(status.items())),
        "bytes": sum(len(r.jpeg) for r in rows),
        "durations": {**(durations or {}), "write_s": time.perf_counter() - start},
        "metadata": dict(metadata or {}),
    }
    tmp_stats = commit.temp_name(stats_path(final))
    tmp_stats.write_bytes(json.dumps(stats, indent=1).encode())
    # The image parquet goes last: its presence is what marks the shard complete.
    commit.replace(tmp_stats, stats_path(final))
    commit.replace(tmp_failures, failures_path(final))
    commit.replace(tmp_images, final)
    return stats


def list_shards(directory: Path, source: str | None = None) -> list[Path]:
    """Complete shards (their image parquet) in ``directory``, sorted by source then index.

    Temporary files and side files (``_failures.parquet``) are never listed. ``source`` keeps
    only that source's shards. A missing directory has no shards.
    """
    directory = Path(directory)
    if not directory.is_dir():
        return []
    found = []
    for path in directory.iterdir():
        m = _SHARD.match(path.name)
        if m and (source is None or m["source"] == source):
            found.append((m["source"], int(m["index"]), path))
    return [path for _, _, path in sorted(found)]


def is_complete(directory: Path, source: str, index: int) -> bool:
    """Whether shard ``index`` of ``source`` has been committed."""
    return shard_path(directory, source, index).is_file()


def read_metadata(path: Path) -> dict[str, str]:
    """The ``metadata`` a shard was written with (read from the parquet footer only)."""
    raw = pq.read_schema(path).metadata or {}
    n = len(METADATA_PREFIX)
    return {
        k.decode()[n:]: v.decode() for k, v in raw.items() if k.decode().startswith(METADATA_PREFIX)
    }


def read_keys(path: Path) -> list[str]:
    """The keys of a shard's images, in stored order (reads the ``key`` column only)."""
    return pq.read_table(path, columns=["key"]).column("key").to_pylist()


def row_group_starts(path: Path) -> list[int]:
    """First row of each row group, plus the row count at the end (from the footer only)."""
    meta = pq.read_metadata(path)
    starts = [0]
    for g in range(meta.num_row_groups):
        starts.append(starts[-1] + meta.row_group(g).num_rows)
    return starts


def read_images(directory: Path, keys: Iterable[str]) -> dict[str, bytes]:
    """key -> stored JPEG bytes for the keys asked for, from every complete shard.

    Reads each shard's key column, then only the row groups that hold a wanted key.
    """
    wanted = set(keys)
    found: dict[str, bytes] = {}
    for path in list_shards(directory):
        if len(found) == len(wanted):
            break
        shard_keys = read_keys(path)
        starts = row_group_starts(path)
        groups = [
            g
            for g in range(len(starts) - 1)
            if any(k in wanted and k not in found for k in shard_keys[starts[g] : starts[g + 1]])
        ]
        if not groups:
            continue
        table = pq.ParquetFile(path).read_row_groups(groups, columns=["key", "jpeg"])
        for key, jpeg in zip(table["key"].to_pylist(), table["jpeg"].to_pylist(), strict=True):
            if key in wanted:
                found.setdefault(key, jpeg)
    return found


def iter_batches(
    path: Path, batch_size: int, columns: Sequence[str] | None = None
) -> Iterator[pa.RecordBatch]:
    """Stream a shard as record batches of at most ``batch_size`` rows, in stored order.

    Reads row group by row group, so embedding a 10k-image shard never holds all its JPEGs.
    ``columns`` limits what is read (default: every column of :data:`SCHEMA`).
    """
    with pq.ParquetFile(path) as f:
        yield from f.iter_batches(
            batch_size=batch_size, columns=list(columns) if columns is not None else None
        )


def read_failures(directory: Path) -> pa.Table:
    """Failures of every complete shard in ``directory`` (:data:`FAILURE_SCHEMA`), shard order."""
    tables = [pq.read_table(failures_path(p)) for p in list_shards(directory)]
    tables = [t.cast(FAILURE_SCHEMA) for t in tables]
    return pa.concat_tables(tables) if tables else FAILURE_SCHEMA.empty_table()


def read_shard_stats(shard: Path) -> dict[str, Any]:
    """The ``_stats.json`` of one shard."""
    return json.loads(stats_path(shard).read_text())


def read_stats(directory: Path) -> dict[str, Any]:
    """Totals over every complete shard in ``directory``.

    Keys: ``shards``, ``attempted``, ``ok``, ``failed``, ``bytes`` (sums), ``status`` and
    ``durations`` (summed per key), ``by_source`` (the same counts per source).
    """
    total = _empty_totals()
    by_source: dict[str, dict[str, Any]] = {}
    for shard in list_shards(directory):
        stats = read_shard_stats(shard)
        for acc in (total, by_source.setdefault(stats["source"], _empty_totals())):
            _add_stats(acc, stats)
    return {**_plain(total), "by_source": {s: _plain(t) for s, t in sorted(by_source.items())}}


def remove_temp_files(directory: Path, source: str | None = None, index: int | None = None) -> int:
    """Delete temporary files left by a killed writer; returns how many were removed.

    With ``source`` and ``index``, only that shard's temporary files: ranks running side by side
    own disjoint shards, so each cleans only its own and never a file another rank is writing.
    """
    if source is not None and index is not None:
        return commit.remove_temps(directory, shard_name(source, index))
    return commit.remove_temps(directory)


def _image_table(rows: Sequence[ImageRow], metadata: Mapping[str, str]) -> pa.Table:
    columns = {
        "key": [r.key for r in rows],
        "source": [r.source for r in rows],
        "photo_id": [r.photo_id for r in rows],
        "jpeg": [r.jpeg for r in rows],
        "width": [r.width for r in rows],
        "height": [r.height for r in rows],
        "sha256": [hashlib.sha256(r.jpeg).hexdigest() for r in rows],
    }
    footer = {f"{METADATA_PREFIX}{k}": v for k, v in metadata.items()}
    return pa.Table.from_pydict(columns, schema=SCHEMA.with_metadata(footer))


def _failure_table(failures: Sequence[Failure]) -> pa.Table:
    return pa.Table.from_pydict(
        {
            "key": [f.key for f in failures],
            "source": [f.source for f in failures],
            "reason": [f.reason for f in failures],
        },
        schema=FAILURE_SCHEMA,
    )


def _write_parquet(table: pa.Table, path: Path) -> None:
    with open(path, "wb") as f:
        pq.write_table(
            table,
            f,
            row_group_size=ROW_GROUP_SIZE,
            # JPEG bytes do not compress; spend no time trying. The small columns do.
            compression={name: "none" if name == "jpeg" else "zstd" for name in table.schema.names},
            # min/max of JPEG blobs are useless and only bloat the footer.
            write_statistics=[n for n in table.schema.names if n != "jpeg"],
        )


def _empty_totals() -> dict[str, Any]:
    return {
        "shards": 0,
        "attempted": 0,
        "ok": 0,
        "failed": 0,
        "bytes": 0,
        "status": Counter(),
        "durations": Counter(),
    }


def _add_stats(acc: dict[str, Any], stats: Mapping[str, Any]) -> None:
    acc["shards"] += 1
    for key in ("attempted", "ok", "failed", "bytes"):
        acc[key] += stats[key]
    acc["status"].update(stats["status"])
    acc["durations"].update(stats["durations"])


def _plain(acc: Mapping[str, Any]) -> dict[str, Any]:
    return {
        **acc,
        "status": dict(sorted(acc["status"].items())),
        "durations": dict(sorted(acc["durations"].items())),
    }
