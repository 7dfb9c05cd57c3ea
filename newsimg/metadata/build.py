"""The metadata stage: each fetch shard's photos with their licence, credit and description.

The stage runs before fetch, for two reasons: fetch must know which manifest rows are videos
(``fetch.videos``: they are never fetched), and one pass over the metadata (under an hour for
all 100M rows, bench/metadata.py) should not wait on days of downloads. It cuts the manifest
exactly as fetch does (:class:`Layout`: the first ``fetch.limit`` rows, less the videos when
``fetch.skip_videos``, in shards of ``fetch.shard_size``), so file ``yfcc-{i:05d}.parquet`` here
lists the items of fetch's shard ``i``, in its order, and records fetch's own ``items_sha256``
of them: the stored images of a shard are a subsequence of its rows here.

Per shard: one row per photo (:data:`SCHEMA`), ``found`` false and licence ``unknown`` for a
photo the metadata lacks (or for every photo when there is no metadata at all). The footer holds
the shard's manifest rows, its videos and what it was built from; a shard whose footer matches is
not rebuilt, so a killed run resumes after the last complete shard. The metadata is read

- TSV: as ONE stream (every part, in name order), joined to the manifest on the photo id through
  a sorted array of the manifest's photo ids (12 bytes a manifest row, never the metadata's
  size); matched rows are spilled to disk by manifest position in buckets of ``bucket_rows`` and
  read back bucket by bucket in manifest order;
- SQLite: by ascending primary-key batches of ``batch_size`` photo ids, manifest batch by batch.

Outputs besides the shards: the videos (``photo_id<TAB>hash``, fetch's ``fetch.videos``),
``stats.json`` in the folder and the licence shares in ``metrics/licences.json``.
"""

from __future__ import annotations

import hashlib
import json
import logging
import re
import shutil
import time
from collections import Counter
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from itertools import islice
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
from tqdm import tqdm

from newsimg.errors import InputError, TooManyFailuresError
from newsimg.metadata.licences import CC_CODES, UNKNOWN, credit_line
from newsimg.metadata.readers import (
    PhotoMeta,
    SqliteMetadata,
    decode_tsv_line,
    detect_form,
    iter_tsv_lines,
    tsv_parts,
    tsv_photo_id,
)
from newsimg.params import MetadataParams
from newsimg.sources import ManifestRow, read_yfcc_manifest
from newsimg.store.commit import atomic_path, remove_temps, temp_name, write_text

log = logging.getLogger(__name__)

SOURCE = "yfcc"  # the shards' source name, as in fetch
FORMAT_VERSION = "1"
FOOTER_KEY = b"newsimg.metadata"
SCHEMA = pa.schema(
    [
        pa.field("key", pa.string(), nullable=False),  # the YFCC hash: the shards' key
        pa.field("photo_id", pa.int64()),
        pa.field("found", pa.bool_(), nullable=False),  # the metadata has this photo
        pa.field("licence", pa.string(), nullable=False),  # by, by-sa, ... or unknown
        pa.field("licence_version", pa.string()),  # "2.0"
        pa.field("licence_url", pa.string()),  # as given in the metadata
        pa.field("nickname", pa.string()),  # the Flickr user name: who to credit
        pa.field("credit", pa.string(), nullable=False),  # "Photo: NICK via Flickr, CC BY 2.0"
        pa.field("title", pa.string()),
        pa.field("description", pa.string()),
        pa.field("tags", pa.list_(pa.string())),
        pa.field("date_taken", pa.string()),
        pa.field("latitude", pa.float64()),
        pa.field("longitude", pa.float64()),
        pa.field("page_url", pa.string()),
    ]
)
# A matched TSV row on its way back to manifest order: its position, PhotoMeta's fields, credit.
_SPILL = pa.schema(
    [
        pa.field("pos", pa.int64()),
        pa.field("photo_id", pa.int64()),
        pa.field("nickname", pa.string()),
        pa.field("title", pa.string()),
        pa.field("description", pa.string()),
        pa.field("tags", pa.list_(pa.string())),
        pa.field("date_taken", pa.string()),
        pa.field("latitude", pa.float64()),
        pa.field("longitude", pa.float64()),
        pa.field("page_url", pa.string()),
        pa.field("licence_name", pa.string()),
        pa.field("licence_url", pa.string()),
        pa.field("licence", pa.string()),
        pa.field("licence_version", pa.string()),
        pa.field("is_video", pa.bool_()),
        pa.field("credit", pa.string()),
    ]
)
_UNKNOWN_CREDIT = credit_line(None, UNKNOWN, None)
_SHARD = re.compile(rf"^{SOURCE}-(?P<index>\d{{5,}})\.parquet$")
_WITH_VIDEO = SCHEMA.append(pa.field("is_video", pa.bool_(), nullable=False))
_TSV_BATCH = 8192  # lines whose photo ids are matched against the manifest at once
_SPILL_FLUSH = 1000  # rows buffered per bucket before they are written


