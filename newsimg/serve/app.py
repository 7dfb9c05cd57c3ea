"""The FastAPI app: routes, validation, errors as JSON, limits, metrics, the page.

Encoding and searching are blocking (torch, FAISS): they run in a thread pool sized to the cores,
never on the event loop, each bounded by ``serve.request_timeout_s``. Every error is JSON naming
the field at fault; an unexpected one is logged here and answered as a bare 500, never with a
stack trace.
"""

from __future__ import annotations

import asyncio
import csv
import io
import json
import logging
import os
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from importlib import resources
from typing import Annotated, Any, TypeVar

from fastapi import Depends, FastAPI, File, Form, Query, Request, UploadFile
from fastapi.exceptions import RequestValidationError
from fastapi.responses import HTMLResponse, JSONResponse, Response
from fastapi.staticfiles import StaticFiles
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
)

from newsimg.errors import InputError
from newsimg.serve import schemas
from newsimg.serve.engine import ORIGINAL_SOURCE, BadInput, Desk, Hit, NotFound, Timings
from newsimg.serve.pages import PageReader

log = logging.getLogger(__name__)
T = TypeVar("T")
LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30)


class Metrics:
    """Prometheus series of one app (its own registry: two apps in a process do not mix)."""

    def __init__(self, desk: Desk, workers: int) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        self.requests = Counter(
            "newsimg_requests", "HTTP requests by route and status", ["route", "status"], registry=r
        )
        self.latency = Histogram(
            "newsimg_request_seconds", "request latency", ["route"], buckets=LATENCY_BUCKETS,
            registry=r,
        )  # fmt: skip
        self.stage = Histogram(
            "newsimg_stage_seconds", "encode and search time per query", ["stage"],
            buckets=LATENCY_BUCKETS, registry=r,
        )  # fmt: skip
        Gauge("newsimg_pool_images", "images in the index", registry=r).set(desk.index.ntotal)
        Gauge("newsimg_articles", "the pipeline's articles", registry=r).set(desk.articles.num_rows)
        Gauge("newsimg_workers", "encode/search threads", registry=r).set(workers)
        Gauge("newsimg_load_seconds", "start-up load time", registry=r).set(desk.load_s)
        Gauge("newsimg_encode_batches", "forward passes of the text batcher", registry=r
              ).set_function(lambda: desk.batcher.batches)  # fmt: skip
        Gauge("newsimg_encode_texts", "texts the batcher encoded", registry=r
              ).set_function(lambda: desk.batcher.texts)  # fmt: skip


class TooLarge(Exception):
    pass


class BodyLimit:
    """Refuses bodies above ``limit`` bytes: by Content-Length before reading, else while
    reading (a chunked upload is cut off at the limit)."""

    def __init__(self, app: Any, limit: int) -> None:
        self.app, self.limit = app, limit

    async def __call__(self, scope: dict, receive: Callable, send: Callable) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = dict(scope.get("headers") or [])
        length = headers.get(b"content-length")
        if length is not None and (not length.isdigit() or int(length) > self.limit):
            response = error_response(
                413, "body", f"request body above {self.limit} bytes (serve.max_upload_bytes)"
            )
            await response(scope, receive, send)
            return
        seen = 0

        async def limited() -> dict:
            nonlocal seen
            message = await receive()
            seen += len(message.get("body", b""))
            if seen > self.limit:
                raise TooLarge
            return message

        await self.app(scope, limited, send)


def error_response(status: int, field: str | None, message: str) -> JSONResponse:
    body = {"error": {"status": status, "field": field, "message": message}}
    return JSONResponse(body, status_code=status)


def _validation_field(err: dict) -> str:
    if err.get("type") == "json_invalid":
        return "body"
    loc = [str(p) for p in err.get("loc", ()) if p not in ("body", "query", "path", "form")]
    return ".".join(loc) or "body"


