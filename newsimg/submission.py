"""The MediaEval 2025 NewsImages export, and its validator.

The submission is ``[group].zip`` holding
``[group]/RET_[approach]_[LARGE|SMALL]/[article_id]_[group]_[approach].png``: per article the
best-ranked image that is not an original (source ``newsimages``), resized to cover 460x260 and
centre-cropped, as PNG. LARGE holds every article (so it covers SMALL), SMALL the articles of the
MediaEval SMALL set the data has. The zip is validated before the folder is committed; beside it,
``manifest.csv`` (what each PNG was made from) and ``counts.json`` (images per folder).
"""

from __future__ import annotations

import csv
import io
import json
import logging
import re
import zipfile
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path

import pyarrow.parquet as pq
from PIL import Image, ImageOps

from newsimg.errors import InputError, NewsimgError
from newsimg.metadata.lookup import Credit, Metadata
from newsimg.metadata.policy import check_results
from newsimg.metrics import SMALL_IDS
from newsimg.params import ReportParams
from newsimg.store import shards
from newsimg.store.commit import atomic_path
from newsimg.store.names import NEWSIMAGES

log = logging.getLogger(__name__)


class SubmissionError(NewsimgError):
    """The export broke one of MediaEval's rules (a bug: the zip is not committed)."""


def to_png(jpeg: bytes, width: int, height: int) -> bytes:
    """Resize to cover width x height, centre-crop to it, encode as RGB PNG."""
    with Image.open(io.BytesIO(jpeg)) as im:
        fitted = ImageOps.fit(im.convert("RGB"), (width, height), Image.Resampling.LANCZOS)
    buf = io.BytesIO()
    fitted.save(buf, "PNG")
    return buf.getvalue()


def choose(results: Path, article_ids: Iterable[str], originals: set[str]) -> dict[str, dict]:
    """article_id -> its best-ranked retrieved image that is not an original."""
    wanted = set(article_ids)
    rows = pq.read_table(results, columns=["article_id", "rank", "key", "source", "score"])
    best: dict[str, dict] = {}
    for r in rows.to_pylist():
        a = r["article_id"]
        if a not in wanted or r["source"] == NEWSIMAGES or r["key"] in originals:
            continue
        if a not in best or r["rank"] < best[a]["rank"]:
            best[a] = r
    return best


def entry_name(group: str, approach: str, subset: str, article_id: str) -> str:
    return f"{group}/RET_{approach}_{subset}/{article_id}_{group}_{approach}.png"


def _choose_all(
    params: ReportParams, results: Sequence[Path], ids: list[str], originals: set[str]
) -> dict[str, dict[str, dict]]:
    """submission approach name -> article_id -> the chosen result row, for every article."""
    by_name = {p.stem: p for p in results}
    missing = sorted(set(params.approaches) - set(by_name))
    if missing:
        raise InputError(f"report.approaches names {missing}, which have no results")
    chosen: dict[str, dict[str, dict]] = {}
    for name, sub in params.approaches.items():
        best = choose(by_name[name], ids, originals)
        lacking = [a for a in ids if a not in best]
        if lacking:
            raise InputError(
                f"{name}: no non-original image retrieved for {len(lacking)} articles "
                f"(first: {lacking[:5]}); raise retrieve.k"
            )
        chosen[sub] = best
    return chosen


def _entries(
    params: ReportParams,
    chosen: Mapping[str, Mapping[str, dict]],
    subsets: Mapping[str, list[str]],
    shard_dir: Path,
    credits: Metadata,
    originals: set[str],
) -> tuple[dict[str, bytes], list[dict]]:
    """(key -> PNG bytes, one manifest row per zip entry, with the photo's credit)."""
    keys = {r["key"] for best in chosen.values() for r in best.values()}
    credit = credits.credits(keys, own=originals)
    images = shards.read_images(shard_dir, keys)
    lost = sorted(keys - set(images))
    if lost:
        raise InputError(f"{len(lost)} chosen images are not in the shards (first: {lost[:3]})")
    pngs: dict[str, bytes] = {}
    manifest = []
    for sub, best in chosen.items():
        for subset, members in subsets.items():
            for a in members:
                r = best[a]
                if r["key"] not in pngs:
                    pngs[r["key"]] = to_png(images[r["key"]], params.width, params.height)
                name = entry_name(params.group, sub, subset, a)
                manifest.append(
                    {"name": name, "article_id": a, "approach": sub, "subset": subset,
                     "key": r["key"], "source": r["source"], "rank": r["rank"],
                     "score": round(float(r["score"]), 6), **_credit_columns(credit[r["key"]])}
                )  # fmt: skip
    return pngs, manifest


def _credit_columns(c: Credit) -> dict[str, str]:
    return {
        "credit": c.credit,
        "licence": c.licence,
        "licence_url": c.licence_link or "",
        "page_url": c.page_url or "",
        "title": c.title or "",
    }


def _write_zip(zpath: Path, manifest: Sequence[Mapping], pngs: Mapping[str, bytes]) -> None:
    with zipfile.ZipFile(zpath, "w", zipfile.ZIP_STORED) as z:
        for m in manifest:
            z.writestr(m["name"], pngs[m["key"]])


