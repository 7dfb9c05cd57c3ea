"""Each metric against hand-computed cases."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from newsimg import metrics
from newsimg.errors import InputError
from newsimg.params import ScoreParams
from newsimg.retrieve import negative_rows

# ranks of four articles' originals: 1, 3, 7, and one not within the top 100 (0)
RANKS = np.array([1, 3, 7, 0])


def test_recall_hand_computed_and_monotone() -> None:
    assert metrics.recall_at(RANKS, 1) == pytest.approx(1 / 4)
    assert metrics.recall_at(RANKS, 5) == pytest.approx(2 / 4)
    assert metrics.recall_at(RANKS, 10) == pytest.approx(3 / 4)
    assert metrics.recall_at(RANKS, 100) == pytest.approx(3 / 4)
    rng = np.random.default_rng(0)
    ranks = rng.integers(0, 101, size=200)
    curve = [metrics.recall_at(ranks, k) for k in range(1, 101)]
    assert curve == sorted(curve)  # never falls as k grows


def test_mrr_counts_misses_and_ranks_beyond_k_as_zero() -> None:
    assert metrics.mrr_at(RANKS, 100) == pytest.approx((1 + 1 / 3 + 1 / 7 + 0) / 4)
    # with a cut at 5, the original at 7 counts 0 as well
    assert metrics.mrr_at(RANKS, 5) == pytest.approx((1 + 1 / 3) / 4)
    assert metrics.mrr_at(np.array([0, 0]), 100) == 0.0
    assert metrics.mrr_at(np.array([101, 150]), 100) == 0.0  # outside the top 100


def test_median_rank_counts_misses_as_beyond_k() -> None:
    assert metrics.median_rank(RANKS, 100) == pytest.approx(5.0)  # 1, 3, 7, 101
    assert metrics.median_rank(np.array([0, 0, 2]), 100) == 101.0
    assert metrics.median_rank(np.array([4]), 100) == 4.0


def test_score_keys() -> None:
    m = metrics.score(RANKS, ScoreParams())
    assert set(m) == {"R@1", "R@5", "R@10", "R@50", "R@100", "MRR@100", "median_rank"}


def _pairwise_auc(pos: np.ndarray, neg: np.ndarray) -> float:
    total = 0.0
    for p in pos:
        for n in neg:
            total += 1.0 if p > n else 0.5 if p == n else 0.0
    return total / (len(pos) * len(neg))


def test_roc_auc_matches_a_direct_pairwise_computation() -> None:
    rng = np.random.default_rng(3)
    for _ in range(20):
        pos = np.round(rng.normal(0.3, 0.1, size=rng.integers(1, 30)), 2)  # rounding: ties
        neg = np.round(rng.normal(0.2, 0.1, size=rng.integers(1, 200)), 2)
        assert metrics.roc_auc(pos, neg) == pytest.approx(_pairwise_auc(pos, neg))
    assert metrics.roc_auc(np.array([1.0, 0.9]), np.array([0.1, 0.2])) == 1.0
    assert metrics.roc_auc(np.array([0.5]), np.array([0.5])) == 0.5


def test_best_f1_and_accuracy_hand_computed() -> None:
    # scores descending: .9 P, .8 N, .7 P, .1 N, .05 N
    scores = np.array([0.9, 0.8, 0.7, 0.1, 0.05])
    labels = np.array([1, 0, 1, 0, 0], bool)
    r = metrics.best_f1(scores, labels)
    # t=.9: P=1 R=.5 F1=2/3; t=.7: tp=2 fp=1 -> F1=4/5 (best); accuracy there 4/5
    assert r["f1"] == pytest.approx(0.8)
    assert r["threshold"] == pytest.approx(0.7)
    assert r["accuracy"] == pytest.approx(0.8)
    # a tie across the classes cannot be split by a threshold
    tie = metrics.best_f1(np.array([0.5, 0.5]), np.array([1, 0], bool))
    assert tie["f1"] == pytest.approx(2 / 3)


def test_alignment_perfect_separation_at_20_to_1() -> None:
    pos = np.array([0.9, 0.8])
    neg = np.full((2, 20), 0.1)
    a = metrics.alignment(pos, neg)
    assert a["roc_auc"] == 1.0
    assert a["f1"] == 1.0
    assert a["accuracy"] == 1.0
    assert (a["positives"], a["negatives"]) == (2, 40)


def test_negatives_are_seeded_distinct_and_never_excluded() -> None:
    rows = negative_rows("42", 100, {0, 1, 2}, 20, seed=0)
    assert len(set(rows.tolist())) == 20
    assert not {0, 1, 2} & set(rows.tolist())
    assert rows.tolist() == negative_rows("42", 100, {0, 1, 2}, 20, seed=0).tolist()
    assert rows.tolist() != negative_rows("43", 100, {0, 1, 2}, 20, seed=0).tolist()
    assert len(negative_rows("1", 10, {0, 1, 2}, 20, seed=0)) == 7  # a pool smaller than asked


def test_bootstrap_is_seeded_and_contains_the_mean() -> None:
    values = np.random.default_rng(1).integers(1, 6, size=40).astype(float)
    a = metrics.bootstrap_mean(values, 500, seed=7)
    b = metrics.bootstrap_mean(values, 500, seed=7)
    assert a == b
    assert a["lo"] <= a["mean"] <= a["hi"]
    assert a["mean"] == pytest.approx(values.mean())
    assert a["hi"] - a["lo"] > 0
    assert metrics.bootstrap_mean([3.0, 3.0], 100, seed=0) == {
        "mean": 3.0,
        "lo": 3.0,
        "hi": 3.0,
        "n": 2,
    }


def test_id_sets() -> None:
    sets = metrics.id_sets(["1", "76", "9000", "x", "8495"])
    assert sets == {"SMALL": ["76", "8495"], "LARGE": ["1", "76", "8495"]}
    assert len(metrics.SMALL_IDS) == 30


def test_human_table_layout(tmp_path: Path) -> None:
    path = tmp_path / "ratings.csv"
    lines = ["article_id,approach,rater,rating"]
    for a in ("76", "1", "2"):
        for rater, r in (("r1", 4), ("r2", 5)):
            lines.append(f"{a},lam,{rater},{r}")
            lines.append(f"{a},original,{rater},{r - 1}")
    path.write_text("\n".join(lines) + "\n")
    table = metrics.human_table(metrics.read_ratings(path), 200, seed=0)
    assert list(table) == ["original", "lam"]  # the baseline first
    assert table["lam"]["overall"]["mean"] == pytest.approx(4.5)
    assert table["lam"]["SMALL"]["n"] == 1  # only article 76 is in SMALL
    assert table["original"]["LARGE"]["mean"] == pytest.approx(3.5)
    md = metrics.human_markdown(table)
    assert "| original (baseline) | 3.50" in md
    bad = tmp_path / "bad.csv"
    bad.write_text("article_id,approach,rater,rating\n1,lam,r1,7\n")
    with pytest.raises(InputError, match="1-5"):
        metrics.read_ratings(bad)


def _results(path: Path, rows: dict[str, list[tuple[str, str]]]) -> Path:
    cols = {"article_id": [], "rank": [], "key": [], "source": [], "score": []}
    for article, ranked in rows.items():
        for rank, (key, source) in enumerate(ranked, start=1):
            cols["article_id"].append(article)
            cols["rank"].append(rank)
            cols["key"].append(key)
            cols["source"].append(source)
            cols["score"].append(1.0 - rank / 100)
    pq.write_table(pa.table(cols), path)
    return path


def test_run_writes_flat_metrics_sets_categories_and_plots(tmp_path: Path) -> None:
    arts = tmp_path / "articles.parquet"
    pq.write_table(pa.table({"article_id": ["76", "2", "3"], "image_id": ["A", "B", "C"]}), arts)
    keys = tmp_path / "keys.parquet"
    pq.write_table(pa.table({"key": [f"k{i}" for i in range(50)]}), keys)
    results = tmp_path / "results"
    results.mkdir()
    y = "yfcc"
    _results(results / "lam.parquet", {
        "76": [("A", "newsimages"), ("k1", y)],
        "2": [("k1", y), ("k2", y), ("B", "newsimages")],
        "3": [("k1", y)],
    })  # fmt: skip
    per = tmp_path / "per_article"
    per.mkdir()
    pq.write_table(
        pa.table(
            {
                "article_id": ["76", "2", "3"],
                "category": ["Sports", "Sports", "Arts"],
                "original_score": pa.array([0.9, 0.5, None], pa.float32()),
                "negative_keys": [["k1", "k2"]] * 3,
                "negative_scores": pa.array([[0.1, 0.2], [0.6, 0.1], [0.0, 0.0]]),
            }
        ),
        per / "lam.parquet",
    )
    _results(results / "headline.parquet", {
        "76": [("k1", y), ("A", "newsimages")],
        "2": [("k1", y)],
        "3": [("C", "newsimages")],
    })  # fmt: skip
    subsets = tmp_path / "subsets.csv"
    subsets.write_text("article_id,subset\n76,vague\n2,vague\n3,plain\n")
    out = tmp_path / "metrics/score.json"
    params = ScoreParams(ks=[1, 5], bootstrap=100)
    runs = [results / "lam.parquet", results / "headline.parquet"]
    metrics.run(params, arts, runs, keys, out, tmp_path / "plots", per, subsets=subsets)
    m = json.loads(out.read_text())
    assert m["subsets"] == {"plain": 1, "vague": 2}
    assert m["headline"]["vague"]["R@1"] == 0.0
    assert m["lam"]["vague"]["R@1"] == 0.5
    pair = m["differences"]["lam_vs_headline"]
    assert set(pair) == {"overall", "SMALL", "LARGE", "plain", "vague"}
    assert pair["overall"]["R@10"]["diff"] == pytest.approx((0 + 1 - 1) / 3)
    assert pair["vague"]["MRR@100"]["diff"] == pytest.approx((1 - 1 / 2 + 1 / 3) / 2)
    assert pair["plain"]["R@10"] == {"diff": -1.0, "lo": -1.0, "hi": -1.0, "n": 1}
    lam = m["lam"]
    assert lam["R@1"] == pytest.approx(1 / 3)
    assert lam["R@5"] == pytest.approx(2 / 3)
    assert lam["MRR@100"] == pytest.approx((1 + 1 / 3) / 3)
    assert lam["median_rank"] == 3.0  # 1, 3, 101
    assert lam["SMALL"]["R@1"] == 1.0  # article 76
    assert m["sets"] == {"SMALL": 1, "LARGE": 3}
    # alignment: article 3 has no original in the pool, so 2 x 4 pairs; only 0.5 < 0.6 is lost
    assert lam["align"]["roc_auc"] == pytest.approx(7 / 8)
    assert lam["align"]["positives"] == 2
    assert m["categories"] == {"Arts": 1, "Sports": 2}
    assert lam["category"]["Sports"]["R@10"] == 1.0
    assert lam["category"]["Arts"]["R@10"] == 0.0
    assert m["chance"]["align_accuracy"] == pytest.approx(2 / 3)
    csv_lines = (tmp_path / "plots/category.csv").read_text().splitlines()
    assert csv_lines[0] == "category,approach,label,articles,R@10,MRR@100"
    assert len(csv_lines) == 5  # header, two categories x two approaches
    assert (tmp_path / "plots/recall_at_k.csv").read_text().splitlines()[0] == "k,headline,lam"


def test_run_with_ratings_writes_table_1(tmp_path: Path) -> None:
    arts = tmp_path / "articles.parquet"
    pq.write_table(pa.table({"article_id": ["76", "2"], "image_id": ["A", "B"]}), arts)
    keys = tmp_path / "keys.parquet"
    pq.write_table(pa.table({"key": ["A", "B", "k1"]}), keys)
    res = _results(tmp_path / "lam.parquet", {"76": [("A", "newsimages")], "2": [("k1", "y")]})
    ratings = tmp_path / "ratings.csv"
    ratings.write_text(
        "article_id,approach,rater,rating\n76,lam,a,5\n2,lam,a,3\n76,original,a,4\n2,original,a,4\n"
    )
    params = ScoreParams(ratings=str(ratings), bootstrap=100)
    out = tmp_path / "score.json"
    metrics.run(params, arts, [res], keys, out, tmp_path / "plots")
    human = json.loads(out.read_text())["human"]
    assert human["lam"]["overall"]["mean"] == pytest.approx(4.0)
    assert human["lam"]["SMALL"]["mean"] == pytest.approx(5.0)
    assert human["original"]["LARGE"]["lo"] == pytest.approx(4.0)
    assert "| lam |" in (tmp_path / "plots/human_ratings.md").read_text()
    with pytest.raises(InputError, match="does not exist"):
        metrics.run(
            ScoreParams(ratings=str(tmp_path / "nope.csv")), arts, [res], keys, out, tmp_path
        )


def test_paired_bootstrap_equals_a_hand_computed_case() -> None:
    # differences b - a of four articles: 0, 0, 0, 1. A resample's mean is (ones drawn) / 4 with
    # ones ~ Binomial(4, 1/4): P(0) = 0.316 > 2.5%, so the 2.5% quantile is 0; P(>= 3) = 0.051
    # and P(4) = 0.004, so the 97.5% quantile is 3/4.
    a = np.array([1.0, 0.0, 0.5, 0.0])
    b = np.array([1.0, 0.0, 0.5, 1.0])
    d = metrics.paired_difference(a, b, n=20000, seed=3)
    assert d == {"diff": 0.25, "lo": 0.0, "hi": 0.75, "n": 4}
    # paired: equal values give a zero interval, however much the articles vary
    same = metrics.paired_difference(a, a, n=500, seed=0)
    assert same == {"diff": 0.0, "lo": 0.0, "hi": 0.0, "n": 4}
    # the interval is the resampled articles' mean differences, the same draws as the bootstrap
    # of the differences themselves
    x = np.random.default_rng(5).random(30)
    y = x + np.random.default_rng(6).normal(0.1, 0.05, 30)
    by_hand = metrics.bootstrap_mean(y - x, 300, seed=9)
    got = metrics.paired_difference(x, y, 300, seed=9)
    assert (got["diff"], got["lo"], got["hi"]) == (by_hand["mean"], by_hand["lo"], by_hand["hi"])
    assert 0 < got["lo"] < got["diff"] < got["hi"]
    with pytest.raises(ValueError, match="differ in length"):
        metrics.paired_difference([1.0], [1.0, 0.0])


def test_article_values_and_differences_per_group() -> None:
    params = ScoreParams(bootstrap=200)
    a, b = np.array([1, 11, 0, 5]), np.array([2, 3, 50, 0])
    va = metrics.article_values(a, params)
    assert va["R@10"].tolist() == [1.0, 0.0, 0.0, 1.0]
    assert va["MRR@100"].tolist() == pytest.approx([1.0, 1 / 11, 0.0, 1 / 5])
    ranks = {"lam": b, "headline": a, "headline_lead": a}
    diffs = metrics.differences(ranks, {"overall": [0, 1, 2, 3], "x": [1, 2]}, params)
    assert list(diffs) == ["headline_lead_vs_headline", "lam_vs_headline", "lam_vs_headline_lead"]
    lam = diffs["lam_vs_headline"]
    assert lam["overall"]["R@10"]["diff"] == pytest.approx((0 + 1 + 0 - 1) / 4)
    assert lam["x"]["R@10"]["diff"] == pytest.approx(0.5)  # articles 2 and 3: ranks 11->3, 0->50
    assert lam["x"]["MRR@100"]["diff"] == pytest.approx((1 / 3 - 1 / 11 + 1 / 50) / 2)
    assert diffs["headline_lead_vs_headline"]["overall"]["MRR@100"]["hi"] == 0.0


def test_subsets_file(tmp_path: Path) -> None:
    path = tmp_path / "subsets.csv"
    path.write_text("article_id,subset\n2,vague\n1,plain\n9,vague\n3,vague\n")
    assert metrics.read_subsets(path, ["1", "2", "3", "4"]) == {
        "plain": ["1"],
        "vague": ["2", "3"],
    }
    (tmp_path / "empty.csv").write_text("article_id,subset\n")
    assert metrics.read_subsets(tmp_path / "empty.csv", ["1"]) == {}
    for bad, message in (("article_id,subset\n1,SMALL\n", "usable name"),
                         ("article_id,kind\n1,a\n", "expected columns"),
                         ("article_id,subset\n1,a b\n", "usable name")):  # fmt: skip
        path.write_text(bad)
        with pytest.raises(InputError, match=message):
            metrics.read_subsets(path, ["1"])
    with pytest.raises(InputError, match="does not exist"):
        metrics.read_subsets(tmp_path / "nope.csv", ["1"])
