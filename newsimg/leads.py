"""The leads stage: each article's lead text, extracted offline from its saved page.

Pages live in a cache folder (``leads.pages_dir``, one ``{article_id}.html`` per article). With
``leads.download: true`` the stage first fills the cache from ``article_url``, politely (a limit
per host, timeouts, retries with backoff, a size cap, HTML only); the extraction itself reads only
the cache, so re-runs need no network and give the same output.

Every page goes through newspaper4k and/or trafilatura; each body is cleaned of leaked page
furniture (title lines, bylines, captions and photo credits, ad slots, share, newsletter and
cookie boxes, editor's notes, paywall prompts), the two are combined where they agree (see
:func:`combine`), and the lead is cut by ``leads.mode``: ``sentences`` keeps whole sentences
while the approach text (``leads.template``) fits the text encoder's token budget; ``first_words``
is the paper's rule, the first ``max_words`` whitespace words. One Parquet row per CSV row, in CSV
order, with a status per article; one bad page never stops the stage.
"""

from __future__ import annotations

import contextlib
import difflib
import functools
import itertools
import logging
import re
import warnings
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
from tqdm import tqdm

from newsimg.atomic import atomic_path
from newsimg.clip import count_tokens
from newsimg.errors import InputError, TooManyFailuresError
from newsimg.pages import download_pages, read_page, reason
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
        ("lead_words", pa.int32()),  # whitespace words of the lead
        ("lead_tokens", pa.int32()),  # tokens of the lead alone, SOT/EOT included; 0 for no lead
        ("headline_lead", pa.string()),  # the headline_lead approach's text (leads.template)
        ("headline_lead_tokens", pa.int32()),  # its tokens, SOT/EOT included
        ("status", pa.string()),
        ("language", pa.string()),  # ISO 639-1 of the lead by py3langid; "" for no lead
        ("language_confidence", pa.float32()),  # its probability, 0 for no lead
        ("extractor", pa.string()),
        ("download", pa.string()),  # what the download did; "" when leads.download is false
    ]
)
# "ok" is the only success. Pages: no_url (no page and no URL to get it from), no_page,
# empty_page, too_large, not_html, bad_encoding. Text: no_text (nothing usable: empty body, link
# list), paywall (a subscription prompt and at most a short teaser),
# "error: <extractor>: <reason>" (every extractor failed).
STATUSES = (
    "ok",
    "no_url",
    "no_page",
    "empty_page",
    "too_large",
    "not_html",
    "bad_encoding",
    "no_text",
    "paywall",
    "error",
)
MIN_WORDS = 8  # less cleaned body text than this is "nothing useful" (paywall stubs, link lists)


# --- extractors -----------------------------------------------------------------------------------


@functools.cache
def _newspaper_article() -> type:
    # Imported on first use: newspaper costs ~0.5 s to import, and warns on import that nltk
    # is absent, which only matters for its .nlp(), never called here.
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="nltk is not installed")
        logging.getLogger("newspaper").setLevel(logging.WARNING)  # import-time INFO chatter
        from newspaper import Article
    return Article


def _nothing(*args: object, **kwargs: object) -> None:
    return None


