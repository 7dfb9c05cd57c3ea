"""The plan: every decision of a sample (attributes, texts, ids, faults), made from the seed
before anything is written."""

from __future__ import annotations

import random
import re
from collections.abc import Callable, Sequence
from dataclasses import replace

from newsimg.sample.model import (
    FAULT_KINDS,
    VARIED,
    Article,
    Attributes,
    N24Item,
    Picture,
    PoolImage,
    SamplePlan,
)
from newsimg.sample.prose import AGENCIES, SECTIONS, SITES, TOWNS, Site
from newsimg.sample.texts import _slug, _Writer
from newsimg.sample.vocabulary import COLOURS, GENERAL_OBJECTS, SCENES, SECTION_OBJECT_SHARE
from newsimg.sources import N24NEWS_SECTIONS, N24NEWS_SPLITS

DISTRACTORS_PER_ARTICLE = 5
VAGUE_SHARE = 0.4  # articles whose headline names people, places or events, not the picture


def plan_sample(
    seed: int = 0,
    n_articles: int = 100,
    pool_size: int = 2000,
    n24news_per_section: tuple[int, int, int] = (40, 10, 10),
) -> SamplePlan:
    """Every attribute, text, id and fault of a sample, decided from ``seed`` alone.

    Cheap (no pixels): tests call it with :func:`generate`'s arguments to learn what each file
    should show, without the generator writing any extra file into the data folder.
    """
    _check_arguments(n_articles, pool_size, n24news_per_section)
    rng = random.Random(seed)
    writer = _Writer(rng)
    articles = _plan_articles(rng, writer, n_articles, seed)
    pool = _plan_pool(rng, articles, pool_size)
    n24news = _plan_n24news(rng, writer, n24news_per_section)
    return SamplePlan(seed, articles, pool, n24news)


def _check_arguments(n_articles: int, pool_size: int, per_section: Sequence[int]) -> None:
    if n_articles < 1:
        raise ValueError(f"n_articles must be at least 1, got {n_articles}")
    n_faults = len(FAULT_KINDS) * _faults_per_kind(pool_size)
    if pool_size < n_faults + n_articles:
        raise ValueError(
            f"pool_size {pool_size} is too small: it must hold {n_faults} faults and at least "
            f"one distractor for each of the {n_articles} articles"
        )
    if len(per_section) != len(N24NEWS_SPLITS) or min(per_section) < 1:
        raise ValueError(
            f"n24news_per_section must be {len(N24NEWS_SPLITS)} counts >= 1 "
            f"({', '.join(N24NEWS_SPLITS)}), got {tuple(per_section)}"
        )


