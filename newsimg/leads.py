"""The leads stage: each article's lead text, extracted offline from its saved page.

For every row of the NewsImages CSV the saved page ``html/{article_id}.html`` goes through
newspaper4k and/or trafilatura; the body is cleaned of leaked page furniture (title line,
bylines, datelines, photo credits, paywall prompts) and cut into whole sentences, as many as fit
the text encoder's token budget together with the headline. One Parquet row per CSV row, in CSV
order, with a status per article; one bad page never stops the stage.
"""

from __future__ import annotations

import difflib
import functools
import logging
import re
import warnings
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
from tqdm import tqdm

from newsimg.atomic import atomic_path
from newsimg.clip import count_tokens
from newsimg.errors import InputError
from newsimg.params import LeadsParams
from newsimg.sources import read_newsimages_csv

log = logging.getLogger(__name__)

SCHEMA = pa.schema(
    [
        ("article_id", pa.string()),
        ("article_url", pa.string()),
        ("headline", pa.string()),
        ("tags", pa.string()),
        ("image_id", pa.string()),
        ("lead", pa.string()),
        ("headline_lead", pa.string()),
        ("tokens", pa.int32()),
        ("status", pa.string()),
        ("extractor", pa.string()),
    ]
)
STATUSES = ("ok", "no_html", "no_text", "error")
MIN_WORDS = 8  # less cleaned body text than this is "nothing useful" (paywall stubs, link lists)


# --- extractors -----------------------------------------------------------------------------------


@functools.cache
def _newspaper_article() -> type:
    # Imported on first use: newspaper costs ~0.5 s to import, and warns on import that nltk
    # is absent, which only matters for its .nlp(), never called here.
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="nltk is not installed")
        from newspaper import Article
    return Article


def extract_newspaper(html: str, url: str) -> str:
    """Body text by newspaper4k, offline; images are not fetched (its default downloads them)."""
    article = _newspaper_article()(url, fetch_images=False)
    article.download(input_html=html)
    article.parse()
    return article.text or ""


def extract_trafilatura(html: str, url: str) -> str:
    """Body text by trafilatura; comments and tables are not lead material."""
    import trafilatura

    text = trafilatura.extract(html, url=url, include_comments=False, include_tables=False)
    return text or ""


EXTRACTORS: dict[str, Callable[[str, str], str]] = {
    "newspaper": extract_newspaper,
    "trafilatura": extract_trafilatura,
}


# --- cleaning -------------------------------------------------------------------------------------

_NAME = r"[A-Z][\w.'’-]*(?:\s+(?:[A-Z][\w.'’-]*|de|van|von|der|da|di|al|bin))*"
_NAMES = rf"{_NAME}(?:\s*(?:,|and|&)\s*{_NAME})*"
# A line that is only a byline: "By Jane Doe", "BY JANE DOE and John Roe, Reuters". Names must
# be capitalised so that "By noon, hundreds had gathered." stays.
_BYLINE_LINE = re.compile(rf"^(?:By|BY|by)\s+{_NAMES}(?:\s*[,|•·/—–-]\s*{_NAME})*$")
# A byline glued before the text with an explicit separator: "By Jane Doe | The ..."
_BYLINE_PREFIX = re.compile(rf"^(?:By|BY)\s+{_NAMES}\s*[|•·—–]\s*")
# Photo credits and captions that carry one: "Photo: John Smith/Reuters", "Credit: AP",
# "The old bridge at dusk. Photo: Jane Roe/AFP via Getty Images".
_CREDIT = re.compile(
    r"(?:^|\s)(?:photo(?:graph)?s?|image|picture|pic|credit|credits|illustration|video|"
    r"file photo|source)(?:\s*[:|]|\s+(?:by|courtesy(?: of)?)\s)\s*\S.{0,80}$"
    r"|(?:getty images|shutterstock|/\s*(?:reuters|ap|afp|epa|pa)|\((?:reuters|ap|afp)\))\.?$",
    re.IGNORECASE,
)
_TIMESTAMP_LINE = re.compile(
    r"^(?:updated|published|posted|last updated|first published|last modified)\b", re.IGNORECASE
)
# Wire datelines before the first sentence: "WASHINGTON (Reuters) - ", "LONDON, March 3 — ".
_WIRE_DATELINE = re.compile(
    r"^[A-Z][A-Z .'’-]{2,40}(?:,[^—–-]{1,40})?(?:\s*\([\w .]{2,30}\))?\s+[—–-]+\s+"
)
# Sentences that are paywall or page prompts, never article text.
_PROMPT = re.compile(
    r"\b(?:subscribers? only|subscribe (?:now|today|to (?:continue|read|keep))|"
    r"already a subscriber|(?:log|sign) in to (?:continue|read)|continue reading|"
    r"to read (?:this|the full) (?:article|story)|all rights reserved)\b",
    re.IGNORECASE,
)
_SENTENCE_END = re.compile(r"""[.!?…:;]["'”’)\]]*$""")
_SHORT_LINE_WORDS = 8