def extract_newspaper(html: str, url: str, *, body_only: bool = True) -> str:
    """Body text by newspaper4k, offline; images are not fetched (its default downloads them).

    ``body_only``: its parse skips what only feeds the other fields (authors, publishing date,
    videos, images): the same text (checked on 159 real and self-written pages) in less than
    half the time. Should a newspaper4k release rename those steps, they simply run again.
    """
    article = _newspaper_article()(url, fetch_images=False)
    if body_only:
        extractor = article.extractor
        extractor.get_authors = lambda *args, **kwargs: []
        extractor.get_publishing_date = _nothing
        extractor.get_videos = lambda *args, **kwargs: []
        extractor.parse_images = _nothing
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
    r"file photo|source|fotos?|фото|bild|imagem|immagine|crédits?(?: photo)?|gambar)"
    r"(?:\s*[:|]|\s+(?:by|courtesy(?: of)?)\s)\s*\S.{0,80}$"
    r"|(?:getty images|shutterstock|/\s*(?:reuters|ap|afp|epa|pa)|\((?:reuters|ap|afp)\))\.?$"
    r"|(?:^|\s)©\s*\S.{0,80}$",  # "© Katholisches Medienzentrum, 13.07.2021"
    re.IGNORECASE,
)
# Lines that are page furniture whatever their length: captions and credits in the BBC or wire
# style, ad slots, share / newsletter / cookie boxes, related-link teasers.
_FURNITURE_LINE = re.compile(
    r"^(?:image copyright|image caption|media caption|image source|getty images|"
    r"\(?(?:ap|afp|reuters|epa|pa|ap photo)\s*(?:photo|images?)?\s*/|"
    r"advertisement|sponsored|story continues|scroll (?:down )?to continue|"
    r"(?:read|see) (?:more|also)\b|related(?: stories| articles| coverage)?\s*:|also read\b|"
    r"(?:à )?lire aussi\b|voir aussi\b|lesen sie (?:auch|mehr)\b|mehr zum thema\b|"
    r"(?:leia|veja) (?:também|mais)\b|leggi anche\b|(?:baca|lihat) juga\b|"
    r"(?:lee|ver) también\b|(?:lees|zie) ook\b|читайте (?:также|тоже|еще|ещё)\b|"
    r"смотрите также\b|관련\s?기사|あわせて読みたい|関連記事|\{\{|"
    r"more from\b|watch\s*:|listen\s*:|share (?:this|on|via|the article|article)\b|copy link|"
    r"follow us\b|follow @|click here\b|sign up\b|subscribe (?:to|for|now|today)\b|"
    r"get (?:our|the) .{0,40}(?:newsletter|briefing)|download (?:our|the) app)",
    re.IGNORECASE,
)
# Whole sentences of cookie banners and newsletter boxes (they end with a period, so the
# short-line rule misses them).
_BOX_SENTENCE = re.compile(
    r"\b(?:we use cookies|use of cookies|cookie (?:policy|settings|preferences)|accept (?:all )?"
    r"cookies|by continuing to (?:browse|use)|(?:sign up|subscribe) (?:for|to) (?:our|the) "
    r"[\w ]{0,30}newsletter|newsletter delivered|delivered (?:straight )?to your inbox|"
    r"share (?:this|on) (?:article|story|facebook|twitter|x)|follow us on|"
    r"get our free [\w ]{0,40}(?:email|newsletter)|i would like to be emailed|"
    r"read our privacy (?:notice|policy)|newsletter (?:abonnieren|bestellen)|jetzt abonnieren|"
    r"(?:enable|activate|turn on) javascript|javascript (?:is )?(?:disabled|required)|"
    r"javascript aktivieren|activez (?:le )?javascript)\b",
    re.IGNORECASE,
)
# Cookie banners in any language: "cookie" with the words such banners use around it.
_COOKIE_SENTENCE = re.compile(
    r"(?=.*\bcookies?\b)(?=.*\b(?:website|webseite|site|sitio|browser|brows|datenschutz|privacy|"
    r"consent|einsatz|zustimm|accept|akzept|verwende|utilis|utiliz|usamos|navigat)\w*)",
    re.IGNORECASE,
)
# Breadcrumbs: "Home > News > Politics", "Accueil › Actualités ›".
_BREADCRUMB = re.compile(r"^(?:[^>›»]{1,60}\s[>›»]\s){2,}")
# Credits inside a paragraph: "(AP Photo/Evan Vucci)", "(Photo by Jane Roe/Getty Images)".
_INLINE_CREDIT = re.compile(
    r"\s*[(\[](?:(?:ap|afp|reuters|epa|pa|getty)\s+)?(?:photo|image|picture|pic)s?"
    r"(?:\s+by|\s*:|\s*/)[^()\[\]]{1,80}[)\]]",
    re.IGNORECASE,
)
_TIMESTAMP_LINE = re.compile(
    r"^(?:updated|published|posted|last updated|first published|last modified)\b", re.IGNORECASE
)
# A line of the article's metadata: a date with fields around it, "January 13, 2020 at 08:45 AM |
# categories: Python | View Comments", "Datum: 22.12.2012, Rubrik: USA".
_DATE = (
    r"\b(?:\d{1,2}[./]\d{1,2}[./]\d{2,4}|\d{4}-\d{2}-\d{2}|"
    r"(?:jan|feb|mar|apr|may|jun|jul|aug|sep|oct|nov|dec)[a-z]*\.? \d{1,2},? \d{4}|"
    r"\d{1,2}\.? (?:jan|feb|mär|mar|apr|mai|may|jun|jul|aug|sep|okt|oct|nov|dez|dec)[a-zä]*\.?"
    r" \d{4})"
)
_META_LINE = re.compile(
    rf"(?=.*{_DATE})(?:.*\s[|•·]\s|(?:.*\b[^\W\d_]+\s?:\s\S+){{2}})", re.IGNORECASE
)
# An editor's note, wholly in parentheses or brackets: "(Corrects ...)", "(Reporting by ...)".
_NOTE_LINE = re.compile(r"^(?:\([^()]+\)|\[[^\[\]]+\])\.?$")
# Sentences that are paywall or page prompts, never article text.
_PROMPT = re.compile(
    r"\b(?:subscribers? only|(?:is|are) for subscribers|unlimited (?:digital )?access|"
    r"subscribe (?:now|today|to (?:continue|read|keep))|"
    r"already a subscriber|(?:log|sign) in to (?:continue|read)|continue reading|"
    r"to read (?:this|the full) (?:article|story)|all rights reserved)\b",
    re.IGNORECASE,
)
# A list item's marker (trafilatura writes "- " before each item): never a word of the text.
_LIST_MARKER = re.compile(r"^[-*•·▪►●■]\s+(?=\S)")
_SENTENCE_END = re.compile(r"""[.!?…:;。！？]["'”’)\]」』）]*$""")
_SHORT_LINE_WORDS = 8
_SHORT_LINE_WORDS_IN_BODY = 0  # in the body short lines are subheadings and list items: kept


def _norm(text: str) -> str:
    return " ".join(re.findall(r"\w+", text.casefold()))


def _similar(a: str, b: str, at_least: float = 0.85) -> bool:
    """difflib's ratio of ``a`` and ``b`` is ``at_least``; its two cheap upper bounds first (the
    full ratio was a fifth of the CPU time on small pages, with a dozen titles per page)."""
    m = difflib.SequenceMatcher(None, a, b)
    return (
        m.real_quick_ratio() >= at_least and m.quick_ratio() >= at_least and m.ratio() >= at_least
    )


