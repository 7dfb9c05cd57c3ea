"""The leads stage on realistic saved pages, with the real newspaper4k and trafilatura."""

from __future__ import annotations

import csv
import importlib.util
import logging
from collections.abc import Callable
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from newsimg import leads
from newsimg.clip import count_tokens
from newsimg.errors import InputError
from newsimg.params import LeadsParams
from newsimg.sources import NEWSIMAGES_COLUMNS

HEADLINE = "City council approves new bridge over the Elm River"
URL = "https://www.example-news.com/local/2025/03/14/city-council-bridge"
TAGS = "Elm River, city council, infrastructure"
IMAGE_ID = "0A1B2C3D4E5F60718293A4B5C6D7E8F9"
# Sentences of the body, two per paragraph but the last; abbreviations and a decimal inside.
S = [
    "The city council voted 7 to 2 on Thursday to build a new bridge across the Elm River, "
    "ending years of debate.",
    "Mr. Alvarez, the mayor, said construction would start in the spring.",
    "The project is expected to cost $42.5 million, according to estimates from the U.S. "
    "Department of Transportation.",
    "Federal grants will cover about half of that amount.",
    "Opponents argued that the money should instead go to repairing existing roads and schools.",
    '"We have potholes everywhere," said council member Dana Reyes, who voted against the plan.',
    "Supporters countered that the current bridge, built in 1931, no longer meets safety "
    "standards.",
    "Engineers found cracks in three of its support columns last year.",
    "A public hearing on the design is scheduled for next month at City Hall.",
]
PARAGRAPHS = [" ".join(S[i : i + 2]) for i in range(0, len(S), 2)]
BYLINE = "By Jane Doe"
CAPTION = "The old bridge at dusk on Tuesday."
CREDIT = "Photo: John Smith/Reuters"
RELATED = ["Mayor unveils budget plan for schools", "River flooding closes downtown streets"]
# Text that must never reach a lead: page furniture around the article.
FURNITURE = ["Jane Doe", CAPTION, "John Smith", "Reuters", *RELATED, "Subscribe", "Copyright"]


def _ps(paragraphs: list[str]) -> str:
    return "\n".join(f"<p>{p}</p>" for p in paragraphs)


def ledger(h: str, ps: list[str]) -> str:
    """A plain news site: <article> with the figure before the body, related links after."""
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>{h} | The Daily Ledger</title>
<meta property="og:title" content="{h}"></head><body>
<header><nav><a href="/">Home</a> <a href="/politics">Politics</a> <a href="/sports">Sports</a>
<a href="/subscribe">Subscribe</a></nav></header>
<main><article>
<h1>{h}</h1>
<div class="byline">{BYLINE}</div>
<time datetime="2025-03-14T09:30:00Z">March 14, 2025</time>
<figure><img src="/img/bridge.jpg" alt="bridge"><figcaption>{CAPTION} {CREDIT}</figcaption></figure>
{_ps(ps)}
</article>
<aside class="related"><h2>Related</h2><ul>
<li><a href="/a">{RELATED[0]}</a></li><li><a href="/b">{RELATED[1]}</a></li></ul></aside>
</main>
<footer><p>Copyright 2025 The Daily Ledger. All rights reserved.</p>
<a href="/privacy">Privacy policy</a></footer></body></html>"""


def wordpress(h: str, ps: list[str]) -> str:
    """WordPress: figure and related-posts aside between the body paragraphs."""
    return f"""<!DOCTYPE html>
