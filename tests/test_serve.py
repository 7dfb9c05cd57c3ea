"""The serve app over the pipeline's test artifacts, called over HTTP on a real uvicorn server."""

from __future__ import annotations

import csv
import http.server
import io
import json
import struct
import threading
import zlib
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest
from PIL import Image

from newsimg import cli, leads
from newsimg.params import load_section
from tests.serve_helpers import client, free_socket, metric, pipeline, running

__all__ = ["pipeline"]  # the session fixture, imported for pytest

APPROACHES = ("headline", "headline_lead", "lam")


@pytest.fixture(scope="module")
def desk(pipeline: Path):
    from newsimg.serve.app import load_desk

    return load_desk(pipeline, pipeline / "params.yaml")


@pytest.fixture(scope="module")
def base(desk) -> Iterator[str]:
    from newsimg.serve.app import create_app

    with running(create_app(desk, workers=2)) as url:
        yield url


@pytest.fixture(scope="module")
def api(base: str):
    with client(base) as c:
        yield c


@pytest.fixture(scope="module")
def articles(pipeline: Path) -> list[dict]:
    return pq.read_table(pipeline / "artifacts/articles.parquet").to_pylist()


def exact(**body: object) -> dict:
    """Options that make an answer comparable with the batch stages: no folding, no filters."""
    return {"dedup": False, "include_originals": True, **body}


# --- answers -------------------------------------------------------------------------------


def test_key_query_returns_that_image_first(api, desk) -> None:
    keys = desk.keys.to_pylist()
    sources = desk.sources.to_pylist()
    for key in [k for k, s in zip(keys, sources, strict=True) if s == "yfcc"][:5]:
        r = api.post("/api/search", json={"key": key, "k": 5})
        assert r.status_code == 200, r.text
        body = r.json()
        assert body["query"] == {**body["query"], "kind": "key", "key": key}
        assert body["results"][0]["key"] == key
        assert body["results"][0]["rank"] == 1
        assert body["results"][0]["score"] == pytest.approx(1.0, abs=2e-3)
        assert [x["rank"] for x in body["results"]] == [1, 2, 3, 4, 5]


@pytest.mark.parametrize("approach", APPROACHES)
def test_text_query_matches_retrieve_and_cli_search(
    approach: str, api, pipeline: Path, articles: list[dict], capsys
) -> None:
    """For each approach, an article's own text gives the retrieve stage's stored top-k and
    what `newsimg search` prints, key for key and score for score."""
    column = "headline" if approach == "headline" else "headline_lead"
    stored = pq.read_table(pipeline / f"artifacts/results/{approach}.parquet").to_pylist()
    art = pipeline / "artifacts"
    encoder = art / ("models/lam" if approach == "lam" else "models/base")
    for a in articles[:3]:
        text = a[column]
        r = api.post("/api/search", json=exact(text=text, approach=approach, k=10))
        assert r.status_code == 200, r.text
        got = r.json()["results"]
        want = sorted(
            (s for s in stored if s["article_id"] == a["article_id"]), key=lambda s: s["rank"]
        )[:10]
        assert [g["key"] for g in got] == [w["key"] for w in want]
        np.testing.assert_allclose([g["score"] for g in got], [w["score"] for w in want], atol=1e-5)
        argv = ["search", text, "--model", str(art / "models/base"), "--index", str(art / "index")]
        argv += ["--params", str(pipeline / "params.yaml")]
        if approach == "lam":
            argv += ["--lam", str(encoder)]
        capsys.readouterr()
        assert cli.main([*argv, "-k", "10"]) == 0
        lines = capsys.readouterr().out.splitlines()[1:]
        printed = [(line.split()[3], float(line.split()[1])) for line in lines]
        assert [g["key"] for g in got] == [key for key, _ in printed]
        np.testing.assert_allclose([g["score"] for g in got], [s for _, s in printed], atol=1e-4)


def test_article_query_uses_the_approach_text(api, articles: list[dict]) -> None:
    a = next(x for x in articles if x["lead"])
    for approach in APPROACHES:
        body = exact(headline=a["headline"], lead=a["lead"], approach=approach, k=5)
        r = api.post("/api/search", json=body)
        assert r.status_code == 200, r.text
        want = a["headline"] if approach == "headline" else a["headline_lead"]
        assert r.json()["query"]["text"] == want
        same = api.post("/api/search", json=exact(text=want, approach=approach, k=5)).json()
        assert [x["key"] for x in r.json()["results"]] == [x["key"] for x in same["results"]]