def _drop_one_headline(line: str, headline: str) -> str:
    head, norm_line = _norm(headline), _norm(line)
    if not head:
        return line
    if norm_line.startswith(head + " ") and len(head.split()) >= 3:
        # The title glued to the text (trafilatura on thin pages): cut after the headline's words.
        tokens = line.split()
        for i in range(1, len(tokens)):
            if _norm(" ".join(tokens[:i])) == head:
                return " ".join(tokens[i:])
    if norm_line == head or _similar(norm_line, head):
        return ""
    return line


def _drop_headline(line: str, headline: str | Sequence[str]) -> str:
    """The line without a leading copy of the headline (trafilatura starts with the title), or
    of any of the page's titles when several are given (og:title, <h1>, <title>).

    Near-equal counts too: pages tweak punctuation or add " | Site" to the title.
    """
    for title in [headline] if isinstance(headline, str) else headline:
        line = _drop_one_headline(line, title)
        if not line:
            break
    return line


# The cleaning rules by name, each switchable (bench/leads.py --rules measures what each one
# changes on real pages and what it is worth).
RULES = (
    "inline_credit",  # "(AP Photo/Evan Vucci)" inside a paragraph
    "headline",  # the headline repeated before the body (or glued to it)
    "byline_prefix",  # "By Jane Doe | " glued before the text
    "list_marker",  # "- " before a list item
    "furniture_line",  # captions, ad slots, share/newsletter/related lines
    "box_line",  # cookie banner and newsletter box paragraphs
    "byline_line",  # a paragraph that is only a byline
    "timestamp_line",  # "Updated 10:32 a.m."
    "credit_line",  # a caption ending in its photo credit
    "short_line",  # short lines that are not sentences: kickers, subheadings, datelines
    "cookie_line",  # cookie banner paragraphs in any language
    "breadcrumb",  # "Home > News > Politics"
    "label_line",  # "Key points:", "- ": a label or no letters at all
    "note_line",  # a paragraph wholly in parentheses: "(Corrects ...)", "(Reporting by ...)"
    "meta_line",  # "January 13, 2020 | categories: Python", "Datum: 22.12.2012, Rubrik: USA"
    "prompt",  # paywall and login prompt sentences
    "box_sentence",  # cookie and newsletter sentences inside paragraphs
    "pull_quote",  # a sentence repeated later (pull quotes)
    "agreed_start",  # the body starts where both extractors agree; what one alone has before
    # is kept only where the page shows it is the opening (outside headings and furniture)
    "coverage",  # the second extractor's text when the first found under half of it
)
_off: set[str] = set()


@contextlib.contextmanager
def rules_off(*names: str) -> Iterator[None]:
    """Switch cleaning rules off inside the block (for measuring them; not thread-safe)."""
    unknown = set(names) - set(RULES)
    if unknown:
        raise ValueError(f"unknown cleaning rules {sorted(unknown)}; known: {', '.join(RULES)}")
    before = set(_off)
    _off.update(names)
    try:
        yield
    finally:
        _off.clear()
        _off.update(before)


def _on(rule: str) -> bool:
    return rule not in _off


def _is_furniture(line: str, leading: bool = True) -> bool:
    """Whole lines that are page furniture, not article text; ``leading``: no article paragraph
    came before it (kickers, datelines and subheadings sit there; inside the body a short line
    is a list item or a subheading, which is article text on real pages)."""
    words = count_words(line)
    if _on("furniture_line") and _FURNITURE_LINE.match(line) and words <= 40:
        return True
    if _on("box_line") and _BOX_SENTENCE.search(line) and words <= 60:
        return True
    if _on("byline_line") and _BYLINE_LINE.match(line) and words <= 12:
        return True
    if _on("timestamp_line") and _TIMESTAMP_LINE.match(line) and words <= 12:
        return True
    if _on("credit_line") and _CREDIT.search(line) and words <= 40:  # a caption with its credit
        return True
    if _on("cookie_line") and words <= 80 and _COOKIE_SENTENCE.match(line):
        return True
    if _on("breadcrumb") and _BREADCRUMB.match(line):
        return True
    if _on("note_line") and words <= 40 and _NOTE_LINE.match(line):
        return True  # "(Corrects 10th paragraph ...)", "[Updated with ...]"
    if (
        _on("meta_line")
        and leading
        and words <= 25
        and not _SENTENCE_END.search(line)
        and _META_LINE.match(line)
    ):
        return True
    if _on("label_line") and (
        not re.search(r"[^\W\d_]", line) or (words <= 4 and line.endswith(":"))
    ):
        return True  # "- ", "Key points:", "Fotos:": no letters, or a label
    # Datelines, kickers, subheadings, "Advertisement", "Share": short and not a sentence.
    short = _SHORT_LINE_WORDS if leading else _SHORT_LINE_WORDS_IN_BODY
    return _on("short_line") and words <= short and not _SENTENCE_END.search(line)


# Invisible characters that split words for the tokenizer: soft hyphens (hyphenation points,
# "réac\xadtion"), zero-width spaces, word joiners and stray byte-order marks.
_INVISIBLE = str.maketrans("", "", "\u00ad\u200b\u2060\ufeff")


