"""The metadata stage on the generated sample's real-format metadata: both forms, fetch alignment.

Everything is real: the sample's bzip2 TSV parts, a SQLite database built from them the way the
distributed one is laid out, fetch run on the sample's bucket, and a 1M-line TSV streamed in a
subprocess whose peak RSS is read from the kernel.
"""

from __future__ import annotations

import bz2
import json
import subprocess
import sys
import textwrap
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from newsimg import fetch, sample
from newsimg.errors import InputError, TooManyFailuresError
from newsimg.metadata import build, licences, readers
from newsimg.metadata.lookup import Metadata
from newsimg.params import FetchParams, MetadataParams
from newsimg.sources import read_yfcc_manifest
from newsimg.store import shards
from tests.conftest import ROOT, load_stage

SHARD_SIZE = 25
LAYOUT = build.Layout(SHARD_SIZE, None, True)
PARAMS = MetadataParams(bucket_rows=40)  # several spill buckets on the sample


@pytest.fixture(scope="module")
def data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("sample")
    sample.generate(out, seed=2, n_articles=4, pool_size=120, n24news_per_section=(1, 1, 1))
    return out


@pytest.fixture(scope="module")
def db(data: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("sqlite") / "yfcc100m_dataset.sql"
    assert (
        readers.tsv_to_sqlite(data / "yfcc" / "metadata", path) == 121
    )  # 119 of the 120 photos, 2 videos
    return path


def _run(data: Path, metadata: Path | None, out: Path, **kw: object) -> dict:
    layout = build.Layout(**{"shard_size": SHARD_SIZE, "limit": None, "skip_videos": True, **kw})
    return build.run(PARAMS, layout, data / "yfcc/manifest.txt", metadata, out, out / "videos.txt")


def _tables(out: Path) -> list:
    return [pq.read_table(p).replace_schema_metadata(None) for p in build.list_shards(out)]


def _tsv_records(data: Path) -> dict[int, readers.PhotoMeta]:
    return {m.photo_id: m for _, m in readers.iter_tsv(data / "yfcc" / "metadata")}


# ------------------------------------------------------------------------- licences, decoding


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("http://creativecommons.org/licenses/by-nc-sa/2.0/", ("by-nc-sa", "2.0")),
        ("https://creativecommons.org/licenses/by/2.0", ("by", "2.0")),
        ("http://creativecommons.org/licenses/by-nd/3.0/deed.de", ("by-nd", "3.0")),
        ("http://creativecommons.org/licenses/BY-NC/2.0/", ("by-nc", "2.0")),
        ("http://creativecommons.org/licenses/by-nc-nd/2.0/", ("by-nc-nd", "2.0")),
        ("http://creativecommons.org/licenses/by-sa/2.0/", ("by-sa", "2.0")),
        ("http://creativecommons.org/publicdomain/zero/1.0/", ("unknown", None)),
        ("http://example.org/licenses/by/2.0/", ("unknown", None)),
        ("", ("unknown", None)),
        (None, ("unknown", None)),
    ],
)
def test_licence_url_gives_code_and_version(url: str | None, expected: tuple) -> None:
    assert licences.parse_licence_url(url) == expected


def test_credit_line_names_author_site_and_licence() -> None:
    assert (
        licences.credit_line("José M", "by-sa", "2.0") == "Photo: José M via Flickr, CC BY-SA 2.0"
    )
    assert licences.credit_line(None, "unknown", None) == (
        "Photo: unknown author via Flickr, licence unknown"
    )
    assert licences.licence_url("by-nc", "2.0") == "https://creativecommons.org/licenses/by-nc/2.0/"
    assert licences.licence_url("unknown", None) is None


def test_tsv_line_is_url_decoded_and_tags_split_before_decoding() -> None:
    fields = [""] * 25
    fields[:6] = [
        "7",
        "12345",
        "AB" * 16,
        "1@N00",
        "Jos%C3%A9+M%C3%BCller",
        "2010-07-24+16%3A41%3A53.0",
    ]
    fields[8] = "a+b%2Bc"  # title: "a b+c"
    fields[9] = "50%25+off%2C+really"
    fields[10] = "new+york,rock%2C+roll,%E5%8C%97%E4%BA%AC"
    fields[12], fields[13] = "-73.98", "40.75"
    fields[15] = "http://www.flickr.com/photos/1@N00/12345/"
    fields[18] = "http://creativecommons.org/licenses/by-nd/2.0/"
    fields[24] = "1"
    h, meta = readers.parse_tsv_line("f", 1, "\t".join(fields))
    assert h == "ab" * 16
    assert (meta.photo_id, meta.nickname, meta.title) == (12345, "José Müller", "a b+c")
    assert meta.description == "50% off, really"
    assert meta.tags == ("new york", "rock, roll", "北京")
    assert meta.date_taken == "2010-07-24 16:41:53.0"
    assert (meta.latitude, meta.longitude) == (40.75, -73.98)
    assert (meta.licence, meta.licence_version, meta.is_video) == ("by-nd", "2.0", True)


