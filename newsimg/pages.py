"""Article pages: fetched politely from the web, read from the page cache, decoded to text.

The leads stage fills its page cache (``leads.pages_dir``, one ``{article_id}.html`` per
article) with :func:`download_pages`; anything else that needs one page the same way (the
service's ``url`` query) calls :func:`fetch_page`. Both go through one :class:`Downloader`: a
limit of requests in flight per host, timeouts, retries with exponential backoff after
timeouts, dropped connections, 429 and 5xx, a size cap checked while streaming, HTML content
types only, redirects followed. :func:`decode_page` turns the bytes into text (UTF-8, then the
declared charset, then a detected one) or a status. Lead extraction is in newsimg.leads.
"""

from __future__ import annotations

import logging
import re
import threading
import time
from collections import Counter, defaultdict
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

from tqdm import tqdm

from newsimg.atomic import atomic_path
from newsimg.params import LeadsParams

if TYPE_CHECKING:
    import requests

log = logging.getLogger(__name__)

_RETRY_HTTP = frozenset({408, 425, 429, 500, 502, 503, 504})
_HTML_TYPES = ("text/html", "application/xhtml+xml")


def reason(name: str, err: BaseException) -> str:
    """``"error: NAME: Type: first line of the message"``, at most 160 characters."""
    first_line = (str(err).strip().splitlines() or [""])[0]
    return f"error: {name}: {type(err).__name__}: {first_line}"[:160]


# --- decoding -------------------------------------------------------------------------------------

_HTML_SNIFF = re.compile(rb"<\s*(?:!doctype\s+html|html|head|body|p|div|article|title)\b", re.I)
_META_CHARSET = re.compile(rb"""<meta[^>]+charset\s*=\s*["']?([\w.:-]+)""", re.I)


def decode_page(raw: bytes, max_bytes: int | None = None) -> tuple[str, str]:
    """``(html, "ok")`` or ``("", status)`` for a page that is empty, too large, not HTML or
    undecodable. UTF-8 first, then the page's declared charset, then a detected one."""
    if max_bytes is not None and len(raw) > max_bytes:
        return "", "too_large"
    if not raw.strip():
        return "", "empty_page"
    head = raw[:65536]
    if head.startswith(b"%PDF") or b"\x00" in head[:4096] or not _HTML_SNIFF.search(head):
        return "", "not_html"
    try:
        return raw.decode("utf-8"), "ok"
    except UnicodeDecodeError:
        pass
    declared = _META_CHARSET.search(head)
    if declared:
        try:
            return raw.decode(declared.group(1).decode("ascii")), "ok"
        except (LookupError, UnicodeDecodeError):
            pass
    from charset_normalizer import from_bytes

    best = from_bytes(raw).best()
    if best is not None and best.encoding:
        text = str(best)
        if text.count("\ufffd") <= len(text) / 1000:
            return text, "ok"
    text = raw.decode("utf-8", errors="replace")
    if text.count("\ufffd") > len(text) / 1000:
        return "", "bad_encoding"
    return text, "ok"


def read_page(path: Path, max_bytes: int) -> tuple[str, str]:
    """A cached page as ``(html, "ok")``, or ``("", status)``: no_page, too_large, empty_page,
    not_html, bad_encoding, "error: read: ..."."""
    try:
        if not path.is_file():
            return "", "no_page"
        if path.stat().st_size > max_bytes:
            return "", "too_large"
        return decode_page(path.read_bytes())
    except OSError as err:
        return "", reason("read", err)


# --- downloading ----------------------------------------------------------------------------------


class _Retry(Exception):
    """A failure worth another try (timeout, connection error, 429, 5xx)."""


