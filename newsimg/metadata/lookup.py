"""Who to credit and under which licence, for the photos a stage is about to show.

The public lookup every consumer uses (gallery, export, ``newsimg search``, the service)::

    meta = Metadata.open(Path("artifacts/metadata"))   # or Metadata.empty()
    meta.credits(["9f86d08...", "a1b2c3..."])            # key -> Credit
    meta.licences(keys)                                  # key -> licence code, same order

A key that is not a YFCC photo of the metadata (an article's own image, or a folder without
metadata) gets :data:`~newsimg.metadata.licences.OWN` when listed in ``own`` and
:data:`~newsimg.metadata.licences.UNKNOWN` otherwise.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from newsimg.metadata.build import SCHEMA, list_shards
from newsimg.metadata.licences import OWN, UNKNOWN, credit_line, licence_label, licence_url

_SMALL = ["key", "licence"]


@dataclass(frozen=True)
class Credit:
    """What to print beside a photo."""

    key: str
    licence: str  # by, by-sa, ..., unknown, own
    licence_version: str | None
    licence_label: str  # "CC BY-SA 2.0"
    licence_link: str | None  # the licence deed
    credit: str  # "Photo: NICKNAME via Flickr, CC BY-SA 2.0"
    nickname: str | None
    page_url: str | None  # the photo's Flickr page
    title: str | None
    tags: tuple[str, ...]

    def as_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["tags"] = list(self.tags)
        return d


def unknown_credit(key: str, own: bool = False) -> Credit:
    code = OWN if own else UNKNOWN
    return Credit(
        key,
        code,
        None,
        licence_label(code, None),
        None,
        credit_line(None, code, None),
        None,
        None,
        None,
        (),
    )


class Metadata:
    """The metadata stage's output folder, read lazily; an empty one knows no photo."""

    def __init__(self, shards: Sequence[Path]) -> None:
        self.shards = list(shards)
        self._codes: pa.Table | None = None

    @classmethod
    def open(cls, directory: Path | None) -> Metadata:
        """The metadata in ``directory``; no folder (or None): an empty lookup."""
        return cls(list_shards(Path(directory)) if directory is not None else [])

    @classmethod
    def empty(cls) -> Metadata:
        return cls([])

    def table(self, columns: Sequence[str] | None = None) -> pa.Table:
        """Every shard's rows in shard order (all of :data:`SCHEMA`'s columns by default)."""
        cols = list(columns) if columns is not None else SCHEMA.names
        tables = [pq.read_table(p, columns=cols).replace_schema_metadata(None) for p in self.shards]
        if not tables:
            return pa.schema([SCHEMA.field(c) for c in cols]).empty_table()
        return pa.concat_tables(tables)

    def licences(self, keys: Sequence[str], own: Iterable[str] = ()) -> list[str]:
        """The licence code of each key, in order (``own`` keys: ``own``; unknown: ``unknown``).

        Reads the key and licence columns once (about 40 bytes a photo), then joins in Arrow.
        """
        if self._codes is None:
            self._codes = self.table(_SMALL)
        own_set = set(own)
        at = pc.index_in(pa.array(list(keys), pa.string()), value_set=self._codes["key"])
        codes = self._codes["licence"].to_pylist()
        return [
            OWN if k in own_set else (codes[i] if i is not None else UNKNOWN)
            for k, i in zip(keys, at.to_pylist(), strict=True)
        ]

    def credits(self, keys: Iterable[str], own: Iterable[str] = ()) -> dict[str, Credit]:
        """key -> :class:`Credit` for the keys asked for; reads only the shards' matching rows."""
        wanted = list(dict.fromkeys(keys))
        own_set = set(own)
        found: dict[str, Credit] = {}
        value_set = pa.array([k for k in wanted if k not in own_set], pa.string())
        for path in self.shards if len(value_set) else []:
            table = pq.read_table(path, filters=pc.is_in(pc.field("key"), value_set=value_set))
            for row in table.to_pylist():
                found.setdefault(row["key"], _credit(row))
            if len(found) == len(value_set):
                break
        return {k: found.get(k) or unknown_credit(k, own=k in own_set) for k in wanted}


def _credit(row: dict[str, Any]) -> Credit:
    code, version = row["licence"], row["licence_version"]
    return Credit(
        key=row["key"],
        licence=code,
        licence_version=version,
        licence_label=licence_label(code, version),
        licence_link=licence_url(code, version),
        credit=row["credit"],
        nickname=row["nickname"],
        page_url=row["page_url"],
        title=row["title"],
        tags=tuple(row["tags"] or ()),
    )