def clean_paragraphs(text: str, headline: str | Sequence[str]) -> list[str]:
    """The extractor's text as paragraphs with leaked furniture removed, whitespace collapsed."""
    paragraphs = []
    for raw in text.translate(_INVISIBLE).splitlines():
        line = " ".join((_INLINE_CREDIT.sub("", raw) if _on("inline_credit") else raw).split())
        if _on("list_marker"):
            line = _LIST_MARKER.sub("", line)
        if not paragraphs:  # leaks sit before the first real paragraph
            if _on("headline"):
                line = _drop_headline(line, headline)
            if _on("byline_prefix"):
                line = _BYLINE_PREFIX.sub("", line)
        if line and not _is_furniture(line, leading=not paragraphs):
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


def render(template: str, headline: str, lead: str) -> str:
    """The approach text: ``template`` filled in, or whichever of the two is not empty."""
    if headline and lead:
        return template.format(headline=headline, lead=lead)
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


def fit_lead(headline: str, sentences: Sequence[str], template: str, max_tokens: int) -> str:
    """Whole leading sentences while the approach text fits the budget; a first sentence too
    long is cut at a word.

    Token counts only grow as text is added, so a binary search finds the longest prefix.
    """

    def fits(lead: str) -> bool:
        return count_tokens([render(template, headline, lead)])[0] <= max_tokens

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
    first = candidates[0]
    # A first sentence too long: whole CJK sentences (they end without a space), else whole words
    # (a cut mid-sentence should not end on a dangling comma or dash), else characters.
    pieces = _CJK_SENTENCE.findall(first)
    if len(pieces) > 1:
        k = _largest_fitting(len(pieces), lambda k: fits("".join(pieces[:k])))
        if k:
            return "".join(pieces[:k])
    words = first.split()[:max_tokens]
    k = _largest_fitting(len(words), lambda k: fits(" ".join(words[:k])))
    if k or len(words) > 1:
        return " ".join(words[:k]).rstrip(",;:–—-")
    k = _largest_fitting(min(len(first), 4 * max_tokens), lambda k: fits(first[:k]))
    return first[:k]


_CJK_SENTENCE = re.compile(r"[^。！？]*[。！？]+[」』）\])]*|[^。！？]+$")
# Scripts written without spaces between words: each character counts as half a word.
_UNSPACED_CHARS = "\u3040-\u30ff\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff\u0e00-\u0e7f"
_UNSPACED = re.compile(f"[{_UNSPACED_CHARS}]")


def count_words(text: str) -> int:
    """Whitespace words, with Chinese, Japanese and Thai text counted at two characters a word
    (their words are not separated by spaces)."""
    unspaced = len(_UNSPACED.findall(text))
    if not unspaced:
        return len(text.split())
    spaced = sum(1 for w in text.split() if not _UNSPACED.search(w))
    return spaced + (unspaced + 1) // 2


# --- language ---------------------------------------------------------------------------------


@functools.cache
def _identifier() -> object:
    """py3langid's model (97 languages, shipped inside the package; nothing is downloaded),
    loaded once on first use (~2 s: it is xz-compressed)."""
    from py3langid.langid import MODEL_FILE, LanguageIdentifier

    return LanguageIdentifier.from_model_file(MODEL_FILE, norm_probs=True)


def detect_language(text: str) -> tuple[str, float]:
    """``(ISO 639-1 code, probability)`` of a text by py3langid, offline; ``("", 0.0)`` for a
    text without letters. The first 3,000 characters are enough and keep it ~1 ms."""
    sample = text[:3000]
    if not re.search(r"[^\W\d_]", sample):
        return "", 0.0
    code, prob = _identifier().classify(sample)  # type: ignore[attr-defined]
    return str(code), round(float(prob), 4)


def lead_enters(language: str, languages: Sequence[str] | str) -> bool:
    """Whether a lead in ``language`` enters the approach text under ``leads.languages``."""
    return languages == "all" or language in languages


# --- one page -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Lead:
    text: str  # the lead, title excluded; "" when the page gave none
    status: str  # one of STATUSES ("error: <reason>" for "error")
    extractor: str = ""  # which extractor gave the text, "" when none did
    title: str = ""  # the headline the lead was built for (the page's own when none was given)
    language: str = ""  # ISO 639-1 code of the lead's text (py3langid); "" when there is none
    language_confidence: float = 0.0  # the detector's probability for it

    @property
    def words(self) -> int:
        return len(self.text.split())


def _document(html: str | object) -> object | None:
    """The parsed page (``html`` itself when it is parsed already); None when unparseable."""
    import lxml.html

    if not isinstance(html, str):
        return html
    try:
        return lxml.html.document_fromstring(html)
    except (ValueError, lxml.etree.ParserError):
        return None


def page_title(html: str | object) -> str:
    """The page's headline: og:title, else the first <h1>, else <title> (``html``: the page's
    text or its parsed document)."""
    doc = _document(html)
    if doc is None:
        return ""
    for xpath in ('//meta[@property="og:title"]/@content', "//h1", "//title"):
        found = doc.xpath(xpath)  # type: ignore[attr-defined]
        if found:
            text = found[0] if isinstance(found[0], str) else found[0].text_content()
            if text.strip():
                return " ".join(text.split())
    return ""


# " | Site Name", " - Site", " — Section — Site" after a <title>'s headline
_TITLE_SEPARATOR = re.compile(r"\s+[|–—•·:»-]+\s+|\s+::\s+")