def test_malformed_line_is_an_error_naming_file_and_line(tmp_path: Path) -> None:
    bad = tmp_path / "yfcc100m_dataset"
    bad.write_text("1\t2\t" + "x\t" * 20 + "\n")
    with pytest.raises(
        InputError, match=r"yfcc100m_dataset:1: 23 tab-separated fields, expected 25"
    ):
        list(readers.iter_tsv(bad))


def test_plain_bz2_and_parts_folder_read_as_one_identical_stream(
    data: Path, tmp_path: Path
) -> None:
    parts = sorted((data / "yfcc" / "metadata").iterdir())
    assert [p.name for p in parts] == ["yfcc100m_dataset-0.bz2", "yfcc100m_dataset-1.bz2"]
    plain = tmp_path / "yfcc100m_dataset"
    plain.write_bytes(b"".join(bz2.decompress(p.read_bytes()) for p in parts))
    assert readers.detect_form(plain) == "tsv"
    assert readers.detect_form(data / "yfcc" / "metadata") == "tsv-dir"
    whole = list(readers.iter_tsv(plain))
    assert list(readers.iter_tsv(data / "yfcc" / "metadata")) == whole
    assert [n for n, _, _ in readers.iter_tsv_lines(data / "yfcc" / "metadata")][-1] == parts[
        1
    ].name
    assert len(whole) == 121


