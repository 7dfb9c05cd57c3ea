"""The photo desk: a FastAPI app under uvicorn over what the last ``dvc repro`` built.

``newsimg serve`` (or ``make serve``) loads the base model, the LAM, the index, the shards, the
articles and the stored results once (paths from dvc.yaml, settings from params.yaml's ``serve``
section) and answers text, article, URL, image and more-like-this queries over HTTP, with a page
at ``/`` and the OpenAPI docs at ``/docs``.
"""

from __future__ import annotations

import logging
from pathlib import Path

log = logging.getLogger(__name__)


def run(
    root: Path = Path("."),
    params: Path = Path("params.yaml"),
    *,
    host: str | None = None,
    port: int | None = None,
) -> None:
    """Load the desk and serve it until interrupted (blocks)."""
    import uvicorn

    from newsimg.serve.app import create_app, load_desk

    desk = load_desk(root, params)
    app = create_app(desk)
    host = host or desk.params.host
    port = desk.params.port if port is None else port
    log.info("serving on http://%s:%d (docs at /docs)", host, port)
    uvicorn.run(
        app,
        host=host,
        port=port,
        log_level="warning",
        timeout_keep_alive=5,
        limit_concurrency=256,
        h11_max_incomplete_event_size=64 * 1024,
    )
