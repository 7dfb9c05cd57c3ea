"""Shared by the serve tests: the pipeline's test artifacts built once per session, and the
real server (uvicorn on a free loopback port) over them."""

from __future__ import annotations

import shutil
import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import pytest

from tests.conftest import ROOT
from tests.sample_pipeline import build_to_index, retrieve_all


def build_pipeline(d: Path) -> Path:
    """The sample pipeline at ``d`` laid out as dvc.yaml lays it out (data/, artifacts/), every
    stage run once in DVC's order through the stage scripts; dvc.yaml and params.yaml copied in.
    A finished build is marked, so each test module of a session reuses it."""
    done = d / ".built"
    if done.exists():
        return d
    if d.exists():
        shutil.rmtree(d)
    d.mkdir(parents=True)
    art = d / "artifacts"

    def adjust(doc: dict) -> None:
        doc["leads"]["pages_dir"] = str(d / "data" / "html")
        doc["leads"]["retries"] = 1  # url queries to a dead port fail in a fraction of a second
        doc["leads"]["backoff_s"] = 0.05

    stage = build_to_index(d, adjust)
    shutil.copy(ROOT / "dvc.yaml", d / "dvc.yaml")
    retrieve_all(stage, art, art)
    done.touch()
    return d


@pytest.fixture(scope="session")
def pipeline(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_pipeline(tmp_path_factory.getbasetemp() / "serve-pipeline")


def free_socket() -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    return sock


@contextmanager
def running(app: object) -> Iterator[str]:
    """``app`` under uvicorn on a free loopback port in a thread; yields its base URL."""
    import uvicorn

    sock = free_socket()
    port = sock.getsockname()[1]
    server = uvicorn.Server(
        uvicorn.Config(app, log_level="warning", timeout_keep_alive=5, lifespan="on")
    )
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 30
    while not server.started:
        if time.monotonic() > deadline or not thread.is_alive():
            raise RuntimeError("uvicorn did not start")
        time.sleep(0.02)
    try:
        yield base
    finally:
        server.should_exit = True
        thread.join(10)
        sock.close()


def metric(text: str, name: str, **labels: str) -> float:
    """The value of one Prometheus sample in an exposition text (0 when absent)."""
    want = ",".join(f'{k}="{v}"' for k, v in labels.items())
    prefix = f"{name}{{{want}}}" if labels else name
    for line in text.splitlines():
        if line.startswith(prefix + " "):
            return float(line.split()[-1])
    return 0.0


def client(base: str) -> httpx.Client:
    return httpx.Client(base_url=base, timeout=30)