def _faults_per_kind(pool_size: int) -> int:
    """0.2% of the pool per kind (1% in all), but at least one of each kind in any sample."""
    return max(1, pool_size // 500)


def _random_attributes(rng: random.Random, section: str | None = None) -> Attributes:
    section = section or rng.choice(N24NEWS_SECTIONS)
    return Attributes(
        section=section,
        scene=rng.choice(list(SCENES)),
        obj=_random_object(rng, section),
        colour=rng.choice(list(COLOURS)),
        count=rng.randint(1, 4),
    )


def _random_object(rng: random.Random, section: str) -> str:
    if rng.random() < SECTION_OBJECT_SHARE:
        return rng.choice(SECTIONS[section].objects)
    return rng.choice(GENERAL_OBJECTS)


def _vary(rng: random.Random, attrs: Attributes, field: str) -> Attributes:
    """``attrs`` with ``field`` changed to another value, everything else kept."""
    choices = {
        "colour": list(COLOURS),
        "scene": list(SCENES),
        "count": [1, 2, 3, 4],
        "obj": sorted(set(SECTIONS[attrs.section].objects) | set(GENERAL_OBJECTS)),
    }[field]
    current = getattr(attrs, field)
    return replace(attrs, **{field: rng.choice([c for c in choices if c != current])})


def _picture(rng: random.Random, attrs: Attributes) -> Picture:
    """A picture of ``attrs`` in a random format: landscape, portrait or square, 160-320 px."""
    shape = rng.choices(("landscape", "portrait", "square"), weights=(55, 30, 15))[0]
    if shape == "square":
        width = height = rng.randint(170, 280)
    else:
        long = rng.randint(200, 300)
        short = max(160, round(long / rng.choice((4 / 3, 3 / 2))))
        width, height = (long, short) if shape == "landscape" else (short, long)
    return Picture(attrs, width, height, rng.getrandbits(63))


def _make_vague(rng: random.Random, articles: list[Article]) -> list[Article]:
    """A share (:data:`VAGUE_SHARE`) of the articles get a vague headline; their lead, caption
    and page still name the picture. Drawn from a generator of their own (``rng``), so every
    other decision of the plan is the same as without them."""
    picked = set(rng.sample(range(len(articles)), round(VAGUE_SHARE * len(articles))))
    vague = _Writer(rng)
    out = []
    for i, a in enumerate(articles):
        if i in picked:
            title = vague.vague_headline(a.picture.attrs.section)
            url = f"https://www.{a.site.domain}.example/2025/06/{_slug(title)}"
            a = replace(a, title=title, url=url, headline_kind="vague")
        out.append(a)
    return out


def _plan_articles(
    rng: random.Random, writer: _Writer, n: int, seed: int = 0
) -> tuple[Article, ...]:
    sites = [SITES[i % len(SITES)] for i in range(n)]
    rng.shuffle(sites)
    articles = [_plan_article(rng, writer, str(i + 1), site) for i, site in enumerate(sites)]
    if n >= 4:  # two deliberately hard pages: no html at all, and a paywall without paragraphs
        missing, paywall = rng.sample(range(n), 2)
        articles[missing] = replace(articles[missing], page="missing")
        articles[paywall] = replace(articles[paywall], page="paywall")
    articles = _make_vague(random.Random(f"vague-{seed}"), articles)
    for i, article in enumerate(articles):
        others = [a for a in articles if a is not article]
        picked = rng.sample(others, min(len(others), rng.randint(3, 4)))
        articles[i] = replace(article, related=tuple((a.title, a.url) for a in picked))
    return tuple(articles)


def _plan_article(rng: random.Random, writer: _Writer, article_id: str, site: Site) -> Article:
    attrs = _random_attributes(rng)
    title = writer.headline(attrs)
    image_id = f"{rng.getrandbits(128):032X}"
    fillers = writer.filler_paragraphs(attrs.section, rng.randint(2, 5))
    return Article(
        article_id=article_id,
        site=site,
        url=f"https://www.{site.domain}.example/2025/06/{_slug(title)}",
        title=title,
        tags=",".join(writer.tags(attrs.section)),
        image_id=image_id,
        image_url=f"https://www.{site.domain}.example/images/{image_id}.jpg",
        picture=_picture(rng, attrs),
        paragraphs=(writer.lead(attrs), *fillers),
        description=writer.sentence_a(attrs),
        caption=writer.caption(attrs),
        credit=f"Photo: {writer.person()} / {rng.choice(AGENCIES)}",
        author=writer.person(),
        published=f"2025-06-{rng.randint(1, 28):02d}T{rng.randint(5, 22):02d}:"
        f"{rng.choice((0, 15, 30, 45)):02d}:00Z",
        town=rng.choice(TOWNS),
    )


def _plan_pool(rng: random.Random, articles: Sequence[Article], size: int) -> tuple[PoolImage, ...]:
    """Distractors for every article, faults, and random pictures for the rest, shuffled."""
    n_faults = len(FAULT_KINDS) * _faults_per_kind(size)
    per_article = min(DISTRACTORS_PER_ARTICLE, (size - n_faults) // len(articles))
    taken = {a.picture.attrs for a in articles}
    entries: list[tuple[str, Picture | None, str | None, str | None, str | None]] = []
    for article in articles:
        fields = [*VARIED, rng.choice(VARIED)][:per_article]
        rng.shuffle(fields)
        for field in fields:
            attrs = _vary(rng, article.picture.attrs, field)
            entries.append(("distractor", _picture(rng, attrs), article.article_id, field, None))
    for kind in FAULT_KINDS:
        for _ in range(_faults_per_kind(size)):
            picture = _picture(rng, _random_attributes(rng)) if kind == "truncated" else None
            entries.append(("fault", picture, None, None, kind))
    while len(entries) < size:
        attrs = _random_attributes(rng)
        if attrs not in taken:  # a random picture never shows exactly what an article shows
            entries.append(("random", _picture(rng, attrs), None, None, None))
    rng.shuffle(entries)
    hashes = _unique(lambda: f"{rng.getrandbits(128):032x}", size)
    photo_ids = _unique(lambda: rng.randrange(10**8, 10**10), size)
    return tuple(
        PoolImage(pid, h, role, picture, of, changed, fault)
        for (role, picture, of, changed, fault), h, pid in zip(
            entries, hashes, photo_ids, strict=True
        )
    )


def _unique(draw: Callable[[], object], n: int) -> list:
    seen: dict[object, None] = {}
    while len(seen) < n:
        seen[draw()] = None
    return list(seen)


def _plan_n24news(
    rng: random.Random, writer: _Writer, per_section: Sequence[int]
) -> tuple[N24Item, ...]:
    items = []
    for split, k in zip(N24NEWS_SPLITS, per_section, strict=True):
        in_split = [
            _plan_n24_item(rng, writer, split, section)
            for section in N24NEWS_SECTIONS
            for _ in range(k)
        ]
        rng.shuffle(in_split)
        items += in_split
    return tuple(items)


def _plan_n24_item(rng: random.Random, writer: _Writer, split: str, section: str) -> N24Item:
    attrs = _random_attributes(rng, section)
    headline = writer.headline(attrs)
    image_id = f"{rng.getrandbits(128):032x}"
    date = f"{rng.randint(2018, 2020)}/{rng.randint(1, 12):02d}/{rng.randint(1, 28):02d}"
    folder = re.sub(r"[^a-z]+", "-", section.lower()).strip("-")
    fields = {
        "section": section,
        "headline": headline,
        "abstract": writer.sentence_a(attrs),
        "caption": writer.caption(attrs, credit=rng.random() < 0.5),
        "article": writer.body(attrs, words=rng.randint(120, 300)),
        "image_id": image_id,
        "image_url": f"https://static01.nyt.example/images/{date}/{folder}/{image_id}.jpg",
        "article_url": f"https://www.nytimes.example/{date}/{folder}/{_slug(headline)}.html",
    }
    return N24Item(split, fields, _picture(rng, attrs))
