"""report stage: the HTML gallery of every approach's top images, and the MediaEval export."""

import sys
from pathlib import Path

from newsimg import report
from newsimg.params import ReportParams
from newsimg.stage import stage


@stage(
    "report",
    inputs=["articles", "results", "per_article", "shards"],
    outputs=["out", "submission"],
)
def main(
    params: ReportParams,
    articles: Path,
    results: Path,
    per_article: Path,
    shards: Path,
    out: Path,
    submission: Path,
) -> None:
    report.run(
        params, articles, sorted(results.glob("*.parquet")), shards, out, per_article, submission
    )


if __name__ == "__main__":
    sys.exit(main())
