"""report stage: the HTML gallery of every approach's top images, and the MediaEval export."""

import sys
from pathlib import Path

from newsimg import report
from newsimg.params import ReportParams
from newsimg.stage import stage
from newsimg.submission import export as export_submission


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
    found = sorted(results.glob("*.parquet"))
    report.gallery(
        params,
        articles=articles,
        results=found,
        shard_dir=shards,
        out=out,
        per_article=per_article,
    )
    export_submission(params, articles=articles, results=found, shard_dir=shards, out=submission)


if __name__ == "__main__":
    sys.exit(main())
