"""Automatic scores of retrieval results, the alignment protocol, and human ratings.

- Retrieval: R@k, MRR@k and the median rank of each article's original image (the pool holds
  the originals), per approach, per MediaEval 2025 id set (SMALL, LARGE) where the data has
  them, and per news section predicted by the LAM's category head.
- Alignment (the web-scale summarisation seed): each article's original as the positive and
  ``retrieve.negatives`` random pool images as negatives, scored by cosine similarity:
  ROC-AUC, F1 at the best threshold and the accuracy at that threshold.
- Human ratings (optional CSV: article_id, approach, rater, rating 1-5): mean and seeded 95%
  bootstrap interval per approach, for SMALL, LARGE and all rated articles (Table 1's layout).
"""

from __future__ import annotations

import csv
import json
import logging
import re
from collections import Counter, defaultdict
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq

from newsimg import atomic
from newsimg.errors import InputError
from newsimg.params import ScoreParams

log = logging.getLogger(__name__)

# MediaEval 2025 NewsImages id sets (shared/REFERENCE.md): SMALL is 30 ids, LARGE all 8,500.
SMALL_IDS = frozenset(
    str(i)
    for i in (
        76, 238, 346, 493, 865, 1004, 1336, 1817, 2307, 2362, 2384, 2482, 2509, 2563, 2715,
        2844, 4409, 4609, 5291, 5796, 5800, 5923, 6074, 6172, 6469, 7304, 7374, 8192, 8399, 8495,
    )
)  # fmt: skip
LARGE_SIZE = 8500
BASELINE = "original"  # the ratings' approach name of the articles' own images
ORDER = ("headline", "headline_lead", "lam")  # differences: later approach minus earlier
# names a subset may not take: they are keys of an approach's metrics already
RESERVED = frozenset({"SMALL", "LARGE", "overall", "align", "category", "median_rank"})
# The seed's figures, logged beside ours: ROC-AUC, F1, accuracy at 20:1 negatives.
SEED_ALIGNMENT = {"roc_auc": 0.927, "f1": 0.650, "accuracy": 0.9699}


def id_sets(article_ids: Sequence[str]) -> dict[str, list[str]]:
    """The articles of each MediaEval 2025 set, in the given order (a set may be empty)."""
    large = [a for a in article_ids if a.isdigit() and 1 <= int(a) <= LARGE_SIZE]
    return {"SMALL": [a for a in large if a in SMALL_IDS], "LARGE": large}


def original_ranks(results: Path, truth: Mapping[str, str]) -> np.ndarray:
    """Rank (1-based) of each article's original image in its results; 0 when not retrieved.

    ``truth`` maps article_id -> image_id; results hold (article_id, rank, key, source).
    """
    table = pq.read_table(results, columns=["article_id", "rank", "key", "source"]).to_pydict()
    found: dict[str, int] = {}
    for article, rank, key, source in zip(
        table["article_id"], table["rank"], table["key"], table["source"], strict=True
    ):
        if source == "newsimages" and truth.get(article) == key:
            found[article] = min(rank, found.get(article, rank))
    return np.array([found.get(a, 0) for a in truth], dtype=np.int64)


def recall_at(ranks: np.ndarray, k: int) -> float:
    """Share of articles whose original is within the top ``k`` (rank 0: not retrieved)."""
    ranks = np.asarray(ranks)
    return float(np.mean((ranks > 0) & (ranks <= k))) if ranks.size else 0.0


def mrr_at(ranks: np.ndarray, k: int) -> float:
    """Mean of 1/rank, an original beyond ``k`` (or not retrieved) counting 0."""
    ranks = np.asarray(ranks)
    if not ranks.size:
        return 0.0
    hit = (ranks > 0) & (ranks <= k)
    return float(np.mean(np.where(hit, 1.0 / np.maximum(ranks, 1), 0.0)))


def median_rank(ranks: np.ndarray, k: int) -> float:
    """Median rank of the original; one not within the top ``k`` counts as ``k + 1``."""
    ranks = np.asarray(ranks)
    if not ranks.size:
        return float(k + 1)
    return float(np.median(np.where((ranks > 0) & (ranks <= k), ranks, k + 1)))


def score(ranks: np.ndarray, params: ScoreParams) -> dict[str, float]:
    out = {f"R@{k}": recall_at(ranks, k) for k in params.ks}
    out[f"MRR@{params.mrr_at}"] = mrr_at(ranks, params.mrr_at)
    out["median_rank"] = median_rank(ranks, params.mrr_at)
    return out