def page_titles(html: str | object) -> list[str]:
    """Every title the page gives its article, as a body may repeat any of them: og:title,
    twitter:title, the first two <h1>, <title>, and the runs of consecutive parts of those
    split at a site-name separator (" | Site") that have three words or more (``html``: text or
    parsed document)."""
    doc = _document(html)
    if doc is None:
        return []
    found = doc.xpath(  # type: ignore[attr-defined]
        '//meta[@property="og:title"]/@content|//meta[@name="twitter:title"]/@content'
    )
    found += [h.text_content() for h in doc.xpath("//h1")[:2]]  # type: ignore[attr-defined]
    found += [t.text_content() for t in doc.xpath("//title")[:1]]  # type: ignore[attr-defined]
    titles = [" ".join(t.split()) for t in found if t.strip()]
    runs = []  # "News - Site Update - Chapter 121 - Love Hina": "Site Update - Chapter 121" too
    for title in titles:
        parts = _TITLE_SEPARATOR.split(title)
        for i, j in itertools.combinations(range(len(parts) + 1), 2):
            run = " ".join(parts[i:j])
            if (i, j) != (0, len(parts)) and len(run.split()) >= 3:  # the whole title is there
                runs.append(run)
    return list(dict.fromkeys([*titles, *runs]))


PAYWALL_TEASER_WORDS = 30  # a page with a paywall prompt and less text than this is a paywall


def body_sentences(text: str, headline: str | Sequence[str]) -> tuple[list[str], bool]:
    """The extractor's text cleaned and split into sentences, prompts dropped; and whether a
    paywall or login prompt was among them."""
    sentences = [s for p in clean_paragraphs(text, headline) for s in split_sentences(p)]
    prompted = any(_PROMPT.search(s) for s in sentences)
    kept, seen = [], set()
    for sentence in sentences:
        if (
            (_on("prompt") and _PROMPT.search(sentence))
            or (_on("box_sentence") and _BOX_SENTENCE.search(sentence))
            or (_on("cookie_line") and _COOKIE_SENTENCE.match(sentence))
        ):
            continue
        key = _norm(sentence)
        if _on("pull_quote") and len(key.split()) >= 5 and key in seen:  # a pull quote repeats
            continue
        seen.add(key)
        kept.append(sentence)
    return kept, prompted


def first_words(sentences: Sequence[str], max_words: int) -> str:
    """The paper's rule: the first ``max_words`` whitespace words of the cleaned body."""
    return " ".join(" ".join(sentences).split()[:max_words])


_DEFAULTS = LeadsParams()  # the defaults are named once, in newsimg.params


def cut_lead(
    headline: str,
    sentences: Sequence[str],
    *,
    mode: str = _DEFAULTS.mode,
    max_words: int = _DEFAULTS.max_words,
    max_tokens: int = _DEFAULTS.max_tokens,
    template: str = _DEFAULTS.template,
) -> str:
    """The lead cut from a body's sentences by ``mode``: ``first_words`` (the first
    ``max_words`` words) or ``sentences`` (whole sentences while ``template`` filled with the
    headline and the lead fits ``max_tokens`` tokens)."""
    if mode == "first_words":
        return first_words(sentences, max_words)
    if mode == "sentences":
        return fit_lead(headline, sentences, template, max_tokens)
    raise ValueError(f"mode must be first_words or sentences, not {mode!r}")


def approach_text(
    headline: str, lead: str, params: LeadsParams | None = None, *, language: str | None = None
) -> str:
    """The headline_lead approach's text for a headline and a lead, exactly as the leads stage
    makes it: the lead split into sentences and cut by ``params.mode`` (the token budget), then
    put into ``params.template``; just the headline when the lead is empty or its language is
    not among ``params.languages`` (``language``: the lead's, detected when not given).

    For a lead the stage extracted this returns the stage's ``headline_lead`` unchanged (cutting
    is idempotent); a longer text (a user's own lead) is cut to the budget the same way.
    """
    params = params if params is not None else _DEFAULTS
    if params.languages != "all" and lead.strip():
        if language is None:
            language = detect_language(lead)[0]
        if not lead_enters(language, params.languages):
            lead = ""
    whole = " ".join(lead.split())
    if params.mode == "first_words" and len(whole.split()) <= params.max_words:
        return render(params.template, headline, whole)  # what cutting would give, at no cost
    if params.mode == "sentences":
        text = render(params.template, headline, whole)
        if count_tokens([text])[0] <= params.max_tokens:
            return text
    paragraphs = (" ".join(p.split()) for p in lead.splitlines())
    sentences = [s for p in paragraphs if p for s in split_sentences(p)]
    cut = cut_lead(
        headline,
        sentences,
        mode=params.mode,
        max_words=params.max_words,
        max_tokens=params.max_tokens,
        template=params.template,
    )
    return render(params.template, headline, cut)


