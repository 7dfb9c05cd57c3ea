"""das_ru vs improved, and each switch of the improved recipe on its own, on the sample.

    python bench/ablation.py --base '{"epochs": 30, "batch_size": 64, "lr": 0.003}' [--only RUN,..]

Needs the sample's pipeline run (`dvc repro`: base model, N24News embeddings, index, articles).
The frozen text features are computed once; each configuration is one seeded ``lam.fit`` on
them. Rows: the two recipes, das_ru plus one switch of improved, improved minus one switch (back
to das_ru's value). Prints dev/test R@10 and section macro-F1 per run with the change in dev
R@10 against das_ru measured in the same run; then, on the NewsImages side of the sample, the
two recipes' LAMs against the untrained approaches (headline, headline + lead) searched in the
same index: R@10 and MRR@100 with the paired differences and their bootstrap 95% intervals,
overall and per subset of data/subsets.csv; then one JSON line of every figure.
"""

from __future__ import annotations

import argparse
import json
import logging
import time
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import torch

from newsimg import index as image_index
from newsimg import lam, metrics
from newsimg.clip import Clip, l2_normalize
from newsimg.params import RECIPES, ScoreParams, TrainParams

ROOT = Path(__file__).resolve().parents[1]
SWITCHES = [
    "projection_init",
    "class_init",
    "renormalize",
    "symmetric",
    "learn_temperature",
    "teacher",
    "schedule",
    "patience",
]
FIGURES = ("dev/r@10", "dev/f1", "test/r@10", "test/f1")


def runs(base: dict) -> list[tuple[str, dict]]:
    out = [("das_ru", {"recipe": "das_ru"}), ("improved", {"recipe": "improved"})]
    if base:  # the recipes with their own epochs, batch size and lr, before the sample's budget
        own = [
            (f"{name} (own budget)", {**kw, **{k: RECIPES[kw["recipe"]][k] for k in base}})
            for name, kw in out
            if all(k in RECIPES[kw["recipe"]] for k in base)
        ]
        out = own + out
    das_ru, improved = RECIPES["das_ru"], RECIPES["improved"]
    out += [(f"das_ru + {s}={improved[s]}", {"recipe": "das_ru", s: improved[s]}) for s in SWITCHES]
    out += [(f"improved - {s}={das_ru[s]}", {"recipe": "improved", s: das_ru[s]}) for s in SWITCHES]
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--base", default="{}", help="JSON of train keys set in every run")
    parser.add_argument("--only", default=None, help="comma-separated run names")
    args = parser.parse_args()
    logging.disable(logging.WARNING)
    torch.set_num_threads(1)  # tiny tensors: threads only contend
    base = json.loads(args.base)

    clip = Clip(ROOT / "artifacts/models/base")
    params = TrainParams(accelerator="cpu")
    data = lam.N24NewsFeatures(
        ROOT / "data/n24news", ROOT / "artifacts/embeddings/n24news", clip, params
    )
    data.setup()
    results: dict[str, dict[str, float]] = {}
    lams: dict[str, torch.nn.Module] = {}
    for name, keys in runs(base):
        if args.only is not None and name not in args.only.split(","):
            continue
        p = TrainParams(**{"accelerator": "cpu", **base, **keys})
        data.params = p
        t0 = time.perf_counter()
        module = lam.build_module(p, clip)
        figures = lam.fit(p, module, data)
        results[name] = {k: round(float(figures[k]), 3) for k in FIGURES}
        results[name]["seconds"] = round(time.perf_counter() - t0, 1)
        if name in ("das_ru", "improved"):
            lams[name] = module.lam.eval()

    ref = results.get("das_ru", {}).get("dev/r@10")
    header = f"{'run':<44}{'dev R@10':>9}{'dev F1':>8}{'test R@10':>10}{'test F1':>9}"
    print(header + f"{'vs das_ru':>11}")
    for name, r in results.items():
        delta = f"{r['dev/r@10'] - ref:+.3f}" if ref is not None else "-"
        print(
            f"{name:<44}{r['dev/r@10']:>9.3f}{r['dev/f1']:>8.3f}{r['test/r@10']:>10.3f}"
            f"{r['test/f1']:>9.3f}{delta:>11}"
        )
    newsimages = articles_side(clip, lams) if lams else {}
    print(json.dumps({"base": base, "runs": results, "newsimages": newsimages}))


