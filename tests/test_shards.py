"""The shard format: atomic commit, listing, round-trips, streaming reads, totals."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from newsimg.store import shards
from newsimg.store.shards import Failure, ImageRow


def _rows(source: str, n: int, start: int = 0) -> list[ImageRow]:
    return [
        ImageRow(
            key=f"{source}{i:04d}",
            source=source,
            photo_id=i if source == "yfcc" else None,
            jpeg=f"jpeg bytes {i}".encode() * (i % 3 + 1),
            width=100 + i,
            height=50 + i,
        )
        for i in range(start, start + n)
    ]


def test_write_read_round_trip(tmp_path: Path) -> None:
    rows = _rows("yfcc", 5)
    failures = [Failure("bad1", "yfcc", "not_found"), Failure("bad2", "yfcc", "error: http 500")]
    stats = shards.write_shard(
        tmp_path, "yfcc", 3, rows, failures, durations={"read_s": 1.5}, metadata={"items": "7"}
    )

    path = tmp_path / "yfcc-00003.parquet"
    assert shards.list_shards(tmp_path) == [path]
    assert shards.read_keys(path) == [r.key for r in rows]
    table = pq.read_table(path)
    assert table.schema.remove_metadata() == shards.SCHEMA
    assert table.column("photo_id").to_pylist() == [0, 1, 2, 3, 4]
    assert table.column("width").to_pylist() == [r.width for r in rows]
    assert table.column("height").to_pylist() == [r.height for r in rows]
    for jpeg, digest in zip(
        table.column("jpeg").to_pylist(), table.column("sha256").to_pylist(), strict=True
    ):
        assert hashlib.sha256(jpeg).hexdigest() == digest
    assert shards.read_metadata(path) == {"items": "7"}

    assert shards.read_failures(tmp_path).to_pylist() == [
        {"key": "bad1", "source": "yfcc", "reason": "not_found"},
        {"key": "bad2", "source": "yfcc", "reason": "error: http 500"},
    ]
    on_disk = json.loads((tmp_path / "yfcc-00003_stats.json").read_text())
    assert on_disk == stats
    assert (stats["attempted"], stats["ok"], stats["failed"]) == (7, 5, 2)
    assert stats["status"] == {"error": 1, "not_found": 1, "ok": 5}
    assert stats["bytes"] == sum(len(r.jpeg) for r in rows)
    assert stats["durations"]["read_s"] == 1.5
    assert stats["durations"]["write_s"] >= 0


def test_newsimages_photo_id_is_null(tmp_path: Path) -> None:
    shards.write_shard(tmp_path, "newsimages", 0, _rows("newsimages", 2), [])
    table = pq.read_table(tmp_path / "newsimages-00000.parquet")
    assert table.column("photo_id").null_count == 2
    assert table.column("source").to_pylist() == ["newsimages", "newsimages"]


def test_leftover_temp_files_are_not_shards(tmp_path: Path) -> None:
    shards.write_shard(tmp_path, "yfcc", 0, _rows("yfcc", 2), [])
    # What a writer killed mid-shard leaves: temporaries, side files without the image parquet.
    (tmp_path / ".yfcc-00001.parquet.123-abcdef01.tmp").write_bytes(b"half a parquet")
    (tmp_path / ".yfcc-00001_stats.json.123-abcdef01.tmp").write_bytes(b"{")
    shards.write_shard(tmp_path, "yfcc", 2, _rows("yfcc", 1), [Failure("x", "yfcc", "empty")])
    (tmp_path / "yfcc-00002.parquet").unlink()  # killed between the side files and the parquet

    assert shards.list_shards(tmp_path) == [tmp_path / "yfcc-00000.parquet"]
    assert not shards.is_complete(tmp_path, "yfcc", 1)
    assert not shards.is_complete(tmp_path, "yfcc", 2)
    assert shards.read_failures(tmp_path).num_rows == 0  # failures of unfinished shards ignored
    assert shards.read_stats(tmp_path)["shards"] == 1

    # Cleaning one shard's temporaries leaves the others' (another rank may be writing them).
    assert shards.remove_temp_files(tmp_path, "yfcc", 0) == 0
    assert shards.remove_temp_files(tmp_path, "yfcc", 1) == 2
    assert not list(tmp_path.glob(".*.tmp"))


def test_remove_temp_files_matches_whole_shard_names(tmp_path: Path) -> None:
    (tmp_path / ".yfcc-100000.parquet.1-00000000.tmp").write_bytes(b"")
    assert shards.remove_temp_files(tmp_path, "yfcc", 10000) == 0
    assert shards.remove_temp_files(tmp_path, "yfcc", 100000) == 1


def test_list_shards_sorted_by_source_and_index(tmp_path: Path) -> None:
    for source, index in [("yfcc", 10), ("yfcc", 2), ("newsimages", 0), ("yfcc", 0)]:
        shards.write_shard(tmp_path, source, index, _rows(source, 1), [])
    names = [p.name for p in shards.list_shards(tmp_path)]
    assert names == [
        "newsimages-00000.parquet",
        "yfcc-00000.parquet",
        "yfcc-00002.parquet",
        "yfcc-00010.parquet",
    ]
    assert [p.name for p in shards.list_shards(tmp_path, "newsimages")] == names[:1]
    assert shards.list_shards(tmp_path / "missing") == []


def test_rewrite_replaces_the_whole_shard(tmp_path: Path) -> None:
    shards.write_shard(tmp_path, "yfcc", 0, _rows("yfcc", 3), [Failure("a", "yfcc", "empty")])
    shards.write_shard(tmp_path, "yfcc", 0, _rows("yfcc", 2, start=10), [])
    path = tmp_path / "yfcc-00000.parquet"
    assert shards.read_keys(path) == ["yfcc0010", "yfcc0011"]
    assert shards.read_failures(tmp_path).num_rows == 0
    assert list(tmp_path.glob(".*")) == []


def test_iter_batches_streams_in_order(tmp_path: Path) -> None:
    rows = _rows("yfcc", 2_500)
    shards.write_shard(tmp_path, "yfcc", 0, rows, [])
    path = tmp_path / "yfcc-00000.parquet"
    assert pq.ParquetFile(path).metadata.num_row_groups == 3  # row groups of 1,000

    batches = list(shards.iter_batches(path, batch_size=400))
    assert all(b.num_rows <= 400 for b in batches)
    keys = [k for b in batches for k in b.column("key").to_pylist()]
    assert keys == [r.key for r in rows]

    only = next(shards.iter_batches(path, batch_size=10, columns=["key", "width"]))
    assert only.schema.names == ["key", "width"]
    assert only.column("width").to_pylist() == list(range(100, 110))


def test_read_stats_totals(tmp_path: Path) -> None:
    shards.write_shard(tmp_path, "yfcc", 0, _rows("yfcc", 3), [Failure("a", "yfcc", "empty")])
    shards.write_shard(tmp_path, "yfcc", 1, _rows("yfcc", 2), [Failure("b", "yfcc", "timeout")] * 2)
    shards.write_shard(tmp_path, "newsimages", 0, _rows("newsimages", 4), [])
    totals = shards.read_stats(tmp_path)
    assert totals["shards"] == 3
    assert (totals["attempted"], totals["ok"], totals["failed"]) == (12, 9, 3)
    assert totals["status"] == {"empty": 1, "ok": 9, "timeout": 2}
    assert totals["by_source"]["yfcc"]["attempted"] == 8
    assert totals["by_source"]["newsimages"]["status"] == {"ok": 4}
    assert totals["durations"]["write_s"] > 0


@pytest.mark.parametrize("reason", ["not_found", "error: http 500", "error: ValueError: x"])
def test_status_of_groups_errors(reason: str) -> None:
    assert shards.status_of(reason) == reason.split(":")[0]
