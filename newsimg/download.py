"""Reading objects from S3 or any fsspec URL, with the fetch stage's retry policy.

Anonymous S3 (the public YFCC bucket) is read with plain HTTP GETs (:class:`PublicBucket`);
signed S3 and every other fsspec URL (the sample's folder) through fsspec
(:class:`FileSystemReader`). :func:`read_bytes` retries what is transient and turns the rest into
:class:`~newsimg.errors.Rejected` with a short reason (:func:`classify_error`).
"""

from __future__ import annotations

import asyncio
import logging
import random
import re
import urllib.parse
import urllib.request
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Protocol

import aiohttp
from fsspec import AbstractFileSystem
from fsspec.core import split_protocol, url_to_fs

from newsimg.errors import Rejected
from newsimg.params import FetchParams

log = logging.getLogger(__name__)

S3_REGION = "us-west-2"  # the multimedia-commons bucket's region
BACKOFF_CAP_S = 20.0  # the longest wait before a retry
_S3_ERROR_CODE = re.compile(rb"<Code>([^<]{1,64})</Code>")
# Exception class names of transient network failures in the fsspec backends (botocore, aiohttp,
# urllib3); matched by name so that no backend has to be importable to classify its errors.
_CONNECTION_ERRORS = {
    "ConnectionError",
    "ConnectionClosedError",
    "ClientConnectionError",
    "ServerDisconnectedError",
    "ClientPayloadError",
    "IncompleteRead",
    "ProtocolError",
    "ResponseParserError",
}


def storage_options(params: FetchParams) -> dict[str, Any]:
    """fsspec options for ``params.source``: S3 settings for ``s3://``, none for anything else.

    Retries are ours (``params.retries``, with jitter), so botocore's are switched off; the pool
    is as large as the requests in flight, and ``max_concurrency=1`` makes s3fs send one GET per
    image instead of a HEAD then a GET.
    """
    protocol = split_protocol(params.source)[0] or "file"
    if protocol not in ("s3", "s3a"):
        return {}
    return {
        "anon": params.anon,
        "endpoint_url": params.endpoint_url,
        # AWS needs the bucket's region; an S3-compatible server has its own idea of regions.
        "client_kwargs": {} if params.endpoint_url else {"region_name": S3_REGION},
        "max_concurrency": 1,
        "config_kwargs": {
            "connect_timeout": params.timeout_s,
            "read_timeout": params.timeout_s,
            "retries": {"total_max_attempts": 1},
            "max_pool_connections": params.workers,
        },
        # A private instance: its retry setting is changed below, which must not leak into other
        # users of a cached one.
        "skip_instance_cache": True,
    }


class Reader(Protocol):
    """Reads objects by path, ``await read(path)``, inside ``async with read:``.

    Raises on failure; :func:`classify_error` tells the reasons apart.
    """

    async def __aenter__(self) -> Reader: ...

    async def __aexit__(self, *exc: object) -> None: ...

    async def __call__(self, path: str) -> bytes: ...


def open_source(params: FetchParams) -> tuple[Reader, str]:
    """How to read ``params.source``, and the root path its objects' paths start with.

    Anonymous S3 (``params.anon``, the public YFCC bucket) is read with plain HTTP GETs
    (:class:`PublicBucket`); signed S3 and every other fsspec URL (the sample's folder) through
    fsspec (:class:`FileSystemReader`). A reader holds nothing until it is entered.
    """
    protocol, path = split_protocol(params.source)
    if protocol in ("s3", "s3a") and params.anon:
        bucket, _, prefix = path.partition("/")
        return PublicBucket(bucket, params), prefix.rstrip("/")
    fs, root = url_to_fs(params.source, **storage_options(params))
    if hasattr(fs, "retries"):
        # s3fs retries timeouts and SlowDown itself (5 attempts, nested twice) and has no
        # constructor option for it; one attempt each leaves the policy to read_bytes().
        fs.retries = 1
    return FileSystemReader(fs, params.workers), root.rstrip("/")


class HTTPStatusError(OSError):
    """A GET answered with another status than 200; ``code`` is S3's error code, if any."""

    def __init__(self, status: int, code: str | None, url: str) -> None:
        super().__init__(f"HTTP {status} {code or ''} for {url}".replace("  ", " "))
        self.status = status
        self.code = code


class PublicBucket:
    """GETs of a public bucket's objects over plain HTTP(S): unsigned S3 reads, with aiohttp.

    What s3fs sends for an anonymous read, less botocore's per-request work, which cost more CPU
    than the GET itself (bench/fetch.py). AWS is addressed virtual-hosted style in the bucket's
    region (``S3_REGION``); an ``endpoint_url`` path-style, as S3-compatible servers expect.
    Connections are kept alive, up to ``params.workers``; ``params.timeout_s`` bounds each
    request, from connecting to the last byte (a server that trickles bytes is cut off too). The
    retry policy is :func:`read_bytes`'.
    """

    def __init__(self, bucket: str, params: FetchParams) -> None:
        if params.endpoint_url:
            self.base = f"{params.endpoint_url.rstrip('/')}/{bucket}"
        else:
            self.base = f"https://{bucket}.s3.{S3_REGION}.amazonaws.com"
        self.connections = params.workers
        self.timeout = aiohttp.ClientTimeout(
            total=params.timeout_s, sock_connect=params.timeout_s, sock_read=params.timeout_s
        )
        self._session: aiohttp.ClientSession | None = None
        self._proxy: str | None = None

    async def __aenter__(self) -> PublicBucket:
        connector = aiohttp.TCPConnector(limit=self.connections)
        self._session = aiohttp.ClientSession(connector=connector, timeout=self.timeout)
        self._proxy = env_proxy(self.base)
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    async def __call__(self, key: str) -> bytes:
        assert self._session is not None, "use the reader inside `async with`"
        url = f"{self.base}/{urllib.parse.quote(key)}"
        async with self._session.get(url, proxy=self._proxy) as response:
            body = await response.read()
        if response.status != 200:
            match = _S3_ERROR_CODE.search(body[:1024])
            code = match.group(1).decode("ascii", "replace") if match else None
            raise HTTPStatusError(response.status, code, url)
        return body


