"""The whole pipeline on a small generated sample, stage by stage through the stage scripts."""

from __future__ import annotations

import json
import re
from functools import partial
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest
import torch
import yaml

from tests.conftest import load_stage
from tests.sample_pipeline import APPROACHES, build_to_index, retrieve_all, run_stage


def returning_stages(params: Path, art: Path, res: Path, d: Path) -> None:
    """The stages that return photos (retrieve, score, report): results and per-article tables
    under ``res``, metrics and reports under ``d``."""
    stage = partial(run_stage, params)
    retrieve_all(stage, art, res)
    stage(
        "score",
        articles=art / "articles.parquet",
        results=res / "results",
        per_article=res / "per_article",
        index=art / "index",
        subsets=art.parent / "data" / "subsets.csv",
        out=d / "metrics/score.json",
        plots=d / "metrics/plots",
    )
    stage(
        "report",
        articles=art / "articles.parquet",
        results=res / "results",
        per_article=res / "per_article",
        shards=art / "shards",
        metadata=art / "metadata",
        out=d / "reports/gallery.html",
        submission=d / "reports/submission",
    )


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A small sample and params.yaml pointing at it; every stage run once, in DVC's order."""
    d = tmp_path_factory.mktemp("pipeline")
    art = d / "artifacts"
    stage = build_to_index(d)
    model = art / "models" / "base"
    stage(
        "recall",
        index=art / "index",
        articles=art / "articles.parquet",
        model=model,
        metrics=d / "metrics/index.json",
    )
    returning_stages(d / "params.yaml", art, art, d)
    return d


def test_every_pool_image_is_indexed_once(run_dir: Path) -> None:
    keys = pq.read_table(run_dir / "artifacts/index/keys.parquet")
    articles = pq.read_table(run_dir / "artifacts/articles.parquet")
    pool = keys["key"].to_pylist()
    assert len(pool) == len(set(pool))
    originals = {
        k for k, s in zip(pool, keys["source"].to_pylist(), strict=True) if s == "newsimages"
    }
    assert originals == set(articles["image_id"].to_pylist())


def test_embeddings_are_normalised_float16(run_dir: Path) -> None:
    for unit in (run_dir / "artifacts/embeddings").glob("*/*.npy"):
        x = np.load(unit)
        assert x.dtype == np.float16
        np.testing.assert_allclose(np.linalg.norm(x.astype(np.float32), axis=1), 1, atol=2e-3)


def test_results_are_ranked_top_k(run_dir: Path) -> None:
    n_articles = pq.read_metadata(run_dir / "artifacts/articles.parquet").num_rows
    for name in APPROACHES:
        res = pq.read_table(run_dir / f"artifacts/results/{name}.parquet").to_pydict()
        assert len(res["rank"]) == n_articles * 100
        for i in range(0, len(res["rank"]), 100):
            scores = res["score"][i : i + 100]
            assert scores == sorted(scores, reverse=True)
            assert res["rank"][i : i + 100] == list(range(1, 101))


def test_a_known_image_retrieves_itself(run_dir: Path) -> None:
    """An image's own embedding, used as the query, comes back at rank 1."""
    from newsimg import index

    images = index.load(run_dir / "artifacts/index")
    _, rows = images.search(images.vectors.take(np.arange(20)), 1)
    assert rows[:, 0].tolist() == list(range(20))
    assert images.keys.num_rows == images.ntotal


