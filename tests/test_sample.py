"""The offline sample: real formats, deliberate faults, determinism, and pictures that match
their texts (the property retrieval on the sample depends on)."""

from __future__ import annotations

import hashlib
import json
import re
from pathlib import Path

import lxml.html
import numpy as np
import pytest
from PIL import Image

from newsimg import sample, sources

SMALL = {"seed": 7, "n_articles": 12, "pool_size": 80, "n24news_per_section": (2, 1, 1)}
TINY = {"n_articles": 5, "pool_size": 40, "n24news_per_section": (1, 1, 1)}

COUNT_WORDS = {"one", "two", "three", "four", "single"}
OBJECT_WORDS = {w for noun, t in sample.OBJECTS.items() for w in (noun, t.plural)}
SCENE_WORDS = {w for scene in sample.SCENES.values() for w in scene.keywords}


@pytest.fixture(scope="module")
def small(
    tmp_path_factory: pytest.TempPathFactory,
) -> tuple[Path, dict[str, int], sample.SamplePlan]:
    out = tmp_path_factory.mktemp("sample")
    counts = sample.generate(out, **SMALL)
    return out, counts, sample.plan_sample(**SMALL)


def words(text: str) -> set[str]:
    return set(re.findall(r"[a-z]+", text.lower()))


def tree(root: Path) -> dict[str, str]:
    """Every file under root -> sha256 of its bytes."""
    return {
        str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(root.rglob("*"))
        if p.is_file()
    }


def pictures(root: Path) -> dict[str, str]:
    """The JPEG files that hold an image (faults with no image data left out) -> sha256."""
    return {
        k: v
        for k, v in tree(root).items()
        if k.endswith(".jpg") and (root / k).read_bytes()[:2] == b"\xff\xd8"
    }


def colour_shares(image: Image.Image, attrs: sample.Attributes) -> dict[str, float]:
    """Share of pixels nearest to each object colour, against the object colours, the scene's
    palette and the motif accents: what an encoder that sees colour areas would see."""
    names = list(sample.COLOURS)
    palette = [
        *sample.COLOURS.values(),
        *sample.SCENES[attrs.scene].palette.values(),
        *sample.MOTIF_ACCENTS.values(),
    ]
    pixels = np.asarray(image.convert("RGB"), dtype=np.float32).reshape(-1, 3)
    dist = ((pixels[:, None, :] - np.asarray(palette, np.float32)[None]) ** 2).sum(-1)
    counts = np.bincount(dist.argmin(1), minlength=len(palette))[: len(names)]
    return dict(zip(names, (counts / len(pixels)).tolist(), strict=True))


def test_counts_and_sample_json(small):
    out, counts, plan = small
    assert counts == {**plan.counts(), "videos": 2, "missing_metadata": 1, "metadata_rows": 81}
    assert counts["articles"] == counts["newsimages"] == 12
    assert (counts["html_pages"], counts["html_missing"], counts["html_paywalled"]) == (11, 1, 1)
    assert counts["pool"] == 80
    assert counts["pool_distractors"] == 12 * 5
    assert counts["faults"] == 5
    assert all(counts[f"faults_{kind}"] == 1 for kind in sample.FAULT_KINDS)
    assert counts["pool_random"] == 80 - 60 - 5
    assert counts["bucket_objects"] == 79
    assert (counts["n24news_train"], counts["n24news_dev"], counts["n24news_test"]) == (48, 24, 24)
    meta = json.loads((out / "sample.json").read_text())
    assert meta["seed"] == 7
    assert meta["counts"] == counts
    assert meta["arguments"] == {
        "n_articles": 12,
        "pool_size": 80,
        "n24news_per_section": [2, 1, 1],
    }
    assert {p.name for p in out.iterdir()} == set(sample.OUTPUTS)


def test_articles_csv_and_original_images(small):
    out, _, plan = small
    rows = sources.read_newsimages_csv(out / "articles.csv")
    header = (out / "articles.csv").read_text().splitlines()[0]
    assert header == ",".join(sources.NEWSIMAGES_COLUMNS)
    assert [r["article_id"] for r in rows] == [str(i) for i in range(1, 13)]
    sites = set()
    for row, article in zip(rows, plan.articles, strict=True):
        assert row["article_title"] == article.title
        assert re.fullmatch(r"[0-9A-F]{32}", row["image_id"])
        m = re.fullmatch(r"https://www\.([a-z]+)\.example/2025/06/[a-z0-9-]+", row["article_url"])
        assert m, row["article_url"]
        sites.add(m[1])
        assert row["image_url"] == f"https://www.{m[1]}.example/images/{row['image_id']}.jpg"
        assert re.fullmatch(r"[a-z-]+(,[a-z-]+)+", row["article_tags"])
        with Image.open(out / "newsimages" / f"{row['image_id']}.jpg") as im:
            im.load()
            assert im.format == "JPEG"
            assert 160 <= min(im.size) <= max(im.size) <= 320
            assert im.size == (article.picture.width, article.picture.height)
    assert len(sites) == 4
    assert len({r["image_id"] for r in rows}) == 12


