"""report stage: the HTML gallery of every approach's top images, and the MediaEval export,
each photo with its credit; under retrieve's licence policy, nothing it forbids."""

import sys
from pathlib import Path

from newsimg import report
from newsimg.params import ReportParams, RetrieveParams
from newsimg.stage import stage
from newsimg.submission import export as export_submission


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
    found = sorted(results.glob("*.parquet"))
    policy = {"metadata": metadata, "licences": retrieve.licences}
    report.gallery(
        params,
        articles=articles,
        results=found,
        shard_dir=shards,
        out=out,
        per_article=per_article,
        **policy,
    )
    export_submission(
        params, articles=articles, results=found, shard_dir=shards, out=submission, **policy
    )


if __name__ == "__main__":
    sys.exit(main())