class Downloader:
    """Polite HTTP GETs of article pages under ``params``' limits; safe to share between threads.

    One requests session per thread; at most ``params.per_host`` requests in flight to one host
    across all threads using this downloader. Keep one for the life of a process (a service) so
    the per-host limit holds across calls.
    """

    def __init__(self, params: LeadsParams) -> None:
        self.params = params
        self._host_slots: defaultdict[str, threading.Semaphore] = defaultdict(
            lambda: threading.Semaphore(params.per_host)
        )
        self._lock = threading.Lock()
        self._local = threading.local()

    def _session(self) -> requests.Session:
        if not hasattr(self._local, "session"):
            import requests

            s = requests.Session()
            s.headers.update(
                {
                    "User-Agent": self.params.user_agent,
                    "Accept": "text/html,application/xhtml+xml;q=0.9,*/*;q=0.1",
                    "Accept-Language": "en;q=1.0",
                }
            )
            s.max_redirects = 10
            self._local.session = s
        return self._local.session

    def _once(self, url: str) -> tuple[str, bytes]:
        """``("downloaded", body)`` or ``(status, b"")``; raises _Retry for transient failures."""
        import requests

        params = self.params
        try:
            with self._session().get(
                url, timeout=params.timeout_s, stream=True, allow_redirects=True
            ) as resp:
                if resp.status_code in _RETRY_HTTP:
                    raise _Retry(f"http {resp.status_code}")
                if resp.status_code >= 400:
                    return f"http {resp.status_code}", b""
                ctype = resp.headers.get("Content-Type", "").split(";")[0].strip().lower()
                if ctype and ctype not in _HTML_TYPES:
                    return f"not_html: {ctype}", b""
                if int(resp.headers.get("Content-Length") or 0) > params.max_page_bytes:
                    return "too_large", b""
                body, deadline = bytearray(), time.monotonic() + 4 * params.timeout_s
                for chunk in resp.iter_content(65536):
                    body += chunk
                    if len(body) > params.max_page_bytes:
                        return "too_large", b""
                    if time.monotonic() > deadline:  # a trickling server: give up on it
                        raise _Retry("timeout")
                return "downloaded", bytes(body)
        except requests.Timeout:
            raise _Retry("timeout") from None
        except requests.TooManyRedirects:
            return "error: too many redirects", b""
        except requests.ConnectionError as err:
            raise _Retry(f"connection error: {type(err).__name__}") from None
        except requests.RequestException as err:
            return reason("download", err), b""

    def get(self, url: str) -> tuple[str, bytes]:
        """``("downloaded", body)`` or ``(status, b"")``, retried with backoff; never raises.

        Statuses: downloaded, bad_url, "http NNN", "not_html: TYPE", too_large, timeout,
        "connection error: ...", "error: ...".
        """
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            return "bad_url", b""
        with self._lock:
            slot = self._host_slots[parts.hostname]
        status = ""
        for attempt in range(self.params.retries + 1):
            if attempt:
                time.sleep(self.params.backoff_s * 2 ** (attempt - 1))
            with slot:
                try:
                    return self._once(url)
                except _Retry as err:
                    status = str(err)
        return status, b""


def fetch_page(
    url: str, params: LeadsParams | None = None, *, downloader: Downloader | None = None
) -> tuple[str, str]:
    """One page fetched politely and decoded: ``(html, "ok")`` or ``("", status)``.

    The leads stage's downloader and limits (``params``: the leads section; defaults if None);
    pass a long-lived ``downloader`` to share its per-host limit between calls. The status is
    :meth:`Downloader.get`'s or :func:`decode_page`'s (empty_page, not_html, bad_encoding).
    """
    if downloader is None:
        downloader = Downloader(params if params is not None else LeadsParams())
    status, body = downloader.get(url.strip())
    if status != "downloaded":
        return "", status
    return decode_page(body, downloader.params.max_page_bytes)


def download_pages(
    rows: Sequence[dict[str, str]], pages_dir: Path, params: LeadsParams
) -> list[str]:
    """Fill ``pages_dir`` from each row's ``article_url``; one status per row.

    Pages already cached are kept ("cached"). Statuses: cached, no_url and
    :meth:`Downloader.get`'s.
    """
    pages_dir.mkdir(parents=True, exist_ok=True)
    downloader = Downloader(params)

    def one(row: dict[str, str]) -> str:
        path, url = pages_dir / f"{row['article_id']}.html", row["article_url"].strip()
        if path.is_file():
            return "cached"
        if not url:
            return "no_url"
        status, body = downloader.get(url)
        if status == "downloaded":
            with atomic_path(path) as tmp:
                Path(tmp).write_bytes(body)
        return status

    with ThreadPoolExecutor(params.workers) as pool:
        statuses = list(
            tqdm(pool.map(one, rows), total=len(rows), desc="download", unit="page", disable=None)
        )
    counts = Counter(s.split(":")[0] for s in statuses)
    log.info("download: %s", ", ".join(f"{k} {v}" for k, v in counts.most_common()))
    return statuses
