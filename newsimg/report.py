"""A self-contained HTML gallery: each article, its original and the top images per approach."""

from __future__ import annotations

import base64
import html
import io
import logging
from collections import defaultdict
from collections.abc import Sequence
from pathlib import Path

import pyarrow.compute as pc
import pyarrow.parquet as pq
from PIL import Image

from newsimg import atomic, shards
from newsimg.metrics import original_ranks
from newsimg.params import ReportParams

log = logging.getLogger(__name__)

THUMB = 144  # px, longer side

STYLE = """
body{font-family:system-ui,sans-serif;margin:2em;background:#fafafa;color:#222}
article{background:#fff;border:1px solid #ddd;border-radius:6px;padding:1em;margin-bottom:1.5em}
h2{margin:.2em 0;font-size:1.15em} p.lead{color:#555;font-size:.9em;max-width:70em}
.row{display:flex;align-items:center;gap:.5em;margin:.4em 0}
.row .label{width:9em;font-weight:600;font-size:.85em}
.row .label small{display:block;font-weight:400;color:#666}
figure{margin:0;text-align:center;font-size:.7em;color:#666}
img{display:block;border:3px solid transparent;border-radius:3px}
img.hit{border-color:#1a9c3a}
"""


def thumbnails(shard_dir: Path, keys: set[str]) -> dict[str, str]:
    """key -> data URI of a small JPEG thumbnail, for the keys asked for."""
    found: dict[str, str] = {}
    wanted = list(keys)
    for path in shards.list_shards(shard_dir):
        table = pq.read_table(path, columns=["key", "jpeg"])
        table = table.filter(pc.is_in(table["key"], value_set=pc.cast(wanted, "string")))
        for key, jpeg in zip(table["key"].to_pylist(), table["jpeg"].to_pylist(), strict=True):
            with Image.open(io.BytesIO(jpeg)) as im:
                im.thumbnail((THUMB, THUMB))
                buf = io.BytesIO()
                im.convert("RGB").save(buf, "JPEG", quality=75)
            found[key] = "data:image/jpeg;base64," + base64.b64encode(buf.getvalue()).decode()
    return found


def run(
    params: ReportParams, articles: Path, results: Sequence[Path], shard_dir: Path, out: Path
) -> None:
    """Write ``out`` (gallery.html): up to ``max_articles`` articles, ``top`` images each."""
    arts = pq.read_table(articles).slice(0, params.max_articles).to_pylist()
    ids = {a["article_id"] for a in arts}
    top: dict[str, dict[str, list[tuple[str, float]]]] = defaultdict(dict)
    for path in sorted(results):
        rows = pq.read_table(path).filter(pc.field("rank") <= params.top).to_pylist()
        for r in rows:
            if r["article_id"] in ids:
                top[r["article_id"]].setdefault(path.stem, []).append((r["key"], r["score"]))
    keys = {a["image_id"] for a in arts} | {
        k for per in top.values() for lst in per.values() for k, _ in lst
    }
    thumbs = thumbnails(shard_dir, keys)
    approaches = [p.stem for p in sorted(results)]
    truth = {a["article_id"]: a["image_id"] for a in arts}
    ranks = {p.stem: dict(zip(truth, original_ranks(p, truth), strict=True)) for p in results}
    parts = [
        f"<!doctype html><meta charset=utf-8><title>newsimg gallery</title><style>{STYLE}</style>"
    ]
    parts.append(
        f"<h1>newsimg gallery</h1><p>{len(arts)} articles; top {params.top} per approach; "
        "a green frame marks the article's original image.</p>"
    )
    for a in arts:
        found = {name: int(ranks[name][a["article_id"]]) for name in approaches}
        parts.append(_article_html(a, top[a["article_id"]], found, thumbs))
    atomic.write_text(out, "\n".join(parts))
    log.info("gallery: %d articles, %d thumbnails -> %s", len(arts), len(thumbs), out)


def _figure(uri: str | None, caption: str, hit: bool = False) -> str:
    img = f'<img src="{uri}" class="{"hit" if hit else ""}" alt="">' if uri else "(missing)"
    return f"<figure>{img}<figcaption>{html.escape(caption)}</figcaption></figure>"


def _article_html(a: dict, top: dict, found: dict[str, int], thumbs: dict[str, str]) -> str:
    """One article: its original, then per approach the top images and the original's rank."""
    lead = a["lead"][:400] + ("…" if len(a["lead"]) > 400 else "")
    rows = [
        f'<div class="row"><span class="label">original</span>'
        f"{_figure(thumbs.get(a['image_id']), a['image_id'][:8], hit=True)}</div>"
    ]
    for name, rank in found.items():
        figs = "".join(
            _figure(thumbs.get(key), f"{i}. {score:.3f}", hit=key == a["image_id"])
            for i, (key, score) in enumerate(top.get(name, []), start=1)
        )
        where = f"original at #{rank}" if rank else "original not retrieved"
        label = f"{html.escape(name)}<small>{where}</small>"
        rows.append(f'<div class="row"><span class="label">{label}</span>{figs}</div>')
    return (
        f"<article><h2>{html.escape(a['article_id'])}. {html.escape(a['headline'])}</h2>"
        f'<p class="lead">{html.escape(lead)}</p>{"".join(rows)}</article>'
    )
