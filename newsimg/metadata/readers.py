"""Readers of the YFCC100M metadata, in both of its published forms, as :class:`PhotoMeta`.

- **TSV** (Yahoo Webscope ``yfcc100m_dataset``, often split into ``yfcc100m_dataset-0`` ...
  ``-9``, plain or bzip2): 25 tab-separated columns, :data:`TSV_COLUMNS`. Several files (a
  folder's files in name order) are read as ONE stream, line by line: memory does not depend on
  the file's size.
- **SQLite** (``s3://multimedia-commons/tools/etc/yfcc100m_dataset.sql``, about 65 GB): table
  ``yfcc100m_dataset`` with :data:`SQLITE_COLUMNS` (the TSV's columns less the line number, the
  hash and the user NSID's name: ``uid``), keyed by ``photoid``. It has no hash: rows are joined
  to the manifest on the photo id, looked up in ascending batches of primary keys so that the
  B-tree is read mostly forwards.

Both forms hold the same URL-encoded text (``+`` for a space, ``%2C`` for a comma inside a tag;
tags are comma-separated), decoded here by one function, :func:`parse_fields`, so that both give
identical records.
"""

from __future__ import annotations

import bz2
import io
import re
import shutil
import sqlite3
import subprocess
from collections.abc import Iterable, Iterator, Sequence
from contextlib import closing, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any
from urllib.parse import unquote, unquote_plus

from newsimg.errors import InputError
from newsimg.metadata.licences import parse_licence_url

# The TSV's columns, in order (the YFCC100M readme; Thomee et al., CACM 59(2), 2016).
TSV_COLUMNS = (
    "line",
    "photoid",
    "hash",
    "uid",
    "unickname",
    "datetaken",
    "dateuploaded",
    "capturedevice",
    "title",
    "description",
    "usertags",
    "machinetags",
    "longitude",
    "latitude",
    "accuracy",
    "pageurl",
    "downloadurl",
    "licensename",
    "licenseurl",
    "serverid",
    "farmid",
    "secret",
    "secretoriginal",
    "ext",
    "marker",
)
SQLITE_TABLE = "yfcc100m_dataset"
SQLITE_COLUMNS = tuple(c for c in TSV_COLUMNS if c not in ("line", "hash"))
BZ2_TOOLS = ("lbzip2", "pbzip2", "bzip2")  # external decompressors, the first found is used
_SQLITE_MAGIC = b"SQLite format 3\x00"
_BZ2_MAGIC = b"BZh"
_PHOTOID = TSV_COLUMNS.index("photoid")


@dataclass(frozen=True)
class PhotoMeta:
    """One photo's (or video's) metadata row, decoded."""

    photo_id: int
    nickname: str  # the user's Flickr name: the credit
    title: str
    description: str
    tags: tuple[str, ...]  # user tags, decoded, in their order
    date_taken: str | None  # as given: "2010-07-24 16:41:53.0"
    latitude: float | None  # None when the photo has no geotag
    longitude: float | None
    page_url: str | None
    licence_name: str
    licence_url: str | None
    licence: str  # short code (by, by-sa, ...; unknown)
    licence_version: str | None
    is_video: bool  # marker 1


def detect_form(path: Path) -> str:
    """``"sqlite"``, ``"tsv"`` (a file, plain or bzip2) or ``"tsv-dir"`` (a folder of them)."""
    path = Path(path)
    if path.is_dir():
        if not tsv_parts(path):
            raise InputError(f"metadata folder {path} holds no files")
        return "tsv-dir"
    if not path.is_file():
        raise InputError(f"metadata {path} does not exist")
    with open(path, "rb") as f:
        head = f.read(len(_SQLITE_MAGIC))
    return "sqlite" if head == _SQLITE_MAGIC else "tsv"


def tsv_parts(path: Path) -> list[Path]:
    """The TSV files a metadata path stands for: itself, or a folder's visible files by name."""
    path = Path(path)
    if path.is_file():
        return [path]
    return sorted(p for p in path.iterdir() if p.is_file() and not p.name.startswith("."))


def parse_fields(fields: Sequence[str]) -> PhotoMeta:
    """Decode one row given as the 23 :data:`SQLITE_COLUMNS` values, as strings.

    Raises ``ValueError`` for a photo id or coordinate that is not a number.
    """
    return PhotoMeta(*decode_fields(fields))