def roc_auc(positive: np.ndarray, negative: np.ndarray) -> float:
    """P(a positive scores above a negative), ties counting half (Mann-Whitney U / (n_p n_n))."""
    pos, neg = np.asarray(positive, float), np.asarray(negative, float)
    if not pos.size or not neg.size:
        return float("nan")
    allv = np.concatenate([pos, neg])
    order = np.argsort(allv, kind="mergesort")
    ranks = np.empty(allv.size)
    sorted_v = allv[order]
    # average ranks of ties
    _, start, counts = np.unique(sorted_v, return_index=True, return_counts=True)
    avg = start + (counts + 1) / 2.0
    ranks[order] = np.repeat(avg, counts)
    u = ranks[: pos.size].sum() - pos.size * (pos.size + 1) / 2.0
    return float(u / (pos.size * neg.size))


def best_f1(scores: np.ndarray, labels: np.ndarray) -> dict[str, float]:
    """F1 at the threshold that maximises it (predict positive when score >= threshold), with
    the accuracy at that threshold."""
    scores, labels = np.asarray(scores, float), np.asarray(labels, bool)
    n_pos = int(labels.sum())
    if not n_pos or n_pos == labels.size:
        return {"f1": float("nan"), "accuracy": float("nan"), "threshold": float("nan")}
    order = np.argsort(-scores, kind="mergesort")
    s, y = scores[order], labels[order]
    tp = np.cumsum(y)
    fp = np.cumsum(~y)
    # only cut after the last of equal scores: a threshold cannot split ties
    last = np.r_[s[1:] != s[:-1], True]
    tp, fp, cut = tp[last], fp[last], s[last]
    f1 = 2 * tp / (n_pos + tp + fp)
    i = int(np.argmax(f1))
    tn = (labels.size - n_pos) - fp[i]
    return {
        "f1": float(f1[i]),
        "accuracy": float((tp[i] + tn) / labels.size),
        "threshold": float(cut[i]),
    }


def alignment(positive: np.ndarray, negatives: np.ndarray) -> dict[str, float]:
    """The seed's protocol over (original, negatives) pairs: ROC-AUC, best F1, its accuracy."""
    pos = np.asarray(positive, float)
    neg = np.asarray(negatives, float).reshape(-1)
    scores = np.concatenate([pos, neg])
    labels = np.r_[np.ones(pos.size, bool), np.zeros(neg.size, bool)]
    return {
        "roc_auc": roc_auc(pos, neg),
        **best_f1(scores, labels),
        "positives": int(pos.size),
        "negatives": int(neg.size),
    }


def read_per_article(path: Path) -> dict[str, dict]:
    """article_id -> row of a retrieve stage's per-article table."""
    return {r["article_id"]: r for r in pq.read_table(path).to_pylist()}


def alignment_of(rows: Mapping[str, dict], articles: Sequence[str]) -> dict[str, float]:
    """:func:`alignment` over the articles whose original is in the pool."""
    pos, neg = [], []
    for a in articles:
        r = rows.get(a)
        if r is None or r["original_score"] is None:
            continue
        pos.append(r["original_score"])
        neg.extend(r["negative_scores"])
    return alignment(np.array(pos), np.array(neg))


def bootstrap_mean(
    values: Sequence[float], n: int = 1000, seed: int = 0, level: float = 0.95
) -> dict[str, float]:
    """Mean and the percentile bootstrap interval of the mean, seeded."""
    x = np.asarray(values, float)
    if not x.size:
        return {"mean": float("nan"), "lo": float("nan"), "hi": float("nan"), "n": 0}
    rng = np.random.default_rng(seed)
    means = x[rng.integers(0, x.size, size=(n, x.size))].mean(axis=1)
    a = (1 - level) / 2
    lo, hi = np.quantile(means, [a, 1 - a])
    mean = float(x.mean())
    return {"mean": mean, "lo": float(min(lo, mean)), "hi": float(max(hi, mean)), "n": int(x.size)}


