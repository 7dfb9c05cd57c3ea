"""The fetch stage end to end: a bucket folder with good images and faults, resume, ranks, S3.

Everything is real: Pillow-made images in a folder laid out like the YFCC bucket, s3fs against
moto's S3 server, and small HTTP servers that throttle, deny, stall or hang up for the retries.
"""

from __future__ import annotations

import asyncio
import hashlib
import http.server
import io
import json
import os
import random
import signal
import socket
import struct
import subprocess
import sys
import threading
import time
import zlib
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from PIL import Image

from newsimg import download, fetch
from newsimg.errors import InputError, Rejected, TooManyFailuresError, WorkerDiedError
from newsimg.params import FetchParams
from newsimg.store import shards
from tests.fetch_helpers import BucketServer, serving

MAX_SIDE = 64
MIN_SIDE = 16
MAX_PIXELS = 50_000
SHARD_SIZE = 4


# ------------------------------------------------------------------------------ the test bucket


def _noise(size: tuple[int, int], seed: int) -> np.ndarray:
    """A smooth gradient with noise: a photo-like RGB array of ``size`` (width, height)."""
    w, h = size
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:h, 0:w]
    base = np.stack([x * 255 / w, y * 255 / h, (x + y) * 127 / (w + h)], axis=-1)
    return np.clip(base + rng.normal(0, 20, (h, w, 3)), 0, 255).astype(np.uint8)


def _encode(im: Image.Image, fmt: str, **kw: Any) -> bytes:
    buf = io.BytesIO()
    im.save(buf, fmt, **kw)
    return buf.getvalue()


def _jpeg(size: tuple[int, int], seed: int, **kw: Any) -> bytes:
    return _encode(Image.fromarray(_noise(size, seed)), "JPEG", quality=90, **kw)


def _rotated_jpeg() -> bytes:
    """Stored 120x80, EXIF orientation 6 (rotate 90 clockwise to view): upright it is 80x120."""
    exif = Image.Exif()
    exif[0x0112] = 6
    return _jpeg((120, 80), 7, exif=exif)


def _rgba_png() -> bytes:
    """100x80, left half transparent (over black RGB values), right half opaque red."""
    a = np.zeros((80, 100, 4), np.uint8)
    a[:, 50:] = (255, 0, 0, 255)
    return _encode(Image.fromarray(a, "RGBA"), "PNG")


def _palette_png() -> bytes:
    return _encode(Image.fromarray(_noise((90, 90), 3)).convert("P"), "PNG")


def _grey16_png() -> bytes:
    """A 16-bit greyscale ramp 0..65535 (a naive conversion clips it to almost all white)."""
    ramp = np.tile(np.linspace(0, 65535, 96).astype(np.uint16), (72, 1))
    return _encode(Image.fromarray(ramp), "PNG")


def _cmyk_jpeg() -> bytes:
    return _encode(Image.fromarray(_noise((70, 50), 5)).convert("CMYK"), "JPEG")


def _grey_jpeg() -> bytes:
    return _encode(Image.fromarray(_noise((60, 80), 8)).convert("L"), "JPEG", quality=90)


def _png_chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def _huge_png() -> bytes:
    """A 120-byte PNG that declares 40000 x 40000 RGB pixels (4.8 GB decoded): a bomb."""
    header = struct.pack(">IIBBBBB", 40_000, 40_000, 8, 2, 0, 0, 0)
    pixels = zlib.compress(b"\0" * 1024)  # the first rows only; a decoder would ask for more
    return (
        b"\x89PNG\r\n\x1a\n"
        + _png_chunk(b"IHDR", header)
        + _png_chunk(b"IDAT", pixels)
        + _png_chunk(b"IEND", b"")
    )


@dataclass(frozen=True)
class Case:
    """One manifest row: what the bucket holds for it and what fetch must make of it."""

    name: str
    body: bytes | None  # None: no object in the bucket
    size: tuple[int, int] | None = None  # expected original (upright) width, height
    reason: str | None = None  # expected failure reason

    @property
    def hash(self) -> str:
        return hashlib.md5(self.name.encode()).hexdigest()

    @property
    def key(self) -> str:
        h = self.hash
        return f"{h[0:3]}/{h[3:6]}/{h}.jpg"