def _norm(text: str) -> str:
    return " ".join(re.findall(r"\w+", text.casefold()))


def _drop_headline(line: str, headline: str) -> str:
    """The line without a leading copy of the headline (trafilatura starts with the title).

    Near-equal counts too: pages tweak punctuation or add " | Site" to the title.
    """
    head, norm_line = _norm(headline), _norm(line)
    if not head:
        return line
    if norm_line.startswith(head + " "):
        # The title glued to the text (trafilatura on thin pages): cut after the headline's words.
        tokens = line.split()
        for i in range(1, len(tokens)):
            if _norm(" ".join(tokens[:i])) == head:
                return " ".join(tokens[i:])
    if norm_line == head or difflib.SequenceMatcher(None, norm_line, head).ratio() >= 0.85:
        return ""
    return line


def _is_furniture(line: str) -> bool:
    """Whole lines that are page furniture, not article text."""
    words = len(line.split())
    if _BYLINE_LINE.match(line) and words <= 12:
        return True
    if _TIMESTAMP_LINE.match(line) and words <= 12:
        return True
    if _CREDIT.search(line) and words <= 40:  # a caption ending in its credit
        return True
    # Datelines, kickers, subheadings, "Advertisement", "Share": short and not a sentence.
    return words <= _SHORT_LINE_WORDS and not _SENTENCE_END.search(line)


def clean_paragraphs(text: str, headline: str) -> list[str]:
    """The extractor's text as paragraphs with leaked furniture removed, whitespace collapsed."""
    paragraphs = []
    for raw in text.splitlines():
        line = " ".join(raw.split())
        if not paragraphs:  # leaks sit before the first real paragraph
            line = _drop_headline(line, headline)
            line = _BYLINE_PREFIX.sub("", line)
            line = _WIRE_DATELINE.sub("", line)
        if line and not _is_furniture(line):
            paragraphs.append(line)
    return paragraphs


# --- sentences ------------------------------------------------------------------------------------


def _wordset(words: str) -> frozenset[str]:
    return frozenset(words.split())


# Never the end of a sentence: titles before a name.
_TITLES = _wordset(
    "mr mrs ms dr prof sen rep gov gen lt col maj sgt capt cmdr adm rev hon st mt ft vs v"
)
# End a sentence only when a typical sentence opener follows: "Apple Inc. The company ...".
_AMBIGUOUS = _wordset(
    "inc corp co ltd llc plc jr sr bros jan feb mar apr jun jul aug sep sept oct nov dec "
    "etc approx est dept univ ave blvd rd"
)
_OPENERS = _wordset(
    "the a an he she it they we i you his her its their our this that these those there here "
    "but and or so yet in on at as for if when while after before since some many most other "
    "meanwhile however still now then what why how who officials police"
)
_DOTTED = re.compile(r"^(?:[A-Za-z]\.){2,}$")  # U.S., U.K., a.m., e.g.
# Candidate ends: terminal punctuation, closing quotes, space, then a capital, digit or quote.
_BOUNDARY = re.compile(r"""([.!?…]+)["'”’)\]]*(?=\s+["'“‘(\[]?[A-Z0-9])""")