def test_scores_are_consistent(run_dir: Path) -> None:
    metrics = json.loads((run_dir / "metrics/score.json").read_text())
    for name in APPROACHES:
        m = metrics[name]
        recalls = [m[f"R@{k}"] for k in (1, 5, 10, 50, 100)]
        assert recalls == sorted(recalls)  # recall never falls as k grows
        assert 0 <= m["MRR@100"] <= m["R@100"] <= 1
        assert m["R@1"] <= m["MRR@100"]
        assert 1 <= m["median_rank"] <= 101
        assert 0 <= m["align"]["roc_auc"] <= 1
        assert m["align"]["positives"] == 16
        assert m["align"]["negatives"] == 16 * 20
        assert m["LARGE"]["R@10"] == m["R@10"]  # the sample's ids are all MediaEval ids
    assert metrics["pool"]["articles"] == 16
    assert metrics["subsets"] == {"descriptive": 10, "vague_headline": 6}
    pair = metrics["differences"]["headline_lead_vs_headline"]
    assert set(pair) == {"overall", "LARGE", "descriptive", "vague_headline"}
    assert pair["overall"]["R@10"]["n"] == 16
    assert pair["overall"]["R@10"]["lo"] <= pair["overall"]["R@10"]["diff"]
    assert sum(metrics["categories"].values()) == 16  # every article gets a predicted section
    assert set(metrics["lam"]["category"]) == set(metrics["categories"])
    curve = (run_dir / "metrics/plots/recall_at_k.csv").read_text().splitlines()
    assert curve[0] == "k,headline,headline_lead,lam"
    assert len(curve) == 101


def test_base_model_stays_frozen(run_dir: Path) -> None:
    """Training changes nothing of the base model: its folder still holds the seeded tiny CLIP."""
    from transformers import CLIPModel

    from newsimg.clip import make_tiny

    saved = CLIPModel.from_pretrained(run_dir / "artifacts/models/base").state_dict()
    for name, tensor in make_tiny(0).state_dict().items():
        assert torch.equal(saved[name], tensor), name


def test_training_logged_and_saved(run_dir: Path) -> None:
    live = json.loads((run_dir / "dvclive/metrics.json").read_text())
    assert {"test/r@1", "test/r@10", "test/accuracy"} <= set(_flatten(live))
    assert (run_dir / "artifacts/models/lam/lam.safetensors").exists()


def test_gallery_shows_every_article(run_dir: Path) -> None:
    page = (run_dir / "reports/gallery.html").read_text()
    articles = pq.read_table(run_dir / "artifacts/articles.parquet").to_pylist()
    assert page.count("<article ") == len(articles)
    for a in articles:
        assert a["headline"].replace("'", "&#x27;").replace('"', "&quot;") in page
    assert page.count('class="hit"') >= len(articles)  # at least the originals themselves
    assert page.count("original at #") + page.count("original not retrieved") == 3 * len(articles)


def test_submission_is_valid(run_dir: Path) -> None:
    import zipfile

    sub = run_dir / "reports/submission"
    articles = pq.read_table(run_dir / "artifacts/articles.parquet").to_pydict()
    with zipfile.ZipFile(sub / "NEWSIMG.zip") as z:
        names = z.namelist()
    n_small = sum(a in metrics_small() for a in articles["article_id"])
    assert len(names) == 3 * (len(articles["article_id"]) + n_small)
    for approach in ("LAM", "HEADLINELEAD", "HEADLINE"):
        large = [n for n in names if n.startswith(f"NEWSIMG/RET_{approach}_LARGE/")]
        assert sorted(n.rsplit("/", 1)[1].split("_")[0] for n in large) == sorted(
            articles["article_id"]
        )
    manifest = (sub / "manifest.csv").read_text()
    assert not any(image in manifest for image in articles["image_id"])


def metrics_small() -> frozenset[str]:
    from newsimg.metrics import SMALL_IDS

    return SMALL_IDS


def test_resume_does_no_work_twice(run_dir: Path) -> None:
    """Re-running embed on a finished folder leaves every unit untouched."""
    out = run_dir / "artifacts/embeddings/pool"
    before = {p.name: p.stat().st_mtime_ns for p in out.glob("*.npy")}
    argv = [
        "--params",
        str(run_dir / "params.yaml"),
        "--format",
        "shards",
        "--images",
        str(run_dir / "artifacts/shards"),
        "--model",
        str(run_dir / "artifacts/models/base"),
        "--out",
        str(out),
    ]
    assert load_stage("embed").main(argv) == 0
    assert {p.name: p.stat().st_mtime_ns for p in out.glob("*.npy")} == before