def create_app(desk: Desk, *, workers: int | None = None) -> FastAPI:
    """The app over a loaded :class:`Desk`."""
    p = desk.params
    workers = workers or p.workers or os.cpu_count() or 1
    pool = ThreadPoolExecutor(workers, thread_name_prefix="newsimg-serve")
    metrics = Metrics(desk, workers)
    reader = PageReader(desk.leads_params)
    app = FastAPI(
        title="newsimg photo desk",
        description="Rank the pool's photos for any text, article, URL or image.",
        version="0.1.0",
    )
    app.state.desk, app.state.pool, app.state.metrics = desk, pool, metrics

    def too_slow() -> BadInput:
        return BadInput(
            "request", f"took longer than serve.request_timeout_s ({p.request_timeout_s} s)", 503
        )

    async def blocking(fn: Callable[[], T]) -> T:
        loop = asyncio.get_running_loop()
        try:
            return await asyncio.wait_for(loop.run_in_executor(pool, fn), p.request_timeout_s)
        except TimeoutError:
            raise too_slow() from None

    # --- errors and metrics ---------------------------------------------------------------

    @app.exception_handler(RequestValidationError)
    async def _invalid(request: Request, exc: RequestValidationError) -> JSONResponse:
        errors = exc.errors()
        first = errors[0] if errors else {}
        message = "; ".join(f"{_validation_field(e)}: {e.get('msg', '')}" for e in errors[:5])
        return error_response(422, _validation_field(first), message or "invalid request")

    @app.exception_handler(BadInput)
    async def _bad(request: Request, exc: BadInput) -> JSONResponse:
        return error_response(exc.status, exc.field, str(exc))

    @app.exception_handler(NotFound)
    async def _missing(request: Request, exc: NotFound) -> JSONResponse:
        return error_response(404, exc.field, str(exc))

    @app.exception_handler(TooLarge)
    async def _too_large(request: Request, exc: TooLarge) -> JSONResponse:
        return error_response(
            413, "body", f"request body above {p.max_upload_bytes} bytes (serve.max_upload_bytes)"
        )

    @app.exception_handler(404)
    async def _no_route(request: Request, exc: Exception) -> JSONResponse:
        detail = getattr(exc, "detail", "Not Found")
        return error_response(404, "path", f"{detail}: {request.url.path}")

    @app.exception_handler(405)
    async def _no_method(request: Request, exc: Exception) -> JSONResponse:
        return error_response(405, "method", f"{request.method} is not allowed here")

    @app.middleware("http")
    async def _observe(request: Request, call_next: Callable) -> Response:
        t0 = time.perf_counter()
        try:
            response = await call_next(request)
        except Exception:  # anything not handled above: logged, never shown
            log.exception("unhandled error on %s %s", request.method, request.url.path)
            response = error_response(500, None, "internal error (logged by the server)")
        route = request.scope.get("route")
        name = getattr(route, "path", None) or "unmatched"
        metrics.requests.labels(name, str(response.status_code)).inc()
        metrics.latency.labels(name).observe(time.perf_counter() - t0)
        return response

    app.add_middleware(BodyLimit, limit=p.max_upload_bytes + 64 * 1024)

    def require(kind: str) -> Callable:
        async def check(request: Request) -> None:
            ctype = request.headers.get("content-type", "").split(";")[0].strip().lower()
            if ctype != kind:
                raise BadInput("content-type", f"expected {kind}, got {ctype or 'none'}", 415)

        return check

    # --- helpers ---------------------------------------------------------------------------

    def result(hit: Hit, meta: dict) -> schemas.Result:
        base = f"/api/images/{_quote(hit.key)}"
        return schemas.Result(
            rank=hit.rank,
            key=hit.key,
            score=round(float(hit.score), 6),
            source=hit.source,
            size=schemas.Size(width=meta.get("width"), height=meta.get("height")),
            thumbnail=f"{base}/thumb",
            crop=f"{base}/crop",
            image=f"{base}/full",
            metadata=meta,
            duplicates=[
                schemas.Duplicate(
                    key=d.key,
                    score=round(float(d.score), 6),
                    thumbnail=f"/api/images/{_quote(d.key)}/thumb",
                )
                for d in hit.folded
            ],
        )

    def options(
        k: int | None,
        offset: int,
        dedup: bool | None,
        min_score: float | None,
        include_originals: bool | None,
    ) -> dict[str, Any]:
        """A request's options, the serve section's defaults for those unset."""
        k = k or p.k
        if k + offset > p.max_k:
            raise BadInput("k", f"k + offset = {k + offset} is above serve.max_k ({p.max_k})", 422)
        return {
            "k": k,
            "offset": offset,
            "dedup_on": p.dedup if dedup is None else dedup,
            "min_score": p.min_score if min_score is None else min_score,
            "include_originals": p.include_originals if include_originals is None
            else include_originals,
        }  # fmt: skip

    def check_text(name: str, text: str | None, *, empty_ok: bool = False) -> str:
        text = (text or "").strip()
        if not text and not empty_ok:
            raise BadInput(name, f"{name} is empty", 422)
        if len(text) > p.max_text_chars:
            raise BadInput(
                name,
                f"{name} has {len(text)} characters, above serve.max_text_chars "
                f"({p.max_text_chars})",
                422,
            )
        return text

    def answer(
        query: schemas.Query,
        vector_of: Callable[[Timings], Any],
        opts: dict,
        t0: float,
        timings: Timings | None = None,
    ) -> schemas.SearchResponse:
        timings = timings or Timings()
        vector = vector_of(timings)
        hits, folded = desk.search(vector, timings=timings, **opts)
        metrics.stage.labels("encode").observe(timings.encode_ms / 1000)
        metrics.stage.labels("search").observe(timings.search_ms / 1000)
        described = desk.describe(hits)
        results = [result(h, described[h.key]) for h in hits]
        return schemas.SearchResponse(
            query=query,
            k=opts["k"],
            offset=opts["offset"],
            dedup=opts["dedup_on"],
            min_score=opts["min_score"],
            include_originals=opts["include_originals"],
            folded=folded,
            pool=desk.index.ntotal,
            results=results,
            timings=schemas.Timings(
                **timings.as_dict(), total_ms=round(1000 * (time.perf_counter() - t0), 3)
            ),
        )

    async def text_answer(
        query: schemas.Query, opts: dict, t0: float, timings: Timings | None = None
    ) -> schemas.SearchResponse:
        """Encode ``query.text`` with the batcher (off the loop, with concurrent requests'
        texts), then search and describe in the pool."""
        timings = timings or Timings()
        t1 = time.perf_counter()
        future = desk.batcher.submit(query.text or "", query.approach or p.approach)
        try:
            vector = await asyncio.wait_for(asyncio.wrap_future(future), p.request_timeout_s)
        except TimeoutError:
            raise too_slow() from None
        timings.encode_ms += 1000 * (time.perf_counter() - t1)
        return await blocking(lambda: answer(query, lambda t: vector, opts, t0, timings))

    # --- the API ---------------------------------------------------------------------------

    responses = {
        c: {"model": schemas.ErrorResponse, "description": d}
        for c, d in [
            (404, "no such key or article"),
            (413, "body too large"),
            (415, "wrong content type"),
            (422, "invalid field"),
            (503, "took too long"),
        ]
    }

    @app.post(
        "/api/search",
        response_model=schemas.SearchResponse,
        responses=responses,
        dependencies=[Depends(require("application/json"))],
    )
    async def search(req: schemas.SearchRequest) -> schemas.SearchResponse:
        """Search by text, headline + lead, article URL, pool image key or pipeline article."""
        t0 = time.perf_counter()
        opts = options(req.k, req.offset, req.dedup, req.min_score, req.include_originals)
        approach = req.approach or p.approach
        if req.key is None:
            desk.check_approach(approach)
        if req.text is not None:
            text = check_text("text", req.text)
            query = schemas.Query(kind="text", approach=approach, text=text)
            return await text_answer(query, opts, t0)
        if req.headline is not None:
            headline = check_text("headline", req.headline)
            lead = check_text("lead", req.lead, empty_ok=True)
            text = desk.approach_text(approach, headline, lead)
            query = schemas.Query(
                kind="article", approach=approach, text=text, headline=headline, lead=lead
            )
            return await text_answer(query, opts, t0)
        if req.article_id is not None:
            a = desk.article(req.article_id)
            text = desk.approach_text(approach, a["headline"], a["lead"] or "")
            query = schemas.Query(
                kind="article", approach=approach, text=text, headline=a["headline"],
                lead=a["lead"], article_id=req.article_id,
            )  # fmt: skip
            return await text_answer(query, opts, t0)
        if req.url is not None:
            url = check_text("url", req.url)
            t_fetch = time.perf_counter()
            page = await blocking(lambda: reader.read(url))
            fetch_ms = 1000 * (time.perf_counter() - t_fetch)
            if not page.headline and not page.lead:
                raise BadInput("url", f"no text from {url}: {page.status}", 422)
            text = desk.approach_text(approach, page.headline, page.lead)
            query = schemas.Query(
                kind="url", approach=approach, text=text, headline=page.headline,
                lead=page.lead, url=url, status=page.status,
            )  # fmt: skip
            return await text_answer(query, opts, t0, Timings(fetch_ms=fetch_ms))
        key = check_text("key", req.key)
        desk.row_of(key)  # looked up in the index (NotFound names the key), never a path
        query = schemas.Query(kind="key", key=key)
        return await blocking(lambda: answer(query, lambda t: desk.key_vector(key), opts, t0))

    @app.post(
        "/api/search/image",
        response_model=schemas.SearchResponse,
        responses=responses,
        dependencies=[Depends(require("multipart/form-data"))],
    )
    async def search_image(
        image: Annotated[UploadFile, File(description="JPEG, PNG, GIF, WEBP, BMP or TIFF")],
        k: Annotated[int | None, Form(ge=1)] = None,
        offset: Annotated[int, Form(ge=0)] = 0,
        dedup: Annotated[bool | None, Form()] = None,
        min_score: Annotated[float | None, Form(ge=-1, le=1)] = None,
        include_originals: Annotated[bool | None, Form()] = None,
    ) -> schemas.SearchResponse:
        """Search by an uploaded photo, checked as fetched photos are."""
        t0 = time.perf_counter()
        opts = options(k, offset, dedup, min_score, include_originals)
        data = await image.read(p.max_upload_bytes + 1)

        def vector_of(t: Timings) -> Any:
            t1 = time.perf_counter()
            v = desk.encode_image(desk.check_upload(data))
            t.encode_ms += 1000 * (time.perf_counter() - t1)
            return v

        query = schemas.Query(kind="image")
        return await blocking(lambda: answer(query, vector_of, opts, t0))

    @app.get("/api/articles", response_model=schemas.ArticleList)
    async def articles(
        offset: int = Query(0, ge=0), limit: int = Query(50, ge=1, le=1000)
    ) -> schemas.ArticleList:
        """The pipeline's own articles (browse the batch run)."""
        rows = desk.articles.slice(offset, limit).select(
            ["article_id", "headline", "image_id", "status"]
        )
        return schemas.ArticleList(
            total=desk.articles.num_rows,
            offset=offset,
            articles=[schemas.ArticleSummary(**r) for r in rows.to_pylist()],
        )

    @app.get(
        "/api/articles/{article_id}", response_model=schemas.ArticleDetail, responses=responses
    )
    async def article(article_id: str, k: int = Query(10, ge=1, le=1000)) -> schemas.ArticleDetail:
        """One pipeline article with each approach's stored top-k (artifacts/results)."""
        a = desk.article(article_id)

        def build() -> schemas.ArticleDetail:
            approaches = {}
            for name in desk.approaches:
                top = desk.stored_top(name, article_id, max(k, 100))
                ranks = [h.rank for h in top if h.key == a["image_id"]]
                described = desk.describe(top[:k])
                approaches[name] = schemas.StoredApproach(
                    text=desk.approach_text(name, a["headline"], a["lead"] or ""),
                    original_rank=ranks[0] if ranks else None,
                    results=[result(h, described[h.key]) for h in top[:k]],
                )
            row = desk.lookup.row_of(a["image_id"])
            original = None
            if row is not None:
                own = Hit(0, row, a["image_id"], ORIGINAL_SOURCE, 1.0)
                original = result(own, desk.describe([own])[own.key])
            return schemas.ArticleDetail(
                article_id=a["article_id"], headline=a["headline"], lead=a["lead"] or "",
                url=a["article_url"], image_id=a["image_id"], status=a["status"],
                original=original, approaches=approaches,
            )  # fmt: skip

        return await blocking(build)

    @app.post(
        "/api/export", responses=responses, dependencies=[Depends(require("application/json"))]
    )
    async def export(req: schemas.ExportRequest) -> Response:
        """A result list or a shortlist as JSON, CSV or Markdown, each photo with its crop URL
        and what the shards know of it."""
        hits = []
        for i, item in enumerate(req.items):
            row = desk.lookup.row_of(item.key)
            if row is None:
                raise NotFound(f"items.{i}.key", f"no image with key {item.key!r} in the index")
            hits.append(Hit(item.rank or i + 1, row, item.key, desk.sources[row].as_py(), 0.0))
        described = await blocking(lambda: desk.describe(hits))
        rows = []
        for item, hit in zip(req.items, hits, strict=True):
            r = result(hit, described[hit.key])
            rows.append(
                {
                    "rank": r.rank, "key": r.key, "score": item.score, "source": r.source,
                    "width": r.size.width, "height": r.size.height, "crop": r.crop,
                    "image": r.image, "licence": r.metadata.get("licence_label"),
                    "credit": r.metadata.get("credit"), "note": item.note or "",
                    "metadata": r.metadata,
                }
            )  # fmt: skip
        return _export(req.format, req.title, rows)

    @app.get("/api/images/{key}/{kind}", responses=responses)
    async def image(key: str, kind: str) -> Response:
        """``thumb`` (small JPEG), ``crop`` (the export's 460x260 PNG) or ``full`` (stored JPEG)."""
        makers = {"thumb": desk.thumbnail, "crop": desk.crop, "full": desk.original}
        if kind not in makers:
            raise BadInput("kind", f"unknown image kind {kind!r}; known: thumb, crop, full", 404)
        desk.row_of(key)  # NotFound before any work
        data = await blocking(lambda: makers[kind](key))
        media = "image/png" if kind == "crop" else "image/jpeg"
        return Response(data, media_type=media, headers={"Cache-Control": "max-age=86400"})

    @app.get("/api/config")
    async def config() -> dict:
        """The defaults and limits the page starts from."""
        return {
            "approaches": desk.approaches,
            "approach": p.approach,
            "k": p.k,
            "max_k": p.max_k,
            "dedup": p.dedup,
            "dedup_threshold": p.dedup_threshold,
            "min_score": p.min_score,
            "include_originals": p.include_originals,
            "max_text_chars": p.max_text_chars,
            "max_upload_bytes": p.max_upload_bytes,
            "pool": desk.index.ntotal,
            "articles": desk.articles.num_rows,
            "crop": [desk.report_params.width, desk.report_params.height],
            "licences": desk.licences,
        }

    @app.get("/healthz")
    async def healthz() -> dict:
        """Liveness and what is loaded."""
        return {
            "status": "ok",
            "pool": desk.index.ntotal,
            "index": desk.index.plan.kind,
            "articles": desk.articles.num_rows,
            "approaches": desk.approaches,
            "load_s": round(desk.load_s, 3),
            "workers": workers,
        }

    @app.get("/metrics")
    async def prometheus() -> Response:
        """Prometheus text format: requests by route and status, latencies, pool size."""
        return Response(generate_latest(metrics.registry), media_type=CONTENT_TYPE_LATEST)

    static = resources.files("newsimg.serve") / "static"
    page = (static / "index.html").read_text()

    @app.get("/", response_class=HTMLResponse, include_in_schema=False)
    async def index_page() -> HTMLResponse:
        return HTMLResponse(page)

    app.mount("/static", StaticFiles(directory=str(static)), name="static")

    @app.on_event("shutdown")
    def _stop_pool() -> None:
        pool.shutdown(wait=False, cancel_futures=True)

    return app