def test_each_result_carries_its_photo(api, desk, pipeline: Path) -> None:
    from newsimg import submission
    from newsimg.metadata.lookup import Metadata
    from newsimg.store import shards

    r = api.post("/api/search", json={"text": "a harbour at dusk", "k": 3}).json()
    assert set(r["timings"]) == {"encode_ms", "search_ms", "fetch_ms", "total_ms"}
    assert r["timings"]["total_ms"] >= r["timings"]["encode_ms"] + r["timings"]["search_ms"]
    for x in r["results"]:
        stored = shards.read_images(pipeline / "artifacts/shards", [x["key"]])[x["key"]]
        table = pq.read_table(pipeline / f"artifacts/shards/{x['metadata']['shard']}.parquet")
        row = next(t for t in table.to_pylist() if t["key"] == x["key"])
        assert x["size"] == {"width": row["width"], "height": row["height"]}
        assert x["metadata"]["source"] == row["source"] == x["source"]
        credit = Metadata.open(pipeline / "artifacts/metadata").credits([x["key"]])[x["key"]]
        assert x["metadata"]["licence"] == credit.licence
        assert x["metadata"]["credit"] == credit.credit
        assert x["metadata"]["page_url"] == credit.page_url
        crop = api.get(x["crop"])
        assert crop.headers["content-type"] == "image/png"
        assert crop.content == submission.to_png(stored, 460, 260)  # exactly the export's PNG
        full = api.get(x["image"])
        assert full.content == stored
        thumb = Image.open(io.BytesIO(api.get(x["thumbnail"]).content))
        assert thumb.format == "JPEG"
        assert max(thumb.size) <= 256


def test_originals_are_left_out_unless_asked(api, desk, articles: list[dict]) -> None:
    originals = {a["image_id"] for a in articles}
    text = articles[0]["headline_lead"]
    without = api.post("/api/search", json={"text": text, "k": 50, "dedup": False}).json()
    assert not originals & {x["key"] for x in without["results"]}
    assert len(without["results"]) == 50
    both = api.post("/api/search", json=exact(text=text, k=desk.index.ntotal)).json()
    assert len(both["results"]) == desk.index.ntotal
    assert originals <= {x["key"] for x in both["results"]}


def test_min_score_and_paging(api) -> None:
    body = exact(text="mountains", k=10)
    first = api.post("/api/search", json=body).json()["results"]
    second = api.post("/api/search", json={**body, "offset": 10}).json()["results"]
    both = api.post("/api/search", json={**body, "k": 20}).json()["results"]
    assert [x["key"] for x in first + second] == [x["key"] for x in both]
    assert [x["rank"] for x in second] == list(range(11, 21))
    floor = first[4]["score"]
    kept = api.post("/api/search", json={**body, "min_score": floor, "k": 50}).json()["results"]
    assert [x["key"] for x in kept] == [x["key"] for x in both if x["score"] >= floor]


def test_near_duplicates_fold_into_the_better_one(api, desk) -> None:
    """The folded answer keeps the leads of dedup.fold over the whole ranked pool, in order, and
    each result's duplicates are ones that fold into it there."""
    from newsimg import dedup

    key = desk.keys[0].as_py()
    plain = api.post("/api/search", json=exact(key=key, k=desk.index.ntotal)).json()["results"]
    rows = np.array([desk.row_of(x["key"]) for x in plain])
    groups = dedup.fold(desk.index.vectors.take(rows), desk.params.dedup_threshold)
    assert sum(g.size for g in groups) == len(plain)
    assert len(groups) < len(plain)  # the sample holds near-duplicates at this threshold
    m = min(10, len(groups))
    body = {"key": key, "k": m, "dedup": True, "include_originals": True}
    folded = api.post("/api/search", json=body).json()
    assert [x["key"] for x in folded["results"]] == [plain[g.lead]["key"] for g in groups[:m]]
    for x, g in zip(folded["results"], groups, strict=False):
        assert {d["key"] for d in x["duplicates"]} <= {plain[i]["key"] for i in g.folded}
    assert folded["folded"] == sum(len(x["duplicates"]) for x in folded["results"])
    assert folded["folded"] > 0


