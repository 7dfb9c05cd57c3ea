"""The sample's YFCC100M metadata, in the real TSV format, and the videos of its manifest.

:func:`write_metadata` adds to ``yfcc/``:

- a few **video** rows to ``manifest.txt`` (marker 1 in the metadata, no bucket object), spread
  through it as in the real hash list;
- ``metadata/yfcc100m_dataset-0.bz2`` and ``-1.bz2``: the 25 tab-separated columns of the Yahoo
  Webscope release, URL-encoded text (``+`` for spaces, UTF-8 percent escapes, ``%2C`` for a
  comma inside a tag), in an order unrelated to the manifest's, covering every video and every
  photo but a few (``MISSING_SHARE``), with all six Creative Commons licences.

Titles, descriptions and tags name what each picture shows. Everything comes from ``seed``.
"""

from __future__ import annotations

import bz2
import random
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote_plus

from newsimg.sample.model import PoolImage
from newsimg.sample.prose import FIRST_NAMES, LAST_NAMES, TOWNS

# Licence name and URL as the dataset spells them, with the sample's (rough YFCC-like) weights.
LICENCES = (
    ("by-nc-sa", "Attribution-NonCommercial-ShareAlike License", 0.33),
    ("by-nc-nd", "Attribution-NonCommercial-NoDerivs License", 0.20),
    ("by-nc", "Attribution-NonCommercial License", 0.15),
    ("by", "Attribution License", 0.15),
    ("by-sa", "Attribution-ShareAlike License", 0.10),
    ("by-nd", "Attribution-NoDerivs License", 0.07),
)
MISSING_SHARE = 0.01  # photos of the manifest the metadata lacks (at least one)
VIDEO_SHARE = 0.005  # video rows added to the manifest (at least two)
PARTS = 2  # metadata files, read as one stream
# Nicknames that exercise the decoding: spaces, accents, a plus sign, a comma.
ODD_NICKNAMES = ("José Müller", "a+b photos", "Zoë, the traveller", "北京 walker")


@dataclass(frozen=True)
class MetaRow:
    """One photo's or video's metadata row, before encoding."""

    photo_id: int
    hash: str
    video: bool
    licence: str
    nickname: str
    title: str
    description: str
    tags: tuple[str, ...]


