"""The pipeline's test artifacts: a small generated sample run stage by stage through the stage
scripts, in DVC's order, up to the index. Shared by test_pipeline and the serve tests."""

from __future__ import annotations

from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import Any

import yaml

from newsimg import sample
from tests.conftest import ROOT, load_stage

APPROACHES = {"headline": "headline", "headline_lead": "headline_lead", "lam": "headline_lead"}


def run_stage(params: Path, name: str, **paths: object) -> None:
    argv = ["--params", str(params)]
    for key, value in paths.items():
        argv += [f"--{key.replace('_', '-')}", str(value)]
    assert load_stage(name).main(argv) == 0, name


def build_to_index(
    d: Path, adjust: Callable[[dict[str, Any]], None] | None = None
) -> Callable[..., None]:
    """Generate the sample under ``d/data``, write ``d/params.yaml`` (the shipped params with the
    random tiny model and small shards; ``adjust`` may change more) and run model, metadata,
    fetch, leads, both embeds, train and index into ``d/artifacts``. Returns the stage runner."""
    data, art = d / "data", d / "artifacts"
    sample.generate(data, seed=1, n_articles=16, pool_size=120, n24news_per_section=(6, 2, 2))
    doc = yaml.safe_load((ROOT / "params.yaml").read_text())
    doc["model"]["source"] = "tiny"  # the fast tests keep the random model
    doc["fetch"]["source"] = str(data / "yfcc" / "bucket")
    doc["fetch"]["shard_size"] = 50
    doc["fetch"]["videos"] = str(art / "videos.txt")
    doc["train"]["epochs"] = 2
    if adjust is not None:
        adjust(doc)
    params = d / "params.yaml"
    params.write_text(yaml.safe_dump(doc))

    stage = partial(run_stage, params)
    model = art / "models" / "base"
    stage("model", out=model)
    stage(
        "metadata",
        manifest=data / "yfcc/manifest.txt",
        metadata=data / "yfcc/metadata",
        out=art / "metadata",
        videos=art / "videos.txt",
        metrics=d / "metrics/licences.json",
    )
    stage(
        "fetch",
        manifest=data / "yfcc/manifest.txt",
        newsimages=data / "newsimages",
        out=art / "shards",
    )
    stage("leads", articles=data / "articles.csv", html=data / "html", out=art / "articles.parquet")
    stage("embed", format="shards", images=art / "shards", model=model, out=art / "embeddings/pool")
    stage(
        "embed",
        format="n24news",
        images=data / "n24news",
        model=model,
        out=art / "embeddings/n24news",
    )
    stage(
        "train",
        n24news=data / "n24news",
        embeddings=art / "embeddings/n24news",
        model=model,
        out=art / "models/lam",
        live=d / "dvclive",
    )
    stage("index", embeddings=art / "embeddings/pool", out=art / "index")
    return stage


def retrieve_all(stage: Callable[..., None], art: Path, res: Path) -> None:
    """retrieve for every approach over ``art``, results and per-article tables under ``res``."""
    model = art / "models" / "base"
    for name, text in APPROACHES.items():
        stage(
            "retrieve",
            articles=art / "articles.parquet",
            text=text,
            model=model,
            encoder=art / "models/lam" if name == "lam" else model,
            index=art / "index",
            metadata=art / "metadata",
            out=res / f"results/{name}.parquet",
            per_article=res / f"per_article/{name}.parquet",
        )