def read_ratings(path: Path) -> list[dict]:
    """Rows of a ratings CSV (header article_id, approach, rater, rating; rating 1..5)."""
    if not path.is_file():
        raise InputError(f"ratings file {path} does not exist")
    with open(path, newline="") as f:
        reader = csv.DictReader(f)
        need = {"article_id", "approach", "rater", "rating"}
        if not need <= set(reader.fieldnames or ()):
            raise InputError(f"{path}: expected columns {sorted(need)}, got {reader.fieldnames}")
        rows = []
        for line, r in enumerate(reader, start=2):
            try:
                rating = float(r["rating"])
            except ValueError:
                raise InputError(f"{path}:{line}: rating {r['rating']!r} is not a number") from None
            if not 1 <= rating <= 5:
                raise InputError(f"{path}:{line}: rating {rating} is not within 1-5")
            rows.append({**r, "article_id": r["article_id"].strip(), "rating": rating})
    return rows


def human_table(ratings: Sequence[dict], n_boot: int, seed: int) -> dict[str, dict]:
    """approach -> {SMALL, LARGE, overall} -> mean/lo/hi/n, articles as the resampled unit
    (each article's mean over its raters). Sets with no ratings are left out."""
    per: dict[str, dict[str, list[float]]] = defaultdict(lambda: defaultdict(list))
    for r in ratings:
        per[r["approach"]][r["article_id"]].append(r["rating"])
    out: dict[str, dict] = {}
    for approach in sorted(per, key=lambda a: (a != BASELINE, a)):
        means = {a: float(np.mean(v)) for a, v in per[approach].items()}
        sets = {**id_sets(list(means)), "overall": list(means)}
        out[approach] = {
            name: bootstrap_mean([means[a] for a in ids], n_boot, seed)
            for name, ids in sets.items()
            if ids
        }
    return out


def human_markdown(table: Mapping[str, dict]) -> str:
    """Table 1's layout: one row per approach (the originals first), SMALL, LARGE, overall."""
    cols = ["SMALL", "LARGE", "overall"]
    lines = ["| approach | " + " | ".join(cols) + " |", "|---" * (len(cols) + 1) + "|"]
    for approach, sets in table.items():
        cells = []
        for c in cols:
            s = sets.get(c)
            cell = f"{s['mean']:.2f} [{s['lo']:.2f}, {s['hi']:.2f}] (n={s['n']})" if s else "-"
            cells.append(cell)
        name = f"{approach} (baseline)" if approach == BASELINE else approach
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def read_subsets(path: Path, article_ids: Sequence[str]) -> dict[str, list[str]]:
    """subset -> its articles, in ``article_ids`` order, from a CSV of article_id, subset.

    Articles the file does not name belong to no subset; ids the file names that are not among
    the articles are counted and logged. A subset name must be letters, digits, ``_`` or ``-``
    and may not be a name the metrics already use (SMALL, LARGE, overall, align, category).
    """
    if not path.is_file():
        raise InputError(f"subsets file {path} does not exist")
    with open(path, newline="", encoding="utf-8") as f:
        reader = csv.DictReader(f)
        if not {"article_id", "subset"} <= set(reader.fieldnames or ()):
            raise InputError(
                f"{path}: expected columns article_id, subset; got {reader.fieldnames}"
            )
        marked = {}
        for line, r in enumerate(reader, start=2):
            name = (r["subset"] or "").strip()
            if not re.fullmatch(r"[A-Za-z0-9_-]+", name) or name in RESERVED:
                raise InputError(f"{path}:{line}: subset {name!r} is not a usable name")
            marked[r["article_id"].strip()] = name
    known = set(article_ids)
    unknown = sum(a not in known for a in marked)
    if unknown:
        log.info("%s: %d article id(s) not among the articles, ignored", path, unknown)
    out: dict[str, list[str]] = defaultdict(list)
    for a in article_ids:
        if a in marked:
            out[marked[a]].append(a)
    return dict(sorted(out.items()))


def article_values(ranks: np.ndarray, params: ScoreParams) -> dict[str, np.ndarray]:
    """Per article, what the paired differences average: the R@k hit (0/1) and the
    reciprocal rank within MRR's cut-off (0 beyond it)."""
    r = np.asarray(ranks)
    hit = (r > 0) & (r <= params.paired_k)
    within = (r > 0) & (r <= params.mrr_at)
    return {
        f"R@{params.paired_k}": hit.astype(float),
        f"MRR@{params.mrr_at}": np.where(within, 1.0 / np.maximum(r, 1), 0.0),
    }


