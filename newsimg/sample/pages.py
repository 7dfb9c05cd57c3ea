"""Article pages: four sites' HTML templates and the saved page of an article."""

from __future__ import annotations

import html
import json

from newsimg.sample.model import Article
from newsimg.sample.texts import _slug

NAV = ("News", "Politics", "Business", "Culture", "Sport", "Opinion")
PAYWALL = "This article is for subscribers. Subscribe for unlimited access to our journalism."
MONTHS = ("January", "February", "March", "April", "May", "June", "July", "August",
          "September", "October", "November", "December")  # fmt: skip

# The <head> every site shares (real sites all carry title, og: and article: metadata).
HEAD = """<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{title} | {site}</title>
<meta name="description" content="{description}">
<meta property="og:type" content="article">
<meta property="og:site_name" content="{site}">
<meta property="og:title" content="{title}">
<meta property="og:description" content="{description}">
<meta property="og:image" content="{image_url}">
<meta property="og:url" content="{url}">
<meta property="article:published_time" content="{published}">
<meta name="author" content="{author}">
<link rel="canonical" href="{url}">
<link rel="stylesheet" href="/static/site.css">{head_extra}
</head>
"""

# Four sites, four page structures, so that extraction cannot rely on one set of class names.
# Each body is filled with already escaped fields; {body} is the paragraphs or a paywall notice.
TEMPLATES = {
    "classic": """<body>
<header class="site-header"><a class="logo" href="/">{site}</a>{nav}</header>
<main>
<article class="story">
<h1 class="headline">{title}</h1>
<div class="byline">By <span class="author">{author}</span> &middot;
<time datetime="{published}">{date}</time></div>
<figure class="lead-image">{img}
<figcaption>{caption} <span class="credit">{credit}</span></figcaption></figure>
<div class="story-body">
{body}
</div>
</article>
<aside class="related"><h2>Related stories</h2><ul>{related}</ul></aside>
</main>
<footer class="site-footer">&copy; 2025 {site} &middot; <a href="/privacy">Privacy</a>
&middot; <a href="/terms">Terms</a></footer>
</body>
</html>
""",
    "modern": """<body class="page-article">
<div id="app">
<div class="top-bar"><a class="brand" href="/">{site}</a>{nav}
<button class="subscribe">Subscribe</button></div>
<main class="layout">
<article class="c-article" itemscope itemtype="https://schema.org/NewsArticle">
<header class="c-article__header">
<span class="c-kicker">{section}</span>
<h1 class="c-article__title" itemprop="headline">{title}</h1>
<h2 class="c-article__dek">{description}</h2>
<div class="c-byline">By <a rel="author" href="/authors/{author_slug}">{author}</a>
<time datetime="{published}">Updated {date}</time></div>
</header>
<figure class="c-media">{img}<figcaption class="c-media__caption">
<span class="c-media__text">{caption}</span> <span class="c-media__credit">{credit}</span>
</figcaption></figure>
<div class="c-article__body" itemprop="articleBody">
{body}
</div>
</article>
<aside class="c-rail"><h3>Most read</h3><ol>{related}</ol></aside>
</main>
<footer class="site-footer"><small>&copy; 2025 {site} Media Group</small></footer>
</div>
</body>
</html>
""",
    "magazine": """<body>
<div class="wrapper">
<div class="masthead"><div class="masthead__logo">{site}</div>{nav}</div>
<article id="story">
<figure class="hero">{img}<figcaption class="hero__caption">{caption}
<small class="photo-credit">{credit}</small></figcaption></figure>
<div class="title-block">
<h1>{title}</h1>
<div class="meta"><span class="meta__author">By {author}</span> |
<time datetime="{published}">{date}</time></div>
</div>
<div class="post">
{body}
</div>
<aside class="more-stories"><h4>Read more</h4><ul>{related}</ul></aside>
</article>
<footer><div class="footer-links"><a href="/about">About us</a> <a href="/contact">Contact</a>
</div></footer>
</div>
</body>
</html>
""",
    "wordpress": """<body class="post-template-default single single-post">
<div id="page" class="site">
<header id="masthead" class="site-header"><div class="site-branding">
<p class="site-title"><a href="/" rel="home">{site}</a></p></div>
<div id="site-navigation" class="main-navigation">{nav}</div></header>
<div id="content" class="site-content">
<article id="post-{post}" class="post-{post} post type-post status-publish">
<header class="entry-header"><h1 class="entry-title">{title}</h1>
<div class="entry-meta"><span class="byline">By <span class="author vcard">{author}</span></span>
<span class="posted-on"><time class="entry-date published" datetime="{published}">{date}</time>
</span></div></header>
<div class="entry-content">
<figure class="wp-block-image size-large">{img}
<figcaption class="wp-element-caption">{caption} &mdash; {credit}</figcaption></figure>
{body}
<div class="sharedaddy"><h3 class="sd-title">Share this:</h3>
<ul><li>Facebook</li><li>Email</li><li>Print</li></ul></div>
</div>
</article>
<aside id="secondary" class="widget-area"><section class="widget widget_recent_entries">
<h2 class="widget-title">Related</h2><ul>{related}</ul></section></aside>
</div>
<footer id="colophon" class="site-footer">
<div class="site-info">Proudly published by {site}</div></footer>
</div>
</body>
</html>
""",
}