@dataclass(frozen=True)
class Layout:
    """How fetch cuts the manifest into shards: ``fetch.shard_size``, ``limit``, ``skip_videos``."""

    shard_size: int
    limit: int | None = None
    skip_videos: bool = True


def shard_file(out: Path, index: int) -> Path:
    return Path(out) / f"{SOURCE}-{index:05d}.parquet"


def list_shards(out: Path) -> list[Path]:
    """The complete metadata shards in ``out``, by index."""
    out = Path(out)
    if not out.is_dir():
        return []
    found = [(int(m["index"]), p) for p in out.iterdir() if (m := _SHARD.match(p.name))]
    return [p for _, p in sorted(found)]


def read_footer(path: Path) -> dict[str, Any]:
    """What a metadata shard was built from, and its manifest rows and videos."""
    meta = pq.read_schema(path).metadata or {}
    return json.loads(meta[FOOTER_KEY])


def source_fingerprint(source: Path | None) -> str:
    """Names, sizes and the first and last MiB of the metadata's files: cheap on 65 GB."""
    if source is None:
        return "none"
    digest = hashlib.sha256()
    paths = [source] if detect_form(source) == "sqlite" else tsv_parts(source)
    for path in paths:
        size = path.stat().st_size
        digest.update(f"{path.name}\t{size}\n".encode())
        with open(path, "rb") as f:
            digest.update(f.read(1 << 20))
            f.seek(max(0, size - (1 << 20)))
            digest.update(f.read(1 << 20))
    return digest.hexdigest()