def decode_fields(fields: Sequence[str]) -> tuple[Any, ...]:
    """:func:`parse_fields`'s values as a plain tuple in :class:`PhotoMeta`'s field order."""
    (
        photoid,
        _uid,
        nickname,
        datetaken,
        _uploaded,
        _device,
        title,
        description,
        usertags,
        _machinetags,
        longitude,
        latitude,
        _accuracy,
        pageurl,
        _downloadurl,
        licensename,
        licenseurl,
        _server,
        _farm,
        _secret,
        _secretoriginal,
        _ext,
        marker,
    ) = fields
    code, version = parse_licence_url(licenseurl)
    nickname, datetaken, title, description, licensename, tags = _unquote_all(
        nickname, datetaken, title, description, licensename, usertags
    )
    return (
        int(photoid),
        nickname,
        title,
        description,
        tags,
        datetaken or None,
        float(latitude) if latitude.strip() else None,
        float(longitude) if longitude.strip() else None,
        pageurl or None,
        licensename,
        licenseurl or None,
        code,
        version,
        marker.strip() == "1",
    )


_SEP, _TAG_SEP = "\x1f", "\x1e"  # never in a TSV field, nor encoded in one (checked)
_SEP_ESCAPED = re.compile("%1[ef]|[\x1e\x1f]", re.IGNORECASE)


def _unquote_all(*texts: str) -> tuple[Any, ...]:
    """``unquote_plus`` of each text; the last is the comma-separated tags, split then decoded.

    One ``unquote`` call for the whole row (joined by a separator no field can hold) instead of
    one per field and tag: the decoding was most of the TSV pass's time.
    """
    *plain, tags = texts
    if _SEP_ESCAPED.search("".join(texts)):  # a separator in a field: decode field by field
        decoded = [unquote_plus(t) for t in plain]
        return (*decoded, tuple(unquote_plus(t) for t in tags.split(",") if t))
    raw = _SEP.join([*plain, tags.replace(",", _TAG_SEP)])
    *decoded, tag_text = unquote(raw.replace("+", " ")).split(_SEP)
    return (*decoded, tuple(t for t in tag_text.split(_TAG_SEP) if t))


@contextmanager
def _open_text(path: Path) -> Iterator[IO[str]]:
    """A text stream of a plain or bzip2 file.

    bzip2 is decompressed by a separate process when a decompressor is installed (lbzip2 and
    pbzip2 use every core; bzip2 at least runs beside the parsing): Python's own bz2 in the
    parsing process took 4x the time of the rest of the pass (bench/metadata.py).
    """
    with open(path, "rb") as probe:
        compressed = probe.read(len(_BZ2_MAGIC)) == _BZ2_MAGIC
    tool = next((t for t in BZ2_TOOLS if shutil.which(t)), None) if compressed else None
    if tool is None:
        opener = bz2.open if compressed else open
        with opener(path, "rt", encoding="utf-8", newline="\n") as f:  # type: ignore[operator]
            yield f
        return
    proc = subprocess.Popen(
        [tool, "-dc", str(path)], stdout=subprocess.PIPE, stderr=subprocess.PIPE
    )
    assert proc.stdout is not None
    try:
        with io.TextIOWrapper(proc.stdout, encoding="utf-8", newline="\n") as f:
            yield f
    finally:
        if proc.poll() is None:
            proc.kill()  # the reader stopped early
        stderr = proc.communicate()[1].decode(errors="replace").strip()
    if proc.returncode != 0:
        raise InputError(f"{path}: {tool} could not decompress it ({stderr or proc.returncode})")


def iter_tsv_lines(path: Path) -> Iterator[tuple[str, int, str]]:
    """``(file name, line number, line)`` of every non-blank line of the TSV part(s), in order."""
    for part in tsv_parts(path):
        with _open_text(part) as f:
            for line_no, line in enumerate(f, start=1):
                line = line.rstrip("\r\n")
                if line:
                    yield part.name, line_no, line


def tsv_photo_id(name: str, line_no: int, line: str) -> int:
    """The photo id (2nd column) of a TSV line, without splitting the rest."""
    try:
        return int(line.split("\t", 2)[_PHOTOID])
    except (IndexError, ValueError):
        raise InputError(f"{name}:{line_no}: no photo id in the second column") from None


