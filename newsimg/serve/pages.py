"""A `url` query: the article page fetched politely and its lead extracted as the leads stage does.

The download uses the leads params' limits (user agent, timeout, retries with backoff, size cap,
HTML only, a per-host limit on requests in flight); the lead comes from the same extraction code
with the page's own title as the headline. Every failure is a status, never an exception.
"""

from __future__ import annotations

import threading
import time
from collections import defaultdict
from dataclasses import dataclass
from urllib.parse import urlsplit

from newsimg import leads
from newsimg.params import LeadsParams

_slots: defaultdict[str, threading.Semaphore] = defaultdict(threading.Semaphore)
_slots_lock = threading.Lock()


@dataclass(frozen=True)
class Page:
    url: str
    status: str  # "ok", or why there is no lead: "bad_url", "http 404", "timeout", "paywall", ...
    headline: str = ""
    lead: str = ""
    extractor: str = ""


def _slot(host: str, per_host: int) -> threading.Semaphore:
    with _slots_lock:
        if host not in _slots:
            _slots[host] = threading.Semaphore(per_host)
        return _slots[host]


def download(url: str, params: LeadsParams) -> tuple[str, bytes]:
    """``("downloaded", body)`` or ``(status, b"")``: one page, politely."""
    import requests

    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        return "bad_url", b""
    session = requests.Session()
    session.headers.update(
        {
            "User-Agent": params.user_agent,
            "Accept": "text/html,application/xhtml+xml;q=0.9,*/*;q=0.1",
            "Accept-Language": "en;q=1.0",
        }
    )
    session.max_redirects = 10
    status = ""
    with session:
        for attempt in range(params.retries + 1):
            if attempt:
                time.sleep(params.backoff_s * 2 ** (attempt - 1))
            with _slot(parts.hostname, params.per_host):
                try:
                    status, body = leads._fetch_once(session, url, params)
                except leads._Retry as err:
                    status = str(err)
                    continue
            return status, body
    return status, b""


def fetch_lead(url: str, params: LeadsParams) -> Page:
    """The page at ``url`` and its lead, extracted with the leads params (mode, extractor,
    token budget, template), the page's own title as its headline."""
    status, body = download(url, params)
    if status != "downloaded":
        return Page(url, status)
    html, status = leads.decode_page(body, params.max_page_bytes)
    if status != "ok":
        return Page(url, status)
    lead = leads.extract_lead(
        html,
        url,
        params.mode,
        params.max_words,
        extractor=params.extractor,
        max_tokens=params.max_tokens,
        template=params.template,
    )
    return Page(url, lead.status, lead.title, lead.text, lead.extractor)