<html lang="en-US"><head><meta charset="UTF-8"><title>{h} &#8211; Riverside Post</title></head>
<body class="post-template-default single single-post">
<div id="page"><header id="masthead"><div class="site-title"><a href="/">Riverside Post</a></div>
<nav id="site-navigation"><ul class="menu"><li><a href="/news">News</a></li>
<li><a href="/opinion">Opinion</a></li><li><a href="/subscribe">Subscribe</a></li></ul></nav>
</header>
<div id="content"><article id="post-1234" class="post type-post">
<header class="entry-header"><h1 class="entry-title">{h}</h1>
<div class="entry-meta"><span class="byline">{BYLINE}</span>
<span class="posted-on"><time class="entry-date published" datetime="2025-03-14T09:30:00+00:00">
March 14, 2025 at 9:30 a.m.</time></span></div></header>
<div class="entry-content">
<p>{ps[0]}</p>
<figure class="wp-block-image"><img src="/wp-content/uploads/bridge.jpg" alt="">
<figcaption class="wp-element-caption">{CAPTION} <span class="credit">{CREDIT}</span></figcaption>
</figure>
<p>{ps[1]}</p>
<aside class="related-posts"><h3>Related stories</h3><ul>
<li><a href="/a">{RELATED[0]}</a></li><li><a href="/b">{RELATED[1]}</a></li></ul></aside>
{_ps(ps[2:])}
</div></article></div>
<footer id="colophon"><div class="site-info">Copyright 2025 Riverside Post</div></footer>
</div></body></html>"""


def magazine(h: str, ps: list[str]) -> str:
    """A magazine: JSON-LD, kicker, caption and credit as separate <p>, newsletter box."""
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>{h}</title>
<script type="application/ld+json">{{"@context":"https://schema.org","@type":"NewsArticle",
"headline":"{h}","author":{{"@type":"Person","name":"Jane Doe"}},"datePublished":"2025-03-14"}}
</script></head><body>
<div class="top-bar"><a href="/">The Weekly Review</a><a href="/login">Sign in</a></div>
<nav class="sections"><a href="/world">World</a><a href="/business">Business</a></nav>
<div class="article-wrapper"><header class="article-header">
<span class="kicker">Local government</span><h1 itemprop="headline">{h}</h1>
<p class="byline">{BYLINE}</p>
<p class="dateline"><time datetime="2025-03-14">Fri 14 Mar 2025 09.30 GMT</time></p></header>
<figure class="lead-image"><img src="/i/bridge.jpg" alt="">
<figcaption><p class="caption">{CAPTION}</p><p class="credit">{CREDIT}</p></figcaption></figure>
<section class="article-body" itemprop="articleBody">
{_ps(ps)}
</section>
<aside class="more"><h2>More from Local government</h2>
<a href="/a">{RELATED[0]}</a><a href="/b">{RELATED[1]}</a></aside>
<div class="newsletter"><h3>Subscribe to our daily briefing</h3>
<form><input type="email"><button>Sign up</button></form></div>
</div>
<footer><ul><li><a href="/about">About us</a></li><li><a href="/terms">Terms</a></li></ul>
<p>Copyright 2025 The Weekly Review Ltd.</p></footer></body></html>"""


def tabloid(h: str, ps: list[str]) -> str:
    """Div soup: no <article>, the picture block and its credit inside the body container."""
    return f"""<html><head><meta http-equiv="Content-Type" content="text/html; charset=utf-8">
<title>{h} - The Star-Gazette</title></head><body>
<div id="hdr"><div class="logo">Star-Gazette</div><div class="menu"><a href="/news">NEWS</a> |
<a href="/showbiz">SHOWBIZ</a> | <a href="/subscribe">SUBSCRIBE</a></div></div>
<div id="main"><div class="article">
<h1 class="headline">{h}</h1>
<div class="meta"><span class="author">{BYLINE}</span> <span class="date">14 Mar 2025, 9:30</span>
</div>
<div class="article-body">
<div class="image-block"><img src="/p/bridge.jpg"><div class="caption">{CAPTION}</div>
<div class="credit">{CREDIT}</div></div>
{_ps(ps)}
</div>
<aside class="read-more"><h4>READ MORE</h4><ul><li><a href="/a">{RELATED[0]}</a></li>
<li><a href="/b">{RELATED[1]}</a></li></ul></aside>
</div></div>
<div id="ftr">Copyright Star-Gazette Media Group 2025. <a href="/contact">Contact</a></div>
</body></html>"""