def run(
    params: MetadataParams,
    layout: Layout,
    manifest: Path,
    metadata: Path | None,
    out: Path,
    videos: Path,
    metrics: Path | None = None,
) -> dict[str, Any]:
    """Write the metadata shards of ``manifest`` into ``out`` and the video list to ``videos``.

    ``metadata``: the YFCC100M metadata (a TSV file, plain or .bz2, a folder of TSV parts, or
    the SQLite file), or None / a missing path: every photo gets licence ``unknown``. Returns the
    summary also written to ``out/stats.json``: ``form``, ``rows`` (manifest rows read),
    ``photos``, ``videos``, ``found``, ``missing``, ``licences`` (photos per code),
    ``shards``, ``shards_written``, ``shards_skipped``, ``seconds``.

    Raises :class:`InputError` for a malformed manifest or metadata line (naming it), and
    :class:`TooManyFailuresError`, after writing, when more than ``params.max_missing_rate`` of
    the photos are missing from a given metadata (the wrong file?).
    """
    start = time.perf_counter()
    manifest, out = Path(manifest), Path(out)
    if not manifest.is_file():
        raise InputError(f"YFCC manifest {manifest} does not exist")
    if metadata is not None and not Path(metadata).exists():
        log.warning("no metadata at %s: every photo's licence is %s", metadata, UNKNOWN)
        metadata = None
    form = detect_form(Path(metadata)) if metadata is not None else "none"
    build = {
        "version": FORMAT_VERSION,
        "source": source_fingerprint(Path(metadata) if metadata is not None else None),
        "shard_size": layout.shard_size,
        "skip_videos": layout.skip_videos,
    }
    out.mkdir(parents=True, exist_ok=True)
    remove_temps(out)  # a killed run's half-written shard or spill
    done, resume_row = _complete_prefix(out, manifest, layout, build)
    for stale in list_shards(out)[done:]:
        stale.unlink()
    log.info(
        "metadata (%s) for %s into %s: %d shards already done, resuming at manifest row %d",
        form,
        manifest,
        out,
        done,
        resume_row,
    )
    rows = _manifest_rows(manifest, layout.limit, resume_row)
    if form == "none":
        batches: Iterator[pa.Table] = _plain_batches(rows, params.batch_size)
    elif form == "sqlite":
        batches = _sqlite_batches(Path(metadata), rows, params.batch_size)  # type: ignore[arg-type]
    else:
        batches = _tsv_batches(Path(metadata), manifest, layout, resume_row, params, out)  # type: ignore[arg-type]
    written = _write_shards(batches, out, layout, build, done, resume_row)
    summary = _summarise(out, form, start, written, done)
    _write_videos(out, videos)
    write_text(out / "stats.json", json.dumps(summary, indent=1) + "\n")
    if metrics is not None:
        write_text(Path(metrics), json.dumps(licence_metrics(summary), indent=1) + "\n")
    log.info("metadata summary: %s", json.dumps(summary))
    rate = summary["missing"] / summary["photos"] if summary["photos"] else 0.0
    if form != "none" and rate > params.max_missing_rate:
        raise TooManyFailuresError(
            f"{summary['missing']} of {summary['photos']} photos ({rate:.1%}) are not in the "
            f"metadata {metadata} (> metadata.max_missing_rate {params.max_missing_rate:.1%}): "
            "is it the right file? The shards are written, with licence unknown for those"
        )
    return summary


def licence_metrics(summary: dict[str, Any]) -> dict[str, Any]:
    """The photos' share per licence code (every code listed, 0 included)."""
    n = summary["photos"]
    counts = summary["licences"]
    return {
        "photos": n,
        "videos_skipped": summary["videos"],
        "missing_from_metadata": summary["missing"],
        "share": {c: (counts.get(c, 0) / n if n else 0.0) for c in (*CC_CODES, UNKNOWN)},
        "count": {c: counts.get(c, 0) for c in (*CC_CODES, UNKNOWN)},
    }


# ------------------------------------------------------------------------------- the manifest


def _manifest_rows(manifest: Path, limit: int | None, start: int = 0) -> Iterator[ManifestRow]:
    """Manifest rows ``start`` to ``limit`` (exclusive), streamed."""
    return islice(read_yfcc_manifest(manifest), start, limit)


def _items_digest(rows: Iterable[ManifestRow]) -> str:
    """fetch's ``items_sha256`` of a shard's items (key = hash, and photo id)."""
    digest = hashlib.sha256()
    for row in rows:
        digest.update(f"{row.hash}\t{row.photo_id}\n".encode())
    return digest.hexdigest()


def _complete_prefix(
    out: Path, manifest: Path, layout: Layout, build: dict[str, Any]
) -> tuple[int, int]:
    """``(shards, manifest rows)`` of the leading shards in ``out`` that need no rebuilding.

    A shard counts when its footer was built the same way and its manifest rows still give the
    same items; checking streams the manifest only, never the metadata.
    """
    rows = _manifest_rows(manifest, layout.limit)
    position = 0
    done = 0
    for index, path in enumerate(list_shards(out)):
        if path != shard_file(out, index):
            break
        try:
            footer = read_footer(path)
        except (OSError, KeyError, ValueError, pa.ArrowException):
            break
        if footer.get("build") != build or footer["first_row"] != position:
            break
        chunk = list(islice(rows, footer["end_row"] - position))
        videos = {int(v[0]) for v in footer["videos"]} if layout.skip_videos else set()
        items = [r for r in chunk if r.photo_id not in videos]
        if (
            len(chunk) != footer["end_row"] - position
            or _items_digest(items) != footer["items_sha256"]
            or (footer["items"] < layout.shard_size and next(rows, None) is not None)
        ):
            break  # changed, or the last shard of a shorter manifest (limit)
        position = footer["end_row"]
        done += 1
    return done, position


