"""What people look at: an offline HTML gallery, and the MediaEval 2025 submission zip.

The gallery shows per article its headline, lead, original image and each approach's top images
with their scores, thumbnails inlined as data URIs; plain JS/CSS filters by (predicted) category
and approach, also settable from the URL hash (``gallery.html#category=Sports&approach=lam``).

The submission is ``[group].zip`` holding
``[group]/RET_[approach]_[LARGE|SMALL]/[article_id]_[group]_[approach].png``: per article the
best-ranked image that is not an original (source ``newsimages``), resized to cover 460x260 and
centre-cropped, as PNG. LARGE holds every article (so it covers SMALL), SMALL the articles of the
MediaEval SMALL set the data has. The zip is validated before the folder is committed.
"""

from __future__ import annotations

import base64
import csv
import html
import io
import json
import logging
import re
import zipfile
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
from PIL import Image, ImageOps

from newsimg import atomic
from newsimg.errors import InputError, NewsimgError
from newsimg.metadata.lookup import Credit, Metadata
from newsimg.metadata.policy import check_results
from newsimg.metrics import SMALL_IDS, original_ranks, read_per_article
from newsimg.params import ReportParams
from newsimg.store import shards

log = logging.getLogger(__name__)

THUMB = 144  # px, longer side
ORIGINAL_SOURCE = "newsimages"

STYLE = """
body{font-family:system-ui,sans-serif;margin:2em;background:#fafafa;color:#222}
article{background:#fff;border:1px solid #ddd;border-radius:6px;padding:1em;margin-bottom:1.5em}
article[hidden],.row[hidden]{display:none}
h2{margin:.2em 0;font-size:1.15em} p.lead{color:#555;font-size:.9em;max-width:70em}
.cat{display:inline-block;background:#eef;border-radius:3px;padding:0 .4em;font-size:.8em}
.row{display:flex;align-items:center;gap:.5em;margin:.4em 0}
.row .label{width:9em;font-weight:600;font-size:.85em}
.row .label small{display:block;font-weight:400;color:#666}
figure{margin:0;text-align:center;font-size:.7em;color:#666;max-width:150px}
.credit{font-size:.9em} .credit a{color:#555}
img{display:block;border:3px solid transparent;border-radius:3px}
img.hit{border-color:#1a9c3a}
#filters{position:sticky;top:0;background:#fafafa;padding:.5em 0;border-bottom:1px solid #ddd}
#filters label{margin-right:1em}
"""

SCRIPT = """
(function(){
  var sel=document.getElementById('category');
  var boxes=[].slice.call(document.querySelectorAll('#filters input[data-approach]'));
  function apply(){
    var cat=sel.value, on={};
    boxes.forEach(function(b){on[b.dataset.approach]=b.checked;});
    var shown=0;
    [].forEach.call(document.querySelectorAll('article[data-article]'),function(a){
      var hide=cat!=='*'&&a.dataset.category!==cat;
      a.hidden=hide; if(!hide) shown++;
      [].forEach.call(a.querySelectorAll('.row[data-approach]'),function(r){
        r.hidden=!on[r.dataset.approach];
      });
    });
    document.getElementById('shown').textContent=shown;
  }
  var h={};
  location.hash.replace(/^#/,'').split('&').forEach(function(p){
    var kv=p.split('='); if(kv[0]) h[kv[0]]=decodeURIComponent(kv[1]||'');
  });
  if(h.category!==undefined){
    [].forEach.call(sel.options,function(o){if(o.value===h.category) sel.value=h.category;});
  }
  if(h.approach!==undefined){
    var want=h.approach.split(',');
    boxes.forEach(function(b){b.checked=want.indexOf(b.dataset.approach)>=0;});
  }
  sel.addEventListener('change',apply);
  boxes.forEach(function(b){b.addEventListener('change',apply);});
  apply();
})();
"""


# --- images from the shards ---------------------------------------------------------------


def thumbnails(shard_dir: Path, keys: set[str]) -> dict[str, str]:
    """key -> data URI of a small JPEG thumbnail, for the keys asked for."""
    found: dict[str, str] = {}
    for key, jpeg in shards.read_images(shard_dir, keys).items():
        with Image.open(io.BytesIO(jpeg)) as im:
            im.thumbnail((THUMB, THUMB))
            buf = io.BytesIO()
            im.convert("RGB").save(buf, "JPEG", quality=75)
        found[key] = "data:image/jpeg;base64," + base64.b64encode(buf.getvalue()).decode()
    return found


def categories_of(per_article: Path | None, approaches: Sequence[str]) -> dict[str, str]:
    """article_id -> section predicted by the LAM head (the lam approach's, else any with one)."""
    if per_article is None:
        return {}
    order = sorted(approaches, key=lambda a: a != "lam")
    for name in order:
        path = per_article / f"{name}.parquet"
        if path.is_file():
            rows = read_per_article(path)
            cats = {a: r["category"] for a, r in rows.items() if r["category"]}
            if cats:
                return cats
    return {}