def paywall(h: str, ps: list[str]) -> str:
    """A paywalled page: headline and byline, then a subscription prompt and no paragraphs."""
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>{h} | The Daily Ledger</title></head><body>
<header><nav><a href="/">Home</a> <a href="/politics">Politics</a></nav></header>
<main><article><h1>{h}</h1><div class="byline">{BYLINE}</div>
<div class="paywall">This article is for subscribers only. <a href="/subscribe">Subscribe now</a>
<span>Already a subscriber? <a href="/login">Log in</a></span></div>
</article></main>
<footer><p>Copyright 2025 The Daily Ledger. All rights reserved.</p></footer></body></html>"""


TEMPLATES = [ledger, wordpress, magazine, tabloid]
EXTRACTORS = ["newspaper", "trafilatura", "newspaper+trafilatura"]
Template = Callable[[str, list[str]], str]


def make_input(
    tmp_path: Path,
    pages: dict[str, str | None],
    *,
    header: bool = True,
    headline: str = HEADLINE,
) -> tuple[Path, Path]:
    """A NewsImages CSV with one row per id and ``html/{id}.html`` for pages that are not None."""
    html = tmp_path / "html"
    html.mkdir(parents=True, exist_ok=True)
    csv_path = tmp_path / "articles.csv"
    with open(csv_path, "w", newline="", encoding="utf-8") as f:
        w = csv.writer(f)
        if header:
            w.writerow(NEWSIMAGES_COLUMNS)
        for article_id, page in pages.items():
            image_url = f"https://img.example.com/{article_id}.jpg"
            w.writerow([article_id, f"{URL}-{article_id}", headline, TAGS, IMAGE_ID, image_url])
            if page is not None:
                (html / f"{article_id}.html").write_text(page, encoding="utf-8")
    return csv_path, html


def run_rows(
    tmp_path: Path, pages: dict[str, str | None], **params: object
) -> tuple[list[dict], dict[str, int]]:
    csv_path, html = make_input(tmp_path, pages)
    out = tmp_path / "artifacts" / "articles.parquet"
    summary = leads.run(LeadsParams(**params), csv_path, html, out)
    return pq.read_table(out).to_pylist(), summary


def budget_for(text: str) -> int:
    """The max_tokens that ``HEADLINE: text`` exactly fills."""
    return count_tokens([f"{HEADLINE}: {text}"])[0]


# --- whole pages ----------------------------------------------------------------------------------


@pytest.mark.parametrize("extractor", EXTRACTORS)
def test_lead_from_each_template(tmp_path: Path, extractor: str) -> None:
    pages = {str(i): t(HEADLINE, PARAGRAPHS) for i, t in enumerate(TEMPLATES)}
    rows, summary = run_rows(tmp_path, pages, extractor=extractor)
    assert summary == {"ok": 4, "no_html": 0, "no_text": 0, "error": 0}
    for row, template in zip(rows, TEMPLATES, strict=True):
        lead = row["lead"]
        assert row["status"] == "ok", template.__name__
        assert row["extractor"] in extractor.split("+")
        assert lead.startswith(S[0]), (template.__name__, lead[:120])
        for text in FURNITURE:
            assert text not in lead, (template.__name__, text, lead)
        assert lead.endswith(tuple(S)), (template.__name__, lead[-120:])
        assert row["headline"] == HEADLINE
        assert row["headline_lead"] == f"{HEADLINE}: {lead}"
        assert row["tokens"] == count_tokens([row["headline_lead"]])[0] <= 248


def test_default_budget_takes_the_whole_short_body(tmp_path: Path) -> None:
    rows, _ = run_rows(tmp_path, {"1": ledger(HEADLINE, PARAGRAPHS)})
    assert rows[0]["lead"] == " ".join(S)  # 9 sentences, ~190 tokens: all fit in 248


@pytest.mark.parametrize("template", TEMPLATES)
def test_small_budget_keeps_exactly_the_sentences_that_fit(
    tmp_path: Path, template: Template
) -> None:
    two = budget_for(f"{S[0]} {S[1]}")
    pages = {"1": template(HEADLINE, PARAGRAPHS)}
    rows, _ = run_rows(tmp_path / "a", pages, max_tokens=two)
    assert rows[0]["lead"] == f"{S[0]} {S[1]}"
    assert rows[0]["tokens"] == two
    rows, _ = run_rows(tmp_path / "b", pages, max_tokens=two - 1)
    assert rows[0]["lead"] == S[0]  # "Mr." did not end the second sentence early


def test_sentences_across_paragraphs(tmp_path: Path) -> None:
    three = budget_for(" ".join(S[:3]))
    rows, _ = run_rows(tmp_path, {"1": magazine(HEADLINE, PARAGRAPHS)}, max_tokens=three)
    assert rows[0]["lead"] == " ".join(S[:3])  # "U.S." and "$42.5" did not split the third


def test_long_first_sentence_is_cut_on_a_word_boundary(tmp_path: Path) -> None:
    long = (
        "The city council, after a session that ran past midnight and heard from more than "
        "forty residents, engineers, shop owners, school principals, commuters and the heads "
        "of two neighbouring towns whose workers cross the river every day, voted on Thursday "
        "to build a new bridge across the Elm River at a cost the mayor put at $42.5 million."
    )
    pages = {"1": wordpress(HEADLINE, [long, *PARAGRAPHS[1:]])}
    rows, _ = run_rows(tmp_path, pages, max_tokens=40)
    lead, words = rows[0]["lead"], long.split()
    k = len(lead.split())
    assert 0 < k < len(words)
    assert lead == " ".join(words[:k]).rstrip(",")  # whole words, no dangling comma
    assert rows[0]["tokens"] <= 40
    assert budget_for(" ".join(words[: k + 1])) > 40  # the next word would not fit


def test_headline_longer_than_budget_gives_empty_lead(tmp_path: Path) -> None:
    rows, _ = run_rows(tmp_path, {"1": ledger(HEADLINE, PARAGRAPHS)}, max_tokens=5)
    assert rows[0]["status"] == "ok"
    assert (rows[0]["lead"], rows[0]["headline_lead"]) == ("", HEADLINE)


# --- statuses -------------------------------------------------------------------------------------


def test_missing_html_is_no_html(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.INFO, logger="newsimg.leads"):
        rows, summary = run_rows(tmp_path, {"1": ledger(HEADLINE, PARAGRAPHS), "2": None})
    assert "2 articles: ok 1, no_html 1, no_text 0, error 0" in caplog.text
    row = rows[1]
    assert (row["status"], row["lead"], row["extractor"]) == ("no_html", "", "")
    assert row["headline_lead"] == HEADLINE
    assert row["tokens"] == count_tokens([HEADLINE])[0]
    assert summary == {"ok": 1, "no_html": 1, "no_text": 0, "error": 0}


@pytest.mark.parametrize("extractor", EXTRACTORS)
def test_paywall_is_no_text(tmp_path: Path, extractor: str) -> None:
    rows, summary = run_rows(tmp_path, {"1": paywall(HEADLINE, [])}, extractor=extractor)
    assert (rows[0]["status"], rows[0]["lead"], rows[0]["extractor"]) == ("no_text", "", "")
    assert rows[0]["headline_lead"] == HEADLINE
    assert summary["no_text"] == 1


def _raise_import_error(html: str, url: str) -> str:
    raise ImportError("You must install jieba before using the Chinese tokenizer.\nTry pip")


def test_extractor_error_is_recorded_not_raised(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # What newspaper4k does on a page in Chinese, Japanese, Korean, Hindi, Thai or Arabic.
    monkeypatch.setitem(leads.EXTRACTORS, "newspaper", _raise_import_error)
    pages = {"1": ledger(HEADLINE, PARAGRAPHS)}
    rows, summary = run_rows(tmp_path / "a", pages, extractor="newspaper")
    assert rows[0]["status"] == (
        "error: newspaper: ImportError: You must install jieba before using the Chinese tokenizer."
    )
    assert (rows[0]["lead"], rows[0]["extractor"]) == ("", "")
    assert summary["error"] == 1
    rows, _ = run_rows(tmp_path / "b", pages, extractor="newspaper+trafilatura")
    assert (rows[0]["status"], rows[0]["extractor"]) == ("ok", "trafilatura")
    assert rows[0]["lead"].startswith(S[0])


def test_trafilatura_fills_in_when_newspaper_finds_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(leads.EXTRACTORS, "newspaper", lambda html, url: "Advertisement\n")
    rows, _ = run_rows(tmp_path, {"1": tabloid(HEADLINE, PARAGRAPHS)})
    assert (rows[0]["status"], rows[0]["extractor"]) == ("ok", "trafilatura")
    assert rows[0]["lead"] == " ".join(S)


def test_real_non_latin_page_does_not_stop_the_stage(tmp_path: Path) -> None:
    # newspaper4k imports jieba for a page declared Chinese; without it, it raises ImportError.
    page = ledger(HEADLINE, PARAGRAPHS).replace('lang="en"', 'lang="zh"')
    pages = {"1": page, "2": ledger(HEADLINE, PARAGRAPHS)}
    rows, _ = run_rows(tmp_path / "a", pages)
    assert [r["status"] for r in rows] == ["ok", "ok"]  # trafilatura covers newspaper's failure
    if importlib.util.find_spec("jieba") is None:
        rows, summary = run_rows(tmp_path / "b", pages, extractor="newspaper")
        assert rows[0]["status"].startswith("error: newspaper: ImportError: You must install jieba")
        assert rows[1]["status"] == "ok"
        assert summary["error"] == 1


# --- input and output -----------------------------------------------------------------------------


def test_csv_without_header_keeps_csv_order(tmp_path: Path) -> None:
    ids = ["8495", "76", "2307", "1004"]
    pages = {i: t(HEADLINE, PARAGRAPHS) for i, t in zip(ids, TEMPLATES, strict=True)}
    csv_path, html = make_input(tmp_path, pages, header=False)
    out = tmp_path / "articles.parquet"
    leads.run(LeadsParams(), csv_path, html, out)
    table = pq.read_table(out)
    assert table.column("article_id").to_pylist() == ids
    assert table.column("status").to_pylist() == ["ok"] * 4
    assert table.schema.names == [
        "article_id",
        "article_url",
        "headline",
        "tags",
        "image_id",
        "lead",
        "headline_lead",
        "tokens",
        "status",
        "extractor",
    ]
    assert str(table.schema.field("tokens").type) == "int32"
    assert str(table.schema.field("article_id").type) == "string"
    assert table.column("article_url").to_pylist()[0] == f"{URL}-8495"
    assert table.column("tags").to_pylist()[0] == TAGS
    assert table.column("image_id").to_pylist()[0] == IMAGE_ID


def test_output_is_replaced_atomically(tmp_path: Path) -> None:
    csv_path, html = make_input(tmp_path, {"1": ledger(HEADLINE, PARAGRAPHS)})
    out_dir = tmp_path / "artifacts"
    out_dir.mkdir()
    out = out_dir / "articles.parquet"
    out.write_bytes(b"an old, broken output")
    leads.run(LeadsParams(), csv_path, html, out)
    assert pq.read_table(out).num_rows == 1
    assert [p.name for p in out_dir.iterdir()] == ["articles.parquet"]  # no temporary left


def test_failed_write_leaves_old_output_and_no_temporary(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    csv_path, html = make_input(tmp_path, {"1": ledger(HEADLINE, PARAGRAPHS)})
    out = tmp_path / "articles.parquet"
    out.write_bytes(b"old")

    def disk_full(table: object, where: str) -> None:
        Path(where).write_bytes(b"half a file")
        raise OSError("No space left on device")

    monkeypatch.setattr(leads.pq, "write_table", disk_full)
    with pytest.raises(OSError, match="No space"):
        leads.run(LeadsParams(), csv_path, html, out)
    assert out.read_bytes() == b"old"
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "articles.csv",
        "articles.parquet",
        "html",
    ]


def test_bad_inputs_are_input_errors(tmp_path: Path) -> None:
    out = tmp_path / "out.parquet"
    html = tmp_path / "html"
    html.mkdir()
    with pytest.raises(InputError, match="does not exist"):
        leads.run(LeadsParams(), tmp_path / "missing.csv", html, out)
    wrong = tmp_path / "wrong.csv"
    wrong.write_text("id,title\n1,A headline\n")
    with pytest.raises(InputError, match="expected 6"):
        leads.run(LeadsParams(), wrong, html, out)
    csv_path, html = make_input(tmp_path, {"1": None})
    with open(csv_path, "a", encoding="utf-8") as f:
        f.write(f"1,{URL},{HEADLINE},tags,{IMAGE_ID},https://img.example.com/1.jpg\n")
    with pytest.raises(InputError, match="repeats"):
        leads.run(LeadsParams(), csv_path, html, out)
    assert not out.exists()


# --- the text helpers -----------------------------------------------------------------------------


def test_split_sentences_abbreviations_and_decimals() -> None:
    text = (
        "He met Mr. Smith and Dr. J. K. Rowe in the U.S. The talks cost $4.5 billion. "
        '"Why now?" she asked. Apple Inc. said no. Shares of Acme Inc. The firm fell 2.5%. '
        "It ended at 5 p.m. on Jan. 3. Police left!"
    )
    assert leads.split_sentences(text) == [
        "He met Mr. Smith and Dr. J. K. Rowe in the U.S.",
        "The talks cost $4.5 billion.",
        '"Why now?" she asked.',
        "Apple Inc. said no.",
        "Shares of Acme Inc.",
        "The firm fell 2.5%.",
        "It ended at 5 p.m. on Jan. 3.",
        "Police left!",
    ]


def test_clean_paragraphs_drops_leaked_furniture() -> None:
    text = "\n".join(
        [
            f"{HEADLINE} | The Daily Ledger",  # trafilatura's title line
            "By JANE DOE and John Roe, Reuters",
            "Updated March 14, 2025 at 9:30 a.m.",
            "Local government",  # kicker
            f"{CAPTION} {CREDIT}",
            "Credit: AFP via Getty Images",
            "WASHINGTON (Reuters) -  The U.S.   Senate voted on Thursday.",
            "Advertisement",
            "By noon, hundreds had gathered outside.",
        ]
    )
    assert leads.clean_paragraphs(text, HEADLINE) == [
        "The U.S. Senate voted on Thursday.",
        "By noon, hundreds had gathered outside.",
    ]


def test_join_headline() -> None:
    assert leads.join_headline("Title", ": ", "Lead.") == "Title: Lead."
    assert leads.join_headline("Title", ": ", "") == "Title"
    assert leads.join_headline("", ": ", "Lead.") == "Lead."