def _flatten(d: dict, prefix: str = "") -> dict:
    out = {}
    for k, v in d.items():
        key = f"{prefix}{k}"
        if isinstance(v, dict):
            out.update(_flatten(v, key + "/"))
        else:
            out[key] = v
    return out


def test_search_ranks_like_retrieve(run_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """The Searcher and `newsimg search` on an article's text give retrieve@lam's ranking for
    that article, each hit with its credit line; ``--licences`` keeps only those licences."""
    from newsimg.cli import main
    from newsimg.metadata.lookup import Metadata
    from newsimg.searcher import Searcher

    art = run_dir / "artifacts"
    article = pq.read_table(art / "articles.parquet").to_pylist()[3]
    searcher = Searcher(model=art / "models/base", index=art / "index", lam=art / "models/lam")
    scores, rows = searcher.search(searcher.encode_texts([article["headline_lead"]], lam=True), 10)
    hits = searcher.hits(scores, rows)[0]
    results = pq.read_table(art / "results/lam.parquet").to_pylist()
    expected = [r["key"] for r in results if r["article_id"] == article["article_id"]][:10]
    assert [hit.key for hit in hits] == expected
    assert [hit.rank for hit in hits] == list(range(1, 11))
    capsys.readouterr()
    argv = ["search", article["headline_lead"], "--model", str(art / "models/base"),
            "--index", str(art / "index"), "--lam", str(art / "models/lam"),
            "--metadata", str(art / "metadata"), "--params", str(run_dir / "params.yaml"),
            "-k", "3"]  # fmt: skip
    assert main(argv) == 0
    printed = capsys.readouterr().out.splitlines()
    assert printed[0] == article["headline_lead"]
    ranked = [line for line in printed[1:] if line[:4].strip().isdigit()]
    assert [line.split()[3] for line in ranked] == expected[:3]
    credits = Metadata.open(art / "metadata").credits(expected[:3])
    for line, key in zip(ranked, expected[:3], strict=True):
        assert line.endswith(credits[key].credit) or credits[key].licence == "own"
    assert main([*argv, "--licences", "by"]) == 0
    out = capsys.readouterr().out.splitlines()
    shown = [line.split()[2:4] for line in out if line[:4].strip().isdigit()]
    photos = [key for source, key in shown if source == "yfcc"]
    assert photos
    assert set(Metadata.open(art / "metadata").licences(photos)) == {"by"}


def test_videos_are_never_fetched_and_every_pool_photo_has_its_licence(run_dir: Path) -> None:
    from newsimg.metadata.lookup import Metadata

    art = run_dir / "artifacts"
    keys = pq.read_table(art / "index/keys.parquet").to_pylist()
    photos = [k["key"] for k in keys if k["source"] == "yfcc"]
    videos = {line.split("\t")[1] for line in (art / "videos.txt").read_text().splitlines()}
    assert len(videos) == 2
    assert not videos & set(photos)
    codes = Metadata.open(art / "metadata").licences(photos)
    six = {"by", "by-sa", "by-nd", "by-nc", "by-nc-sa", "by-nc-nd"}
    assert six <= set(codes) <= {*six, "unknown"}  # unknown: the one photo the metadata lacks
    licences = json.loads((run_dir / "metrics/licences.json").read_text())
    assert licences["photos"] == 120
    assert licences["videos_skipped"] == 2


POLICY = ["by", "by-sa"]  # a commercial publisher that crops: no NC, no ND


@pytest.fixture(scope="module")
def policy_dir(run_dir: Path) -> Path:
    """retrieve, score and report again under the licence policy :data:`POLICY`."""
    d = run_dir / "policy"
    d.mkdir()
    doc = yaml.safe_load((run_dir / "params.yaml").read_text())
    doc["retrieve"]["licences"] = POLICY
    (d / "params.yaml").write_text(yaml.safe_dump(doc))
    returning_stages(d / "params.yaml", run_dir / "artifacts", d, d)
    return d


def test_no_forbidden_photo_in_any_output_under_a_policy(run_dir: Path, policy_dir: Path) -> None:
    import csv
    import zipfile

    from newsimg.metadata.lookup import Metadata
    from newsimg.store import shards
    from newsimg.submission import to_png

    art = run_dir / "artifacts"
    keys = pq.read_table(art / "index/keys.parquet").to_pylist()
    photos = [k["key"] for k in keys if k["source"] == "yfcc"]
    codes = dict(zip(photos, Metadata.open(art / "metadata").licences(photos), strict=True))
    allowed = {k for k, c in codes.items() if c in POLICY}
    forbidden = set(codes) - allowed
    assert len(allowed) >= 20
    assert len(forbidden) >= 60
    files = [p for p in policy_dir.rglob("*") if p.is_file() and p.name != "params.yaml"]
    assert {p.suffix for p in files} >= {".parquet", ".html", ".zip", ".csv", ".json"}
    for path in files:
        if path.suffix == ".zip":
            with zipfile.ZipFile(path) as z:
                text = "\n".join(z.namelist())
        else:
            text = path.read_bytes().decode("utf-8", errors="replace")
        hits = [k for k in forbidden if k in text]
        assert not hits, f"{path.relative_to(policy_dir)} holds forbidden {hits[:3]}"
    # every result is allowed, and each article still gets every allowed photo it can (k = 100)
    n_allowed = len(allowed) + len(pq.read_table(art / "articles.parquet"))
    for name in APPROACHES:
        res = pq.read_table(policy_dir / f"results/{name}.parquet").to_pylist()
        assert all(r["source"] == "newsimages" or r["key"] in allowed for r in res)
        assert len(res) == 16 * min(100, n_allowed)
        negatives = pq.read_table(policy_dir / f"per_article/{name}.parquet").to_pylist()
        assert all(set(r["negative_keys"]) <= allowed for r in negatives)
    # the export's PNGs are made from allowed photos: each equals its manifest key's image
    sub = policy_dir / "reports/submission"
    with open(sub / "manifest.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    images = shards.read_images(art / "shards", {r["key"] for r in rows})
    with zipfile.ZipFile(sub / "NEWSIMG.zip") as z:
        for r in rows[:12]:
            assert r["key"] in allowed
            assert z.read(r["name"]) == to_png(images[r["key"]], 460, 260)
    page = (policy_dir / "reports/gallery.html").read_text()
    assert page.count("data-key=") >= 16 * 3
    for shown in re.findall(r'data-key="([0-9a-f]{32})"', page):
        assert shown in allowed


def test_credits_in_the_gallery_and_the_export(run_dir: Path) -> None:
    import csv

    from newsimg.metadata.lookup import Metadata

    art = run_dir / "artifacts"
    page = (run_dir / "reports/gallery.html").read_text()
    with open(run_dir / "reports/submission/manifest.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    credits = Metadata.open(art / "metadata").credits({r["key"] for r in rows})
    for r in rows:
        c = credits[r["key"]]
        assert r["credit"] == c.credit
        assert r["credit"].startswith("Photo: ")
        assert " via Flickr, " in r["credit"]
        assert r["licence_url"] == (c.licence_link or "")
        assert r["page_url"] == (c.page_url or "")
        assert f'data-key="{r["key"]}"' in page
        if c.page_url:
            assert f'<a href="{c.page_url}">' in page
    assert 'class="credit">Photo: <a href="http://www.flickr.com/photos/' in page
    assert (
        '<a href="https://creativecommons.org/licenses/by-nc-sa/2.0/">CC BY-NC-SA 2.0</a>' in page
    )


def test_policy_metrics_keep_the_originals(run_dir: Path, policy_dir: Path) -> None:
    """The originals are always allowed: with fewer photos competing their rank can only rise."""
    base = json.loads((run_dir / "metrics/score.json").read_text())
    policy = json.loads((policy_dir / "metrics/score.json").read_text())
    for name in APPROACHES:
        assert policy[name]["R@10"] >= base[name]["R@10"], name
        assert policy[name]["median_rank"] <= base[name]["median_rank"], name