def _ends_sentence(text: str, match: re.Match[str]) -> bool:
    if match.group(1) != ".":
        return True  # "!", "?", "…", "..." always end one
    prev = re.sub(r"""["'”’)\]]+$""", "", text[: match.end()].split()[-1])
    word = prev[:-1].lstrip("\"'“‘([")
    nxt = text[match.end() :].split(None, 1)[0].strip("\"'“‘([")
    if word.lower() in _TITLES or re.fullmatch(r"[A-Z]", word):  # "Mr. Alvarez", "J. Smith"
        return False
    if word.lower() in ("no", "nos", "fig"):  # "No. 10 Downing Street", but "He said no. The"
        return not nxt[:1].isdigit()
    if word.lower() in _AMBIGUOUS or _DOTTED.match(prev):
        return nxt.lower() in _OPENERS
    return True


def split_sentences(paragraph: str) -> list[str]:
    """Sentences of one paragraph by regex (no NLTK data): abbreviation- and decimal-aware.

    Decimals ("$42.5") never split because a boundary needs whitespace after the period.
    """
    sentences, start = [], 0
    for match in _BOUNDARY.finditer(paragraph):
        if _ends_sentence(paragraph, match):
            sentences.append(paragraph[start : match.end()].strip())
            start = match.end()
    tail = paragraph[start:].strip()
    if tail:
        sentences.append(tail)
    return sentences


# --- fitting the budget ---------------------------------------------------------------------------


def join_headline(headline: str, separator: str, lead: str) -> str:
    """``headline + separator + lead``, or whichever of the two is not empty."""
    if headline and lead:
        return headline + separator + lead
    return headline or lead


def _largest_fitting(n: int, fits: Callable[[int], bool]) -> int:
    """The largest k in [0, n] with fits(k), for fits monotone (true up to some k)."""
    lo, hi = 0, n
    while lo < hi:
        mid = (lo + hi + 1) // 2
        if fits(mid):
            lo = mid
        else:
            hi = mid - 1
    return lo


def fit_lead(headline: str, sentences: Sequence[str], separator: str, max_tokens: int) -> str:
    """Whole leading sentences within the budget; a first sentence too long is cut at a word.

    Token counts only grow as text is added, so a binary search finds the longest prefix.
    """

    def fits(lead: str) -> bool:
        return count_tokens([join_headline(headline, separator, lead)])[0] <= max_tokens

    # Every whitespace word costs at least one token: sentences past max_tokens words never fit.
    candidates, words = [], 0
    for sentence in sentences:
        candidates.append(sentence)
        words += len(sentence.split())
        if words > max_tokens:
            break
    k = _largest_fitting(len(candidates), lambda k: fits(" ".join(candidates[:k])))
    if k or not candidates:
        return " ".join(candidates[:k])
    first = candidates[0].split()[:max_tokens]
    k = _largest_fitting(len(first), lambda k: fits(" ".join(first[:k])))
    # A cut mid-sentence should not end on a dangling comma or dash.
    return " ".join(first[:k]).rstrip(",;:–—-")


# --- one article ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Lead:
    lead: str
    status: str  # "ok", "no_html", "no_text" or "error: <reason>"
    extractor: str  # which extractor gave the text, "" when none did


def _reason(name: str, err: BaseException) -> str:
    first_line = (str(err).strip().splitlines() or [""])[0]
    return f"error: {name}: {type(err).__name__}: {first_line}"[:160]


def _read_html(path: Path) -> str:
    """Page text; saved pages are not all UTF-8, so other encodings are detected."""
    from trafilatura.utils import decode_file

    raw = path.read_bytes()
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        return decode_file(raw)