def _quote(key: str) -> str:
    from urllib.parse import quote

    return quote(key, safe="")


def _export(fmt: str, title: str, rows: list[dict]) -> Response:
    stamp = time.strftime("%Y%m%d-%H%M%S")
    if fmt == "json":
        body = json.dumps({"title": title, "items": rows}, indent=2) + "\n"
        media, ext = "application/json", "json"
    elif fmt == "csv":
        buf = io.StringIO()
        w = csv.DictWriter(buf, fieldnames=[c for c in rows[0] if c != "metadata"] + ["photo_id"])
        w.writeheader()
        for r in rows:
            w.writerow(
                {**{c: v for c, v in r.items() if c != "metadata"},
                 "photo_id": r["metadata"].get("photo_id")}
            )  # fmt: skip
        body, media, ext = buf.getvalue(), "text/csv", "csv"
    else:
        lines = [f"# {_md(title)}", ""]
        lines.append("| rank | key | score | source | size | licence | credit | crop | note |")
        lines.append("|---:|---|---:|---|---|---|---|---|---|")
        for r in rows:
            score = "" if r["score"] is None else f"{r['score']:.4f}"
            size = f"{r['width']}x{r['height']}" if r["width"] else ""
            lines.append(
                f"| {r['rank']} | `{_md(r['key'])}` | {score} | {r['source']} | {size} | "
                f"{_md(r['licence'] or '')} | {_md(r['credit'] or '')} | [crop]({r['crop']}) | "
                f"{_md(r['note'])} |"
            )
        body, media, ext = "\n".join(lines) + "\n", "text/markdown", "md"
    return Response(
        body,
        media_type=media,
        headers={"Content-Disposition": f'attachment; filename="newsimg-{stamp}.{ext}"'},
    )


def _md(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def load_desk(root: Any = ".", params_path: Any = "params.yaml") -> Desk:
    """The desk over what ``dvc repro`` built at ``root``, with params.yaml's sections."""
    from pathlib import Path

    from newsimg.params import load_section
    from newsimg.serve.paths import from_dvc

    root = Path(root)
    params_path = Path(params_path)
    if not params_path.is_absolute() and not params_path.exists():
        params_path = root / params_path
    names = ("serve", "leads", "fetch", "report", "search", "retrieve")
    sections = {n: load_section(n, params_path) for n in names}
    try:
        return Desk(
            from_dvc(root),
            sections["serve"],
            sections["leads"],
            sections["fetch"],
            sections["report"],
            sections["search"],
            licences=sections["retrieve"].licences,
        )
    except InputError:
        raise
    except OSError as err:
        raise InputError(f"cannot load the pipeline's artifacts: {err}") from None