def parse_tsv_line(name: str, line_no: int, line: str) -> tuple[str, PhotoMeta]:
    """``(hash, record)`` of one TSV line; an :class:`InputError` names a malformed line."""
    return line.split("\t", 3)[2].lower(), PhotoMeta(*decode_tsv_line(name, line_no, line))


def decode_tsv_line(name: str, line_no: int, line: str) -> tuple[Any, ...]:
    """:func:`decode_fields` of one TSV line (the line number and hash left out)."""
    fields = line.split("\t")
    if len(fields) != len(TSV_COLUMNS):
        raise InputError(
            f"{name}:{line_no}: {len(fields)} tab-separated fields, expected {len(TSV_COLUMNS)} "
            "(the YFCC100M dataset TSV)"
        )
    del fields[2]  # the hash
    try:
        return decode_fields(fields[1:])
    except ValueError as err:
        raise InputError(f"{name}:{line_no}: {err}") from None


def iter_tsv(path: Path) -> Iterator[tuple[str, PhotoMeta]]:
    """Every ``(hash, record)`` of the TSV part(s), as one stream."""
    for name, line_no, line in iter_tsv_lines(path):
        yield parse_tsv_line(name, line_no, line)


class SqliteMetadata:
    """Lookups by photo id in the SQLite form, read-only, in ascending primary-key batches."""

    def __init__(self, path: Path, batch_size: int = 500) -> None:
        self.path = Path(path)
        self.batch_size = batch_size
        try:
            self.conn = sqlite3.connect(f"file:{self.path}?mode=ro", uri=True)
            cols = [r[1] for r in self.conn.execute(f"PRAGMA table_info({SQLITE_TABLE})")]
        except sqlite3.DatabaseError as err:
            raise InputError(f"{self.path}: not a readable SQLite database ({err})") from None
        missing = [c for c in SQLITE_COLUMNS if c not in cols]
        if missing:
            raise InputError(
                f"{self.path}: table {SQLITE_TABLE} lacks {', '.join(missing)} "
                f"(has {', '.join(cols) or 'no such table'})"
            )
        self.conn.execute("PRAGMA query_only = ON")
        self._select = f"SELECT {', '.join(SQLITE_COLUMNS)} FROM {SQLITE_TABLE} WHERE photoid IN "

    def lookup(self, photo_ids: Iterable[int]) -> dict[int, PhotoMeta]:
        """photo id -> record for the ids found (absent ones are left out)."""
        keys = sorted(set(photo_ids))
        found: dict[int, PhotoMeta] = {}
        for start in range(0, len(keys), self.batch_size):
            batch = keys[start : start + self.batch_size]
            query = f"{self._select}({','.join('?' * len(batch))}) ORDER BY photoid"
            for row in self.conn.execute(query, batch):
                fields = ["" if v is None else str(v) for v in row]
                try:
                    meta = parse_fields(fields)
                except ValueError as err:
                    raise InputError(f"{self.path}: photo {row[0]}: {err}") from None
                found[meta.photo_id] = meta
        return found

    def close(self) -> None:
        self.conn.close()

    def __enter__(self) -> SqliteMetadata:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def tsv_to_sqlite(tsv: Path, db: Path) -> int:
    """Write the TSV form as the SQLite form (``photoid`` the primary key; text kept encoded).

    For tests and for sites that only have the TSV; returns the rows written.
    """
    with closing(sqlite3.connect(db)) as conn:
        cols = ", ".join(
            f"{c} INTEGER PRIMARY KEY" if c == "photoid" else f"{c} TEXT" for c in SQLITE_COLUMNS
        )
        conn.execute(f"CREATE TABLE {SQLITE_TABLE} ({cols})")
        keep = [i for i, c in enumerate(TSV_COLUMNS) if c not in ("line", "hash")]
        n = 0
        insert = f"INSERT INTO {SQLITE_TABLE} VALUES ({','.join('?' * len(SQLITE_COLUMNS))})"
        batch: list[list[str | int]] = []
        for name, line_no, line in iter_tsv_lines(tsv):
            fields = line.split("\t")
            if len(fields) != len(TSV_COLUMNS):
                raise InputError(f"{name}:{line_no}: {len(fields)} fields, expected 25")
            row: list[str | int] = [fields[i] for i in keep]
            row[0] = int(row[0])
            batch.append(row)
            if len(batch) >= 10_000:
                conn.executemany(insert, batch)
                n += len(batch)
                batch.clear()
        conn.executemany(insert, batch)
        n += len(batch)
        conn.commit()
    return n
