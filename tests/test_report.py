"""The MediaEval export (names, sizes, count, no originals) and the gallery in a real browser."""

from __future__ import annotations

import csv
import io
import re
import shutil
import subprocess
import zipfile
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from PIL import Image

from newsimg import report, submission
from newsimg.params import ReportParams
from newsimg.store import shards

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
IDS = ["76", "238", "5", "6"]  # two of the SMALL set, two not
CATEGORIES = {"76": "Sports", "238": "Arts", "5": "Sports", "6": "Science"}
COLOURS = {"A": (255, 0, 0), "B": (0, 255, 0), "C": (0, 0, 255), "D": (255, 255, 0)}


def _jpeg(colour: tuple[int, int, int], size: tuple[int, int]) -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", size, colour).save(buf, "JPEG", quality=95)
    return buf.getvalue()


@pytest.fixture(scope="module")
def data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Four articles whose originals (A..D, source newsimages) rank first for every approach,
    then a shared list of pool images (y0, y1, ...; y0 wide, y1 tall)."""
    d = tmp_path_factory.mktemp("report")
    originals = dict(zip(IDS, COLOURS, strict=True))
    rows = [
        shards.ImageRow(k, "newsimages", None, _jpeg(c, (300, 200)), 300, 200)
        for k, c in COLOURS.items()
    ]
    for i in range(8):
        size = (600, 200) if i % 2 == 0 else (150, 400)
        grey = 20 * i
        rows.append(shards.ImageRow(f"y{i}", "yfcc", i, _jpeg((grey, grey, grey), size), *size))
    shards.write_shard(d / "shards", "pool", 0, rows, [])
    pq.write_table(
        pa.table(
            {
                "article_id": IDS,
                "image_id": [originals[a] for a in IDS],
                "headline": [f"Headline <{a}> & 'quoted'" for a in IDS],
                "lead": [f"Lead of {a}." for a in IDS],
            }
        ),
        d / "articles.parquet",
    )
    (d / "results").mkdir()
    (d / "per_article").mkdir()
    for approach, offset in (("lam", 0), ("headline", 1)):
        cols: dict[str, list] = {k: [] for k in ("article_id", "rank", "key", "source", "score")}
        for j, a in enumerate(IDS):
            # the original first, then an article's own other original, then pool images
            other = originals[IDS[(j + 1) % len(IDS)]]
            ranked = [(originals[a], "newsimages"), (other, "newsimages")]
            ranked += [(f"y{(j + offset + i) % 8}", "yfcc") for i in range(5)]
            for rank, (key, source) in enumerate(ranked, start=1):
                cols["article_id"].append(a)
                cols["rank"].append(rank)
                cols["key"].append(key)
                cols["source"].append(source)
                cols["score"].append(1 - rank / 10)
        pq.write_table(pa.table(cols), d / "results" / f"{approach}.parquet")
        pq.write_table(
            pa.table(
                {
                    "article_id": IDS,
                    "category": [CATEGORIES[a] if approach == "lam" else None for a in IDS],
                    "original_score": pa.array([0.5] * 4, pa.float32()),
                    "negative_keys": [["y1"]] * 4,
                    "negative_scores": pa.array([[0.1]] * 4, pa.list_(pa.float32())),
                }
            ),
            d / "per_article" / f"{approach}.parquet",
        )
    return d


PARAMS = ReportParams(top=3, group="TEAM1", approaches={"lam": "LAM", "headline": "BASE"})


@pytest.fixture(scope="module")
def built(data: Path) -> Path:
    inputs = {
        "articles": data / "articles.parquet",
        "results": sorted((data / "results").glob("*.parquet")),
        "shard_dir": data / "shards",
    }
    report.gallery(
        PARAMS, **inputs, out=data / "out/gallery.html", per_article=data / "per_article"
    )
    submission.export(PARAMS, **inputs, out=data / "out/submission")
    return data / "out"


def test_export_names_sizes_count(built: Path) -> None:
    with zipfile.ZipFile(built / "submission/TEAM1.zip") as z:
        names = z.namelist()
        blobs = {n: z.read(n) for n in names}
    # LARGE: every article; SMALL: 76 and 238; two approaches
    assert len(names) == 2 * (4 + 2)
    assert len(set(names)) == len(names)
    pattern = re.compile(r"^TEAM1/RET_(LAM|BASE)_(LARGE|SMALL)/(\d+)_TEAM1_\1\.png$")
    per_folder: dict[str, list[str]] = {}
    for n in names:
        m = pattern.match(n)
        assert m, n
        per_folder.setdefault(f"{m[1]}_{m[2]}", []).append(m[3])
        with Image.open(io.BytesIO(blobs[n])) as im:
            assert im.format == "PNG"
            assert im.size == (460, 260)
    for approach in ("LAM", "BASE"):
        assert sorted(per_folder[f"{approach}_LARGE"]) == sorted(IDS)
        assert sorted(per_folder[f"{approach}_SMALL"]) == ["238", "76"]


def test_export_never_uses_an_original(built: Path) -> None:
    """Rank 1 and 2 are originals in every list: the export takes rank 3, a pool image."""
    with open(built / "submission/manifest.csv", newline="") as f:
        rows = list(csv.DictReader(f))  # quoted: a credit line holds commas
    assert len(rows) == 12
    assert all(r["source"] == "yfcc" and r["rank"] == "3" for r in rows)
    assert not {r["key"] for r in rows} & set(COLOURS)
    with zipfile.ZipFile(built / "submission/TEAM1.zip") as z:
        for n in z.namelist():
            pixels = np.asarray(Image.open(io.BytesIO(z.read(n))).convert("RGB"))
            # the originals are saturated colours; every pool image is grey
            assert np.abs(pixels[..., 0].astype(int) - pixels[..., 1]).max() < 8, n


def test_export_is_resized_and_centre_cropped() -> None:
    # scaled by 1/2 to 460 x 500, then rows 120..380 kept: rows 240..760 of the original
    img = Image.new("RGB", (920, 1000), (0, 0, 0))
    img.paste((255, 255, 255), (0, 240, 920, 760))
    buf = io.BytesIO()
    img.save(buf, "JPEG", quality=100)
    png = Image.open(io.BytesIO(submission.to_png(buf.getvalue(), 460, 260)))
    assert png.size == (460, 260)
    grey = np.asarray(png.convert("L"))
    assert grey[3:-3].min() > 200  # only the white middle is left
    wide = Image.new("RGB", (2000, 520), (0, 0, 0))
    wide.paste((255, 255, 255), (540, 0, 1460, 520))  # scaled by 1/2: the middle 460 columns
    buf = io.BytesIO()
    wide.save(buf, "JPEG", quality=100)
    grey = np.asarray(
        Image.open(io.BytesIO(submission.to_png(buf.getvalue(), 460, 260))).convert("L")
    )
    assert grey.shape == (260, 460)
    assert grey[:, 3:-3].min() > 200


def test_validation_rejects_broken_zips(tmp_path: Path) -> None:
    png = io.BytesIO()
    Image.new("RGB", (460, 260)).save(png, "PNG")
    small = io.BytesIO()
    Image.new("RGB", (100, 100)).save(small, "PNG")
    manifest = [{"name": "x", "source": "yfcc", "key": "y0"}]

    def check(entries: dict[str, bytes], subsets: dict, man=manifest) -> None:
        z = tmp_path / "G.zip"
        with zipfile.ZipFile(z, "w") as f:
            for name, blob in entries.items():
                f.writestr(name, blob)
        submission.validate(z, "G", ["A"], subsets, man, {"ORIG"})

    good = {"G/RET_A_LARGE/1_G_A.png": png.getvalue()}
    check(good, {"LARGE": {"1"}})
    with pytest.raises(submission.SubmissionError, match="want exactly one"):
        check(good, {"LARGE": {"1", "2"}})
    with pytest.raises(submission.SubmissionError, match="want PNG 460x260"):
        check({"G/RET_A_LARGE/1_G_A.png": small.getvalue()}, {"LARGE": {"1"}})
    with pytest.raises(submission.SubmissionError, match="is not"):
        check({"G/RET_A_LARGE/1_G_B.png": png.getvalue()}, {"LARGE": {"1"}})
    with pytest.raises(submission.SubmissionError, match="original"):
        check(good, {"LARGE": {"1"}}, [{"name": "x", "source": "newsimages", "key": "ORIG"}])


def test_export_failure_leaves_the_old_folder(data: Path, tmp_path: Path) -> None:
    out = tmp_path / "submission"
    out.mkdir()
    (out / "keep.txt").write_text("old")
    bad = ReportParams(approaches={"nope": "NOPE"})
    with pytest.raises(Exception, match="nope"):
        submission.export(
            bad,
            articles=data / "articles.parquet",
            results=[data / "results/lam.parquet"],
            shard_dir=data / "shards",
            out=out,
        )
    assert (out / "keep.txt").read_text() == "old"


def test_gallery_markup(built: Path) -> None:
    page = (built / "gallery.html").read_text()
    assert page.count("<article ") == 4
    assert "http://" not in page  # nothing fetched from a network
    assert "https://" not in page
    assert page.count('data-approach="lam"') == 4 + 1  # one row per article, one checkbox
    assert 'data-category="Sports"' in page
    assert "Headline &lt;76&gt; &amp; &#x27;quoted&#x27;" in page
    assert "data:image/jpeg;base64," in page


def _dump_dom(page: Path, fragment: str, profile: Path) -> str:
    if not Path(CHROMIUM).exists():
        pytest.skip(f"no chromium at {CHROMIUM}: the gallery cannot be rendered headless")
    cmd = [
        CHROMIUM,
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--no-first-run",
        f"--user-data-dir={profile}",
        "--virtual-time-budget=2000",
        "--dump-dom",
        page.resolve().as_uri() + fragment,
    ]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=120, check=False)
    assert proc.returncode == 0, proc.stderr[-2000:]
    return proc.stdout


def test_gallery_renders_every_article_in_chromium(built: Path, tmp_path: Path) -> None:
    dom = _dump_dom(built / "gallery.html", "", tmp_path / "profile")
    articles = re.findall(r"<article ([^>]*)>", dom)
    assert len(articles) == 4
    assert not any("hidden" in a for a in articles)
    assert re.search(r'<span id="shown">4</span>', dom)  # the script ran


def test_gallery_filters_in_chromium(built: Path, tmp_path: Path) -> None:
    dom = _dump_dom(built / "gallery.html", "#category=Sports&approach=lam", tmp_path / "p")
    articles = re.findall(r"<article ([^>]*)>", dom)
    shown = [a for a in articles if "hidden" not in a]
    assert len(articles) == 4
    assert len(shown) == 2
    assert all('data-category="Sports"' in a for a in shown)
    rows = re.findall(r'<div class="row" data-approach="(\w+)"([^>]*)>', dom)
    assert {name for name, rest in rows if "hidden" not in rest} == {"lam"}
    assert re.search(r'<span id="shown">2</span>', dom)
