"""A `url` query: the article page fetched politely and its lead extracted as the leads stage does.

The download is the leads stage's own (:class:`newsimg.pages.Downloader`: user agent, timeout,
retries with backoff, size cap, HTML only, a per-host limit kept for the life of the server); the
lead comes from :func:`newsimg.leads.page_lead` with the page's own title as the headline. Every
failure is a status, never an exception.
"""

from __future__ import annotations

from dataclasses import dataclass

from newsimg import leads, pages
from newsimg.params import LeadsParams


@dataclass(frozen=True)
class Page:
    url: str
    status: str  # "ok", or why there is no lead: "bad_url", "http 404", "timeout", "paywall", ...
    headline: str = ""
    lead: str = ""
    extractor: str = ""


class PageReader:
    """One downloader shared by every url query, so its per-host limit holds across requests."""

    def __init__(self, params: LeadsParams) -> None:
        self.params = params
        self.downloader = pages.Downloader(params)

    def read(self, url: str) -> Page:
        html, status = pages.fetch_page(url, downloader=self.downloader)
        if status != "ok":
            return Page(url, status)
        lead = leads.page_lead(html, url, self.params)
        return Page(url, lead.status, lead.title, lead.text, lead.extractor)