def _paragraph_text(html: str) -> str:
    """The last resort when both extractors give too little: the page's <p> paragraphs inside
    its <article> (else <main>, else the whole body), or failing that its meta description
    (often the standfirst)."""
    import lxml.html

    try:
        doc = lxml.html.document_fromstring(html)
    except (ValueError, lxml.etree.ParserError):
        return ""
    for bad in doc.xpath("//script|//style|//noscript|//nav|//footer|//header|//aside|//form"):
        bad.drop_tree()
    root = (doc.xpath("//article") or doc.xpath("//main") or [doc])[0]
    paragraphs = [" ".join(p.text_content().split()) for p in root.iter("p")]
    text = "\n".join(p for p in paragraphs if count_words(p) >= 3)
    if count_words(text) >= MIN_WORDS:
        return text
    for xpath in (
        '//meta[@property="og:description"]/@content',
        '//meta[@name="description"]/@content',
    ):
        found = [d for d in doc.xpath(xpath) if d.strip()]
        if found:
            return " ".join(found[0].split())
    return text


# C0 control characters but tab and line breaks: never text, and lxml (newspaper4k's parser)
# refuses a whole page for one of them in its text ("All strings must be XML compatible").
_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f]")


def extract_lead(
    html: str,
    url: str | None = None,
    *,
    mode: str = _DEFAULTS.mode,
    max_words: int = _DEFAULTS.max_words,
    headline: str | None = None,
    extractor: str = _DEFAULTS.extractor,
    max_tokens: int = _DEFAULTS.max_tokens,
    template: str = _DEFAULTS.template,
) -> Lead:
    """The lead of one page's HTML; every failure becomes the result's status, never raises.

    ``headline`` (the CSV's title) is removed where it repeats; without it the page's own title
    is used. ``mode`` is ``first_words`` (the first ``max_words`` words) or ``sentences`` (whole
    sentences while ``template`` with the headline fits ``max_tokens`` tokens). The defaults are
    the leads params' (newsimg.params.LeadsParams); :func:`page_lead` takes the params whole.
    """
    if mode not in ("first_words", "sentences"):
        raise ValueError(f"mode must be first_words or sentences, not {mode!r}")
    html = _CONTROL.sub("", html)
    doc = _document(html)  # parsed once for both title lookups
    titles = ([headline] if headline else []) + (page_titles(doc) if doc is not None else [])
    if headline is None:
        headline = page_title(doc) if doc is not None else ""
    errors, paywalled = [], False
    found: list[tuple[str, list[str]]] = []
    for name in extractor.split("+"):
        try:
            text = EXTRACTORS[name](html, url or "")
        # Extractors raise whatever their parsers and optional tokenizers raise (ImportError for
        # a missing jieba or nltk, lxml errors, ...): record it and try the next extractor.
        except Exception as err:
            log.debug("%s failed on %s: %r", name, url, err)
            errors.append(reason(name, err))
            continue
        sentences, prompted = body_sentences(text, titles)
        words = count_words(" ".join(sentences))
        if prompted and words < PAYWALL_TEASER_WORDS:
            paywalled = True
        elif words >= MIN_WORDS:
            found.append((name, sentences))
    if len(found) > 1:
        name, sentences = combine(*found[0], *found[1], headline=titles, html=html)
    elif found:
        name, sentences = found[0]
    elif paywalled:
        return Lead("", "paywall", "", headline)
    else:
        # The last resort, so that a page with any text gives a lead (a missing tokenizer,
        # a page both extractors misread).
        sentences = body_sentences(_paragraph_text(html), titles)[0]
        name = "paragraphs"
        if not sentences:
            return Lead("", errors[0] if errors else "no_text", "", headline)
    lead = cut_lead(
        headline,
        sentences,
        mode=mode,
        max_words=max_words,
        max_tokens=max_tokens,
        template=template,
    )
    language, confidence = detect_language(" ".join(sentences))
    return Lead(lead, "ok", name, headline, language, confidence)


COVERAGE = 1.0  # the first extractor found under this share of the second's text: the second's
OPENING_MAX_WORDS = 250  # text only one extractor has before the agreed start: at most this
START_WINDOW = 15  # the two bodies must agree within their first this many sentences
# Where text only one extractor found before the body sits, it is page furniture, not an
# opening: a heading (the headline, a standfirst set as <h2>), the article's header, a figure,
# a table, a form; or a container whose class or id names furniture (share and video boxes,
# captions and credits, summaries and standfirsts, bylines, related links, sign-up prompts).
_FURNITURE_TAGS = frozenset(
    [
        "h1",
        "h2",
        "h3",
        "h4",
        "h5",
        "h6",
        "header",
        "footer",
        "nav",
        "aside",
        "figure",
        "figcaption",
        "table",
        "form",
        "button",
        "label",
        "time",
    ]
)
_FURNITURE_CLASS = re.compile(
    r"share|sharing|social|video|caption|credit|photo|img|image|figure|gallery|promo|related|"
    r"newsletter|subscri|signup|login|regist|tool|byline|author|summary|standfirst|\bdek|deck|"
    r"subtitle|subhead|strap|teaser|excerpt|descr|kicker|breadcrumb|\bnav|menu|comment|advert|"
    r"sponsor|widget|sidebar|popup|modal|banner",
    re.IGNORECASE,
)


# Comparison units: a word, or one character of a script written without spaces (Chinese,
# Japanese, Thai), where a whole clause is one \w+ run and a quote mark splits it differently.
_UNIT = re.compile(rf"[{_UNSPACED_CHARS}]|[^\W{_UNSPACED_CHARS}]+")
# (units compared, fewest that count, slack for datelines and list markers) per kind of text
_SPAN_SPACED, _SPAN_UNSPACED = (8, 3, 12), (20, 6, 30)