# --- the gallery ----------------------------------------------------------------------------


def run(
    params: ReportParams,
    articles: Path,
    results: Sequence[Path],
    shard_dir: Path,
    out: Path,
    per_article: Path | None = None,
    submission: Path | None = None,
    metadata: Path | None = None,
    licences: Sequence[str] | None = None,
) -> None:
    """Write ``out`` (gallery.html, up to ``max_articles`` articles, ``top`` images per approach)
    and, when ``submission`` is given, the validated MediaEval export folder.

    Every photo shown or exported carries its credit from ``metadata`` (the metadata stage's
    folder); under a licence policy (``licences``, retrieve's) results holding a forbidden photo
    are an error, so nothing forbidden is shown or exported."""
    meta = Metadata.open(metadata)
    check_results(results, meta, licences)
    gallery(params, articles, results, shard_dir, out, per_article, meta)
    if submission is not None:
        export(params, articles, results, shard_dir, submission, meta)


def gallery(
    params: ReportParams,
    articles: Path,
    results: Sequence[Path],
    shard_dir: Path,
    out: Path,
    per_article: Path | None = None,
    metadata: Metadata | None = None,
) -> None:
    arts = pq.read_table(articles).slice(0, params.max_articles).to_pylist()
    ids = {a["article_id"] for a in arts}
    top: dict[str, dict[str, list[tuple[str, float]]]] = defaultdict(dict)
    for path in sorted(results):
        table = pq.read_table(path)
        keep = np.asarray(table["rank"]) <= params.top
        for r in table.filter(keep).to_pylist():
            if r["article_id"] in ids:
                top[r["article_id"]].setdefault(path.stem, []).append((r["key"], r["score"]))
    keys = {a["image_id"] for a in arts} | {
        k for per in top.values() for lst in per.values() for k, _ in lst
    }
    thumbs = thumbnails(shard_dir, keys)
    credits = (metadata or Metadata.empty()).credits(keys, own={a["image_id"] for a in arts})
    approaches = [p.stem for p in sorted(results)]
    truth = {a["article_id"]: a["image_id"] for a in arts}
    ranks = {p.stem: dict(zip(truth, original_ranks(p, truth), strict=True)) for p in results}
    cats = categories_of(per_article, approaches)
    present = sorted({cats.get(a["article_id"], "") for a in arts} - {""})
    parts = [
        f"<!doctype html><meta charset=utf-8><title>newsimg gallery</title><style>{STYLE}</style>"
    ]
    parts.append(
        f"<h1>newsimg gallery</h1><p>{len(arts)} articles; top {params.top} per approach; "
        "a green frame marks the article's original image; categories are predicted by the "
        "LAM's category head.</p>"
    )
    options = "".join(
        f'<option value="{html.escape(c)}">{html.escape(c)}</option>' for c in present
    )
    boxes = "".join(
        f'<label><input type="checkbox" checked data-approach="{html.escape(n)}">'
        f"{html.escape(n)}</label>"
        for n in approaches
    )
    parts.append(
        '<div id="filters"><label>category <select id="category">'
        f'<option value="*">all</option>{options}</select></label>{boxes}'
        f'<span><span id="shown">{len(arts)}</span> shown</span></div>'
    )
    for a in arts:
        found = {name: int(ranks[name][a["article_id"]]) for name in approaches}
        cat = cats.get(a["article_id"], "")
        parts.append(_article_html(a, cat, top[a["article_id"]], found, thumbs, credits))
    parts.append(f"<script>{SCRIPT}</script>")
    atomic.write_text(out, "\n".join(parts))
    log.info("gallery: %d articles, %d thumbnails -> %s", len(arts), len(thumbs), out)


def _figure(uri: str | None, caption: str, hit: bool = False, credit: Credit | None = None) -> str:
    img = f'<img src="{uri}" class="{"hit" if hit else ""}" alt="">' if uri else "(missing)"
    if credit is None:
        return f"<figure>{img}<figcaption>{html.escape(caption)}</figcaption></figure>"
    return (
        f'<figure data-key="{html.escape(credit.key)}" data-licence="{credit.licence}"'
        f' title="{html.escape(_tooltip(credit))}">{img}'
        f"<figcaption>{html.escape(caption)}<br>{_credit_html(credit)}</figcaption></figure>"
    )


def _credit_html(c: Credit) -> str:
    """The credit line, the author's part linked to the photo's page, the licence to its deed."""
    if c.licence in ("own",):
        return '<span class="credit">own image</span>'
    who = html.escape(c.nickname or "unknown author")
    if c.page_url:
        who = f'<a href="{html.escape(c.page_url)}">{who}</a>'
    label = html.escape(c.licence_label)
    if c.licence_link:
        label = f'<a href="{html.escape(c.licence_link)}">{label}</a>'
    return f'<span class="credit">Photo: {who} via Flickr, {label}</span>'


