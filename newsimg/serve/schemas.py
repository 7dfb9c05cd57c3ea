"""Request and response bodies of the serve API (they make the OpenAPI document at /docs)."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

QUERY_FIELDS = ("text", "headline", "url", "key", "article_id")


class SearchRequest(BaseModel):
    """One query: exactly one of ``text``, ``headline`` (+ ``lead``), ``url``, ``key`` or
    ``article_id``; unset options take the serve section's defaults."""

    model_config = ConfigDict(extra="forbid")

    text: str | None = Field(None, description="free text, searched as it is")
    headline: str | None = Field(None, description="an article's headline (with `lead`)")
    lead: str | None = Field(None, description="its lead; made into the approach's text")
    url: str | None = Field(None, description="an article page: fetched, its lead extracted")
    key: str | None = Field(None, description="a pool image's key: more like this")
    article_id: str | None = Field(None, description="a pipeline article, searched live")
    approach: str | None = Field(None, description="headline, headline_lead or lam")
    k: int | None = Field(None, ge=1, description="results per page")
    offset: int = Field(0, ge=0, description="results skipped (paging)")
    dedup: bool | None = Field(None, description="fold near-duplicates into the better one")
    min_score: float | None = Field(None, ge=-1, le=1, description="drop results below it")
    include_originals: bool | None = Field(None, description="let the articles' own photos in")

    @model_validator(mode="after")
    def _one_query(self) -> SearchRequest:
        given = [f for f in QUERY_FIELDS if getattr(self, f) is not None]
        if len(given) != 1:
            raise ValueError(
                "give exactly one of text, headline (+ lead), url, key or article_id; "
                f"got {', '.join(given) or 'none'}"
            )
        if self.lead is not None and self.headline is None:
            raise ValueError("lead needs a headline")
        return self


class Size(BaseModel):
    width: int | None = None
    height: int | None = None


class Duplicate(BaseModel):
    key: str
    score: float
    thumbnail: str


class Result(BaseModel):
    rank: int
    key: str
    score: float
    source: str
    size: Size
    thumbnail: str = Field(description="a small JPEG of the photo")
    crop: str = Field(description="the 460x260 PNG exactly as the MediaEval export makes it")
    image: str = Field(description="the stored JPEG")
    metadata: dict = Field(
        description="source, original size, YFCC photo id and shard (from the shards); licence, "
        "credit line, Flickr page, title and tags (from the metadata stage)"
    )
    duplicates: list[Duplicate] = Field(default_factory=list, description="folded into this one")


class Timings(BaseModel):
    encode_ms: float
    search_ms: float
    fetch_ms: float
    total_ms: float


class Query(BaseModel):
    kind: Literal["text", "article", "url", "key", "image", "stored"]
    approach: str | None = None
    text: str | None = Field(None, description="the text searched by")
    headline: str | None = None
    lead: str | None = None
    url: str | None = None
    key: str | None = None
    article_id: str | None = None
    status: str = "ok"


class SearchResponse(BaseModel):
    query: Query
    k: int
    offset: int
    dedup: bool
    min_score: float | None
    include_originals: bool
    folded: int = Field(description="near-duplicates folded into the results shown")
    pool: int
    results: list[Result]
    timings: Timings


class ArticleSummary(BaseModel):
    article_id: str
    headline: str
    image_id: str
    status: str


class ArticleList(BaseModel):
    total: int
    offset: int
    articles: list[ArticleSummary]


class StoredApproach(BaseModel):
    text: str
    original_rank: int | None = Field(description="the original's rank in the stored top-k")
    results: list[Result]


class ArticleDetail(BaseModel):
    article_id: str
    headline: str
    lead: str
    url: str
    image_id: str
    status: str
    original: Result | None
    approaches: dict[str, StoredApproach]


class ExportItem(BaseModel):
    model_config = ConfigDict(extra="forbid")

    key: str
    score: float | None = None
    rank: int | None = None
    note: str | None = Field(None, max_length=2000)


class ExportRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    format: Literal["json", "csv", "markdown"] = "json"
    title: str = Field("newsimg shortlist", max_length=500)
    items: list[ExportItem] = Field(min_length=1, max_length=10_000)


class ErrorBody(BaseModel):
    status: int
    field: str | None
    message: str


class ErrorResponse(BaseModel):
    error: ErrorBody