def write_metadata(root: Path, pool: Sequence[PoolImage], seed: int) -> dict[str, int]:
    """Add the videos to ``root/manifest.txt`` and write ``root/metadata/``; returns counts."""
    rng = random.Random(f"metadata-{seed}")
    taken_ids = {p.photo_id for p in pool}
    taken_hashes = {p.hash for p in pool}
    n_videos = max(2, round(len(pool) * VIDEO_SHARE))
    videos = []
    while len(videos) < n_videos:
        pid, h = rng.randrange(10**8, 10**10), f"{rng.getrandbits(128):032x}"
        if pid not in taken_ids and h not in taken_hashes:
            taken_ids.add(pid)
            taken_hashes.add(h)
            videos.append((pid, h))
    manifest: list[tuple[int, str, bool]] = [(p.photo_id, p.hash, False) for p in pool]
    for pid, h in videos:  # spread through the manifest
        manifest.insert(rng.randrange(len(manifest) + 1), (pid, h, True))
    lines = "".join(f"{pid}\t{h}\n" for pid, h, _ in manifest)
    (root / "manifest.txt").write_text(lines, encoding="utf-8")

    n_missing = max(1, round(len(pool) * MISSING_SHARE))
    missing = set(rng.sample([p.photo_id for p in pool], n_missing))
    codes = [c for c, _, _ in LICENCES]
    weights = [w for _, _, w in LICENCES]
    by_id = {p.photo_id: p for p in pool}
    rows = []
    photos = 0
    for pid, h, video in manifest:
        if pid in missing:
            continue
        # the first six photos take one licence each: every licence is in the sample
        licence = codes[photos] if photos < len(codes) and not video else None
        photos += not video
        licence = licence or rng.choices(codes, weights)[0]
        rows.append(_row(rng, pid, h, video, licence, by_id.get(pid)))
    rng.shuffle(rows)  # the dataset's order is not the manifest's
    meta = root / "metadata"
    meta.mkdir()
    per_part = -(-len(rows) // PARTS)
    for part in range(PARTS):
        chunk = rows[part * per_part : (part + 1) * per_part]
        text = "".join(
            tsv_line(part * per_part + n + 1, row, rng) + "\n" for n, row in enumerate(chunk)
        )
        (meta / f"yfcc100m_dataset-{part}.bz2").write_bytes(bz2.compress(text.encode("utf-8")))
    return {"videos": len(videos), "missing_metadata": n_missing, "metadata_rows": len(rows)}


def _row(
    rng: random.Random, pid: int, h: str, video: bool, licence: str, p: PoolImage | None
) -> MetaRow:
    if rng.random() < 0.1:
        nickname = rng.choice(ODD_NICKNAMES)
    else:
        nickname = f"{rng.choice(FIRST_NAMES)} {rng.choice(LAST_NAMES)}"
    town = rng.choice(TOWNS)
    if p is not None and p.picture is not None:
        a = p.picture.attrs
        plural = a.obj if a.obj.endswith("s") else f"{a.obj}s"
        what = f"{a.count} {a.colour} {plural}" if a.count > 1 else f"a {a.colour} {a.obj}"
        title = f"{what} at the {a.scene}"
        description = f"{what.capitalize()} seen at the {a.scene} near {town}, 100% real."
        tags: tuple[str, ...] = (a.colour, a.obj, a.scene, town.lower(), "flickr, friends")
    else:
        kind = "MVI" if video else "IMG"
        title = f"{kind}_{rng.randrange(1000, 9999)}"
        description = "" if rng.random() < 0.5 else f"Holidays in {town} & more"
        tags = (town.lower(),) if rng.random() < 0.5 else ()
    return MetaRow(pid, h, video, licence, nickname, title, description, tags)


def tsv_line(line: int, row: MetaRow, rng: random.Random) -> str:
    """The 25 columns of one row, encoded as the dataset encodes them."""
    uid = f"{rng.randrange(10**7, 10**8)}@N0{rng.randrange(0, 9)}"
    server, farm = rng.randrange(1, 9999), rng.randrange(1, 10)
    secret, original = f"{rng.getrandbits(40):010x}", f"{rng.getrandbits(40):010x}"
    ext = "mp4" if row.video else "jpg"
    geo = rng.random() < 0.5
    lon = f"{rng.uniform(-180, 180):.6f}" if geo else ""
    lat = f"{rng.uniform(-90, 90):.6f}" if geo else ""
    taken = (
        f"{rng.randrange(2004, 2015)}-{rng.randrange(1, 13):02d}-{rng.randrange(1, 29):02d} "
        f"{rng.randrange(24):02d}:{rng.randrange(60):02d}:{rng.randrange(60):02d}.0"
    )
    name = dict((c, n) for c, n, _ in LICENCES)[row.licence]
    fields = [
        str(line),
        str(row.photo_id),
        row.hash,
        uid,
        quote_plus(row.nickname),
        quote_plus(taken),
        str(rng.randrange(1_100_000_000, 1_400_000_000)),
        quote_plus("Canon EOS 400D DIGITAL") if rng.random() < 0.5 else "",
        quote_plus(row.title),
        quote_plus(row.description),
        ",".join(quote_plus(t) for t in row.tags),
        "",
        lon,
        lat,
        str(rng.randrange(1, 17)) if geo else "",
        f"http://www.flickr.com/photos/{uid}/{row.photo_id}/",
        f"http://farm{farm}.staticflickr.com/{server}/{row.photo_id}_{secret}.{ext}",
        quote_plus(name),
        f"http://creativecommons.org/licenses/{row.licence}/2.0/",
        str(server),
        str(farm),
        secret,
        original,
        ext,
        "1" if row.video else "0",
    ]
    return "\t".join(fields)
