"""score stage: R@k, MRR, median rank, per set, subset and category, paired differences between
approaches, alignment, human ratings."""

import sys
from pathlib import Path

from newsimg import metrics
from newsimg.params import ScoreParams
from newsimg.stage import stage


@stage(
    "score",
    inputs=["articles", "results", "per_article", "index", "subsets"],
    outputs=["out", "plots"],
)
def main(
    params: ScoreParams,
    articles: Path,
    results: Path,
    per_article: Path,
    index: Path,
    subsets: Path,
    out: Path,
    plots: Path,
) -> None:
    metrics.run(
        params,
        articles,
        sorted(results.glob("*.parquet")),
        index / "keys.parquet",
        out,
        plots,
        per_article,
        subsets=subsets,
    )


if __name__ == "__main__":
    sys.exit(main())
