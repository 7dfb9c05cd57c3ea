"""Readers for the three input formats: NewsImages CSV, N24News JSON and the YFCC100M hash list."""

from __future__ import annotations

import csv
import json
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from newsimg.errors import InputError

NEWSIMAGES_COLUMNS = (
    "article_id",
    "article_url",
    "article_title",
    "article_tags",
    "image_id",
    "image_url",
)
N24NEWS_FIELDS = (
    "section",
    "headline",
    "abstract",
    "caption",
    "article",
    "image_id",
    "image_url",
    "article_url",
)
N24NEWS_SPLITS = ("train", "dev", "test")
# The 24 N24News sections, in a fixed order: a section's index is its class label.
N24NEWS_SECTIONS = (
    "Art & Design",
    "Automobiles",
    "Books",
    "Dance",
    "Economy",
    "Education",
    "Fashion",
    "Food",
    "Global Business",
    "Health",
    "Media",
    "Movies",
    "Music",
    "Opinion",
    "Real Estate",
    "Science",
    "Sports",
    "Style",
    "Technology",
    "Television",
    "Theater",
    "Travel",
    "Well",
    "Your Money",
)
_HASH = re.compile(r"^[0-9a-f]{32}$")


def read_newsimages_csv(path: Path) -> list[dict[str, str]]:
    """Rows of a NewsImages CSV as dicts keyed by :data:`NEWSIMAGES_COLUMNS`.

    Some MediaEval files have no header row: a first row that is not the header is data.
    """
    with open(path, newline="", encoding="utf-8") as f:
        rows = list(csv.reader(f))
    if rows:
        first = tuple(c.strip().lower() for c in rows[0])
        if first == NEWSIMAGES_COLUMNS:
            rows = rows[1:]
        elif set(first) & set(NEWSIMAGES_COLUMNS):
            raise InputError(
                f"{path}: header {', '.join(first)} differs from {', '.join(NEWSIMAGES_COLUMNS)}"
            )
    out = []
    for line, row in enumerate(rows, start=1):
        if not row:
            continue
        if len(row) != len(NEWSIMAGES_COLUMNS):
            raise InputError(
                f"{path}: row {line} has {len(row)} fields, expected {len(NEWSIMAGES_COLUMNS)} "
                f"({', '.join(NEWSIMAGES_COLUMNS)})"
            )
        out.append(dict(zip(NEWSIMAGES_COLUMNS, (c.strip() for c in row), strict=True)))
    return out


def write_newsimages_csv(path: Path, rows: list[dict[str, str]]) -> None:
    with open(path, "w", newline="", encoding="utf-8") as f:
        w = csv.DictWriter(f, fieldnames=NEWSIMAGES_COLUMNS)
        w.writeheader()
        w.writerows(rows)


def read_n24news(root: Path, split: str) -> list[dict[str, str]]:
    """Items of one N24News split (``news/nytimes_{split}.json``), every field as a string."""
    if split not in N24NEWS_SPLITS:
        raise ValueError(f"unknown N24News split {split!r}; expected one of {N24NEWS_SPLITS}")
    path = root / "news" / f"nytimes_{split}.json"
    try:
        items = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise InputError(f"N24News split file {path} does not exist") from None
    for i, item in enumerate(items):
        missing = [k for k in N24NEWS_FIELDS if k not in item]
        if missing:
            raise InputError(f"{path}: item {i} lacks {', '.join(missing)}")
        if item["section"] not in N24NEWS_SECTIONS:
            raise InputError(f"{path}: item {i} has unknown section {item['section']!r}")
    return items


def n24news_image_path(root: Path, image_id: str) -> Path:
    return root / "imgs" / f"{image_id}.jpg"


@dataclass(frozen=True)
class ManifestRow:
    photo_id: int | None  # None when the manifest is a plain list of hashes
    hash: str

    @property
    def key(self) -> str:
        """The object key below the bucket's image prefix: ``{h[0:3]}/{h[3:6]}/{h}.jpg``."""
        h = self.hash
        return f"{h[0:3]}/{h[3:6]}/{h}.jpg"


def read_yfcc_manifest(path: Path) -> Iterator[ManifestRow]:
    """Stream a ``yfcc100m_hash`` file (``photo_id<TAB>hash``) or a plain list of hashes.

    Streams line by line: the real file has ~100M lines. A malformed line is an error naming it.
    """
    with open(path, encoding="utf-8") as f:
        for line_no, line in enumerate(f, start=1):
            line = line.strip()
            if not line:
                continue
            parts = line.split("\t")
            if len(parts) == 1:
                photo_id, h = None, parts[0]
            elif len(parts) == 2 and parts[0].isdigit():
                photo_id, h = int(parts[0]), parts[1]
            else:
                raise InputError(f"{path}:{line_no}: expected 'photo_id<TAB>hash', got {line!r}")
            h = h.lower()
            if not _HASH.match(h):
                raise InputError(f"{path}:{line_no}: {h!r} is not a 32-character hex hash")
            yield ManifestRow(photo_id, h)