def test_n24news_splits(small):
    out, _, plan = small
    image_ids = set()
    for split, k in zip(sources.N24NEWS_SPLITS, SMALL["n24news_per_section"], strict=True):
        items = sources.read_n24news(out / "n24news", split)
        assert len(items) == 24 * k
        assert sorted({i["section"] for i in items}) == sorted(sources.N24NEWS_SECTIONS)
        planned = [it.fields for it in plan.n24news if it.split == split]
        assert items == planned
        for item in items:
            assert all(isinstance(item[f], str) and item[f] for f in sources.N24NEWS_FIELDS)
            assert 120 <= len(item["article"].split()) <= 300
            assert item["image_url"].endswith(f"/{item['image_id']}.jpg")
            with Image.open(sources.n24news_image_path(out / "n24news", item["image_id"])) as im:
                im.load()
                assert 160 <= min(im.size) <= max(im.size) <= 320
            image_ids.add(item["image_id"])
    assert len(image_ids) == 96


def test_bucket_holds_manifest_except_404s_and_faults_are_as_described(small):
    out, _, plan = small
    rows = list(sources.read_yfcc_manifest(out / "yfcc" / "manifest.txt"))
    pool = {p.photo_id for p in plan.pool}
    assert len(rows) == len(plan.pool) + 2  # and two videos, never in the bucket
    rows = [r for r in rows if r.photo_id in pool]
    assert [(r.photo_id, r.hash) for r in rows] == [(p.photo_id, p.hash) for p in plan.pool]
    assert len({r.hash for r in rows}) == len({r.photo_id for r in rows}) == 80
    bucket = out / "yfcc" / "bucket"
    stored = {str(p.relative_to(bucket)) for p in bucket.rglob("*") if p.is_file()}
    missing = {p.key for p in plan.pool if p.fault == "missing"}
    assert stored == {r.key for r in rows} - missing
    seen = set()
    for p in plan.pool:
        path = bucket / p.key
        if p.fault == "missing":
            assert not path.exists()
        elif p.fault == "empty":
            assert path.stat().st_size == 0
        elif p.fault == "html":
            assert path.read_bytes().lstrip().startswith(b"<")
            with pytest.raises(OSError, match="cannot identify"):
                Image.open(path)
        elif p.fault == "truncated":
            with pytest.raises(OSError, match="truncated"), Image.open(path) as im:
                im.load()
        else:
            with Image.open(path) as im:
                im.load()
                if p.fault == "tiny":
                    assert im.size == (8, 8)
                else:
                    assert 160 <= min(im.size) <= max(im.size) <= 320
        seen.add(p.fault)
    assert seen == {None, *sample.FAULT_KINDS}


def test_same_seed_gives_identical_files_and_another_seed_different_ones(tmp_path):
    a, b, c = tmp_path / "a", tmp_path / "b", tmp_path / "c"
    sample.generate(a, seed=3, n_articles=4, pool_size=30, n24news_per_section=(1, 1, 1))
    sample.generate(a, seed=3, **TINY)  # over an older sample: nothing stale may remain
    sample.generate(b, seed=3, **TINY)
    sample.generate(c, seed=4, **TINY)
    ta, tb, tc = tree(a), tree(b), tree(c)
    assert ta == tb
    assert ta["articles.csv"] != tc["articles.csv"]
    pictures_a, pictures_c = pictures(a), pictures(c)
    assert len(pictures_a) == 5 + 24 * 3 + 40 - 3  # all but the 404, empty and html faults
    assert len(set(pictures_a.values())) == len(pictures_a)  # no two pictures alike
    assert not set(pictures_a.values()) & set(pictures_c.values())


def test_headline_colour_is_the_dominant_object_colour_of_the_picture(small):
    out, _, plan = small
    pictures = [
        (a.title, out / "newsimages" / f"{a.image_id}.jpg", a.picture) for a in plan.articles
    ]
    pictures += [
        (
            it.fields["headline"],
            out / "n24news" / "imgs" / f"{it.fields['image_id']}.jpg",
            it.picture,
        )
        for it in plan.n24news
    ]
    for headline, path, picture in pictures:
        named = words(headline) & set(sample.COLOURS)
        assert named == {picture.attrs.colour}, headline
        with Image.open(path) as im:
            shares = colour_shares(im, picture.attrs)
        dominant = max(shares, key=shares.get)
        assert dominant == picture.attrs.colour, (headline, shares)
        assert 0.1 <= shares[dominant] <= 0.45, (headline, shares[dominant])


def test_distractors_differ_from_their_article_in_exactly_one_attribute():
    plan = sample.plan_sample()  # the default sample's plan: no pixels, fast
    by_id = {a.article_id: a.picture.attrs for a in plan.articles}
    kinds: dict[str, set[str]] = {a: set() for a in by_id}
    for p in plan.pool:
        if p.role != "distractor":
            continue
        assert by_id[p.of_article].differences(p.picture.attrs) == [p.changed]
        kinds[p.of_article].add(p.changed)
    assert all(k == set(sample.VARIED) for k in kinds.values())
    randoms = {p.picture.attrs for p in plan.pool if p.role == "random"}
    assert not randoms & set(by_id.values())