def test_stored_articles_list_each_approach(api, articles: list[dict], pipeline: Path) -> None:
    listing = api.get("/api/articles").json()
    assert listing["total"] == len(articles)
    assert [a["article_id"] for a in listing["articles"]] == [a["article_id"] for a in articles]
    a = articles[0]
    detail = api.get(f"/api/articles/{a['article_id']}", params={"k": 5}).json()
    assert set(detail["approaches"]) == set(APPROACHES)
    for name in APPROACHES:
        stored = pq.read_table(pipeline / f"artifacts/results/{name}.parquet").to_pylist()
        want = [s for s in stored if s["article_id"] == a["article_id"]][:5]
        assert [x["key"] for x in detail["approaches"][name]["results"]] == [w["key"] for w in want]
    assert detail["original"]["key"] == a["image_id"]


def test_exports(api, desk) -> None:
    keys = desk.keys.to_pylist()[3:5]
    items = [{"key": keys[0], "score": 0.5, "note": "lead | photo"}, {"key": keys[1]}]
    j = api.post("/api/export", json={"format": "json", "items": items})
    assert j.status_code == 200
    assert "attachment" in j.headers["content-disposition"]
    body = j.json()
    assert [x["key"] for x in body["items"]] == keys
    assert body["items"][0]["score"] == 0.5
    assert body["items"][0]["crop"] == f"/api/images/{keys[0]}/crop"
    c = api.post("/api/export", json={"format": "csv", "items": items})
    rows = list(csv.DictReader(io.StringIO(c.text)))
    assert [r["key"] for r in rows] == keys
    assert rows[0]["note"] == "lead | photo"
    m = api.post("/api/export", json={"format": "markdown", "title": "Desk", "items": items})
    lines = m.text.splitlines()
    assert lines[0] == "# Desk"
    assert f"| 1 | `{keys[0]}` | 0.5000 |" in lines[4]
    assert "lead \\| photo" in lines[4]


def test_healthz_and_docs(api, desk) -> None:
    h = api.get("/healthz").json()
    assert h["status"] == "ok"
    assert h["pool"] == desk.index.ntotal
    assert h["approaches"] == list(APPROACHES)
    spec = api.get("/openapi.json").json()
    assert {"/api/search", "/api/search/image", "/api/export", "/healthz"} <= set(spec["paths"])
    assert api.get("/docs").status_code == 200
    page = api.get("/")
    assert "newsimg photo desk" in page.text
    assert "http" not in page.text.replace("http-equiv", "").split("<body>")[0]  # no CDN
    assert api.get("/static/app.js").status_code == 200


# --- url queries ----------------------------------------------------------------------------