def _write_manifest(path: Path, manifest: Sequence[Mapping]) -> None:
    with open(path, "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=list(manifest[0]) if manifest else ["name"])
        w.writeheader()
        w.writerows(manifest)


def export(
    params: ReportParams,
    *,
    articles: Path,
    results: Sequence[Path],
    shard_dir: Path,
    out: Path,
    metadata: Path | None = None,
    licences: Sequence[str] | None = None,
) -> dict[str, int]:
    """Write ``out/[group].zip``, ``out/manifest.csv`` and ``out/counts.json``, validated, as
    one folder. Returns the number of images per folder of the zip.

    ``manifest.csv`` gives each PNG's credit (``credit``, ``licence``, ``licence_url``,
    ``page_url``, ``title``) from ``metadata``; under a licence policy (``licences``), results
    holding a forbidden photo are an error: none is exported."""
    meta = Metadata.open(metadata)
    check_results(results, meta, licences)
    table = pq.read_table(articles, columns=["article_id", "image_id"]).to_pydict()
    ids = table["article_id"]
    originals = set(table["image_id"])
    subsets = {"LARGE": list(ids), "SMALL": [a for a in ids if a in SMALL_IDS]}
    if not subsets["SMALL"]:
        log.info("no article of the MediaEval SMALL set in the data: no RET_*_SMALL folders")
    chosen = _choose_all(params, results, ids, originals)
    pngs, manifest = _entries(params, chosen, subsets, shard_dir, meta, originals)
    with atomic_path(out) as tmp:
        tmp.mkdir()
        zpath = tmp / f"{params.group}.zip"
        _write_zip(zpath, manifest, pngs)
        _write_manifest(tmp / "manifest.csv", manifest)
        counts = validate(
            zpath,
            params.group,
            list(params.approaches.values()),
            {s: set(m) for s, m in subsets.items() if m},
            manifest,
            originals,
            (params.width, params.height),
        )
        (tmp / "counts.json").write_text(json.dumps(counts, indent=2) + "\n")
    log.info("submission: %s -> %s", counts, out / f"{params.group}.zip")
    return counts


# --- the validator --------------------------------------------------------------------------


def _read_entries(
    zpath: Path, group: str, approaches: Sequence[str], size: tuple[int, int]
) -> dict[tuple[str, str], list[str]]:
    """(approach, subset) -> article ids, checking every entry's name, format and size."""
    pattern = re.compile(
        rf"^{re.escape(group)}/RET_(?P<approach>[A-Za-z0-9-]+)_(?P<subset>LARGE|SMALL)/"
        rf"(?P<article>[^/_]+)_{re.escape(group)}_(?P=approach)\.png$"
    )
    seen: dict[tuple[str, str], list[str]] = defaultdict(list)
    with zipfile.ZipFile(zpath) as z:
        bad = z.testzip()
        if bad is not None:
            raise SubmissionError(f"{zpath}: corrupt entry {bad}")
        for info in z.infolist():
            if info.is_dir():
                continue
            m = pattern.match(info.filename)
            if not m:
                raise SubmissionError(
                    f"{zpath}: {info.filename!r} is not {group}/RET_A_S/ID_G_A.png"
                )
            if m["approach"] not in approaches:
                raise SubmissionError(f"{info.filename}: approach {m['approach']} not in params")
            with Image.open(io.BytesIO(z.read(info))) as im:
                if im.format != "PNG" or im.size != size:
                    raise SubmissionError(
                        f"{info.filename}: {im.format} {im.size[0]}x{im.size[1]}, "
                        f"want PNG {size[0]}x{size[1]}"
                    )
            seen[(m["approach"], m["subset"])].append(m["article"])
    return seen


def _check_coverage(
    seen: Mapping[tuple[str, str], list[str]],
    approaches: Sequence[str],
    subsets: Mapping[str, set[str]],
) -> None:
    """Exactly one image per article in each folder, LARGE covering SMALL, no other folder."""
    for approach in approaches:
        for subset, want in subsets.items():
            got = seen.get((approach, subset), [])
            if len(got) != len(set(got)) or set(got) != want:
                raise SubmissionError(
                    f"RET_{approach}_{subset}: {len(got)} images for {len(set(got))} articles, "
                    f"want exactly one for each of {len(want)}"
                )
        small = set(seen.get((approach, "SMALL"), []))
        if not small <= set(seen.get((approach, "LARGE"), [])):
            raise SubmissionError(f"RET_{approach}_LARGE does not cover the SMALL ids")
    extra = set(seen) - {(a, s) for a in approaches for s in subsets}
    if extra:
        raise SubmissionError(f"unexpected folders: {sorted(extra)}")


def validate(
    zpath: Path,
    group: str,
    approaches: Sequence[str],
    subsets: Mapping[str, set[str]],
    manifest: Sequence[Mapping],
    originals: set[str],
    size: tuple[int, int] = (460, 260),
) -> dict[str, int]:
    """Check the zip against MediaEval's rules; raise :class:`SubmissionError` naming the first
    broken one. Returns images per folder."""
    seen = _read_entries(zpath, group, approaches, size)
    _check_coverage(seen, approaches, subsets)
    for m in manifest:
        if m["source"] == NEWSIMAGES or m["key"] in originals:
            raise SubmissionError(f"{m['name']} is an article's original image ({m['key']})")
    return {f"RET_{a}_{s}": len(v) for (a, s), v in sorted(seen.items())}