def paired_difference(
    a: Sequence[float], b: Sequence[float], n: int = 1000, seed: int = 0, level: float = 0.95
) -> dict[str, float]:
    """``b - a`` over the same articles: the mean difference and its seeded percentile
    bootstrap interval, the articles resampled with replacement (one draw of article indices
    moves both approaches' values together: the pairing). Same ``n`` and ``seed``, same draws,
    whatever the metric."""
    a, b = np.asarray(a, float), np.asarray(b, float)
    if a.shape != b.shape:
        raise ValueError(f"paired values differ in length: {a.shape} vs {b.shape}")
    s = bootstrap_mean(b - a, n, seed, level)
    return {"diff": s["mean"], "lo": s["lo"], "hi": s["hi"], "n": s["n"]}


def approach_order(names: Sequence[str]) -> list[str]:
    """The approaches from the simplest: headline, headline_lead, lam, then any other by name."""
    known = [a for a in ORDER if a in names]
    return known + sorted(a for a in names if a not in ORDER)


def differences(
    ranks: Mapping[str, np.ndarray], groups: Mapping[str, Sequence[int]], params: ScoreParams
) -> dict[str, dict]:
    """For each pair of approaches (later minus earlier in :func:`approach_order`), per group
    of articles (``overall`` and every set and subset), the paired difference of each value of
    :func:`article_values` with its bootstrap interval: ``{"lam_vs_headline": {"overall":
    {"R@10": {"diff", "lo", "hi", "n"}, "MRR@100": ...}, ...}}``."""
    names = approach_order(list(ranks))
    values = {name: article_values(ranks[name], params) for name in names}
    out: dict[str, dict] = {}
    for i, a in enumerate(names):
        for b in names[i + 1 :]:
            out[f"{b}_vs_{a}"] = {
                group: {
                    metric: paired_difference(
                        values[a][metric][rows], values[b][metric][rows], params.bootstrap,
                        params.seed,
                    )
                    for metric in values[a]
                }
                for group, rows in groups.items()
            }  # fmt: skip
    return out


def _finite(d):
    """NaN -> None, recursively (JSON has no NaN; DVC skips nulls)."""
    if isinstance(d, dict):
        return {k: _finite(v) for k, v in d.items()}
    if isinstance(d, float) and not np.isfinite(d):
        return None
    return d


def read_truth(articles: Path) -> dict[str, str]:
    """article_id -> the image_id of its original, in the articles' order."""
    table = pq.read_table(articles, columns=["article_id", "image_id"]).to_pydict()
    return dict(zip(table["article_id"], table["image_id"], strict=True))


def read_per_article_tables(folder: Path | None, names: Sequence[str]) -> dict[str, dict]:
    """approach -> its per-article rows, for the approaches whose table is in ``folder``."""
    if folder is None:
        return {}
    return {
        name: read_per_article(folder / f"{name}.parquet")
        for name in names
        if (folder / f"{name}.parquet").is_file()
    }


def categories(
    ranks: Mapping[str, np.ndarray], extra: Mapping[str, dict], ids: Sequence[str], params
) -> tuple[dict[str, int], dict[str, dict], list[list]]:
    """Per section predicted by a LAM head (the approach named lam first): the articles per
    section, per approach its R@k and MRR per section, and the rows of ``category.csv``."""
    with_cat = [n for n in extra if any(r["category"] for r in extra[n].values())]
    source = "lam" if "lam" in with_cat else (with_cat[0] if with_cat else None)
    if source is None:
        log.info("no predicted categories (no LAM per-article table): per-category skipped")
        return {}, {}, []
    cats = [extra[source].get(a, {}).get("category") for a in ids]
    counts = dict(sorted(Counter(c for c in cats if c).items()))
    k, mk = params.category_k, params.mrr_at
    per_approach, rows = {}, []
    for name, r in ranks.items():
        per_cat = {}
        for c in counts:
            rc = r[np.array([x == c for x in cats])]
            per_cat[c] = {f"R@{k}": recall_at(rc, k), f"MRR@{mk}": mrr_at(rc, mk)}
            rows.append(
                [c, name, f"{c} / {name}", counts[c], round(per_cat[c][f"R@{k}"], 6),
                 round(per_cat[c][f"MRR@{mk}"], 6)]
            )  # fmt: skip
        per_approach[name] = per_cat
    return counts, per_approach, rows


def chance_levels(pool: int, extra: Mapping[str, dict], params: ScoreParams) -> dict[str, float]:
    """R@k of a random ranking of the pool; with the alignment protocol, its trivial figures."""
    chance = {f"R@{k}": min(k / pool, 1.0) for k in params.ks}
    n_neg = next((len(r["negative_scores"]) for rows in extra.values() for r in rows.values()), 0)
    if n_neg:
        chance["align_accuracy"] = n_neg / (n_neg + 1)  # always "not aligned"
        chance["roc_auc"] = 0.5
    return chance