def test_texts_name_the_attributes_and_fillers_do_not():
    plan = sample.plan_sample()
    for a in plan.articles:
        attrs, thing = a.picture.attrs, sample.OBJECTS[a.picture.attrs.obj]
        for text in (a.title, a.lead):
            assert words(text) & set(sample.COLOURS) == {attrs.colour}, text
            assert words(text) & OBJECT_WORDS <= {attrs.obj, thing.plural}, text
            assert words(text) & {attrs.obj, thing.plural}, text
            assert words(text) & SCENE_WORDS <= set(sample.SCENES[attrs.scene].keywords), text
            assert words(text) & SCENE_WORDS, text
        if attrs.count > 1:
            assert sample.COUNT_WORDS[attrs.count] in words(a.title)
            assert sample.COUNT_WORDS[attrs.count] in words(a.lead)
        assert 3 <= len(a.paragraphs) <= 6
        for paragraph in a.paragraphs[1:]:
            forbidden = set(sample.COLOURS) | OBJECT_WORDS | SCENE_WORDS | COUNT_WORDS
            assert not words(paragraph) & forbidden, paragraph
    for item in plan.n24news:
        attrs = item.picture.attrs
        for field in ("headline", "abstract", "caption", "article"):
            assert attrs.colour in words(item.fields[field])
        first = item.fields["article"].split(". ")[0]
        assert words(first) & {attrs.obj, sample.OBJECTS[attrs.obj].plural}


def test_pages_hold_headline_lead_and_realistic_markup(small):
    out, _, plan = small
    structures = set()
    for a in plan.articles:
        path = out / "html" / f"{a.article_id}.html"
        if a.page == "missing":
            assert not path.exists()
            continue
        doc = lxml.html.fromstring(path.read_bytes())
        assert [h.text_content() for h in doc.xpath("//h1")] == [a.title]
        assert doc.xpath("//meta[@property='og:title']/@content") == [a.title]
        assert doc.xpath("//meta[@property='og:description']/@content") == [a.description]
        assert doc.findtext(".//title").startswith(a.title)
        assert doc.xpath("//article//figure//img/@src") == [a.image_url]
        assert a.caption in doc.xpath("string(//article//figcaption)")
        assert a.author in doc.xpath("string(//article)")
        assert doc.xpath("//article//time/@datetime") == [a.published]
        assert [x.text_content() for x in doc.xpath("//aside//a")] == [t for t, _ in a.related]
        assert len(doc.xpath("//nav//a")) == len(sample.NAV)
        assert doc.xpath("//footer")
        paragraphs = [p.text_content() for p in doc.xpath("//article//p")]
        if a.page == "paywall":
            assert paragraphs == []
            assert "subscribers" in doc.xpath("string(//article)")
        else:
            assert a.lead in paragraphs[0]
            assert paragraphs[1:] == list(a.paragraphs[1:])
        structures.add(doc.xpath("string(//h1/@class)"))  # the headline markup differs per site
    assert len(structures) == 4


def test_palettes_keep_object_colours_apart_from_backgrounds():
    objects = np.asarray(list(sample.COLOURS.values()), np.float32)
    backgrounds = [c for s in sample.SCENES.values() for c in s.palette.values()]
    backgrounds += list(sample.MOTIF_ACCENTS.values())
    gaps = np.linalg.norm(objects[:, None] - np.asarray(backgrounds, np.float32)[None], axis=-1)
    assert gaps.min() >= 60
    between = np.linalg.norm(objects[:, None] - objects[None], axis=-1)
    assert between[~np.eye(len(objects), dtype=bool)].min() >= 80


def test_bad_arguments_are_refused(tmp_path):
    with pytest.raises(ValueError, match="n24news_per_section"):
        sample.generate(tmp_path, n_articles=4, pool_size=40, n24news_per_section=(1, 0, 1))
    with pytest.raises(ValueError, match="pool_size"):
        sample.generate(tmp_path, n_articles=10, pool_size=12)
    assert not any(tmp_path.iterdir())


def test_default_sample_is_small_with_few_faults(tmp_path):
    counts = sample.generate(tmp_path)
    assert counts["articles"] == 100
    assert counts["pool"] == 2000
    assert counts["pool_distractors"] == 500
    assert 0 < counts["faults"] < 0.02 * counts["pool"]
    assert (counts["n24news_train"], counts["n24news_dev"], counts["n24news_test"]) == (
        960,
        240,
        240,
    )
    size = sum(p.stat().st_size for p in tmp_path.rglob("*") if p.is_file())
    assert size < 30e6
    shapes = {
        np.sign(w - h) for w, h in (Image.open(p).size for p in (tmp_path / "newsimages").iterdir())
    }
    assert shapes == {-1, 0, 1}  # portrait, square and landscape originals
