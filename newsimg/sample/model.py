"""The plan's data: what a picture shows, and every article, pool image and N24News item."""

from __future__ import annotations

from dataclasses import dataclass

from newsimg.sample.prose import Site
from newsimg.sources import N24NEWS_SPLITS

FAULT_KINDS = ("missing", "empty", "html", "truncated", "tiny")
VARIED = ("colour", "obj", "count", "scene")  # what a distractor changes, one at a time


@dataclass(frozen=True)
class Attributes:
    """What a picture shows; texts name all of it but the motif, which the section implies."""

    section: str
    scene: str
    obj: str
    colour: str
    count: int

    def differences(self, other: Attributes) -> list[str]:
        """Names of the fields in which ``other`` differs from this."""
        return [f for f in ("section", *VARIED) if getattr(self, f) != getattr(other, f)]


@dataclass(frozen=True)
class Picture:
    attrs: Attributes
    width: int
    height: int
    seed: int  # drives placement, sizes and noise, so equal attributes still give new pixels


@dataclass(frozen=True)
class Article:
    """A NewsImages article, its saved page and its original picture."""

    article_id: str
    site: Site
    url: str
    title: str
    tags: str
    image_id: str
    image_url: str
    picture: Picture
    paragraphs: tuple[str, ...]  # the first is the lead
    description: str
    caption: str
    credit: str
    author: str
    published: str  # ISO 8601, UTC
    town: str  # the dateline
    page: str = "full"  # "full", "missing" (no html file) or "paywall" (no body paragraphs)
    related: tuple[tuple[str, str], ...] = ()  # (headline, url) of other articles
    # "descriptive": the headline names the picture; "vague": only people, places, events (the
    # lead names the picture). The score stage reads it from subsets.csv, the pipeline never.
    headline_kind: str = "descriptive"

    @property
    def lead(self) -> str:
        return self.paragraphs[0]

    def csv_row(self) -> dict[str, str]:
        return {
            "article_id": self.article_id,
            "article_url": self.url,
            "article_title": self.title,
            "article_tags": self.tags,
            "image_id": self.image_id,
            "image_url": self.image_url,
        }


@dataclass(frozen=True)
class PoolImage:
    """One manifest row of the YFCC-style pool and what its bucket object is."""

    photo_id: int
    hash: str
    role: str  # "distractor", "random" or "fault"
    picture: Picture | None  # None for faults that hold no picture
    of_article: str | None = None  # distractors: the article they imitate
    changed: str | None = None  # distractors: the one attribute that differs
    fault: str | None = None  # faults: one of FAULT_KINDS

    @property
    def key(self) -> str:
        h = self.hash
        return f"{h[0:3]}/{h[3:6]}/{h}.jpg"


@dataclass(frozen=True)
class N24Item:
    split: str
    fields: dict[str, str]  # the N24News keys, in N24NEWS_FIELDS order
    picture: Picture


@dataclass(frozen=True)
class SamplePlan:
    seed: int
    articles: tuple[Article, ...]
    pool: tuple[PoolImage, ...]
    n24news: tuple[N24Item, ...]

    def counts(self) -> dict[str, int]:
        roles = [p.role for p in self.pool]
        faults = [p.fault for p in self.pool if p.fault]
        pages = [a.page for a in self.articles]
        counts = {
            "articles": len(self.articles),
            "articles_vague_headline": sum(a.headline_kind == "vague" for a in self.articles),
            "html_pages": len(pages) - pages.count("missing"),
            "html_missing": pages.count("missing"),
            "html_paywalled": pages.count("paywall"),
            "newsimages": len(self.articles),
            "pool": len(self.pool),
            "pool_distractors": roles.count("distractor"),
            "pool_random": roles.count("random"),
            "bucket_objects": len(self.pool) - faults.count("missing"),
            "faults": len(faults),
        }
        counts.update({f"faults_{kind}": faults.count(kind) for kind in FAULT_KINDS})
        splits = [item.split for item in self.n24news]
        counts.update({f"n24news_{s}": splits.count(s) for s in N24NEWS_SPLITS})
        return counts
