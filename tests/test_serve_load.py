"""16 concurrent clients on loopback, bounded in count and in time: no error, answers unchanged."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq

from tests.serve_helpers import client, metric, pipeline, running

__all__ = ["pipeline"]

CLIENTS = 16
PER_CLIENT = 25  # at most this many requests each
SECONDS = 10  # and no longer than this


def test_sixteen_clients_no_errors(pipeline: Path, record_property) -> None:
    from newsimg.serve.app import create_app, load_desk

    texts = pq.read_table(pipeline / "artifacts/articles.parquet")["headline_lead"].to_pylist()
    with running(create_app(load_desk(pipeline, pipeline / "params.yaml"))) as base:
        with client(base) as c:
            answers = {t: c.post("/api/search", json={"text": t, "k": 10}).json() for t in texts}
        want = {t: [x["key"] for x in a["results"]] for t, a in answers.items()}
        latencies: list[float] = []
        failures: list[str] = []
        lock = threading.Lock()
        deadline = time.monotonic() + SECONDS

        def one_client(i: int) -> None:
            with client(base) as c:
                for j in range(PER_CLIENT):
                    if time.monotonic() > deadline:
                        return
                    text = texts[(i * PER_CLIENT + j) % len(texts)]
                    t0 = time.perf_counter()
                    try:
                        r = c.post("/api/search", json={"text": text, "k": 10})
                        ok = (
                            r.status_code == 200
                            and [x["key"] for x in r.json()["results"]] == want[text]
                        )
                        why = f"{r.status_code} {r.text[:200]}"
                    except Exception as err:  # a dropped connection is a failure to report
                        ok, why = False, repr(err)
                    with lock:
                        latencies.append(time.perf_counter() - t0)
                        if not ok:
                            failures.append(why)

        threads = [threading.Thread(target=one_client, args=(i,)) for i in range(CLIENTS)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(SECONDS + 30)
        with client(base) as c:
            text = c.get("/metrics").text
            errors = sum(
                metric(text, "newsimg_requests_total", route="/api/search", status=s)
                for s in ("422", "500", "503")
            )
    assert not failures, failures[:3]
    assert errors == 0
    assert len(latencies) >= CLIENTS  # every client got through at least once
    p50, p95 = np.percentile(np.array(latencies) * 1000, [50, 95])
    record_property("requests", len(latencies))
    record_property("p50_ms", round(float(p50), 1))
    record_property("p95_ms", round(float(p95), 1))
    print(f"\n16 clients: {len(latencies)} requests, p50 {p50:.1f} ms, p95 {p95:.1f} ms")