def write_plots(
    plots: Path, ranks: Mapping[str, np.ndarray], cat_rows: list[list], params: ScoreParams
) -> None:
    """``recall_at_k.csv`` (k, one column per approach) and ``category.csv``."""
    ks = range(1, max(params.ks) + 1)
    rows = [[k, *(round(recall_at(r, k), 6) for r in ranks.values())] for k in ks]
    with atomic.atomic_path(plots / "recall_at_k.csv") as tmp, open(tmp, "w", newline="") as f:
        csv.writer(f).writerows([["k", *ranks], *rows])
    k, mk = params.category_k, params.mrr_at
    header = ["category", "approach", "label", "articles", f"R@{k}", f"MRR@{mk}"]
    with atomic.atomic_path(plots / "category.csv") as tmp, open(tmp, "w", newline="") as f:
        csv.writer(f).writerows([header, *cat_rows])


def run(
    params: ScoreParams,
    articles: Path,
    results: Sequence[Path],
    index_keys: Path,
    out: Path,
    plots: Path,
    per_article: Path | None = None,
    *,
    subsets: Path | None = None,
) -> dict:
    """Score every results file (named by approach: ``results/headline.parquet``).

    ``per_article`` is the folder of the retrieve stage's per-article tables (same names);
    ``subsets`` a CSV of article_id, subset (:func:`read_subsets`). Writes ``out`` (metrics
    JSON: per approach its figures overall, per id set and subset, alignment and category; the
    paired ``differences`` between approaches; the pool, chance levels, the sets' and subsets'
    sizes; ``human`` when ratings are given) and in ``plots``: ``recall_at_k.csv`` and
    ``category.csv``.
    """
    truth = read_truth(articles)
    ids = list(truth)
    ranks = {path.stem: original_ranks(path, truth) for path in sorted(results)}
    extra = read_per_article_tables(per_article, list(ranks))
    sets = id_sets(ids)
    marked = read_subsets(subsets, ids) if subsets is not None else {}
    position = {a: i for i, a in enumerate(ids)}
    groups = {
        name: [position[a] for a in members]
        for name, members in {**sets, **marked}.items()
        if members
    }
    metrics: dict = {}
    for name, r in ranks.items():
        m = score(r, params)
        m.update({group: score(r[rows], params) for group, rows in groups.items()})
        if name in extra:
            m["align"] = alignment_of(extra[name], ids)
        metrics[name] = m
    counts, per_category, cat_rows = categories(ranks, extra, ids, params)
    for name, per_cat in per_category.items():
        metrics[name]["category"] = per_cat
    if counts:
        metrics["categories"] = counts
    metrics["differences"] = differences(ranks, {"overall": range(len(ids)), **groups}, params)
    metrics["pool"] = {"images": pq.read_metadata(index_keys).num_rows, "articles": len(ids)}
    metrics["sets"] = {name: len(members) for name, members in sets.items()}
    if marked:
        metrics["subsets"] = {name: len(members) for name, members in marked.items()}
    for name, members in sets.items():
        if not members:
            log.info("no article of the MediaEval %s set in the data: %s skipped", name, name)
    metrics["chance"] = chance_levels(metrics["pool"]["images"], extra, params)
    if params.ratings is not None:
        human = human_table(read_ratings(Path(params.ratings)), params.bootstrap, params.seed)
        metrics["human"] = human
        atomic.write_text(plots / "human_ratings.md", human_markdown(human))
    atomic.write_text(out, json.dumps(_finite(metrics), indent=2) + "\n")
    write_plots(plots, ranks, cat_rows, params)
    _log_summary(metrics, ranks)
    return metrics


def _log_summary(metrics: Mapping[str, dict], ranks: Mapping[str, np.ndarray]) -> None:
    for name in ranks:
        log.info("%s: %s", name, {k: v for k, v in metrics[name].items() if k != "category"})
    for pair, groups in metrics["differences"].items():
        log.info(
            "%s: %s",
            pair,
            {g: {m: round(v["diff"], 3) for m, v in d.items()} for g, d in groups.items()},
        )
    log.info("alignment figures of the seed: %s", SEED_ALIGNMENT)