# -------------------------------------------------------------------------------- the readers
#
# Each yields the manifest's rows in order as tables of :data:`SCHEMA` plus ``is_video``.


def _plain_batches(rows: Iterator[ManifestRow], size: int) -> Iterator[pa.Table]:
    """No metadata: every photo unknown, none a video."""
    while batch := list(islice(rows, size)):
        yield records_table(batch, [None] * len(batch))


def _sqlite_batches(db: Path, rows: Iterator[ManifestRow], size: int) -> Iterator[pa.Table]:
    """Looked up ``size`` ascending photo ids at a time."""
    with SqliteMetadata(db, size) as meta:
        while batch := list(islice(rows, size)):
            _need_photo_ids(batch)
            found = meta.lookup(r.photo_id for r in batch)  # type: ignore[misc]
            yield records_table(batch, [found.get(r.photo_id) for r in batch])  # type: ignore[arg-type]


def records_table(rows: list[ManifestRow], metas: list[PhotoMeta | None]) -> pa.Table:
    """The :data:`SCHEMA` table (plus ``is_video``) of manifest rows and their records."""
    cols: dict[str, list[Any]] = {f.name: [] for f in SCHEMA}
    cols["is_video"] = []
    for row, m in zip(rows, metas, strict=True):
        cols["key"].append(row.hash)
        cols["photo_id"].append(row.photo_id)
        cols["found"].append(m is not None)
        code, version = (m.licence, m.licence_version) if m is not None else (UNKNOWN, None)
        cols["licence"].append(code)
        cols["licence_version"].append(version)
        cols["licence_url"].append(m.licence_url if m else None)
        cols["nickname"].append(m.nickname if m else None)
        cols["credit"].append(credit_line(m.nickname if m else None, code, version))
        cols["title"].append(m.title if m else None)
        cols["description"].append(m.description if m else None)
        cols["tags"].append(list(m.tags) if m else None)
        cols["date_taken"].append(m.date_taken if m else None)
        cols["latitude"].append(m.latitude if m else None)
        cols["longitude"].append(m.longitude if m else None)
        cols["page_url"].append(m.page_url if m else None)
        cols["is_video"].append(m.is_video if m else False)
    return pa.Table.from_pydict(cols, schema=_WITH_VIDEO)


def _need_photo_ids(rows: list[ManifestRow]) -> None:
    if rows and rows[0].photo_id is None:
        raise InputError(
            "the manifest is a plain list of hashes: the metadata joins on photo ids "
            "(use the photo_id<TAB>hash manifest)"
        )