def env_proxy(url: str) -> str | None:
    """The proxy for requests to ``url``: from HTTP(S)_PROXY unless NO_PROXY names the host;
    None for none. Credentials in the proxy's URL are sent to the proxy.

    Compute nodes often reach S3 through a proxy, and botocore honoured these variables. All of a
    reader's requests go to one host, so they are read once here: aiohttp's ``trust_env`` would
    look them up, and read ~/.netrc, in a thread for every request (two thread hops per image: a
    sixth of fetch's CPU per image on bench/fetch.py's loopback server, 6.1 against 5.15 ms).
    """
    parts = urllib.parse.urlsplit(url)
    if parts.hostname is None or urllib.request.proxy_bypass(parts.hostname):
        return None
    return urllib.request.getproxies().get(parts.scheme)


class FileSystemReader:
    """Reads through an fsspec filesystem's blocking API, ``workers`` at a time in threads."""

    def __init__(self, fs: AbstractFileSystem, workers: int) -> None:
        self.fs = fs
        self.workers = workers
        self._pool: ThreadPoolExecutor | None = None

    async def __aenter__(self) -> FileSystemReader:
        self._pool = ThreadPoolExecutor(self.workers, thread_name_prefix="read")
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=False, cancel_futures=True)
            self._pool = None

    async def __call__(self, path: str) -> bytes:
        assert self._pool is not None, "use the reader inside `async with`"
        return await asyncio.get_running_loop().run_in_executor(self._pool, self.fs.cat_file, path)


async def read_bytes(read: Reader, path: str, params: FetchParams, rng: random.Random) -> bytes:
    """The object's bytes, retrying transient failures ``params.retries`` times.

    Throttling (503 SlowDown), other 5xx, timeouts and dropped connections are retried after an
    exponential backoff with full jitter (so that the requests in flight do not retry in
    lockstep); not found and forbidden are final. Raises :class:`Rejected` with the reason of the
    last error.
    """
    for attempt in range(params.retries + 1):
        try:
            return await read(path)
        except Exception as exc:
            reason, retryable = classify_error(exc)
            if not retryable or attempt == params.retries:
                raise Rejected(reason) from exc
            delay = rng.uniform(0.0, min(BACKOFF_CAP_S, params.backoff_s * 2**attempt))
            log.debug("%s: %s (%r), retry %d in %.2f s", path, reason, exc, attempt + 1, delay)
            await asyncio.sleep(delay)
    raise AssertionError("unreachable")  # pragma: no cover


def classify_error(exc: BaseException) -> tuple[str, bool]:
    """``(reason, retryable)`` of a read error, looking through its chain of causes.

    :class:`PublicBucket` raises :class:`HTTPStatusError` and urllib3's errors; s3fs turns S3
    errors into ``FileNotFoundError``/``PermissionError``/``OSError`` with the botocore error as
    cause. The HTTP status is read from either when there is one.
    """
    for err in _causes(exc):
        if isinstance(err, FileNotFoundError):
            return "not_found", False
        if isinstance(err, PermissionError):
            return "forbidden", False
        status, code = _http_status(err)
        if status == 404 or code in ("NoSuchKey", "NotFound"):
            return "not_found", False
        if status == 403 or code == "AccessDenied":
            return "forbidden", False
        if status in (429, 503) or code == "SlowDown":
            return "throttled", True
        if status is not None:
            return f"error: http {status}", status >= 500
        names = {cls.__name__ for cls in type(err).__mro__}
        if isinstance(err, TimeoutError) or any("Timeout" in name for name in names):
            return "timeout", True
        if isinstance(err, ConnectionError) or names & _CONNECTION_ERRORS:
            return "error: connection", True
    return f"error: {type(exc).__name__}", False


def _causes(exc: BaseException) -> Iterator[BaseException]:
    seen: set[int] = set()
    err: BaseException | None = exc
    while err is not None and id(err) not in seen:
        seen.add(id(err))
        yield err
        err = err.__cause__ or err.__context__


def _http_status(err: BaseException) -> tuple[int | None, str | None]:
    if isinstance(err, HTTPStatusError):
        return err.status, err.code
    response = getattr(err, "response", None)
    if not isinstance(response, dict):
        return None, None
    status = response.get("ResponseMetadata", {}).get("HTTPStatusCode")
    code = response.get("Error", {}).get("Code")
    return (int(status) if status is not None else None), code