def page_html(a: Article) -> str:
    """The saved page of ``a`` in its site's template (``a.page == "missing"`` has none)."""
    template = a.site.template
    year, month, day = a.published[:10].split("-")
    fields = {
        "title": a.title,
        "site": a.site.name,
        "description": a.description,
        "url": a.url,
        "image_url": a.image_url,
        "published": a.published,
        "date": f"{MONTHS[int(month) - 1]} {int(day)}, {year}",
        "author": a.author,
        "author_slug": _slug(a.author),
        "caption": a.caption,
        "credit": a.credit,
        "section": a.picture.attrs.section,
        "post": str(int(a.article_id) + 4100),
    }
    fields = {k: html.escape(v) for k, v in fields.items()}
    base = f"https://www.{a.site.domain}.example"
    fields["nav"] = (
        "<nav><ul>"
        + "".join(f'<li><a href="{base}/{n.lower()}">{n}</a></li>' for n in NAV)
        + "</ul></nav>"
    )
    fields["related"] = "".join(
        f'<li><a href="{html.escape(url)}">{html.escape(title)}</a></li>'
        for title, url in a.related
    )
    fields["img"] = (
        f'<img src="{fields["image_url"]}" alt="{fields["caption"]}" '
        f'width="{a.picture.width}" height="{a.picture.height}">'
    )
    fields["head_extra"] = _head_extra(a) if template == "modern" else ""
    fields["body"] = _paywall(template) if a.page == "paywall" else _body(a, template)
    return HEAD.format(**fields) + TEMPLATES[template].format(**fields)


def _head_extra(a: Article) -> str:
    """JSON-LD metadata, as many news sites embed it."""
    ld = {
        "@context": "https://schema.org",
        "@type": "NewsArticle",
        "headline": a.title,
        "datePublished": a.published,
        "author": {"@type": "Person", "name": a.author},
        "image": [a.image_url],
    }
    return (
        f'\n<script type="application/ld+json">{html.escape(json.dumps(ld), quote=False)}</script>'
    )


def _body(a: Article, template: str) -> str:
    """The body paragraphs, with each site's clutter between them (ads, newsletter box)."""
    ps = [f"<p>{html.escape(p)}</p>" for p in a.paragraphs]
    if template == "magazine":  # an AP-style dateline opens the lead
        ps[0] = (
            f'<p><span class="dateline">{html.escape(a.town.upper())} &mdash;</span> {ps[0][3:]}'
        )
    if template == "modern":
        ps.insert(1, '<div class="ad-slot" aria-hidden="true">Advertisement</div>')
        if len(ps) > 3:
            ps.insert(3, '<div class="newsletter-box"><strong>Get the morning briefing</strong> '
                      '<a href="/newsletters">Sign up</a></div>')  # fmt: skip
    return "\n".join(ps)


def _paywall(template: str) -> str:
    """A notice instead of the body, and no <p> inside the article: extraction finds nothing."""
    if template == "magazine":
        return f'<section class="locked"><h3>Members only</h3><div>{PAYWALL}</div></section>'
    return (
        f'<div class="paywall-notice"><strong>{PAYWALL}</strong> '
        '<a href="/subscribe">Subscribe</a></div>'
    )