def _tooltip(c: Credit) -> str:
    return " · ".join(x for x in (c.title or "", ", ".join(c.tags), c.credit) if x)


def _article_html(
    a: dict,
    category: str,
    top: dict,
    found: dict[str, int],
    thumbs: dict[str, str],
    credits: Mapping[str, Credit] | None = None,
) -> str:
    """One article: its original, then per approach the top images and the original's rank."""
    lead = (a.get("lead") or "")[:400] + ("…" if len(a.get("lead") or "") > 400 else "")
    rows = [
        f'<div class="row"><span class="label">original</span>'
        f"{_figure(thumbs.get(a['image_id']), a['image_id'][:8], hit=True)}</div>"
    ]
    credits = credits or {}
    for name, rank in found.items():
        figs = "".join(
            _figure(
                thumbs.get(key),
                f"{i}. {score:.3f}",
                hit=key == a["image_id"],
                credit=credits.get(key),
            )
            for i, (key, score) in enumerate(top.get(name, []), start=1)
        )
        where = f"original at #{rank}" if rank else "original not retrieved"
        label = f"{html.escape(name)}<small>{where}</small>"
        rows.append(
            f'<div class="row" data-approach="{html.escape(name)}">'
            f'<span class="label">{label}</span>{figs}</div>'
        )
    badge = f' <span class="cat">{html.escape(category)}</span>' if category else ""
    return (
        f'<article data-article="{html.escape(a["article_id"])}" '
        f'data-category="{html.escape(category)}">'
        f"<h2>{html.escape(a['article_id'])}. {html.escape(a['headline'])}{badge}</h2>"
        f'<p class="lead">{html.escape(lead)}</p>{"".join(rows)}</article>'
    )


# --- the MediaEval export -------------------------------------------------------------------


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
        if a not in wanted or r["source"] == ORIGINAL_SOURCE or r["key"] in originals:
            continue
        if a not in best or r["rank"] < best[a]["rank"]:
            best[a] = r
    return best


def _credit_columns(c: Credit) -> dict[str, str]:
    return {
        "credit": c.credit,
        "licence": c.licence,
        "licence_url": c.licence_link or "",
        "page_url": c.page_url or "",
        "title": c.title or "",
    }


def entry_name(group: str, approach: str, subset: str, article_id: str) -> str:
    return f"{group}/RET_{approach}_{subset}/{article_id}_{group}_{approach}.png"


def export(
    params: ReportParams,
    articles: Path,
    results: Sequence[Path],
    shard_dir: Path,
    out: Path,
    metadata: Metadata | None = None,
) -> dict[str, int]:
    """Write ``out/[group].zip`` and ``out/manifest.csv`` (what each PNG was made from, and its
    credit: licence, licence link, the photo's page).

    Returns the number of images per folder of the zip.
    """
    table = pq.read_table(articles, columns=["article_id", "image_id"]).to_pydict()
    ids = table["article_id"]
    originals = set(table["image_id"])
    by_name = {p.stem: p for p in results}
    missing = sorted(set(params.approaches) - set(by_name))
    if missing:
        raise InputError(f"report.approaches names {missing}, which have no results")
    subsets = {"LARGE": list(ids), "SMALL": [a for a in ids if a in SMALL_IDS]}
    if not subsets["SMALL"]:
        log.info("no article of the MediaEval SMALL set in the data: no RET_*_SMALL folders")
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
    keys = {r["key"] for best in chosen.values() for r in best.values()}
    images = shards.read_images(shard_dir, keys)
    lost = sorted(keys - set(images))
    if lost:
        raise InputError(f"{len(lost)} chosen images are not in the shards (first: {lost[:3]})")
    credits = (metadata or Metadata.empty()).credits(keys, own=originals)
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
                     "score": round(float(r["score"]), 6), **_credit_columns(credits[r["key"]])}
                )  # fmt: skip
    with atomic.atomic_path(out) as tmp:
        tmp.mkdir()
        zpath = tmp / f"{params.group}.zip"
        with zipfile.ZipFile(zpath, "w", zipfile.ZIP_STORED) as z:
            for m in manifest:
                z.writestr(m["name"], pngs[m["key"]])
        with open(tmp / "manifest.csv", "w", newline="") as f:
            w = csv.DictWriter(f, fieldnames=list(manifest[0]) if manifest else ["name"])
            w.writeheader()
            w.writerows(manifest)
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
    for m in manifest:
        if m["source"] == ORIGINAL_SOURCE or m["key"] in originals:
            raise SubmissionError(f"{m['name']} is an article's original image ({m['key']})")
    return {f"RET_{a}_{s}": len(v) for (a, s), v in sorted(seen.items())}
