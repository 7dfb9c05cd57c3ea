"""The photo desk over HTTP against the same encode + search called directly, in one run.

Two pools: the sample that `make repro` built (the tiny model, exact index) and a synthetic
1M-vector pool behind an IVF-PQ index with a Long-CLIP-B-shaped random text encoder (512-d).
For each, at 1, 4 and 16 concurrent clients: queries/s and p50/p95/p99 latency of
``POST /api/search`` on a real server (``newsimg serve`` in its own process) and of
``Desk.encode_texts`` + ``Desk.search`` called in this process with the same texts and the same
concurrency; the ratio is the service's overhead (HTTP, JSON, the event loop, the thread pool).
Also: cold start to the first answer (process start to the first 200 of /api/search) and the
server's resident memory against the index's size on disk.

    .venv/bin/python bench/serve.py                 # both pools (a few minutes on 2 cores)
    .venv/bin/python bench/serve.py --n 200000      # a smaller synthetic pool
    .venv/bin/python bench/serve.py --no-synthetic  # the sample only

Prints a table per pool and ends with one line of JSON.
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
CONCURRENCY = (1, 4, 16)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def rss_mb(pid: int) -> float:
    import psutil

    return psutil.Process(pid).memory_info().rss / 2**20


def folder_mb(path: Path) -> float:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file()) / 2**20


def measure(call: Callable[[str], None], texts: list[str], clients: int, seconds: float,
            most: int) -> dict[str, float]:  # fmt: skip
    """``clients`` threads calling ``call`` on the texts in turn, for at most ``seconds`` and
    ``most`` calls in all: queries/s and latency percentiles in ms."""
    latencies: list[float] = []
    lock = threading.Lock()
    deadline = time.monotonic() + seconds
    counter = iter(range(most))

    def worker(i: int) -> None:
        while time.monotonic() < deadline:
            with lock:
                n = next(counter, None)
            if n is None:
                return
            t0 = time.perf_counter()
            call(texts[n % len(texts)])
            with lock:
                latencies.append(time.perf_counter() - t0)

    t0 = time.perf_counter()
    threads = [threading.Thread(target=worker, args=(i,)) for i in range(clients)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    wall = time.perf_counter() - t0
    ms = np.array(latencies) * 1000
    p50, p95, p99 = np.percentile(ms, [50, 95, 99])
    return {"n": len(ms), "qps": len(ms) / wall, "p50": p50, "p95": p95, "p99": p99}


def start_server(argv: list[str], port: int, text: str) -> tuple[subprocess.Popen, float]:
    """A server process; returns it and the seconds from its start to the first answer."""
    import httpx

    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    t0 = time.perf_counter()
    proc = subprocess.Popen(argv, cwd=ROOT, env=env, stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE)  # fmt: skip
    url = f"http://127.0.0.1:{port}/api/search"
    while True:
        if proc.poll() is not None:
            raise RuntimeError(f"server exited: {proc.stderr.read().decode()[-2000:]}")
        try:
            r = httpx.post(url, json={"text": text, "k": 10}, timeout=60)
            if r.status_code == 200:
                return proc, time.perf_counter() - t0
        except httpx.TransportError:
            time.sleep(0.05)


def compare(name: str, desk, port: int, texts: list[str], args: argparse.Namespace) -> dict:
    """HTTP against direct at each concurrency; rows of the table."""
    import httpx

    from newsimg.serve.engine import Timings

    local = threading.local()
    body = {"k": 10, "dedup": False, "approach": desk.approaches[-1]}

    def http(text: str) -> None:
        if not hasattr(local, "client"):
            local.client = httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=60)
        r = local.client.post("/api/search", json={**body, "text": text})
        if r.status_code != 200:
            raise RuntimeError(r.text)
        r.json()

    def direct(text: str) -> None:
        q = desk.encode_texts([text], body["approach"])
        desk.search(q, k=10, offset=0, dedup_on=False, min_score=None,
                    include_originals=desk.params.include_originals, timings=Timings())  # fmt: skip

    rows = {}
    for c in CONCURRENCY:
        for label, call in (("direct", direct), ("http", http)):
            for t in texts[: 2 * c]:  # warm up each thread's state
                call(t)
            rows[(c, label)] = measure(call, texts, c, args.seconds, args.most)
    print(f"\n{name}")
    print(f"{'clients':>7}  {'path':<6} {'n':>5} {'q/s':>8} {'p50 ms':>8} {'p95 ms':>8} "
          f"{'p99 ms':>8} {'p50 / direct':>12}")  # fmt: skip
    for c in CONCURRENCY:
        for label in ("direct", "http"):
            m = rows[(c, label)]
            ratio = m["p50"] / rows[(c, "direct")]["p50"]
            print(f"{c:>7}  {label:<6} {m['n']:>5} {m['qps']:>8.1f} {m['p50']:>8.2f} "
                  f"{m['p95']:>8.2f} {m['p99']:>8.2f} {ratio:>12.2f}")  # fmt: skip
    return {f"{label}_{c}": rows[(c, label)] for c, label in rows}


def sample_pool(args: argparse.Namespace) -> dict:
    from newsimg.serve.app import load_desk

    port = free_port()
    root = args.root.resolve()
    desk = load_desk(root, root / "params.yaml")
    texts = desk.articles["headline_lead"].to_pylist()
    argv = [sys.executable, "-m", "newsimg.cli", "serve", "--port", str(port), "--root", str(root),
            "--params", str(root / "params.yaml")]  # fmt: skip
    proc, cold = start_server(argv, port, texts[0])
    try:
        rows = compare(f"sample: {desk.index.ntotal} images, {desk.index.plan.kind} index, "
                       f"tiny model", desk, port, texts, args)  # fmt: skip
        rss = rss_mb(proc.pid)
    finally:
        proc.terminate()
        proc.wait(30)
    index_mb = folder_mb(root / "artifacts/index") + folder_mb(Path(desk.index.vectors.folder))
    print(f"cold start to the first answer: {cold:.1f} s; server RSS {rss:.0f} MB, "
          f"index + embeddings on disk {index_mb:.1f} MB")  # fmt: skip
    return {"cold_start_s": cold, "rss_mb": rss, "index_mb": index_mb, **rows}


def synthetic_root(tmp: Path, n: int, seed: int) -> Path:
    """A pipeline-shaped folder: a Long-CLIP-B-shaped random model, ``n`` unit vectors of its
    dimension around random centres (float16 units), an IVF-PQ index over them, the sample's
    articles, no shards."""
    sys.path.insert(0, str(ROOT / "bench"))
    import pyarrow as pa
    import pyarrow.parquet as pq
    from synthetic import random_clip

    from newsimg import clip, index
    from newsimg.params import IndexParams

    model = tmp / "model"
    clip.save_model(random_clip("b", seed), model)
    dim = 512
    emb = tmp / "embeddings"
    emb.mkdir()
    rng = np.random.default_rng(seed)
    centres = rng.standard_normal((2000, dim), dtype=np.float32)
    centres /= np.linalg.norm(centres, axis=1, keepdims=True)
    unit = 100_000
    for u, start in enumerate(range(0, n, unit)):
        size = min(unit, n - start)
        x = centres[rng.integers(0, len(centres), size)]
        x = x + 1.2 / np.sqrt(dim) * rng.standard_normal((size, dim), dtype=np.float32)
        x /= np.linalg.norm(x, axis=1, keepdims=True)
        keys = pa.table(
            {"key": [f"{start + i:09d}" for i in range(size)], "source": ["syn"] * size}
        )
        pq.write_table(keys, emb / f"syn-{u:05d}.keys.parquet")
        np.save(emb / f"syn-{u:05d}.npy", x.astype(np.float16))
    index.build(IndexParams(kind="ivfpq"), embeddings=emb, out=tmp / "index")
    (tmp / "shards").mkdir()
    return tmp


def synthetic_desk(tmp: Path):
    from newsimg.params import load_section
    from newsimg.serve.engine import Desk
    from newsimg.serve.paths import Approach, Artifacts

    art = Artifacts(
        root=tmp, model=tmp / "model", index=tmp / "index", shards=tmp / "shards",
        articles=ROOT / "artifacts/articles.parquet",
        approaches={"headline_lead": Approach("headline_lead", "headline_lead", tmp / "model",
                                              tmp / "results.parquet")},
    )  # fmt: skip
    names = ("serve", "leads", "fetch", "report", "search")
    sections = {s: load_section(s, ROOT / "params.yaml") for s in names}
    serve = sections["serve"].model_copy(update={"approach": "headline_lead"})
    return Desk(art, serve, *(sections[s] for s in names[1:]))


def serve_synthetic(tmp: Path, port: int) -> None:
    """The child process of the synthetic run: the desk over ``tmp`` under uvicorn."""
    import uvicorn

    from newsimg.serve.app import create_app

    uvicorn.run(create_app(synthetic_desk(tmp)), host="127.0.0.1", port=port, log_level="warning")


def synthetic_pool(args: argparse.Namespace) -> dict:
    with tempfile.TemporaryDirectory() as name:
        tmp = Path(name)
        t0 = time.perf_counter()
        synthetic_root(tmp, args.n, 0)
        print(f"\nsynthetic pool of {args.n} built in {time.perf_counter() - t0:.0f} s")
        desk = synthetic_desk(tmp)
        texts = desk.articles["headline_lead"].to_pylist()
        port = free_port()
        argv = [sys.executable, str(Path(__file__).resolve()), "--child", str(tmp), str(port)]
        proc, cold = start_server(argv, port, texts[0])
        try:
            rows = compare(f"synthetic: {args.n} vectors, IVF-PQ {desk.index.plan.factory}, "
                           "Long-CLIP-B-shaped text encoder", desk, port, texts, args)  # fmt: skip
            rss = rss_mb(proc.pid)
        finally:
            proc.terminate()
            proc.wait(30)
        faiss_mb = folder_mb(tmp / "index")
        emb_mb = folder_mb(tmp / "embeddings")
        print(
            f"cold start to the first answer: {cold:.1f} s; server RSS {rss:.0f} MB; "
            f"IVF-PQ index {faiss_mb:.0f} MB, float16 embeddings {emb_mb:.0f} MB (memory-mapped)"
        )
    return {"cold_start_s": cold, "rss_mb": rss, "index_mb": faiss_mb, "embeddings_mb": emb_mb,
            **rows}  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=1_000_000, help="synthetic pool size")
    parser.add_argument("--seconds", type=float, default=5.0, help="per measurement, at most")
    parser.add_argument("--most", type=int, default=400, help="calls per measurement, at most")
    parser.add_argument("--no-synthetic", action="store_true")
    parser.add_argument("--no-sample", action="store_true")
    parser.add_argument("--root", type=Path, default=ROOT, help="the sample pipeline's folder")
    parser.add_argument("--child", nargs=2, metavar=("DIR", "PORT"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        serve_synthetic(Path(args.child[0]), int(args.child[1]))
        return
    import logging

    logging.basicConfig(level=logging.WARNING)
    print(f"{os.cpu_count()} CPU cores")
    sample = None if args.no_sample else sample_pool(args)
    synthetic = None if args.no_synthetic else synthetic_pool(args)

    def overhead(pool: dict, c: int) -> float:
        return pool[f"http_{c}"]["p50"] / pool[f"direct_{c}"]["p50"] - 1

    figures = {}
    if sample:
        figures |= {
            "sample_p95_ms_1": round(sample["http_1"]["p95"], 2),
            "sample_qps_16": round(sample["http_16"]["qps"], 1),
            "sample_overhead_1": round(overhead(sample, 1), 3),
            "sample_cold_start_s": round(sample["cold_start_s"], 2),
            "sample_rss_mb": round(sample["rss_mb"]),
        }
    if synthetic:
        figures |= {
            "n": args.n,
            "ivfpq_p95_ms_1": round(synthetic["http_1"]["p95"], 2),
            "ivfpq_direct_p50_ms_1": round(synthetic["direct_1"]["p50"], 2),
            "ivfpq_overhead_1": round(overhead(synthetic, 1), 3),
            "ivfpq_overhead_16": round(overhead(synthetic, 16), 3),
            "ivfpq_qps_16": round(synthetic["http_16"]["qps"], 1),
            "ivfpq_cold_start_s": round(synthetic["cold_start_s"], 2),
            "ivfpq_rss_mb": round(synthetic["rss_mb"]),
            "ivfpq_index_mb": round(synthetic["index_mb"]),
        }
    print(json.dumps(figures))


if __name__ == "__main__":
    main()