def article_lead(row: dict[str, str], html_dir: Path, params: LeadsParams) -> Lead:
    """Extract, clean and cut one article's lead; every failure becomes a status."""
    path = html_dir / f"{row['article_id']}.html"
    if not path.is_file():
        return Lead("", "no_html", "")
    try:
        html = _read_html(path)
    except OSError as err:
        return Lead("", _reason("read", err), "")
    headline, errors = row["article_title"], []
    for name in params.extractor.split("+"):
        try:
            text = EXTRACTORS[name](html, row["article_url"])
        # Extractors raise whatever their parsers and optional tokenizers raise (ImportError for
        # a missing jieba or nltk, lxml errors, ...): record it and try the next extractor.
        except Exception as err:
            log.debug("article %s: %s failed: %r", row["article_id"], name, err)
            errors.append(_reason(name, err))
            continue
        sentences = [s for p in clean_paragraphs(text, headline) for s in split_sentences(p)]
        sentences = [s for s in sentences if not _PROMPT.search(s)]
        if sum(len(s.split()) for s in sentences) >= MIN_WORDS:
            lead = fit_lead(headline, sentences, params.separator, params.max_tokens)
            return Lead(lead, "ok", name)
    if errors:
        return Lead("", errors[0], "")
    return Lead("", "no_text", "")


# --- the stage ------------------------------------------------------------------------------------


def _read_articles(articles: Path, html: Path) -> list[dict[str, str]]:
    """CSV rows, checked before any work: ids must be unique, usable file names."""
    if not articles.is_file():
        raise InputError(f"articles CSV {articles} does not exist")
    if not html.is_dir():
        raise InputError(f"html folder {html} does not exist or is not a folder")
    try:
        rows = read_newsimages_csv(articles)
    except (UnicodeDecodeError, OSError) as err:
        raise InputError(f"{articles}: cannot read: {err}") from None
    seen: set[str] = set()
    for line, row in enumerate(rows, start=1):
        article_id = row["article_id"]
        if not article_id or article_id in (".", "..") or re.search(r"[/\\]", article_id):
            raise InputError(f"{articles}: row {line}: article_id {article_id!r} is not usable")
        if article_id in seen:
            raise InputError(f"{articles}: row {line}: article_id {article_id!r} repeats")
        seen.add(article_id)
    return rows


def _write_atomic(table: pa.Table, out: Path) -> None:
    with atomic_path(out) as tmp:
        pq.write_table(table, tmp)


def _summary(statuses: Sequence[str], extractors: Sequence[str]) -> dict[str, int]:
    counts = Counter("error" if s.startswith("error") else s for s in statuses)
    summary = {status: counts.get(status, 0) for status in STATUSES}
    by_extractor = Counter(e for e in extractors if e)
    log.info(
        "leads: %d articles: %s; text from %s",
        len(statuses),
        ", ".join(f"{k} {v}" for k, v in summary.items()),
        ", ".join(f"{k} {v}" for k, v in sorted(by_extractor.items())) or "none",
    )
    errors = Counter(s for s in statuses if s.startswith("error"))
    for reason, n in errors.most_common(5):
        log.warning("%d article(s): %s", n, reason)
    return summary


def run(params: LeadsParams, articles: Path, html: Path, out: Path) -> dict[str, int]:
    """Write ``out`` (Parquet, one row per CSV row, CSV order); return counts by status."""
    rows = _read_articles(articles, html)
    leads = [
        article_lead(row, html, params)
        for row in tqdm(rows, desc="leads", unit="article", disable=None)
    ]
    headline_leads = [
        join_headline(row["article_title"], params.separator, lead.lead)
        for row, lead in zip(rows, leads, strict=True)
    ]
    columns = {
        "article_id": [r["article_id"] for r in rows],
        "article_url": [r["article_url"] for r in rows],
        "headline": [r["article_title"] for r in rows],
        "tags": [r["article_tags"] for r in rows],
        "image_id": [r["image_id"] for r in rows],
        "lead": [lead.lead for lead in leads],
        "headline_lead": headline_leads,
        "tokens": count_tokens(headline_leads),
        "status": [lead.status for lead in leads],
        "extractor": [lead.extractor for lead in leads],
    }
    _write_atomic(pa.table(columns, schema=SCHEMA), out)
    return _summary(columns["status"], columns["extractor"])
