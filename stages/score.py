"""score stage: recall@k and MRR of each article's original image, per approach."""

import sys
from pathlib import Path

from newsimg import metrics
from newsimg.params import ScoreParams
from newsimg.stage import stage


@stage("score", inputs=["articles", "results", "index"], outputs=["out", "plots"])
def main(
    params: ScoreParams, articles: Path, results: Path, index: Path, out: Path, plots: Path
) -> None:
    metrics.run(
        params, articles, sorted(results.glob("*.parquet")), index / "keys.parquet", out, plots
    )


if __name__ == "__main__":
    sys.exit(main())