def _cases() -> list[Case]:
    big = _jpeg((200, 150), 1)
    bomb = _jpeg((300, 300), 9)  # 90,000 pixels > MAX_PIXELS
    return [
        Case("landscape", big, size=(200, 150)),
        Case("missing", None, reason="not_found"),
        Case("portrait", _jpeg((90, 160), 2), size=(90, 160)),
        Case("zero", b"", reason="empty"),
        Case("html", b"<!DOCTYPE html><html><body>Moved</body></html>", reason="not_an_image"),
        Case("rgba", _rgba_png(), size=(100, 80)),
        Case("truncated", big[: len(big) // 2], reason="truncated"),
        Case("tiny", _jpeg((8, 8), 4), reason="too_small"),
        # Cut short too: only a header-only check can call it too_large rather than truncated.
        Case("bomb", bomb[: len(bomb) // 3], reason="too_large"),
        Case("palette", _palette_png(), size=(90, 90)),
        Case("rotated", _rotated_jpeg(), size=(80, 120)),
        Case("grey16", _grey16_png(), size=(96, 72)),
        Case("cmyk", _cmyk_jpeg(), size=(70, 50)),
        Case("small", _jpeg((40, 30), 6), size=(40, 30)),  # below max_side: kept as is
        Case("png_bomb", _huge_png(), reason="too_large"),  # rejected from its header alone
        Case("grey", _grey_jpeg(), size=(60, 80)),
    ]


CASES = _cases()
NEWS = {"n3": _jpeg((150, 100), 11), "n1": _jpeg((64, 64), 12), "n2": _rgba_png()}
NEWS_SIZES = {"n1": (64, 64), "n2": (100, 80), "n3": (150, 100)}
N_FAILED = sum(c.reason is not None for c in CASES)


@dataclass(frozen=True)
class Inputs:
    bucket: Path  # laid out like s3://multimedia-commons/data/images
    manifest: Path
    newsimages: Path


@pytest.fixture(scope="module")
def inputs(tmp_path_factory: pytest.TempPathFactory) -> Inputs:
    root = tmp_path_factory.mktemp("inputs")
    bucket = root / "bucket" / "data" / "images"
    for case in CASES:
        if case.body is not None:
            path = bucket / case.key
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(case.body)
    manifest = root / "manifest.txt"
    # photo_id<TAB>hash, as the yfcc100m_hash file; photo ids are not in hash order.
    manifest.write_text("".join(f"{1000 + i}\t{c.hash}\n" for i, c in enumerate(CASES)))
    news = root / "newsimages"
    news.mkdir()
    for name, body in NEWS.items():
        (news / f"{name}.jpg").write_bytes(body)
    (news / "README.txt").write_text("not an image, not a .jpg: ignored")
    return Inputs(bucket, manifest, news)


@pytest.fixture(autouse=True)
def _single_rank(monkeypatch: pytest.MonkeyPatch) -> None:
    # Tests may run inside a SLURM job or under torchrun: start every test as the only rank.
    for var in ("RANK", "WORLD_SIZE", "SLURM_PROCID", "SLURM_NTASKS"):
        monkeypatch.delenv(var, raising=False)


def _params(source: str | Path, **kw: Any) -> FetchParams:
    values: dict[str, Any] = {
        "source": str(source),
        "shard_size": SHARD_SIZE,
        "processes": 1,
        "workers": 4,
        "timeout_s": 5.0,
        "retries": 1,
        "max_side": MAX_SIDE,
        "min_side": MIN_SIDE,
        "max_pixels": MAX_PIXELS,
        "max_failure_rate": 1.0,
    }
    return FetchParams(**(values | kw))


def _fetch(inputs: Inputs, out: Path, **kw: Any) -> fetch.FetchSummary:
    return fetch.run(
        _params(kw.pop("source", inputs.bucket), **kw),
        manifest=inputs.manifest,
        newsimages=inputs.newsimages,
        out=out,
    )


def _contents(out: Path) -> dict[str, pa.Table]:
    """Every complete shard's table (footer metadata dropped), by file name."""
    return {p.name: pq.read_table(p).replace_schema_metadata() for p in shards.list_shards(out)}


@pytest.fixture(scope="module")
def fetched(
    inputs: Inputs, tmp_path_factory: pytest.TempPathFactory
) -> tuple[Path, fetch.FetchSummary]:
    """One complete single-rank run from the local bucket folder, shared by the value checks."""
    out = tmp_path_factory.mktemp("fetched")
    summary = fetch.run(
        _params(inputs.bucket), manifest=inputs.manifest, newsimages=inputs.newsimages, out=out
    )
    return out, summary


# ------------------------------------------------------------------------------ values


def test_shard_layout(fetched: tuple[Path, fetch.FetchSummary]) -> None:
    out, summary = fetched
    names = [p.name for p in shards.list_shards(out)]
    assert names == [
        "newsimages-00000.parquet",
        "yfcc-00000.parquet",
        "yfcc-00001.parquet",
        "yfcc-00002.parquet",
        "yfcc-00003.parquet",
    ]
    for name in names:
        stem = name.removesuffix(".parquet")
        assert (out / f"{stem}_stats.json").is_file()
        assert (out / f"{stem}_failures.parquet").is_file()
    assert not list(out.glob(".*"))  # no temporaries left
    assert summary.shards_total == summary.shards_written == 5
    assert summary.shards_skipped == summary.shards_other_ranks == 0


def test_keys_order_and_sources(fetched: tuple[Path, fetch.FetchSummary]) -> None:
    out, _ = fetched
    # Shard i of yfcc holds manifest rows i*4 .. i*4+3; failed rows leave no row but keep order.
    for i in range(4):
        chunk = CASES[i * SHARD_SIZE : (i + 1) * SHARD_SIZE]
        table = pq.read_table(out / f"yfcc-{i:05d}.parquet")
        assert table.column("key").to_pylist() == [c.hash for c in chunk if c.reason is None]
        assert set(table.column("source").to_pylist()) <= {"yfcc"}
        photo_ids = {c.hash: 1000 + CASES.index(c) for c in chunk}
        assert table.column("photo_id").to_pylist() == [
            photo_ids[k] for k in table.column("key").to_pylist()
        ]
    news = pq.read_table(out / "newsimages-00000.parquet")
    assert news.column("key").to_pylist() == ["n1", "n2", "n3"]  # sorted by name
    assert news.column("source").to_pylist() == ["newsimages"] * 3
    assert news.column("photo_id").null_count == 3


def test_stored_images(fetched: tuple[Path, fetch.FetchSummary]) -> None:
    out, _ = fetched
    expected = {c.hash: c.size for c in CASES if c.reason is None} | NEWS_SIZES
    seen = set()
    for path in shards.list_shards(out):
        for row in pq.read_table(path).to_pylist():
            original = expected[row["key"]]
            assert (row["width"], row["height"]) == original  # the original, upright size
            assert hashlib.sha256(row["jpeg"]).hexdigest() == row["sha256"]
            with Image.open(io.BytesIO(row["jpeg"])) as im:
                im.load()
                assert (im.format, im.mode) == ("JPEG", "RGB")
                assert max(im.size) == min(MAX_SIDE, max(original))  # shrunk, never enlarged
                w, h = im.size
                assert abs(w / h - original[0] / original[1]) < 0.05  # aspect (and rotation) kept
            seen.add(row["key"])
    assert seen == set(expected)


def test_modes_are_converted_faithfully(fetched: tuple[Path, fetch.FetchSummary]) -> None:
    out, _ = fetched
    images = {}
    for path in shards.list_shards(out):
        for row in pq.read_table(path, columns=["key", "jpeg"]).to_pylist():
            images[row["key"]] = np.asarray(Image.open(io.BytesIO(row["jpeg"])).convert("RGB"))
    by_name = {c.name: images[c.hash] for c in CASES if c.reason is None}
    rgba = by_name["rgba"]  # 64x51: transparent left half over white, opaque red right half
    assert rgba[:, :25].mean() > 245
    assert rgba[:, 40:, 0].mean() > 240  # red stays red
    assert rgba[:, 40:, 1:].mean() < 15
    grey = by_name["grey16"]  # a 0..65535 ramp scaled, not clipped: dark on the left
    assert grey[:, :5].mean() < 20
    assert grey[:, -5:].mean() > 235
    assert 100 < grey.mean() < 155
    assert by_name["rotated"].shape[:2] == (64, 43)  # upright portrait (height, width)
    grey8 = by_name["grey"].astype(int)  # an L JPEG: stored RGB with equal channels
    assert np.abs(grey8[..., 0] - grey8[..., 1]).max() <= 2
    assert np.abs(grey8[..., 1] - grey8[..., 2]).max() <= 2
    cmyk = by_name["cmyk"].astype(int)  # CMYK JPEG: colours kept, not inverted
    source = Image.fromarray(_noise((70, 50), 5)).resize(cmyk.shape[1::-1], Image.BICUBIC)
    assert np.abs(cmyk - np.asarray(source).astype(int)).mean() < 20


def test_failures_have_reasons(fetched: tuple[Path, fetch.FetchSummary]) -> None:
    out, _ = fetched
    failures = shards.read_failures(out).to_pylist()
    assert failures == [
        {"key": c.hash, "source": "yfcc", "reason": c.reason} for c in CASES if c.reason
    ]


def test_stats_add_up(fetched: tuple[Path, fetch.FetchSummary]) -> None:
    out, summary = fetched
    totals = shards.read_stats(out)
    attempted = len(CASES) + len(NEWS)
    assert totals["attempted"] == summary.attempted == attempted
    assert totals["failed"] == summary.failed == N_FAILED
    assert totals["ok"] == summary.ok == attempted - N_FAILED
    assert sum(totals["status"].values()) == attempted
    assert (
        totals["status"]
        == summary.status
        == {
            "empty": 1,
            "not_an_image": 1,
            "not_found": 1,
            "ok": attempted - N_FAILED,
            "too_large": 2,
            "too_small": 1,
            "truncated": 1,
        }
    )
    assert summary.failure_rate == pytest.approx(N_FAILED / attempted)
    for path in shards.list_shards(out):
        stats = json.loads(path.with_name(f"{path.stem}_stats.json").read_text())
        table = pq.read_table(path)
        assert stats["ok"] == table.num_rows
        assert stats["bytes"] == sum(len(b) for b in table.column("jpeg").to_pylist())
        assert set(stats["durations"]) >= {"read_s", "decode_s", "write_s"}
    assert totals["bytes"] == summary.bytes


# ------------------------------------------------------------------------------ resume, ranks


def test_resume_rebuilds_only_the_missing_shard(inputs: Inputs, tmp_path: Path) -> None:
    _fetch(inputs, tmp_path)
    before = _contents(tmp_path)
    (tmp_path / "yfcc-00001.parquet").unlink()  # as if killed before this shard's commit
    stray = tmp_path / ".yfcc-00001.parquet.4242-0badcafe.tmp"
    stray.write_bytes(b"half")

    summary = _fetch(inputs, tmp_path)

    assert (summary.shards_written, summary.shards_skipped) == (1, 4)
    assert summary.attempted == SHARD_SIZE
    assert not stray.exists()
    after = _contents(tmp_path)
    assert after.keys() == before.keys()
    for name, table in before.items():
        assert after[name].equals(table), name
    keys = [k for p in shards.list_shards(tmp_path) for k in shards.read_keys(p)]
    assert len(keys) == len(set(keys)) == len(CASES) + len(NEWS) - N_FAILED


def test_changed_inputs_rebuild_stale_shards(inputs: Inputs, tmp_path: Path) -> None:
    _fetch(inputs, tmp_path, limit=6)  # yfcc-00001 holds rows 4..5 only
    assert len(shards.read_keys(tmp_path / "yfcc-00001.parquet")) == 1  # 4 is bad, 5 is good
    summary = _fetch(inputs, tmp_path)
    # yfcc-00000 and newsimages are reused; yfcc-00001 is rebuilt with 4 rows; 00002-3 are new.
    assert (summary.shards_skipped, summary.shards_written) == (2, 3)
    assert _contents(tmp_path).keys() == {f"yfcc-{i:05d}.parquet" for i in range(4)} | {
        "newsimages-00000.parquet"
    }
    assert shards.read_keys(tmp_path / "yfcc-00001.parquet") == [
        c.hash for c in CASES[4:8] if c.reason is None
    ]


def test_two_ranks_make_the_same_shards_as_one(
    inputs: Inputs,
    fetched: tuple[Path, fetch.FetchSummary],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    single, _ = fetched
    monkeypatch.setenv("WORLD_SIZE", "2")
    summaries = []
    for rank in (0, 1):
        monkeypatch.setenv("RANK", str(rank))
        summaries.append(_fetch(inputs, tmp_path))
    # newsimages-00000, yfcc-00000, yfcc-00002 on rank 0; yfcc-00001, yfcc-00003 on rank 1.
    assert [s.shards_written for s in summaries] == [3, 2]
    assert [s.shards_other_ranks for s in summaries] == [2, 3]
    expected, got = _contents(single), _contents(tmp_path)
    assert got.keys() == expected.keys()
    for name, table in expected.items():
        assert got[name].equals(table), name
    assert shards.read_failures(tmp_path).equals(shards.read_failures(single))


def test_worker_processes_make_the_same_shards_as_one(
    inputs: Inputs, fetched: tuple[Path, fetch.FetchSummary], tmp_path: Path
) -> None:
    """Three spawned processes share out the five shards; files, rows and counts are those of
    the in-process run."""
    single, single_summary = fetched
    summary = _fetch(inputs, tmp_path, processes=3)
    assert (single_summary.processes, summary.processes) == (1, 3)
    drop = ("processes", "seconds", "images_per_s")
    assert {k: v for k, v in asdict(summary).items() if k not in drop} == {
        k: v for k, v in asdict(single_summary).items() if k not in drop
    }
    expected, got = _contents(single), _contents(tmp_path)
    assert got.keys() == expected.keys()
    for name, table in expected.items():
        assert got[name].equals(table), name
    assert shards.read_failures(tmp_path).equals(shards.read_failures(single))
    # At most one process per shard of the rank; none starts when every shard is done.
    again = _fetch(inputs, tmp_path, processes=8)
    assert (again.processes, again.shards_skipped, again.attempted) == (5, 5, 0)


def test_slurm_variables_pick_the_rank(monkeypatch: pytest.MonkeyPatch) -> None:
    assert fetch.rank_world() == (0, 1)
    monkeypatch.setenv("SLURM_PROCID", "3")
    monkeypatch.setenv("SLURM_NTASKS", "4")
    assert fetch.rank_world() == (3, 4)
    monkeypatch.setenv("RANK", "1")  # a launcher's global rank wins over the SLURM task id
    monkeypatch.setenv("WORLD_SIZE", "8")
    assert fetch.rank_world() == (1, 8)


@pytest.mark.parametrize(
    "env",
    [{"RANK": "2", "WORLD_SIZE": "2"}, {"RANK": "0"}, {"SLURM_PROCID": "x", "SLURM_NTASKS": "2"}],
)
def test_bad_rank_variables(env: dict[str, str]) -> None:
    with pytest.raises(InputError):
        fetch.rank_world(env)


# ------------------------------------------------------------------------------ failure rate


def test_too_many_failures_raise_after_writing(inputs: Inputs, tmp_path: Path) -> None:
    with pytest.raises(TooManyFailuresError, match=rf"{N_FAILED} of {len(CASES) + 3} images"):
        _fetch(inputs, tmp_path, max_failure_rate=0.2)
    assert len(shards.list_shards(tmp_path)) == 5
    assert shards.read_failures(tmp_path).num_rows == N_FAILED


def test_missing_inputs_are_input_errors(inputs: Inputs, tmp_path: Path) -> None:
    params = _params(inputs.bucket)
    with pytest.raises(InputError, match="manifest"):
        fetch.run(
            params, manifest=tmp_path / "nope.txt", newsimages=inputs.newsimages, out=tmp_path / "o"
        )
    with pytest.raises(InputError, match="NewsImages"):
        fetch.run(
            params, manifest=inputs.manifest, newsimages=tmp_path / "nope", out=tmp_path / "o"
        )
    assert not (tmp_path / "o").exists()


# ------------------------------------------------------------------------------ S3 (moto)


@pytest.fixture(scope="module")
def s3_bucket(inputs: Inputs) -> Iterator[str]:
    """A moto S3 server on loopback holding the bucket folder, readable anonymously."""
    boto3 = pytest.importorskip("boto3")
    moto_server = pytest.importorskip("moto.server")
    with pytest.MonkeyPatch.context() as mp:
        for var, value in {
            "AWS_ACCESS_KEY_ID": "testing",
            "AWS_SECRET_ACCESS_KEY": "testing",
            "AWS_DEFAULT_REGION": "us-east-1",
            "AWS_CONFIG_FILE": "/nonexistent",
            "AWS_SHARED_CREDENTIALS_FILE": "/nonexistent",
        }.items():
            mp.setenv(var, value)
        server = moto_server.ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
        server.start()
        host, port = server.get_host_and_port()
        endpoint = f"http://{host}:{port}"
        s3 = boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1")
        s3.create_bucket(Bucket="commons")
        for path in inputs.bucket.rglob("*.jpg"):
            key = f"data/images/{path.relative_to(inputs.bucket).as_posix()}"
            s3.put_object(Bucket="commons", Key=key, Body=path.read_bytes())
        policy = {
            "Version": "2012-10-17",
            "Statement": [
                {
                    "Effect": "Allow",
                    "Principal": "*",
                    # s3fs may HEAD before a GET; moto checks an anonymous HEAD as HeadObject.
                    "Action": ["s3:GetObject", "s3:HeadObject"],
                    "Resource": "arn:aws:s3:::commons/*",
                }
            ],
        }
        s3.put_bucket_policy(Bucket="commons", Policy=json.dumps(policy))
        try:
            yield endpoint
        finally:
            server.stop()


@pytest.mark.parametrize("anon", [True, False], ids=["public-http", "signed-s3fs"])
def test_s3_gives_the_same_shards_as_the_folder(
    anon: bool,
    inputs: Inputs,
    fetched: tuple[Path, fetch.FetchSummary],
    s3_bucket: str,
    tmp_path: Path,
) -> None:
    single, _ = fetched
    source = "s3://commons/data/images"
    summary = _fetch(inputs, tmp_path, source=source, endpoint_url=s3_bucket, anon=anon)
    assert summary.status["not_found"] == 1
    # Every planted fault lands in the failures table with its reason, every good image in a shard.
    reasons = {f["key"]: f["reason"] for f in shards.read_failures(tmp_path).to_pylist()}
    stored = {k for p in shards.list_shards(tmp_path) for k in shards.read_keys(p)}
    for case in CASES:
        assert reasons.get(case.hash) == case.reason, case.name
        assert (case.hash in stored) == (case.reason is None), case.name
    assert {c.name: reasons[c.hash] for c in CASES if c.reason} == {
        "missing": "not_found",
        "zero": "empty",
        "html": "not_an_image",
        "truncated": "truncated",
        "tiny": "too_small",
        "bomb": "too_large",
        "png_bomb": "too_large",
    }
    assert {"cmyk", "grey", "rgba", "grey16", "palette"} <= {
        c.name for c in CASES if c.hash in stored
    }
    expected, got = _contents(single), _contents(tmp_path)
    assert got.keys() == expected.keys()
    for name, table in expected.items():
        assert got[name].equals(table), name
    assert shards.read_failures(tmp_path).equals(shards.read_failures(single))


# ------------------------------------------------------------------------------ retries


class _FaultyS3(http.server.BaseHTTPRequestHandler):
    """Answers every request with the server's ``fault`` and counts the requests."""

    def do_GET(self) -> None:
        server: _FaultServer = self.server  # type: ignore[assignment]
        with server.lock:
            server.requests += 1
        if server.fault == "hang_up":
            self.connection.shutdown(socket.SHUT_RDWR)
            return
        if server.fault == "stall":
            server.release.wait(5)
        if server.fault == "trickle":  # a byte every 50 ms: each wait is short, the whole is not
            self.send_response(200)
            self.send_header("Content-Length", "40")
            self.end_headers()
            for _ in range(40):
                if server.release.wait(0.05):
                    return
                try:
                    self.wfile.write(b"x")
                    self.wfile.flush()
                except OSError:  # the client gave up
                    return
            return
        status, code = {
            "slow_down": (503, "SlowDown"),
            "stall": (200, ""),
            "deny": (403, "AccessDenied"),
            "internal": (500, "InternalError"),
        }[server.fault]
        body = f"<Error><Code>{code}</Code><Message>{code}</Message></Error>".encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/xml")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    do_HEAD = do_GET

    def log_message(self, *args: Any) -> None:  # keep pytest's output clean
        pass


class _FaultServer(http.server.ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, fault: str) -> None:
        super().__init__(("127.0.0.1", 0), _FaultyS3)
        self.fault = fault
        self.requests = 0
        self.lock = threading.Lock()
        self.release = threading.Event()


@pytest.fixture
def fault_server() -> Iterator[Any]:
    servers: list[_FaultServer] = []

    def start(fault: str) -> _FaultServer:
        server = _FaultServer(fault)
        threading.Thread(target=server.serve_forever, daemon=True).start()
        servers.append(server)
        return server

    yield start
    for server in servers:
        server.release.set()
        server.shutdown()
        server.server_close()


@pytest.mark.parametrize(
    ("fault", "reason", "attempts"),
    [
        ("slow_down", "throttled", {3}),  # 503 SlowDown: retried (retries=2: 3 attempts)
        ("internal", "error: http 500", {3}),  # other 5xx: retried
        ("stall", "timeout", {3}),  # no answer within timeout_s: retried
        # aiohttp itself re-sends an idempotent request once when a connection drops (RFC 9112).
        ("hang_up", "error: connection", {3, 6}),
        ("deny", "forbidden", {1}),  # 403: never retried
    ],
)
@pytest.mark.parametrize("anon", [True, False], ids=["public-http", "signed-s3fs"])
def test_retries(
    fault_server: Any,
    fault: str,
    reason: str,
    attempts: set[int],
    anon: bool,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Both S3 readers: plain GETs for a public bucket, s3fs for signed requests."""
    for var, value in {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing"}.items():
        monkeypatch.setenv(var, value)
    server = fault_server(fault)
    endpoint = f"http://127.0.0.1:{server.server_address[1]}"
    params = _params(
        "s3://commons/data/images",
        endpoint_url=endpoint,
        anon=anon,
        retries=2,
        timeout_s=0.3,
        backoff_s=0.05,
    )
    with pytest.raises(Rejected) as err:
        _read(params, "abc/def/abcdef.jpg")
    assert err.value.reason == reason
    assert server.requests in attempts


def test_a_response_that_trickles_in_times_out(fault_server: Any) -> None:
    """timeout_s bounds the whole request for the public bucket, not only each wait."""
    server = fault_server("trickle")
    endpoint = f"http://127.0.0.1:{server.server_address[1]}"
    params = _params(
        "s3://commons/data/images", endpoint_url=endpoint, retries=1, timeout_s=0.5, backoff_s=0
    )
    start = time.monotonic()
    with pytest.raises(Rejected, match="timeout"):
        _read(params, "abc/def/abcdef.jpg")
    assert server.requests == 2
    assert time.monotonic() - start < 3.0  # 2 x 0.5 s; without the bound, 2 x the 2 s body


def test_not_found_is_not_retried(inputs: Inputs) -> None:
    params = _params(inputs.bucket, retries=3)
    with pytest.raises(Rejected, match="not_found"):
        _read(params, "nothing/here.jpg")


def test_public_bucket_reads_go_through_the_proxy_in_the_environment(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """HTTP_PROXY applies, as on compute nodes that reach S3 through one: the loopback server
    answers as the proxy for an endpoint that does not resolve (a forward proxy gets the
    absolute URL and serves it)."""
    key = "data/images/abc/def/abcdef.jpg"
    with serving(BucketServer({key: b"via the proxy"})) as proxy:
        for var in ("NO_PROXY", "no_proxy", "HTTPS_PROXY", "https_proxy", "http_proxy"):
            monkeypatch.delenv(var, raising=False)
        monkeypatch.setenv("HTTP_PROXY", proxy.endpoint)
        params = _params("s3://commons/data/images", endpoint_url="http://bucket.invalid:9000")
        assert _read(params, "abc/def/abcdef.jpg") == b"via the proxy"
        assert proxy.log == [key]


def test_no_proxy_names_hosts_read_directly(monkeypatch: pytest.MonkeyPatch) -> None:
    """A host in NO_PROXY is read directly even with HTTP_PROXY set; the proxy sees nothing."""
    key = "data/images/abc/def/abcdef.jpg"
    with serving(BucketServer({key: b"direct"})) as bucket, serving(BucketServer({})) as proxy:
        for var in ("no_proxy", "HTTPS_PROXY", "https_proxy", "http_proxy"):
            monkeypatch.delenv(var, raising=False)
        monkeypatch.setenv("HTTP_PROXY", proxy.endpoint)
        monkeypatch.setenv("NO_PROXY", "127.0.0.1")
        params = _params("s3://commons/data/images", endpoint_url=bucket.endpoint)
        assert _read(params, "abc/def/abcdef.jpg") == b"direct"
        assert proxy.log == []
        assert bucket.log == [key]


def _read(params: FetchParams, path: str) -> bytes:
    """download.read_bytes of ``path`` under the source's root, with its retry policy."""
    reader, root = download.open_source(params)

    async def read() -> bytes:
        async with reader as read:
            return await download.read_bytes(read, f"{root}/{path}", params, random.Random(0))

    return asyncio.run(read())


def _objects(bucket: Path) -> dict[str, bytes]:
    """The bucket folder's objects by S3 key (``data/images/...``)."""
    return {
        f"data/images/{p.relative_to(bucket).as_posix()}": p.read_bytes()
        for p in bucket.rglob("*.jpg")
    }


def test_throttled_and_stalled_requests_are_retried_or_recorded(
    inputs: Inputs, fetched: tuple[Path, fetch.FetchSummary], tmp_path: Path
) -> None:
    """Through a loopback S3 server that throttles (503 SlowDown), fails (500) or stalls past the
    timeout: a request that recovers within the retries is stored, one that never does is a
    failure with the last reason, and nothing else changes."""
    name_of = {c.hash: c.name for c in CASES}
    plan = {  # case: (fault, on how many attempts)
        "landscape": ("slow_down", 2),
        "portrait": ("stall", 1),
        "cmyk": ("internal", 1),
        "small": ("slow_down", 99),
        "palette": ("stall", 99),
    }

    def fault(key: str, attempt: int) -> str | None:
        kind, times = plan.get(name_of.get(Path(key).stem, ""), (None, 0))
        return kind if attempt <= times else None

    server = BucketServer(_objects(inputs.bucket), fault=fault, stall_s=0.6)
    with serving(server):
        summary = _fetch(
            inputs,
            tmp_path,
            source="s3://commons/data/images",
            endpoint_url=server.endpoint,
            retries=2,
            timeout_s=0.3,
            backoff_s=0.02,  # the policy, with shorter waits
        )
    attempts = {name: server.attempts[f"data/images/{_case(name).key}"] for name in plan}
    assert attempts == {"landscape": 3, "portrait": 2, "cmyk": 2, "small": 3, "palette": 3}
    exhausted = {_case("small").hash: "throttled", _case("palette").hash: "timeout"}
    expected_failures = [
        {"key": c.hash, "source": "yfcc", "reason": c.reason or exhausted[c.hash]}
        for c in CASES
        if c.reason or c.hash in exhausted
    ]
    assert shards.read_failures(tmp_path).to_pylist() == expected_failures
    assert summary.status["throttled"] == summary.status["timeout"] == 1
    # The recovered images are stored exactly as without faults; only the exhausted ones are gone.
    single, _ = fetched
    expected, got = _contents(single), _contents(tmp_path)
    assert got.keys() == expected.keys()
    for name, table in expected.items():
        keep = pa.array([k not in exhausted for k in table.column("key").to_pylist()])
        assert got[name].equals(table.filter(keep)), name


def _case(name: str) -> Case:
    return next(c for c in CASES if c.name == name)


# ------------------------------------------------------------------------------ processes

ROOT = Path(__file__).resolve().parents[1]
RANK_VARS = ("RANK", "WORLD_SIZE", "SLURM_PROCID", "SLURM_NTASKS")
PROC_SHARD = 3  # rows per shard in the subprocess runs
PROC_ROWS = 24  # 8 yfcc shards
PROC_BAD = {4: None, 13: b"<html>Not Found</html>"}  # row: body (None: no object)


@dataclass(frozen=True)
class ProcInputs:
    inputs: Inputs
    hashes: list[str]
    server: BucketServer

    def key(self, row: int) -> str:
        h = self.hashes[row]
        return f"data/images/{h[0:3]}/{h[3:6]}/{h}.jpg"

    def params(self, processes: int, workers: int = 2) -> FetchParams:
        return FetchParams(
            source="s3://commons/data/images",
            endpoint_url=self.server.endpoint,
            shard_size=PROC_SHARD,
            processes=processes,
            workers=workers,
            timeout_s=10.0,
            retries=1,
            max_side=MAX_SIDE,
            min_side=MIN_SIDE,
            max_pixels=MAX_PIXELS,
            max_failure_rate=1.0,
        )

    def params_file(self, folder: Path, processes: int, workers: int = 2) -> Path:
        path = folder / "params.yaml"
        values = self.params(processes, workers).model_dump()
        path.write_text(json.dumps({"fetch": values}))  # JSON is YAML
        return path


@pytest.fixture(scope="module")
def proc_inputs(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ProcInputs]:
    """Many small shards on a loopback S3 server whose ``fault`` hook each test may set."""
    root = tmp_path_factory.mktemp("proc")
    hashes = [hashlib.md5(f"proc-{i}".encode()).hexdigest() for i in range(PROC_ROWS)]
    objects = {}
    for i, h in enumerate(hashes):
        body = PROC_BAD.get(i, _jpeg((48 + i, 40), 100 + i))
        if body is not None:
            objects[f"data/images/{h[0:3]}/{h[3:6]}/{h}.jpg"] = body
    manifest = root / "manifest.txt"
    manifest.write_text("".join(f"{500 + i}\t{h}\n" for i, h in enumerate(hashes)))
    news = root / "newsimages"
    news.mkdir()
    for name in ("a", "b"):
        (news / f"{name}.jpg").write_bytes(_jpeg((50, 50), ord(name)))
    with serving(BucketServer(objects)) as server:
        yield ProcInputs(Inputs(root, manifest, news), hashes, server)


@pytest.fixture(scope="module")
def proc_reference(proc_inputs: ProcInputs, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An uninterrupted single-rank run of the subprocess inputs, in its own folder."""
    out = tmp_path_factory.mktemp("reference")
    proc_inputs.server.fault = None
    summary = _run_stage(proc_inputs, out)
    assert summary["shards_written"] == 1 + PROC_ROWS // PROC_SHARD
    assert summary["status"] == {"not_an_image": 1, "not_found": 1, "ok": PROC_ROWS}
    return out


def _start_stage(
    p: ProcInputs, out: Path, processes: int = 1, workers: int = 2, **env: str
) -> subprocess.Popen[str]:
    """``python stages/fetch.py`` as dvc.yaml runs it, with its own params file."""
    environ = {k: v for k, v in os.environ.items() if k not in RANK_VARS}
    environ |= {"AWS_CONFIG_FILE": "/nonexistent", "AWS_SHARED_CREDENTIALS_FILE": "/nonexistent"}
    out.mkdir(parents=True, exist_ok=True)
    cmd = [
        sys.executable,
        str(ROOT / "stages" / "fetch.py"),
        f"--params={p.params_file(out.parent, processes, workers)}",
        f"--manifest={p.inputs.manifest}",
        f"--newsimages={p.inputs.newsimages}",
        f"--out={out}",
    ]
    return subprocess.Popen(
        cmd, cwd=ROOT, env=environ | env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )


def _finish(proc: subprocess.Popen[str]) -> dict[str, Any]:
    """Wait for a stage subprocess; its summary, read from the log's last JSON summary line."""
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, err
    line = next(ln for ln in reversed(err.splitlines()) if "fetch summary: " in ln)
    return json.loads(line.split("fetch summary: ", 1)[1])


def _run_stage(p: ProcInputs, out: Path, processes: int = 1, **env: str) -> dict[str, Any]:
    return _finish(_start_stage(p, out, processes, **env))


def _assert_same_shards(got: Path, expected: Path) -> None:
    """Same shard files, same rows in the same order (keys, bytes, sha256s), same failures."""
    want, have = _contents(expected), _contents(got)
    assert have.keys() == want.keys()
    for name, table in want.items():
        assert have[name].equals(table), name
    assert shards.read_failures(got).equals(shards.read_failures(expected))
    for name in want:
        stem = name.removesuffix(".parquet")
        a, b = (json.loads((d / f"{stem}_stats.json").read_text()) for d in (got, expected))
        assert (a["ok"], a["failed"], a["status"]) == (b["ok"], b["failed"], b["status"])
    assert not list(got.glob(".*")), "temporary files left"


@contextmanager
def _held(p: ProcInputs, rows: range) -> Iterator[tuple[threading.Event, threading.Event]]:
    """Requests for ``rows`` wait on a gate until it is set (at the latest when the block ends);
    yields ``(reached, gate)``: ``reached`` is set when such a request arrives."""
    gated = {p.key(r) for r in rows}
    gate, reached = threading.Event(), threading.Event()

    def hold(key: str, attempt: int) -> None:
        if key in gated and not gate.is_set():
            reached.set()
            gate.wait(30)
        return None

    p.server.fault = hold
    try:
        yield reached, gate
    finally:
        gate.set()
        p.server.fault = None


FROM_SHARD_3 = range(3 * PROC_SHARD, PROC_ROWS)


def _workers(pid: int | None = None) -> list[Any]:
    """The fetch worker processes of ``pid`` (default: this process), spawned; not its
    resource tracker."""
    psutil = pytest.importorskip("psutil")
    children = psutil.Process(pid).children()
    return [c for c in children if "spawn_main" in " ".join(c.cmdline())]


def _wait_until_held(proc: subprocess.Popen[str], reached: threading.Event, out: Path) -> None:
    """Until shards 0-2 are committed and a request of a later one waits at the gate."""
    deadline = time.monotonic() + 30
    while not (reached.is_set() and (out / "yfcc-00002.parquet").exists()):
        assert proc.poll() is None, proc.communicate()[1]
        assert time.monotonic() < deadline, "the run never reached shard 3"
        time.sleep(0.02)


def _committed(out: Path) -> list[str]:
    return [p.name for p in shards.list_shards(out)]


FIRST_THREE = ["newsimages-00000.parquet"] + [f"yfcc-{i:05d}.parquet" for i in range(3)]


def test_sigkill_mid_run_then_rerun_equals_an_uninterrupted_run(
    proc_inputs: ProcInputs, proc_reference: Path, tmp_path: Path
) -> None:
    """A run of 2 worker processes is held inside yfcc shards 3 and 4 after shards 0-2 are
    committed, killed there with SIGKILL (its workers die with it), and run again to the end."""
    psutil = pytest.importorskip("psutil")
    out = tmp_path / "out"
    with _held(proc_inputs, FROM_SHARD_3) as (reached, _):
        proc = _start_stage(proc_inputs, out, processes=2)
        _wait_until_held(proc, reached, out)
        children = psutil.Process(proc.pid).children(recursive=True)
        proc.kill()  # SIGKILL: no handler, no cleanup
        proc.communicate(timeout=30)
        assert proc.returncode == -signal.SIGKILL
        _, alive = psutil.wait_procs(children, timeout=10)
        assert not alive, "processes outlived the killed run"
    assert _committed(out) == FIRST_THREE

    proc_inputs.server.reset_counts()
    summary = _run_stage(proc_inputs, out, processes=2)

    assert (summary["shards_skipped"], summary["shards_written"]) == (4, 5)
    finished_rows = {proc_inputs.key(r) for r in range(3 * PROC_SHARD)}
    assert not finished_rows & set(proc_inputs.server.log), "a committed shard was fetched again"
    _assert_same_shards(out, proc_reference)
    keys = [k for p in shards.list_shards(out) for k in shards.read_keys(p)]
    assert len(keys) == len(set(keys)) == PROC_ROWS - len(PROC_BAD) + 2


def test_a_worker_that_dies_is_replaced_and_its_shards_run_again(
    proc_inputs: ProcInputs, proc_reference: Path, tmp_path: Path
) -> None:
    """A worker killed mid-shard (as a decoder crash or the OOM killer would): the pool starts
    again, the shards that were in flight run again one by one, and the run ends as an
    uninterrupted one would."""
    out = tmp_path / "out"
    with _held(proc_inputs, FROM_SHARD_3) as (reached, gate):
        proc = _start_stage(proc_inputs, out, processes=2)
        _wait_until_held(proc, reached, out)
        workers = _workers(proc.pid)
        assert len(workers) == 2
        workers[0].kill()
        gate.set()
        summary = _finish(proc)
    assert (summary["shards_written"], summary["shards_given_up"]) == (1 + 8, [])
    _assert_same_shards(out, proc_reference)


def _kill_workers_on(keys: set[str]) -> Callable[[str, int], None]:
    """A fault hook that kills this process's fetch workers whenever one of ``keys`` is asked
    for, as an image that crashes its decoder would."""

    def kill(key: str, attempt: int) -> None:
        if key in keys:
            for worker in _workers():
                worker.kill()
        return None

    return kill


def _run_in_process(p: ProcInputs, out: Path, **kw: Any) -> fetch.FetchSummary:
    return fetch.run(
        p.params(**kw), manifest=p.inputs.manifest, newsimages=p.inputs.newsimages, out=out
    )


def test_an_image_that_kills_its_process_is_found_and_recorded_as_crashed(
    proc_inputs: ProcInputs, proc_reference: Path, tmp_path: Path
) -> None:
    """Every process that asks for one image (row 10, in yfcc shard 3) dies, as if its decoder
    crashed on it: the shard dies twice alone, is bisected down to that image, and is committed
    without it, the image recorded as ``crashed``. Everything else is as in an uninterrupted run."""
    poison = proc_inputs.key(10)
    proc_inputs.server.fault = _kill_workers_on({poison})
    try:
        # One request in flight per process: a shard's images are asked for one by one.
        summary = _run_in_process(proc_inputs, tmp_path, processes=2, workers=1)
    finally:
        proc_inputs.server.fault = None
    assert (summary.shards_given_up, summary.status["crashed"]) == ([], 1)
    hash10 = proc_inputs.hashes[10]
    expected, got = _contents(proc_reference), _contents(tmp_path)
    assert got.keys() == expected.keys()
    for name, table in expected.items():
        if name == "yfcc-00003.parquet":
            table = table.filter(pa.array([k != hash10 for k in table["key"].to_pylist()]))
        assert got[name].equals(table), name
    crashed = [f for f in shards.read_failures(tmp_path).to_pylist() if f["reason"] == "crashed"]
    assert crashed == [{"key": hash10, "source": "yfcc", "reason": "crashed"}]


def test_a_shard_no_single_image_explains_is_given_up_after_the_others(
    proc_inputs: ProcInputs, proc_reference: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Processes die on every image of yfcc shard 3, and no search for a poison image is
    allowed: the shard is given up after the others are written, the run raises naming it, and
    a run without the fault completes it."""
    monkeypatch.setattr(fetch, "MAX_POISONED", 0)
    proc_inputs.server.fault = _kill_workers_on({proc_inputs.key(r) for r in range(9, 12)})
    try:
        with pytest.raises(WorkerDiedError, match="kept dying on yfcc-00003, and no single"):
            _run_in_process(proc_inputs, tmp_path, processes=2, workers=1)
    finally:
        proc_inputs.server.fault = None
    expected = sorted(p.name for p in shards.list_shards(proc_reference))
    assert _committed(tmp_path) == [name for name in expected if name != "yfcc-00003.parquet"]

    summary = _run_in_process(proc_inputs, tmp_path, processes=1)

    assert (summary.shards_skipped, summary.shards_written) == (8, 1)
    _assert_same_shards(tmp_path, proc_reference)


def test_two_ranks_at_once_make_the_same_shards_as_one(
    proc_inputs: ProcInputs, proc_reference: Path, tmp_path: Path
) -> None:
    """Two stage processes (RANK 0 and 1 of 2) into one folder at the same time. Each one's first
    yfcc request waits at a barrier for the other's, so the runs provably overlap."""
    first = {proc_inputs.key(0), proc_inputs.key(PROC_SHARD)}  # yfcc shard 0 (rank 0), 1 (rank 1)
    barrier = threading.Barrier(2, timeout=30)

    def meet(key: str, attempt: int) -> str | None:
        if key in first and attempt == 1:
            try:
                barrier.wait()
            except threading.BrokenBarrierError:
                return "internal"
        return None

    server = proc_inputs.server
    server.fault = meet
    out = tmp_path / "out"
    try:
        procs = [_start_stage(proc_inputs, out, RANK=str(r), WORLD_SIZE="2") for r in (0, 1)]
        summaries = [_finish(p) for p in procs]
    finally:
        server.fault = None
    assert not barrier.broken
    assert [(s["rank"], s["world"]) for s in summaries] == [(0, 2), (1, 2)]
    # newsimages-00000 and yfcc 0, 2, 4, 6 on rank 0; yfcc 1, 3, 5, 7 on rank 1.
    assert [s["shards_written"] for s in summaries] == [5, 4]
    assert sum(s["attempted"] for s in summaries) == PROC_ROWS + 2
    _assert_same_shards(out, proc_reference)


# ------------------------------------------------------------------------------ progress


@pytest.mark.parametrize("processes", [1, 2])
def test_progress_bar_counts_this_ranks_images_and_failures(
    processes: int,
    inputs: Inputs,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    buf = io.StringIO()
    real_tqdm = fetch.tqdm
    monkeypatch.setattr(
        fetch, "tqdm", lambda *a, **kw: real_tqdm(*a, **(kw | {"disable": False, "file": buf}))
    )
    with caplog.at_level("INFO", logger="newsimg.fetch"):
        _fetch(inputs, tmp_path, processes=processes)
    total = len(CASES) + len(NEWS)
    done = [r.getMessage() for r in caplog.records if " done: " in r.getMessage()]
    assert len(done) == 1
    assert f"{total} images, {total - N_FAILED} ok, {N_FAILED} failed" in done[0]
    assert "not_found 1" in done[0]
    last = buf.getvalue().split("\r")[-1]
    assert f"{total}/{total}" in last
    assert f"failed={N_FAILED}" in last
    assert "img/s" in last
    buf.seek(0)
    buf.truncate()
    (tmp_path / "yfcc-00002.parquet").unlink()
    _fetch(inputs, tmp_path, processes=processes)  # the finished shards are off the total
    last = buf.getvalue().split("\r")[-1]
    assert f"{SHARD_SIZE}/{SHARD_SIZE}" in last


def test_rank_items_and_manifest_count(tmp_path: Path) -> None:
    for n, size, world in [(0, 3, 1), (10, 3, 1), (10, 3, 2), (10, 3, 5), (9, 3, 4), (7, 10, 3)]:
        per_rank = [fetch.rank_items(n, size, r, world) for r in range(world)]
        assert sum(per_rank) == n
        chunks = [min(size, n - i) for i in range(0, n, size)]
        assert per_rank == [sum(chunks[r::world]) for r in range(world)]
    manifest = tmp_path / "m.txt"
    manifest.write_text("1\taa\n\n2\tbb\n3\tcc")  # a blank line, no final newline
    assert fetch.count_manifest_rows(manifest) == 3
    assert fetch.count_manifest_rows(manifest, limit=2) == 2
