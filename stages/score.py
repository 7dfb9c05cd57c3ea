"""score stage: R@k, MRR, median rank, per set and category, alignment, human ratings."""

import sys
from pathlib import Path

from newsimg import metrics
from newsimg.params import ScoreParams
from newsimg.stage import stage


@stage("score", inputs=["articles", "results", "per_article", "index"], outputs=["out", "plots"])
def main(
    params: ScoreParams,
    articles: Path,
    results: Path,
    per_article: Path,
    index: Path,
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
    )


if __name__ == "__main__":
    sys.exit(main())