def _tsv_batches(
    path: Path,
    manifest: Path,
    layout: Layout,
    start: int,
    params: MetadataParams,
    out: Path,
) -> Iterator[pa.Table]:
    """Manifest rows from ``start`` with their records, from ONE pass over the TSV."""
    ids = np.fromiter(
        (_photo_id(r) for r in _manifest_rows(manifest, layout.limit, start)), dtype=np.int64
    )
    if len(ids) == 0:
        return
    order = np.argsort(ids, kind="stable").astype(np.int64 if len(ids) >= 2**31 else np.int32)
    sorted_ids = ids[order]
    del ids
    n_buckets = -(-len(order) // params.bucket_rows)
    spill = temp_name(out / "spill")
    spill.mkdir()
    try:
        _spill_tsv(path, sorted_ids, order, params.bucket_rows, n_buckets, spill)
        del sorted_ids, order
        rows = _manifest_rows(manifest, layout.limit, start)
        for b in range(n_buckets):
            chunk = list(islice(rows, params.bucket_rows))
            yield _bucket_table(spill / f"{b:06d}.arrow", chunk, b * params.bucket_rows)
    finally:
        shutil.rmtree(spill, ignore_errors=True)


def _photo_id(row: ManifestRow) -> int:
    if row.photo_id is None:
        _need_photo_ids([row])
    return row.photo_id  # type: ignore[return-value]


def _spill_tsv(
    path: Path,
    sorted_ids: np.ndarray,
    order: np.ndarray,
    bucket_rows: int,
    n_buckets: int,
    spill: Path,
) -> None:
    """Stream the TSV; each line whose photo id is in the manifest goes to its bucket's file."""
    writers = [pa.ipc.new_file(spill / f"{b:06d}.arrow", _SPILL) for b in range(n_buckets)]
    buffers: list[list[tuple[Any, ...]]] = [[] for _ in range(n_buckets)]
    lines = iter_tsv_lines(path)
    bar = tqdm(desc="metadata TSV", unit="row", unit_scale=True, disable=None)
    try:
        while batch := list(islice(lines, _TSV_BATCH)):
            bar.update(len(batch))
            pids = np.fromiter((tsv_photo_id(*x) for x in batch), np.int64, len(batch))
            left = np.searchsorted(sorted_ids, pids, "left")
            right = np.searchsorted(sorted_ids, pids, "right")
            for i in np.flatnonzero(right > left).tolist():
                values = decode_tsv_line(*batch[i])
                # values: PhotoMeta's fields; 1 nickname, 11 licence, 12 version
                row = (*values, credit_line(values[1], values[11], values[12]))
                for pos in order[left[i] : right[i]].tolist():  # one, unless the manifest repeats
                    b = pos // bucket_rows
                    buffers[b].append((pos, *row))
                    if len(buffers[b]) >= _SPILL_FLUSH:
                        writers[b].write_batch(_spill_batch(buffers[b]))
                        buffers[b].clear()
        for b, buffer in enumerate(buffers):
            if buffer:
                writers[b].write_batch(_spill_batch(buffer))
    finally:
        bar.close()
        for w in writers:
            w.close()


def _spill_batch(rows: list[tuple[Any, ...]]) -> pa.RecordBatch:
    by_column = zip(*rows, strict=True)
    columns = [pa.array(col, f.type) for col, f in zip(by_column, _SPILL, strict=True)]
    return pa.RecordBatch.from_arrays(columns, schema=_SPILL)


def _bucket_table(path: Path, rows: list[ManifestRow], first: int) -> pa.Table:
    """The bucket's manifest rows (from ``first``) joined to their spilled records, in order."""
    with pa.memory_map(str(path)) as source:
        spilled = pa.ipc.open_file(source).read_all()
    if spilled.num_rows == 0:
        return records_table(rows, [None] * len(rows))
    spilled = spilled.take(pc.sort_indices(spilled["pos"]))  # stable: a repeated photo id's
    pos = spilled["pos"].to_numpy() - first  # first TSV row comes first, and wins below
    at = np.full(len(rows), -1, np.int64)
    at[pos[::-1]] = np.arange(len(pos))[::-1]  # the first of equal positions is written last
    missing = at < 0
    taken = spilled.take(pa.array(np.where(missing, 0, at), mask=missing))
    cols = {
        "key": pa.array([r.hash for r in rows], pa.string()),
        "photo_id": pa.array([r.photo_id for r in rows], pa.int64()),
        "found": pa.array(~missing),
        "licence": pc.fill_null(taken["licence"], UNKNOWN),
        "credit": pc.fill_null(taken["credit"], _UNKNOWN_CREDIT),
        "is_video": pc.fill_null(taken["is_video"], False),
    }
    return pa.table(
        [cols[f.name] if f.name in cols else taken[f.name] for f in _WITH_VIDEO],
        schema=_WITH_VIDEO,
    )


# --------------------------------------------------------------------------------- the writer


def _write_shards(
    batches: Iterable[pa.Table],
    out: Path,
    layout: Layout,
    build: dict[str, Any],
    index: int,
    position: int,
) -> int:
    """Cut the manifest's rows into fetch's shards and write each; returns how many were written.

    A full shard ends at its last photo; the videos before a shard's first photo are its own.
    Videos after the last photo make a last shard without photos, so that they are listed too.
    """
    written = 0
    first = position
    parts: list[pa.Table] = []  # the photos of the shard being filled
    held = 0
    videos: list[list[Any]] = []
    for batch in batches:
        video = batch["is_video"].to_numpy(zero_copy_only=False)
        photo = np.flatnonzero(~video) if layout.skip_videos else np.arange(batch.num_rows)
        cursor = 0  # the batch's rows before it belong to written shards
        while True:
            take = photo[photo >= cursor][: layout.shard_size - held]
            full = held + len(take) == layout.shard_size
            end = int(take[-1]) + 1 if full else batch.num_rows
            videos += _video_rows(batch, video, cursor, end)
            parts.append(batch.take(pa.array(take, pa.int64())))
            held += len(take)
            position += end - cursor
            cursor = end
            if not full:
                break
            _write_shard(out, index, parts, videos, build, first, position)
            index, written, first = index + 1, written + 1, position
            parts, held, videos = [], 0, []
    if held or videos:
        _write_shard(out, index, parts, videos, build, first, position)
        written += 1
    return written


def _video_rows(batch: pa.Table, video: np.ndarray, start: int, end: int) -> list[list[Any]]:
    at = np.flatnonzero(video[start:end]) + start
    keys = batch["key"].take(pa.array(at, pa.int64())).to_pylist()
    ids = batch["photo_id"].take(pa.array(at, pa.int64())).to_pylist()
    return [[pid, key] for pid, key in zip(ids, keys, strict=True)]


def _write_shard(
    out: Path,
    index: int,
    parts: list[pa.Table],
    videos: list[list[Any]],
    build: dict[str, Any],
    first: int,
    end: int,
) -> None:
    table = (pa.concat_tables(parts) if parts else _WITH_VIDEO.empty_table()).drop(["is_video"])
    items = zip(table["key"].to_pylist(), table["photo_id"].to_pylist(), strict=True)
    footer = {
        "build": build,
        "first_row": first,
        "end_row": end,
        "items": table.num_rows,
        "items_sha256": _items_digest(ManifestRow(pid, key) for key, pid in items),
        "videos": videos,
    }
    table = table.cast(SCHEMA).replace_schema_metadata({FOOTER_KEY: json.dumps(footer).encode()})
    with atomic_path(shard_file(out, index)) as tmp:
        pq.write_table(table, tmp, compression="zstd")


def _summarise(out: Path, form: str, start: float, written: int, skipped: int) -> dict[str, Any]:
    """Totals over every shard in ``out`` (those of earlier runs included)."""
    licences: Counter[str] = Counter()
    photos = found = videos = rows = 0
    paths = list_shards(out)
    for path in paths:
        footer = read_footer(path)
        table = pq.read_table(path, columns=["found", "licence"])
        photos += table.num_rows
        found += sum(table["found"].to_pylist())
        licences.update(table["licence"].to_pylist())
        videos += len(footer["videos"])
        rows = footer["end_row"]
    seconds = time.perf_counter() - start
    return {
        "form": form,
        "rows": rows,
        "photos": photos,
        "videos": videos,
        "found": found,
        "missing": photos - found,
        "licences": dict(sorted(licences.items())),
        "shards": len(paths),
        "shards_written": written,
        "shards_skipped": skipped,
        "seconds": seconds,
    }


def _write_videos(out: Path, videos: Path) -> None:
    """Every shard's videos as ``photo_id<TAB>hash`` lines (fetch's ``fetch.videos``)."""
    lines = []
    for path in list_shards(out):
        lines += [f"{pid}\t{h}\n" for pid, h in read_footer(path)["videos"]]
    write_text(Path(videos), "".join(lines))


def read_videos(path: Path) -> frozenset[int]:
    """The photo ids of a video list written by this stage."""
    ids = set()
    with open(path, encoding="utf-8") as f:
        for line_no, line in enumerate(f, start=1):
            if line.strip():
                head = line.split("\t", 1)[0]
                if not head.isdigit():
                    raise InputError(f"{path}:{line_no}: expected 'photo_id<TAB>hash'")
                ids.add(int(head))
    return frozenset(ids)