def _units(text: str) -> list[str]:
    """The text's words, casefolded, punctuation dropped; in Chinese, Japanese and Thai its
    characters (a run of their letters is a whole clause, cut apart by any quote mark)."""
    return _UNIT.findall(text.casefold())


def _span(units: Sequence[str]) -> tuple[int, int, int]:
    unspaced = sum(1 for u in units[:20] if len(u) == 1 and _UNSPACED.match(u))
    return _SPAN_UNSPACED if unspaced >= 4 else _SPAN_SPACED


def _key(sentence: str) -> list[str]:
    units = _units(sentence)
    return units[: _span(units)[0]]


def _same_start(a: str, b: str) -> bool:
    """Two extractors' versions of one sentence: the first words (in unspaced scripts the first
    characters) of one among the first of the other (they split paragraphs, mark list items,
    keep datelines and quote marks differently)."""
    wa, wb = _units(a), _units(b)
    span, fewest, slack = max(_span(wa), _span(wb))
    n = min(span, len(wa), len(wb))
    if n < fewest:
        return False
    return (
        f" {' '.join(wa[:n])} " in f" {' '.join(wb[: n + slack])} "
        or f" {' '.join(wb[:n])} " in f" {' '.join(wa[: n + slack])} "
    )


def _agreed_start(ours: Sequence[str], theirs: Sequence[str]) -> tuple[int, int] | None:
    """``(i, j)``: the earliest sentence both bodies have, ``ours[i]`` and ``theirs[j]`` (smallest
    ``i + j`` within the first START_WINDOW of each); None when they share none there."""
    best = None
    for i, a in enumerate(ours[:START_WINDOW]):
        for j, b in enumerate(theirs[:START_WINDOW]):
            if (best is None or i + j < sum(best)) and _same_start(a, b):
                best = (i, j)
    return best


class _PageIndex:
    """A page's words in document order, each with the element whose text holds it, for
    finding where a sentence sits."""

    def __init__(self, html: str) -> None:
        import bisect

        import lxml.etree
        import lxml.html

        self._bisect = bisect.bisect_right
        self.owners: list[object] = []
        self.text, self.starts = "", []
        try:
            doc = lxml.html.document_fromstring(html)
        except (ValueError, lxml.etree.ParserError):
            return
        for bad in doc.xpath("//script|//style|//noscript|//template"):
            bad.drop_tree()
        words: list[str] = []

        def add(text: str | None, owner: object) -> None:
            if text and owner is not None:
                for word in _units(text):
                    words.append(word)
                    self.owners.append(owner)

        for event, el in lxml.etree.iterwalk(doc, events=("start", "end")):
            if event == "start" and isinstance(el.tag, str):
                add(el.text, el)
            elif event == "end":
                add(el.tail, el.getparent())
        offset = 0
        for word in words:
            self.starts.append(offset)
            offset += len(word) + 1
        self.text = " ".join(words)

    def locate(self, sentence: str) -> tuple[int, object] | None:
        """``(position, element)`` of the sentence's first words in the page (the element holding
        its first word), the first occurrence; None when the page does not hold them."""
        units = _key(sentence)
        if len(units) < (2 if _span(units) == _SPAN_SPACED else 4):
            return None
        key = " ".join(units)
        at = f" {self.text} ".find(f" {key} ")
        if at < 0:
            return None
        pos = self._bisect(self.starts, at) - 1
        return pos, self.owners[pos]


def _furniture_container(el: object, anchor: object) -> bool:
    """Whether ``el`` sits in furniture below its common ancestor with the body's ``anchor``."""
    above = []  # the elements themselves (lxml proxies are only stable while referenced)
    node = anchor
    while node is not None:
        above.append(node)
        node = node.getparent()  # type: ignore[attr-defined]
    node = el
    while node is not None and not any(node is a for a in above):
        tag = node.tag  # type: ignore[attr-defined]
        names = f"{node.get('class') or ''} {node.get('id') or ''}"  # type: ignore[attr-defined]
        if tag in _FURNITURE_TAGS or _FURNITURE_CLASS.search(names):
            return True
        node = node.getparent()  # type: ignore[attr-defined]
    return False


def _opening(
    candidates: Sequence[str], anchor: str, rest: Sequence[str], index: _PageIndex
) -> list[str]:
    """Of the sentences only one extractor has before the agreed start, those that are the
    article's opening: found in the page outside any furniture (relative to where the agreed
    start sits), not repeated later in the body; in page order."""
    found = index.locate(anchor)
    if found is None:
        return []
    later = f" {' '.join(' '.join(_units(s)) for s in rest)} "
    kept = []
    for sentence in candidates:
        where = index.locate(sentence)
        units = _units(sentence)
        repeated = len(units) >= (5 if _span(units) == _SPAN_SPACED else 12)
        if where is None or (repeated and f" {' '.join(units)} " in later):
            continue
        if where[0] < found[0] + 1 and not _furniture_container(where[1], found[1]):
            kept.append((where[0], sentence))
    kept.sort(key=lambda pair: pair[0])
    opening = [sentence for _, sentence in kept]
    if count_words(" ".join(opening)) > OPENING_MAX_WORDS:
        return []
    return opening


