"""das_ru vs improved, and each switch of the improved recipe on its own, on the sample.

    python bench/ablation.py --base '{"epochs": 30, "batch_size": 64, "lr": 0.003}' [--only RUN,..]

Needs the sample's model and N24News embeddings (`dvc repro embed@n24news`). The frozen text
features are computed once; each configuration is one seeded ``lam.fit`` on them. Rows: the two
recipes, das_ru plus one switch of improved, improved minus one switch (back to das_ru's value).
Prints dev/test R@10 and section macro-F1 per run with the change in dev R@10 against das_ru
measured in the same run, then one JSON line of every run's figures.
"""

from __future__ import annotations

import argparse
import json
import logging
import time
from pathlib import Path

import torch

from newsimg import lam
from newsimg.clip import Clip
from newsimg.params import RECIPES, TrainParams

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
    for name, keys in runs(base):
        if args.only is not None and name not in args.only.split(","):
            continue
        p = TrainParams(**{"accelerator": "cpu", **base, **keys})
        data.params = p
        t0 = time.perf_counter()
        figures = lam.fit(p, lam.build_module(p, clip), data)
        results[name] = {k: round(float(figures[k]), 3) for k in FIGURES}
        results[name]["seconds"] = round(time.perf_counter() - t0, 1)

    ref = results.get("das_ru", {}).get("dev/r@10")
    header = f"{'run':<44}{'dev R@10':>9}{'dev F1':>8}{'test R@10':>10}{'test F1':>9}"
    print(header + f"{'vs das_ru':>11}")
    for name, r in results.items():
        delta = f"{r['dev/r@10'] - ref:+.3f}" if ref is not None else "-"
        print(
            f"{name:<44}{r['dev/r@10']:>9.3f}{r['dev/f1']:>8.3f}{r['test/r@10']:>10.3f}"
            f"{r['test/f1']:>9.3f}{delta:>11}"
        )
    print(json.dumps({"base": base, "runs": results}))


if __name__ == "__main__":
    main()
