"""A small S3-compatible GET server on loopback, with latency and planted faults.

Used by the fetch tests (throttling, stalls, a run slow enough to be killed mid-way, two ranks
meeting at a barrier) and by ``bench/fetch.py`` (50 ms per request at 1 vs 64 in flight). It
answers ``GET``/``HEAD /{bucket}/{key}`` (path-style, as botocore sends to a custom endpoint)
from a dict of objects, 404 ``NoSuchKey`` otherwise. moto's server does the same at ~250
requests/s on 2 cores, too slow to measure 64 requests in flight at 50 ms each.
"""

from __future__ import annotations

import http.server
import threading
import time
import urllib.parse
from collections import Counter
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from typing import Any

# fault(key, attempt) -> None to serve the object, or one of FAULTS; it may block (a gate).
FaultHook = Callable[[str, int], "str | None"]
FAULTS = {
    "slow_down": (503, "SlowDown"),
    "internal": (500, "InternalError"),
    "deny": (403, "AccessDenied"),
}


class _Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, as S3 does: no new connection per request

    def do_GET(self) -> None:
        server: BucketServer = self.server  # type: ignore[assignment]
        path = urllib.parse.unquote(urllib.parse.urlsplit(self.path).path)
        key = path.lstrip("/").partition("/")[2]  # drop the bucket
        attempt = server.count(key)
        if server.latency_s:
            time.sleep(server.latency_s)
        fault = server.fault(key, attempt) if server.fault else None
        if fault == "stall":  # answer only after the client has given up
            time.sleep(server.stall_s)
            fault = None
        body = server.objects.get(key)
        if fault is None and body is not None:
            self._send(200, body, "image/jpeg")
            return
        status, code = FAULTS[fault] if fault else (404, "NoSuchKey")
        xml = f"<Error><Code>{code}</Code><Message>{code}</Message><Key>{key}</Key></Error>"
        self._send(status, xml.encode(), "application/xml")

    def do_HEAD(self) -> None:  # pragma: no cover - s3fs sends one GET per image
        self.do_GET()

    def _send(self, status: int, body: bytes, content_type: str) -> None:
        try:
            self.send_response(status)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(body)))
            self.send_header("ETag", '"0"')
            self.end_headers()
            if self.command != "HEAD":
                self.wfile.write(body)
        except OSError:  # the client gave up (timeout) or was killed
            self.close_connection = True

    def log_message(self, *args: Any) -> None:  # keep test and bench output clean
        pass


class BucketServer(http.server.ThreadingHTTPServer):
    """Serves ``objects`` (key -> bytes) after ``latency_s``, applying ``fault(key, attempt)``.

    ``attempts`` counts the requests per key and ``log`` lists them in arrival order.
    """

    daemon_threads = True
    request_queue_size = 256

    def __init__(
        self,
        objects: Mapping[str, bytes],
        *,
        latency_s: float = 0.0,
        fault: FaultHook | None = None,
        stall_s: float = 1.0,
    ) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.objects = dict(objects)
        self.latency_s = latency_s
        self.fault = fault
        self.stall_s = stall_s
        self.attempts: Counter[str] = Counter()
        self.log: list[str] = []
        self._lock = threading.Lock()

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}"

    def count(self, key: str) -> int:
        with self._lock:
            self.attempts[key] += 1
            self.log.append(key)
            return self.attempts[key]

    def reset_counts(self) -> None:
        with self._lock:
            self.attempts.clear()
            self.log.clear()


@contextmanager
def serving(server: BucketServer) -> Iterator[BucketServer]:
    """Run ``server`` in a daemon thread for the ``with`` block."""
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server
    finally:
        server.shutdown()
        server.server_close()
