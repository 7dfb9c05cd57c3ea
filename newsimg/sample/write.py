"""Writing a sample: render and write a plan into the layout described in the package."""

from __future__ import annotations

import json
import logging
import shutil
import time
from collections.abc import Sequence
from pathlib import Path

from PIL import Image

from newsimg.sample.draw import jpeg_bytes, render
from newsimg.sample.metadata import write_metadata
from newsimg.sample.model import Article, N24Item, PoolImage
from newsimg.sample.pages import page_html
from newsimg.sample.plan import plan_sample
from newsimg.sources import N24NEWS_SPLITS, write_newsimages_csv

log = logging.getLogger(__package__)  # "newsimg.sample", as before the split

# What generate() owns inside ``out``: removed before writing, so the folder holds one sample.
OUTPUTS = ("articles.csv", "html", "newsimages", "n24news", "yfcc", "sample.json")
ERROR_PAGES = (
    "<html><head><title>404 Not Found</title></head><body><h1>Not Found</h1>"
    "<p>The requested URL was not found on this server.</p></body></html>\n",
    "<!DOCTYPE html><html><head><title>503 Service Unavailable</title></head><body>"
    "<h1>Service Unavailable</h1><p>Please try again later.</p></body></html>\n",
    '<?xml version="1.0" encoding="UTF-8"?>\n<Error><Code>AccessDenied</Code>'
    "<Message>Access Denied</Message></Error>\n",
)


def generate(
    out: Path,
    *,
    seed: int = 0,
    n_articles: int = 100,
    pool_size: int = 2000,
    n24news_per_section: tuple[int, int, int] = (40, 10, 10),
) -> dict[str, int]:
    """Write the sample into ``out`` (created if missing) and return its counts.

    The same seed and arguments give byte-identical files. Entries of ``out`` that the sample
    owns (:data:`OUTPUTS`) are replaced; anything else there is left alone.
    """
    start = time.perf_counter()
    plan = plan_sample(seed, n_articles, pool_size, tuple(n24news_per_section))
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    for name in OUTPUTS:
        path = out / name
        if path.is_dir():
            shutil.rmtree(path)
        elif path.exists():
            path.unlink()
    _write_articles(out, plan.articles)
    _write_n24news(out / "n24news", plan.n24news)
    _write_yfcc(out / "yfcc", plan.pool)
    counts = {**plan.counts(), **write_metadata(out / "yfcc", plan.pool, seed)}
    meta = {
        "seed": seed,
        "arguments": {
            "n_articles": n_articles,
            "pool_size": pool_size,
            "n24news_per_section": list(n24news_per_section),
        },
        "counts": counts,
    }
    (out / "sample.json").write_text(json.dumps(meta, indent=2) + "\n", encoding="utf-8")
    log.info(
        "sample (seed %d) written to %s in %.1f s: %d articles, %d pool images (%d faults), "
        "%d N24News items",
        seed,
        out,
        time.perf_counter() - start,
        counts["articles"],
        counts["pool"],
        counts["faults"],
        len(plan.n24news),
    )
    return counts


def _write_articles(out: Path, articles: Sequence[Article]) -> None:
    write_newsimages_csv(out / "articles.csv", [a.csv_row() for a in articles])
    (out / "html").mkdir()
    (out / "newsimages").mkdir()
    for a in articles:
        if a.page != "missing":
            (out / "html" / f"{a.article_id}.html").write_text(page_html(a), encoding="utf-8")
        (out / "newsimages" / f"{a.image_id}.jpg").write_bytes(jpeg_bytes(render(a.picture)))


def _write_n24news(root: Path, items: Sequence[N24Item]) -> None:
    (root / "news").mkdir(parents=True)
    (root / "imgs").mkdir()
    for split in N24NEWS_SPLITS:
        records = [item.fields for item in items if item.split == split]
        text = json.dumps(records, indent=1, ensure_ascii=False) + "\n"
        (root / "news" / f"nytimes_{split}.json").write_text(text, encoding="utf-8")
    for item in items:
        jpeg = jpeg_bytes(render(item.picture))
        (root / "imgs" / f"{item.fields['image_id']}.jpg").write_bytes(jpeg)


def _write_yfcc(root: Path, pool: Sequence[PoolImage]) -> None:
    """The manifest, and the bucket with one object per row except the intended 404s."""
    root.mkdir()
    lines = "".join(f"{p.photo_id}\t{p.hash}\n" for p in pool)
    (root / "manifest.txt").write_text(lines, encoding="utf-8")
    for p in pool:
        data = _object_bytes(p)
        if data is None:
            continue
        path = root / "bucket" / p.key
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)


def _object_bytes(p: PoolImage) -> bytes | None:
    """What the bucket holds for a manifest row: a JPEG, a faulty object, or nothing (404)."""
    if p.fault is None:
        return jpeg_bytes(render(p.picture))
    if p.fault == "missing":
        return None
    if p.fault == "empty":
        return b""
    if p.fault == "html":
        return ERROR_PAGES[int(p.hash[:4], 16) % len(ERROR_PAGES)].encode()
    if p.fault == "truncated":
        jpeg = jpeg_bytes(render(p.picture))
        return jpeg[: len(jpeg) * (40 + int(p.hash[:2], 16) % 30) // 100]
    if p.fault == "tiny":
        colour = tuple(bytes.fromhex(p.hash[:6]))
        return jpeg_bytes(Image.new("RGB", (8, 8), colour))
    raise ValueError(f"unknown fault kind {p.fault!r}")
