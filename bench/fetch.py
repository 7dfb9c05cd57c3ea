"""Fetch throughput against a loopback S3 server with added latency, and decode+resize alone.

    python bench/fetch.py [--latency-ms 50] [--images 6000] [--seconds 4]

- fetch.run end to end (GET, validate, resize to 384 px, write shards) with 1 request in flight
  (the baseline), with 64 in one process, and with 64 as 2 processes of 32 (fetch.processes:
  one per core, the default), against a loopback S3-compatible server (in its own process)
  that waits ``--latency-ms`` before answering each request;
- the CPU ceiling: cores / (CPU per image of fetch.run + of the server), the most any
  concurrency can give on this machine, since the server shares its cores;
- the reads alone (download.read_bytes, 64 in flight), to show what the network side
  could give were decoding free;
- images.normalise alone on one core: 1024x768 JPEGs (q90) -> 384 px, in images/s, and the
  bytes per stored image at 384 px q90 (for disk estimates).

Images are photo-like: 1/f^1.4 noise, close to the power spectrum of natural photos, so that
JPEG sizes and decode costs are close to real ones. Targets (issue 4):
64 in flight >= 20x the sequential rate at 50 ms; decode+resize >= 100 images/s per core.
Prints a table (images/s, ratio to the baseline measured in the same run) and ends with one
JSON line of the key figures.
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import json
import logging
import math
import multiprocessing as mp
import os
import random
import sys
import tempfile
import time
from collections.abc import Iterator
from concurrent.futures import ProcessPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import psutil
from PIL import Image

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # tests.fetch_helpers: the loopback S3 server

from synthetic import jpeg  # noqa: E402

from newsimg import download, fetch, images  # noqa: E402
from newsimg.params import FetchParams  # noqa: E402
from tests.fetch_helpers import BucketServer  # noqa: E402

BUCKET = "commons"
PREFIX = "data/images"


def photo(width: int, height: int, seed: int) -> Image.Image:
    """A photo-like RGB image: 1/f^1.4 noise per channel, mixed so the channels correlate.

    At 1024x768 q90 it makes ~200 kB JPEGs, and ~34 kB at 384 px: in the range of real photos
    (white noise would make 3x larger files and slower decodes).
    """
    rng = np.random.default_rng(seed)
    fy = np.fft.fftfreq(height)[:, None]
    fx = np.fft.rfftfreq(width)[None, :]
    falloff = np.maximum(np.hypot(fx, fy), 1.0 / max(width, height)) ** -1.4
    chans = []
    for _ in range(3):
        spectrum = falloff * np.exp(2j * np.pi * rng.random(falloff.shape))
        chans.append(np.fft.irfft2(spectrum, s=(height, width)))
    x = np.stack(chans, axis=-1)
    x = x @ (0.6 * np.eye(3) + 0.4 / 3)  # correlated channels, as in photos
    x = 128 + 45 * (x - x.mean()) / x.std()
    return Image.fromarray(np.clip(x, 0, 255).astype(np.uint8))


def make_corpus(n: int, size: tuple[int, int], variants: int = 24) -> dict[str, bytes]:
    """``n`` objects keyed like the YFCC bucket; ``variants`` distinct photos reused."""
    bodies = [jpeg(photo(*size, seed)) for seed in range(variants)]
    objects = {}
    for i in range(n):
        h = hashlib.md5(f"bench-{i}".encode()).hexdigest()
        objects[f"{PREFIX}/{h[0:3]}/{h[3:6]}/{h}.jpg"] = bodies[i % variants]
    return objects


def _serve(objects: dict[str, bytes], latency_s: float, port: mp.Queue) -> None:
    server = BucketServer(objects, latency_s=latency_s)
    port.put(server.server_address[1])
    server.serve_forever()


@dataclass
class Server:
    endpoint: str
    process: psutil.Process

    def cpu(self) -> float:
        """CPU seconds the server process has used so far."""
        t = self.process.cpu_times()
        return t.user + t.system


@contextmanager
def bucket_server(objects: dict[str, bytes], latency_s: float) -> Iterator[Server]:
    """A loopback S3 server in a child process (no GIL shared with fetch)."""
    ctx = mp.get_context("fork")
    port: mp.Queue = ctx.Queue()
    proc = ctx.Process(target=_serve, args=(objects, latency_s, port), daemon=True)
    proc.start()
    try:
        yield Server(f"http://127.0.0.1:{port.get(timeout=30)}", psutil.Process(proc.pid))
    finally:
        proc.terminate()
        proc.join()


def params(endpoint: str, workers: int, shard_size: int, processes: int = 1) -> FetchParams:
    return FetchParams(
        source=f"s3://{BUCKET}/{PREFIX}",
        endpoint_url=endpoint,
        processes=processes,
        workers=workers,
        shard_size=shard_size,
        timeout_s=30.0,
        retries=3,
        max_failure_rate=0.0,
    )


@dataclass
class FetchRun:
    images_per_s: float
    client_cpu_ms: float  # per image, fetch.run's processes
    server_cpu_ms: float  # per image, the S3 server's process


def run_fetch(
    objects: dict[str, bytes], n: int, server: Server, workers: int, processes: int = 1
) -> FetchRun:
    """fetch.run over the first ``n`` objects: ``processes`` x ``workers`` requests in flight.

    fetch.run itself runs in a fresh process (no s3fs client inherited), started before the
    clock, so that every configuration pays the same; shards of n / (2 * processes) images give
    every process the same work.
    """
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        manifest = tmp / "manifest.txt"
        hashes = [Path(k).stem for k in list(objects)[:n]]
        manifest.write_text("".join(f"{i}\t{h}\n" for i, h in enumerate(hashes)))
        (tmp / "news").mkdir()
        p = params(server.endpoint, workers, math.ceil(n / (2 * processes)), processes)
        with ProcessPoolExecutor(1, mp_context=mp.get_context("spawn")) as pool:
            pool.submit(abs, 0).result()  # returns once the process has imported this module
            server_cpu, start = server.cpu(), time.perf_counter()
            ok, cpu = pool.submit(_run, p, manifest, tmp).result()
            seconds = time.perf_counter() - start
            server_cpu = server.cpu() - server_cpu
    assert ok == n, (ok, n)
    return FetchRun(n / seconds, cpu * 1e3 / n, server_cpu * 1e3 / n)


def _run(p: FetchParams, manifest: Path, tmp: Path) -> tuple[int, float]:
    """(images fetched, CPU seconds of this process and of its worker processes)."""
    cpu = _cpu()
    ok = fetch.run(p, manifest=manifest, newsimages=tmp / "news", out=tmp / "out").ok
    return ok, _cpu() - cpu


def _cpu() -> float:
    t = os.times()  # children: fetch.run's worker processes, joined before it returns
    return t.user + t.system + t.children_user + t.children_system


def run_reads(objects: dict[str, bytes], n: int, server: Server, workers: int) -> float:
    """Images/s of download.read_bytes alone (the network side), ``workers`` in flight."""
    p = params(server.endpoint, workers, shard_size=n)
    reader, root = download.open_source(p)
    paths = [f"{root}/{k.removeprefix(PREFIX + '/')}" for k in list(objects)[:n]]
    rng = random.Random(0)

    async def read_all() -> list[int]:
        in_flight = asyncio.Semaphore(workers)

        async def one(path: str) -> int:
            async with in_flight:
                return len(await download.read_bytes(read, path, p, rng))

        async with reader as read:
            return await asyncio.gather(*(one(path) for path in paths))

    start = time.perf_counter()
    sizes = asyncio.run(read_all())
    seconds = time.perf_counter() - start
    assert all(sizes)
    return n / seconds


def run_normalise(seconds: float) -> tuple[float, float, float]:
    """(images/s on one core, mean stored bytes, mean source bytes): 1024x768 -> 384 px q90."""
    bodies = [jpeg(photo(1024, 768, 1000 + s)) for s in range(12)]
    p = FetchParams(source="unused")
    out_sizes = [len(images.normalise(b, p)[0]) for b in bodies]  # also warms up
    n, start = 0, time.perf_counter()
    while time.perf_counter() - start < seconds:
        images.normalise(bodies[n % len(bodies)], p)
        n += 1
    rate = n / (time.perf_counter() - start)
    return rate, float(np.mean(out_sizes)), float(np.mean([len(b) for b in bodies]))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--latency-ms", type=float, default=50.0)
    parser.add_argument("--images", type=int, default=6000, help="images at 64 in flight")
    parser.add_argument("--sequential-images", type=int, default=100)
    parser.add_argument("--seconds", type=float, default=4.0, help="normalise timing window")
    parser.add_argument("--size", default="640x480", help="stored photos in the bucket")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING)
    logging.getLogger("newsimg").setLevel(logging.WARNING)
    os.environ.update(AWS_CONFIG_FILE="/nonexistent", AWS_SHARED_CREDENTIALS_FILE="/nonexistent")

    size = tuple(int(v) for v in args.size.split("x"))
    objects = make_corpus(max(args.images, args.sequential_images), size)  # type: ignore[arg-type]
    with (
        bucket_server(objects, args.latency_ms / 1000) as slow,
        bucket_server(objects, 0.0) as fast,
    ):
        run_reads(objects, 20, slow, 8)  # warm up the servers and the client
        run_reads(objects, 20, fast, 8)
        seq = run_fetch(objects, args.sequential_images, slow, workers=1)
        c64 = run_fetch(objects, args.images, slow, workers=64)
        procs = run_fetch(objects, args.images, slow, workers=32, processes=2)
        c64_fast = run_fetch(objects, args.images, fast, workers=64)
        reads64 = run_reads(objects, args.images, slow, workers=64)
    norm, stored_bytes, source_bytes = run_normalise(args.seconds)

    cores = fetch.usable_cores()
    ceiling = cores * 1e3 / (c64.client_cpu_ms + c64.server_cpu_ms)
    base = seq.images_per_s
    lat = f"{args.latency_ms:.0f} ms"
    rows = [
        (f"fetch.run, 1 in flight, {lat} (baseline)", base, base, ""),
        (f"fetch.run, 64 in flight, {lat}", c64.images_per_s, base, ">= 20x"),
        (f"fetch.run, 2 processes x 32 in flight, {lat}", procs.images_per_s, base, ">= 20x"),
        ("fetch.run, 64 in flight, 0 ms (CPU bound)", c64_fast.images_per_s, base, ""),
        (f"CPU ceiling on {cores} cores (fetch + server)", ceiling, base, ""),
        (f"reads alone, 64 in flight, {lat}", reads64, base, ""),
        ("normalise 1024x768 -> 384 px, 1 core", norm, 100.0, ">= 100/s (ratio to 100/s)"),
    ]
    kb = np.mean([len(b) for b in objects.values()]) / 1e3
    print(f"bucket: {args.size} q90 photo-like JPEGs ({kb:.0f} kB); {cores} cores; the S3 server")
    print("runs in its own process on the same cores")
    print(f"{'measure':<46} {'images/s':>9} {'ratio':>7}  target")
    for name, rate, ref, target in rows:
        print(f"{name:<46} {rate:>9.1f} {rate / ref:>6.1f}x  {target}")
    print(
        f"CPU per image at 64 in flight: fetch.run {c64.client_cpu_ms:.1f} ms, "
        f"server {c64.server_cpu_ms:.1f} ms"
    )
    print(
        f"stored JPEG at 384 px q90: {stored_bytes / 1e3:.1f} kB/image "
        f"(from 1024x768 q90 sources of {source_bytes / 1e3:.0f} kB)"
    )
    figures = {
        "latency_ms": args.latency_ms,
        "cores": cores,
        "sequential_img_s": round(base, 1),
        "c64_img_s": round(c64.images_per_s, 1),
        "c64_speedup": round(c64.images_per_s / base, 1),
        "procs2x32_img_s": round(procs.images_per_s, 1),
        "procs2x32_speedup": round(procs.images_per_s / base, 1),
        "c64_0ms_img_s": round(c64_fast.images_per_s, 1),
        "cpu_ceiling_img_s": round(ceiling, 1),
        "cpu_ceiling_speedup": round(ceiling / base, 1),
        "reads_c64_img_s": round(reads64, 1),
        "reads_c64_speedup": round(reads64 / base, 1),
        "cpu_ms_per_img": round(c64.client_cpu_ms, 2),
        "server_cpu_ms_per_img": round(c64.server_cpu_ms, 2),
        "normalise_img_s_per_core": round(norm, 1),
        "bytes_per_image_384": round(stored_bytes),
    }
    print(json.dumps(figures))
    return 0


if __name__ == "__main__":
    sys.exit(main())
