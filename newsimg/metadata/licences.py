"""Creative Commons licences of YFCC100M photos: the licence URL as a short code, credit lines.

Every YFCC100M photo carries one of six Creative Commons licences, nearly all version 2.0. The
licence URL (``http://creativecommons.org/licenses/by-nc-sa/2.0/``) is the robust key: the
licence *name* column is free English text, the URL is machine-made. What each code allows a
newsroom (README, "Licences and credits"):

    by        BY        credit the author
    by-sa     BY-SA     credit; adaptations under the same licence
    by-nd     BY-ND     credit; no adaptations (a 460x260 crop is arguably one)
    by-nc     BY-NC     credit; no commercial use
    by-nc-sa  BY-NC-SA  credit; no commercial use; adaptations under the same licence
    by-nc-nd  BY-NC-ND  credit; no commercial use; no adaptations

``unknown`` is a photo without metadata (or with a URL that is none of these); ``own`` is an
article's own image (NewsImages), which is the publisher's, not a YFCC photo.
"""

from __future__ import annotations

import re

CC_CODES = ("by", "by-sa", "by-nd", "by-nc", "by-nc-sa", "by-nc-nd")
UNKNOWN = "unknown"
OWN = "own"  # an article's own image: not a YFCC photo, the publisher holds its rights
CODES = (*CC_CODES, UNKNOWN, OWN)  # every code a policy may name

_URL = re.compile(
    r"^(?:https?://)?(?:www\.)?creativecommons\.org/licenses/"
    r"(?P<code>by(?:-nc)?(?:-sa|-nd)?)/(?P<version>\d+(?:\.\d+)*)(?:/|/[^/]*)?$",
    re.IGNORECASE,
)


def parse_licence_url(url: str | None) -> tuple[str, str | None]:
    """``(code, version)`` of a Creative Commons licence URL; ``("unknown", None)`` otherwise.

    >>> parse_licence_url("http://creativecommons.org/licenses/by-nc-sa/2.0/")
    ('by-nc-sa', '2.0')
    """
    if not url:
        return UNKNOWN, None
    m = _URL.match(url.strip())
    if m is None:
        return UNKNOWN, None
    return m["code"].lower(), m["version"]


def licence_label(code: str, version: str | None) -> str:
    """``"CC BY-SA 2.0"``; ``"licence unknown"`` for a photo without a known licence."""
    if code == OWN:
        return "the publisher's own image"
    if code not in CC_CODES:
        return "licence unknown"
    return f"CC {code.upper()}{f' {version}' if version else ''}"


def licence_url(code: str, version: str | None) -> str | None:
    """The canonical deed URL of a CC licence (``https://creativecommons.org/licenses/...``)."""
    if code not in CC_CODES or not version:
        return None
    return f"https://creativecommons.org/licenses/{code}/{version}/"


def credit_line(nickname: str | None, code: str, version: str | None) -> str:
    """The attribution every CC licence asks for: ``"Photo: NICKNAME via Flickr, CC BY-SA 2.0"``.

    Without a nickname (a photo missing from the metadata) the author is ``unknown author``.
    """
    if code == OWN:
        return "The article's own image"
    who = nickname if nickname else "unknown author"
    return f"Photo: {who} via Flickr, {licence_label(code, version)}"