@pytest.fixture(scope="module")
def page_server(pipeline: Path) -> Iterator[str]:
    """The sample's saved pages on a loopback HTTP server (text/html)."""
    pages = pipeline / "data/html"

    class Handler(http.server.SimpleHTTPRequestHandler):
        def __init__(self, *args, **kwargs):
            super().__init__(*args, directory=str(pages), **kwargs)

        def log_message(self, *args) -> None:
            pass

    sock = free_socket()
    port = sock.getsockname()[1]
    sock.close()
    server = http.server.ThreadingHTTPServer(("127.0.0.1", port), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{port}"
    server.shutdown()
    server.server_close()


def test_url_query_extracts_what_the_leads_stage_does(
    api, page_server: str, pipeline: Path, articles: list[dict]
) -> None:
    params = load_section("leads", pipeline / "params.yaml")
    a = next(x for x in articles if x["status"] == "ok")
    url = f"{page_server}/{a['article_id']}.html"
    html = (pipeline / "data/html" / f"{a['article_id']}.html").read_text()
    want = leads.extract_lead(
        html,
        url,
        mode=params.mode,
        max_words=params.max_words,
        extractor=params.extractor,
        max_tokens=params.max_tokens,
        template=params.template,
    )
    assert want.status == "ok"
    for approach in ("headline_lead", "lam"):
        r = api.post("/api/search", json=exact(url=url, approach=approach, k=5))
        assert r.status_code == 200, r.text
        q = r.json()["query"]
        assert (q["kind"], q["status"], q["lead"], q["headline"]) == (
            "url", "ok", want.text, want.title,
        )  # fmt: skip
        assert q["text"] == leads.approach_text(want.title, want.text, params)
        assert r.json()["timings"]["fetch_ms"] > 0
        same = api.post("/api/search", json=exact(text=q["text"], approach=approach, k=5))
        assert [x["key"] for x in r.json()["results"]] == [x["key"] for x in same.json()["results"]]


def test_failed_url_fetch_is_an_error_and_the_server_lives(api, page_server: str) -> None:
    dead = free_socket()
    port = dead.getsockname()[1]
    dead.close()  # nothing listens there
    for url, status in [
        (f"http://127.0.0.1:{port}/x.html", "connection error"),
        (f"{page_server}/no-such-page.html", "http 404"),
        ("ftp://example.org/page", "bad_url"),
    ]:
        r = api.post("/api/search", json={"url": url})
        assert r.status_code == 422, r.text
        assert r.json()["error"]["field"] == "url"
        assert status in r.json()["error"]["message"]
    assert api.post("/api/search", json={"text": "still here"}).status_code == 200


# --- bad input ------------------------------------------------------------------------------


def bomb_png(side: int = 60000) -> bytes:
    """A real, valid 1-bit PNG of side x side black pixels (a few hundred kB compressed)."""
    row = bytes(1 + (side + 7) // 8)
    z = zlib.compressobj(9)
    chunks = [z.compress(row * 500) for _ in range(side // 500)] + [z.flush()]
    data = b"".join(chunks)

    def chunk(kind: bytes, body: bytes) -> bytes:
        crc = zlib.crc32(kind + body) & 0xFFFFFFFF
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", crc)

    ihdr = struct.pack(">IIBBBBB", side, side, 1, 0, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", data) + chunk(b"IEND", b"")


BAD_JSON = [
    ("empty text", {"text": ""}, 422, "text"),
    ("blank text", {"text": "   "}, 422, "text"),
    ("1 MB text", {"text": "word " * 200_000}, 422, "text"),
    ("k = 0", {"text": "boats", "k": 0}, 422, "k"),
    ("k = 10^6", {"text": "boats", "k": 1_000_000}, 422, "k"),
    ("negative offset", {"text": "boats", "offset": -1}, 422, "offset"),
    ("min_score above 1", {"text": "boats", "min_score": 3}, 422, "min_score"),
    ("unknown approach", {"text": "boats", "approach": "clip-xxl"}, 422, "approach"),
    ("unknown key", {"key": "ffffffffffffffffffffffffffffffff"}, 404, "key"),
    ("../ in a key", {"key": "../../../../etc/passwd"}, 404, "key"),
    ("unknown article", {"article_id": "no-such-article"}, 404, "article_id"),
    ("two queries", {"text": "boats", "key": "x"}, 422, "body"),
    ("no query", {"k": 5}, 422, "body"),
    ("unknown field", {"text": "boats", "colour": "red"}, 422, "colour"),
    ("wrong type", {"text": "boats", "k": "many"}, 422, "k"),
]


@pytest.mark.parametrize(
    ("name", "body", "status", "field"), BAD_JSON, ids=[b[0] for b in BAD_JSON]
)
def test_bad_json_is_a_4xx_naming_the_field(api, name, body, status, field) -> None:
    before = metric(api.get("/metrics").text, "newsimg_requests_total",
                    route="/api/search", status=str(status))  # fmt: skip
    r = api.post("/api/search", json=body)
    assert r.status_code == status, r.text
    err = r.json()["error"]
    assert err["field"] == field
    assert err["status"] == status
    assert "Traceback" not in r.text
    after = metric(api.get("/metrics").text, "newsimg_requests_total",
                   route="/api/search", status=str(status))  # fmt: skip
    assert after == before + 1
    ok = api.post("/api/search", json={"text": "the next good request", "k": 3})
    assert ok.status_code == 200
    assert len(ok.json()["results"]) == 3


def test_wrong_content_type_and_broken_json(api) -> None:
    r = api.post("/api/search", content=b"text=boats", headers={"content-type": "text/plain"})
    assert r.status_code == 415
    assert r.json()["error"]["field"] == "content-type"
    r = api.post("/api/search", content=b'{"text": ', headers={"content-type": "application/json"})
    assert r.status_code == 422
    assert r.json()["error"]["field"] == "body"
    r = api.post("/api/search/image", json={"text": "boats"})
    assert r.status_code == 415
    assert api.post("/api/search", json={"text": "fine"}).status_code == 200


def photo_bytes(fmt: str = "PNG") -> bytes:
    rng = np.random.default_rng(0)
    im = Image.fromarray(rng.integers(0, 255, (96, 128, 3), dtype=np.uint8))
    buf = io.BytesIO()
    im.save(buf, fmt)
    return buf.getvalue()


@pytest.mark.parametrize(
    ("name", "data", "status", "words"),
    [
        ("a text file", b"just some words\n" * 10, 422, "not_an_image"),
        ("an empty file", b"", 422, "empty"),
        ("a 60000x60000 PNG", None, 422, "too_large"),
        ("a tiny image", None, 422, "too_small"),
        ("a truncated JPEG", None, 422, "truncated"),
    ],
)
def test_bad_uploads_are_refused(api, name: str, data: bytes | None, status, words) -> None:
    if name.startswith("a 60000"):
        data = bomb_png()
    elif name == "a tiny image":
        buf = io.BytesIO()
        Image.new("RGB", (8, 8)).save(buf, "PNG")
        data = buf.getvalue()
    elif name == "a truncated JPEG":
        data = photo_bytes("JPEG")[:-400]
    before = metric(api.get("/metrics").text, "newsimg_requests_total",
                    route="/api/search/image", status=str(status))  # fmt: skip
    r = api.post("/api/search/image", files={"image": ("upload.bin", data)})
    assert r.status_code == status, r.text
    assert r.json()["error"]["field"] == "image"
    assert words in r.json()["error"]["message"]
    after = metric(api.get("/metrics").text, "newsimg_requests_total",
                   route="/api/search/image", status=str(status))  # fmt: skip
    assert after == before + 1
    good = api.post("/api/search/image", files={"image": ("ok.png", photo_bytes())})
    assert good.status_code == 200, good.text


def test_upload_search_matches_the_pool_embedding(api, desk, pipeline: Path) -> None:
    """A pool photo uploaded as it is stored finds itself first."""
    from newsimg.store import shards

    key = next(k for k, s in zip(desk.keys.to_pylist(), desk.sources.to_pylist(), strict=True)
               if s == "yfcc")  # fmt: skip
    jpeg = shards.read_images(pipeline / "artifacts/shards", [key])[key]
    r = api.post("/api/search/image", files={"image": ("p.jpg", jpeg, "image/jpeg")},
                  data={"k": "3"})  # fmt: skip
    assert r.status_code == 200, r.text
    assert r.json()["results"][0]["key"] == key
    assert r.json()["query"]["kind"] == "image"


def test_too_large_body_is_refused_before_reading(api, desk) -> None:
    big = b"\xff" * (desk.params.max_upload_bytes + 100_000)
    r = api.post("/api/search/image", files={"image": ("big.jpg", big)})
    assert r.status_code == 413
    assert r.json()["error"]["field"] in {"body", "image"}
    assert api.get("/healthz").status_code == 200


def test_image_routes_look_keys_up(api) -> None:
    for path in [
        "/api/images/..%2F..%2Fetc%2Fpasswd/thumb",
        "/api/images/nope/thumb",
        "/api/images/%2e%2e/crop",
    ]:
        r = api.get(path)
        assert r.status_code == 404, path
        assert r.json()["error"]["field"] in {"key", "path"}
    r = api.get("/api/images/abc/other")
    assert r.status_code == 404


def test_metrics_exposition(api, desk) -> None:
    api.post("/api/search", json={"text": "counted"})
    text = api.get("/metrics").text
    assert metric(text, "newsimg_pool_images") == desk.index.ntotal
    assert metric(text, "newsimg_requests_total", route="/api/search", status="200") >= 1
    assert metric(text, "newsimg_request_seconds_count", route="/api/search") >= 1
    assert metric(text, "newsimg_stage_seconds_count", stage="encode") >= 1
    assert "# TYPE newsimg_request_seconds histogram" in text


def test_slow_client_does_not_block_others(base: str, api) -> None:
    """A client that sends half a request and stalls holds one connection, not the server."""
    import socket
    from urllib.parse import urlsplit

    parts = urlsplit(base)
    stalled = socket.create_connection((parts.hostname, parts.port))
    stalled.sendall(b"POST /api/search HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                    b"Content-Length: 1000\r\n\r\n{\"text\": ")  # fmt: skip
    try:
        r = api.post("/api/search", json={"text": "meanwhile", "k": 2})
        assert r.status_code == 200
    finally:
        stalled.close()


def test_request_timeout_is_a_503(desk) -> None:
    """A request over serve.request_timeout_s answers 503 naming it; the next one is fine."""
    import threading as _threading

    from newsimg.serve.app import create_app

    slow = desk.params.model_copy(update={"request_timeout_s": 1.0})
    original, desk.params = desk.params, slow
    real = desk.encode_texts
    release = _threading.Event()

    def stuck(texts, approach):
        if texts == ["slow"]:
            release.wait(30)
        return real(texts, approach)

    desk.encode_texts = stuck
    try:
        with running(create_app(desk, workers=2)) as url, client(url) as c:
            r = c.post("/api/search", json={"text": "slow"})
            assert r.status_code == 503
            assert r.json()["error"]["field"] == "request"
            assert "request_timeout_s" in r.json()["error"]["message"]
            release.set()
            assert c.post("/api/search", json={"text": "fast"}).status_code == 200
    finally:
        release.set()
        desk.params = original
        del desk.encode_texts


def test_params_are_validated(tmp_path: Path) -> None:
    from newsimg.errors import ParamsError
    from newsimg.params import parse_section

    assert parse_section("serve", {}).host == "127.0.0.1"
    with pytest.raises(ParamsError, match=r"serve\.dedup_threshold"):
        parse_section("serve", {"dedup_threshold": 1.5})
    with pytest.raises(ParamsError, match=r"serve\.port"):
        parse_section("serve", {"port": 70000})


def test_paths_come_from_dvc_yaml(pipeline: Path) -> None:
    from newsimg.serve.paths import from_dvc

    found = from_dvc(pipeline)
    assert found.model == pipeline / "artifacts/models/base"
    assert found.index == pipeline / "artifacts/index"
    assert found.shards == pipeline / "artifacts/shards"
    assert found.articles == pipeline / "artifacts/articles.parquet"
    assert {n: (a.text, a.encoder.name) for n, a in found.approaches.items()} == {
        "headline": ("headline", "base"),
        "headline_lead": ("headline_lead", "base"),
        "lam": ("headline_lead", "lam"),
    }
    assert found.approaches["lam"].results == pipeline / "artifacts/results/lam.parquet"


def test_unbuilt_pipeline_is_a_clear_error(tmp_path: Path) -> None:
    from newsimg.errors import InputError
    from newsimg.serve.app import load_desk
    from tests.conftest import ROOT

    (tmp_path / "dvc.yaml").write_text((ROOT / "dvc.yaml").read_text())
    (tmp_path / "params.yaml").write_text((ROOT / "params.yaml").read_text())
    with pytest.raises(InputError, match=r"not built: .*artifacts/models/base"):
        load_desk(tmp_path)


def test_cli_serve_starts_and_answers(pipeline: Path) -> None:
    """`newsimg serve` in its own process on a free port: /healthz answers, then it stops."""
    import os
    import subprocess
    import sys
    import time as _time

    import httpx

    sock = free_socket()
    port = sock.getsockname()[1]
    sock.close()
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    proc = subprocess.Popen(
        [sys.executable, "-m", "newsimg.cli", "serve", "--root", str(pipeline),
         "--params", str(pipeline / "params.yaml"), "--port", str(port)],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, env=env,
    )  # fmt: skip
    try:
        deadline = _time.monotonic() + 300  # a loaded CI machine imports torch slowly
        while True:
            assert proc.poll() is None, proc.stdout.read().decode()
            try:
                h = httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=2)
                break
            except httpx.TransportError:
                assert _time.monotonic() < deadline, "newsimg serve did not start"
                _time.sleep(0.2)
        assert h.json()["status"] == "ok"
        r = httpx.post(f"http://127.0.0.1:{port}/api/search", json={"text": "cli"}, timeout=30)
        assert r.status_code == 200
    finally:
        proc.terminate()
        proc.wait(20)


def test_json_body_of_search_response_is_stable(api) -> None:
    """Two identical requests give identical answers (timings aside)."""
    body = {"text": "same question", "k": 7, "approach": "lam"}
    a, b = (api.post("/api/search", json=body).json() for _ in range(2))
    a.pop("timings")
    b.pop("timings")
    assert json.dumps(a, sort_keys=True) == json.dumps(b, sort_keys=True)