def test_bz2_reads_the_same_without_a_decompressor_and_corruption_is_named(
    data: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    folder = data / "yfcc" / "metadata"
    with_tool = list(readers.iter_tsv(folder))
    monkeypatch.setattr(readers, "BZ2_TOOLS", ())  # Python's own bz2
    assert list(readers.iter_tsv(folder)) == with_tool
    monkeypatch.undo()
    broken = tmp_path / "yfcc100m_dataset-0.bz2"
    data_bytes = (folder / "yfcc100m_dataset-0.bz2").read_bytes()
    broken.write_bytes(data_bytes[: len(data_bytes) // 2])
    with pytest.raises(InputError, match=r"yfcc100m_dataset-0\.bz2: .*could not decompress"):
        list(readers.iter_tsv(broken))


# ---------------------------------------------------------------------- the stage, both forms


def test_both_forms_give_identical_tables(data: Path, db: Path, tmp_path: Path) -> None:
    a = _run(data, data / "yfcc" / "metadata", tmp_path / "tsv")
    b = _run(data, db, tmp_path / "sqlite")
    assert readers.detect_form(db) == "sqlite"
    assert (a["form"], b["form"]) == ("tsv-dir", "sqlite")
    ta, tb = _tables(tmp_path / "tsv"), _tables(tmp_path / "sqlite")
    assert len(ta) == 5  # 120 photos in shards of 25
    assert all(x.equals(y) for x, y in zip(ta, tb, strict=True))
    for key in ("rows", "photos", "videos", "found", "missing", "licences"):
        assert a[key] == b[key], key
    assert (tmp_path / "tsv/videos.txt").read_text() == (tmp_path / "sqlite/videos.txt").read_text()


def test_rows_match_the_metadata_and_missing_photos_are_unknown(data: Path, tmp_path: Path) -> None:
    summary = _run(data, data / "yfcc" / "metadata", tmp_path)
    records = _tsv_records(data)
    manifest = list(read_yfcc_manifest(data / "yfcc/manifest.txt"))
    videos = {
        r.photo_id for r in manifest if r.photo_id in records and records[r.photo_id].is_video
    }
    photos = [r for r in manifest if r.photo_id not in videos]
    rows = Metadata.open(tmp_path).table().to_pylist()
    assert [r["key"] for r in rows] == [p.hash for p in photos]  # fetch's items, in order
    missing = [r for r in rows if not r["found"]]
    assert summary == {**summary, "rows": 122, "photos": 120, "videos": 2, "missing": 1}
    assert len(missing) == 1
    for r in missing:
        assert r["photo_id"] not in records
        assert (r["licence"], r["nickname"], r["title"]) == ("unknown", None, None)
        assert r["credit"] == "Photo: unknown author via Flickr, licence unknown"
    for r in rows:
        if r["found"]:
            m = records[r["photo_id"]]
            assert (r["licence"], r["licence_version"]) == (m.licence, "2.0")
            assert r["credit"] == f"Photo: {m.nickname} via Flickr, CC {m.licence.upper()} 2.0"
            assert (r["title"], r["description"], tuple(r["tags"])) == (
                m.title,
                m.description,
                m.tags,
            )
            assert (r["latitude"], r["longitude"], r["page_url"]) == (
                m.latitude,
                m.longitude,
                m.page_url,
            )
    assert set(summary["licences"]) == {*licences.CC_CODES, "unknown"}
    assert build.read_videos(tmp_path / "videos.txt") == videos
    assert len(videos) == 2


def test_no_metadata_gives_unknown_licences_and_no_videos(data: Path, tmp_path: Path) -> None:
    summary = _run(data, tmp_path / "nope", tmp_path / "out")
    assert (summary["form"], summary["photos"], summary["videos"]) == ("none", 122, 0)
    assert summary["licences"] == {"unknown": 122}
    assert (tmp_path / "out/videos.txt").read_text() == ""


def test_resume_rebuilds_only_what_changed(data: Path, db: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    first = _run(data, db, out, limit=60)
    assert first["shards"] == 3  # 60 rows: 59 photos, a video
    whole = tmp_path / "whole"
    _run(data, db, whole)
    # a longer limit: the two full shards are kept, the partial third one is rebuilt
    again = _run(data, db, out)
    assert (again["shards_skipped"], again["shards_written"]) == (2, 3)
    assert all(x.equals(y) for x, y in zip(_tables(out), _tables(whole), strict=True))
    # a killed run: the last shard lost, a footer from another build
    build.list_shards(out)[-1].unlink()
    again = _run(data, db, out)
    assert (again["shards_skipped"], again["shards_written"]) == (4, 1)
    tsv = _run(data, data / "yfcc" / "metadata", out)  # another source: everything rebuilt
    assert (tsv["shards_skipped"], tsv["shards_written"]) == (0, 5)
    assert all(x.equals(y) for x, y in zip(_tables(out), _tables(whole), strict=True))


def test_too_many_missing_photos_fail_after_writing(data: Path, db: Path, tmp_path: Path) -> None:
    strict = MetadataParams(max_missing_rate=0.005)  # the sample lacks 1 of 120
    manifest = data / "yfcc/manifest.txt"
    with pytest.raises(TooManyFailuresError, match=r"1 of 120 photos \(0.8%\)"):
        build.run(strict, LAYOUT, manifest, db, tmp_path, tmp_path / "v.txt")
    assert len(build.list_shards(tmp_path)) == 5


def test_sqlite_without_a_column_is_an_input_error(tmp_path: Path) -> None:
    import sqlite3

    path = tmp_path / "db.sql"
    with sqlite3.connect(path) as conn:
        conn.execute("CREATE TABLE yfcc100m_dataset (photoid INTEGER PRIMARY KEY, title TEXT)")
    with pytest.raises(InputError, match="lacks uid, unickname"):
        readers.SqliteMetadata(path)


# ------------------------------------------------------------------------ alignment with fetch


def _fetch(data: Path, out: Path, videos: Path | None) -> dict:
    params = FetchParams(
        source=str(data / "yfcc/bucket"),
        shard_size=SHARD_SIZE,
        processes=1,
        workers=4,
        max_failure_rate=1.0,
        videos=str(videos) if videos else None,
    )
    return fetch.run(params, data / "yfcc/manifest.txt", data / "newsimages", out)


def test_fetch_skips_the_videos_and_its_shards_match_the_metadata(
    data: Path, db: Path, tmp_path: Path
) -> None:
    meta = tmp_path / "meta"
    _run(data, db, meta)
    summary = _fetch(data, tmp_path / "shards", meta / "videos.txt")
    assert summary["videos_skipped"] == 2
    lines = (meta / "videos.txt").read_text().splitlines()
    videos = {line.split("\t")[1] for line in lines}
    assert len(videos) == 2
    fetched = shards.list_shards(tmp_path / "shards", "yfcc")
    assert len(fetched) == len(build.list_shards(meta)) == 5
    for shard, side in zip(fetched, build.list_shards(meta), strict=True):
        # the same items, so the stored images are a subsequence of the metadata rows
        assert (
            shards.read_metadata(shard)["items_sha256"] == build.read_footer(side)["items_sha256"]
        )
        keys = pq.read_table(side, columns=["key"])["key"].to_pylist()
        stored = shards.read_keys(shard)
        it = iter(keys)
        assert all(k in it for k in stored)
        failed = pq.read_table(shards.failures_path(shard))["key"].to_pylist()
        assert not (set(stored) | set(failed)) & videos


def test_without_metadata_fetch_is_unchanged(data: Path, tmp_path: Path) -> None:
    meta = tmp_path / "meta"
    _run(data, None, meta)
    with_list = _fetch(data, tmp_path / "a", meta / "videos.txt")
    without = _fetch(data, tmp_path / "b", None)
    assert with_list["videos_skipped"] == without["videos_skipped"] == 0
    for a, b in zip(
        shards.list_shards(tmp_path / "a"), shards.list_shards(tmp_path / "b"), strict=True
    ):
        assert shards.read_metadata(a) == shards.read_metadata(b)


def test_stage_script_writes_the_licence_metrics(data: Path, tmp_path: Path) -> None:
    doc = {"fetch": {"source": "x", "shard_size": SHARD_SIZE}, "metadata": {}}
    (tmp_path / "params.yaml").write_text(json.dumps(doc))
    argv = [
        "--params", str(tmp_path / "params.yaml"),
        "--manifest", str(data / "yfcc/manifest.txt"),
        "--metadata", str(data / "yfcc/metadata"),
        "--out", str(tmp_path / "meta"),
        "--videos", str(tmp_path / "videos.txt"),
        "--metrics", str(tmp_path / "licences.json"),
    ]  # fmt: skip
    assert load_stage("metadata").main(argv) == 0
    metrics = json.loads((tmp_path / "licences.json").read_text())
    assert metrics["photos"] == 120
    assert metrics["videos_skipped"] == 2
    assert sum(metrics["count"].values()) == 120
    assert metrics["share"]["unknown"] == pytest.approx(1 / 120)
    doc["metadata"] = {"batch_size": 0}
    (tmp_path / "params.yaml").write_text(json.dumps(doc))
    assert load_stage("metadata").main(argv) == 2


def test_lookup_gives_credits_and_codes(data: Path, db: Path, tmp_path: Path) -> None:
    _run(data, db, tmp_path)
    meta = Metadata.open(tmp_path)
    rows = meta.table().to_pylist()
    found = next(r for r in rows if r["found"])
    missing = next(r for r in rows if not r["found"])
    keys = [found["key"], missing["key"], "own-image"]
    assert meta.licences(keys, own=["own-image"]) == [found["licence"], "unknown", "own"]
    credits = meta.credits(keys, own=["own-image"])
    assert credits[found["key"]].credit == found["credit"]
    assert credits[found["key"]].page_url == found["page_url"]
    assert credits[found["key"]].licence_link == (
        f"https://creativecommons.org/licenses/{found['licence']}/2.0/"
    )
    assert credits[missing["key"]].licence == "unknown"
    assert credits["own-image"].credit == "The article's own image"
    assert Metadata.empty().licences(keys) == ["unknown"] * 3


# ------------------------------------------------------------------------------ flat memory

_PEAK = textwrap.dedent(
    """
    import resource, sys
    from pathlib import Path
    from newsimg.metadata import build
    from newsimg.params import MetadataParams
    d = Path(sys.argv[1])
    build.run(MetadataParams(max_missing_rate=1.0), build.Layout(500), d / "manifest.txt",
              d / sys.argv[2], d / ("out-" + sys.argv[2]), d / ("v-" + sys.argv[2]))
    print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)  # KiB on Linux
    """
)


def _synthetic_tsv(path: Path, n: int) -> None:
    """``n`` rows of 25 columns; photo ids 1..n, every 500th in the manifest."""
    tail = "\t".join(["", "2010-01-01+00%3A00%3A00.0", "1", "", "a+title", "a+description",
                      "tag,other+tag", "", "", "", "", "http://www.flickr.com/photos/x/",
                      "http://farm1.staticflickr.com/1/1_a.jpg", "Attribution+License",
                      "http://creativecommons.org/licenses/by/2.0/", "1", "1", "a", "b", "jpg",
                      "0"])  # fmt: skip
    with open(path, "w") as f:
        for start in range(1, n + 1, 100_000):
            f.write(
                "".join(
                    f"{i}\t{i}\t{i:032x}\tu@N00\tnick{tail}\n"
                    for i in range(start, min(n + 1, start + 100_000))
                )
            )


def test_memory_stays_flat_in_the_metadata_size(tmp_path: Path) -> None:
    n = 1_000_000
    manifest = "".join(f"{i}\t{i:032x}\n" for i in range(500, n + 1, 500))
    (tmp_path / "manifest.txt").write_text(manifest)  # 2000 photos
    _synthetic_tsv(tmp_path / "small", 20_000)
    _synthetic_tsv(tmp_path / "large", n)
    peaks = {}
    for name in ("small", "large"):
        proc = subprocess.run(
            [sys.executable, "-c", _PEAK, str(tmp_path), name],
            capture_output=True,
            text=True,
            cwd=ROOT,
            check=True,
            timeout=300,
        )
        peaks[name] = int(proc.stdout.split()[-1])
    rows = pq.read_table(build.list_shards(tmp_path / "out-large")[0]).to_pylist()
    assert [r["photo_id"] for r in rows[:2]] == [500, 1000]
    assert rows[0]["found"]
    assert json.loads((tmp_path / "out-large/stats.json").read_text())["found"] == 2000
    # 50x the rows (about 230 MB of TSV) may cost at most 16 MiB more at the peak
    assert peaks["large"] - peaks["small"] < 16 * 1024, peaks