def combine(
    first: str,
    ours: list[str],
    second: str,
    theirs: list[str],
    *,
    headline: str | Sequence[str] = "",
    html: str = "",
) -> tuple[str, list[str]]:
    """One body from two extractors' cleaned sentences.

    The body is the first's, unless it found under half of what the second found (it took one
    block of the article: then the second's). Its start is where the two agree: the earliest
    sentence both have. What only one of them has before that is kept only where the page
    shows it is the article's opening (``html``: outside headings, the header, figures and
    containers named for share boxes, captions, standfirsts and the like), else dropped: a
    standfirst, a caption or a share blurb one extractor took, or an opening paragraph in a
    container of its own that the other missed.
    """
    base_name, base, other = first, ours, theirs
    if _on("coverage") and count_words(" ".join(ours)) < COVERAGE * count_words(" ".join(theirs)):
        base_name, base, other = second, theirs, ours
    if not _on("agreed_start") or not html:
        return base_name, base
    start = _agreed_start(base, other)
    if start is None:
        return base_name, base
    i, j = start
    candidates = [*other[:j], *base[:i]]
    if not candidates:
        return base_name, base
    rest = base[i:]
    if _on("headline"):
        candidates = [c for c in candidates if _drop_headline(c, headline)]
    opening = _opening(candidates, rest[0], rest, _PageIndex(html))
    extra = any(s in other[:j] for s in opening)
    name = f"{base_name}+{second if base_name == first else first}" if extra else base_name
    return name, opening + rest


def page_lead(
    html: str, url: str | None, params: LeadsParams, *, headline: str | None = None
) -> Lead:
    """:func:`extract_lead` with the leads params' settings, as the stage calls it."""
    return extract_lead(
        html,
        url,
        mode=params.mode,
        max_words=params.max_words,
        headline=headline,
        extractor=params.extractor,
        max_tokens=params.max_tokens,
        template=params.template,
    )


def article_lead(row: dict[str, str], pages_dir: Path, params: LeadsParams) -> Lead:
    """Read one article's cached page and extract its lead; every failure becomes a status."""
    headline = row["article_title"]
    html, status = read_page(pages_dir / f"{row['article_id']}.html", params.max_page_bytes)
    if status == "no_page" and not row["article_url"].strip():
        status = "no_url"
    if status != "ok":
        return Lead("", status, "", headline)
    return page_lead(html, row["article_url"], params, headline=headline)


# --- the stage ------------------------------------------------------------------------------------


def _read_articles(articles: Path) -> list[dict[str, str]]:
    """CSV rows, checked before any work: ids must be unique, usable file names."""
    if not articles.is_file():
        raise InputError(f"articles CSV {articles} does not exist")
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
        ", ".join(f"{k} {v}" for k, v in summary.items() if v or k == "ok"),
        ", ".join(f"{k} {v}" for k, v in sorted(by_extractor.items())) or "none",
    )
    errors = Counter(s for s in statuses if s.startswith("error"))
    for why, n in errors.most_common(5):
        log.warning("%d article(s): %s", n, why)
    return summary


def run(params: LeadsParams, articles: Path, pages_dir: Path, out: Path) -> dict[str, int]:
    """Write ``out`` (Parquet, one row per CSV row, CSV order); return counts by status.

    ``pages_dir`` is the page cache (dvc.yaml passes ``leads.pages_dir``); with
    ``params.download`` it is filled from the articles' URLs first.

    Raises TooManyFailuresError, after writing ``out``, when the share of articles without a
    lead is above ``params.max_failure_rate``.
    """
    rows = _read_articles(articles)
    if params.download:
        downloads = download_pages(rows, pages_dir, params)
    else:
        if not pages_dir.is_dir():
            raise InputError(f"page cache (leads.pages_dir) {pages_dir} is not a folder")
        downloads = [""] * len(rows)
    leads = [
        article_lead(row, pages_dir, params)
        for row in tqdm(rows, desc="leads", unit="article", disable=None)
    ]
    headline_leads = [
        approach_text(row["article_title"], lead.text, params, language=lead.language)
        for row, lead in zip(rows, leads, strict=True)
    ]
    lead_tokens = count_tokens([lead.text for lead in leads])
    columns = {
        "article_id": [r["article_id"] for r in rows],
        "article_url": [r["article_url"] for r in rows],
        "headline": [r["article_title"] for r in rows],
        "tags": [r["article_tags"] for r in rows],
        "image_id": [r["image_id"] for r in rows],
        "lead": [lead.text for lead in leads],
        "lead_words": [lead.words for lead in leads],
        "lead_tokens": [n if lead.text else 0 for n, lead in zip(lead_tokens, leads, strict=True)],
        "headline_lead": headline_leads,
        "headline_lead_tokens": count_tokens(headline_leads),
        "status": [lead.status for lead in leads],
        "language": [lead.language for lead in leads],
        "language_confidence": [lead.language_confidence for lead in leads],
        "extractor": [lead.extractor for lead in leads],
        "download": downloads,
    }
    _write_atomic(pa.table(columns, schema=SCHEMA), out)
    summary = _summary(columns["status"], columns["extractor"])
    failed = len(rows) - summary["ok"]
    if rows and failed / len(rows) > params.max_failure_rate:
        raise TooManyFailuresError(
            f"{failed} of {len(rows)} articles have no lead ({failed / len(rows):.1%}), above "
            f"leads.max_failure_rate = {params.max_failure_rate}; {out} was written"
        )
    return summary