def ranks_of_originals(queries: np.ndarray, images, image_ids: list[str], k: int) -> np.ndarray:
    """Rank (1-based) of each article's original in its top ``k``; 0 when not retrieved."""
    _, rows = images.search(queries, k)
    keys = images.keys.to_pydict()
    out = np.zeros(len(image_ids), np.int64)
    for i, (found, truth) in enumerate(zip(rows, image_ids, strict=True)):
        for rank, row in enumerate(found.tolist(), start=1):
            if keys["source"][row] == "newsimages" and keys["key"][row] == truth:
                out[i] = rank
                break
    return out


def articles_side(clip: Clip, lams: dict[str, torch.nn.Module]) -> dict:
    """The untrained approaches and each recipe's LAM on the sample's articles, with paired
    differences and bootstrap intervals (the score stage's code)."""
    table = pq.read_table(ROOT / "artifacts/articles.parquet").to_pydict()
    images = image_index.load(ROOT / "artifacts/index")
    params = ScoreParams()
    hidden = {text: clip.text_hidden(table[text]) for text in ("headline", "headline_lead")}
    queries = {text: l2_normalize(clip.project_text(h)) for text, h in hidden.items()}
    for name, module in lams.items():
        with torch.no_grad():
            h, _ = module(torch.from_numpy(hidden["headline_lead"]))
        queries[f"lam ({name})"] = l2_normalize(h.numpy())
    ranks = {
        name: ranks_of_originals(q, images, table["image_id"], params.mrr_at)
        for name, q in queries.items()
    }
    ids = table["article_id"]
    subsets = metrics.read_subsets(ROOT / "data/subsets.csv", ids)
    position = {a: i for i, a in enumerate(ids)}
    groups = {"overall": list(range(len(ids)))}
    groups |= {name: [position[a] for a in members] for name, members in subsets.items()}
    figures = {
        name: {g: metrics.score(r[rows], params) for g, rows in groups.items()}
        for name, r in ranks.items()
    }
    pairs = [("headline_lead", "headline")] + [
        (f"lam ({n})", base) for n in lams for base in ("headline_lead", "headline")
    ]
    if len(lams) == 2:
        pairs.append(("lam (improved)", "lam (das_ru)"))
    values = {name: metrics.article_values(r, params) for name, r in ranks.items()}
    diffs = {
        f"{b} - {a}": {
            g: {
                m: metrics.paired_difference(
                    values[a][m][rows], values[b][m][rows], params.bootstrap, params.seed
                )
                for m in values[a]
            }
            for g, rows in groups.items()
        }
        for b, a in pairs
    }
    print(
        f"\nNewsImages side ({len(ids)} articles, pool {images.ntotal}; chance R@10 "
        f"{10 / images.ntotal:.4f})"
    )
    print(f"{'approach':<18}" + "".join(f"{g + ' R@10':>24}{'MRR':>7}" for g in groups))
    for name, f in figures.items():
        cells = "".join(f"{f[g]['R@10']:>24.3f}{f[g]['MRR@100']:>7.3f}" for g in groups)
        print(f"{name:<18}{cells}")
    print(f"{'paired difference':<34}" + "".join(f"{g + ' R@10 [95%]':>26}" for g in groups))
    for pair, by_group in diffs.items():
        cells = "".join(
            f"{d['R@10']['diff']:>+10.3f} [{d['R@10']['lo']:+.2f}, {d['R@10']['hi']:+.2f}]"
            for d in by_group.values()
        )
        print(f"{pair:<34}{cells}")
    return {
        "figures": figures,
        "differences": diffs,
        "groups": {g: len(r) for g, r in groups.items()},
    }


if __name__ == "__main__":
    main()
