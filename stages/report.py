"""report stage: the HTML gallery of every approach's top images, and the MediaEval export."""

import sys
from pathlib import Path

from newsimg import report
from newsimg.params import ReportParams, RetrieveParams
from newsimg.stage import stage


@stage(
    "report",
    inputs=["articles", "results", "per_article", "shards", "metadata"],
    outputs=["out", "submission"],
    sections=["retrieve"],
)
def main(
    params: ReportParams,
    articles: Path,
    results: Path,
    per_article: Path,
    shards: Path,
    metadata: Path,
    out: Path,
    submission: Path,
    retrieve: RetrieveParams,
) -> None:
    report.run(
        params,
        articles,
        sorted(results.glob("*.parquet")),
        shards,
        out,
        per_article,
        submission,
        metadata=metadata,
        licences=retrieve.licences,
    )


if __name__ == "__main__":
    sys.exit(main())
