"""report stage: the HTML gallery of every approach's top images."""

import sys
from pathlib import Path

from newsimg import report
from newsimg.params import ReportParams
from newsimg.stage import stage


@stage("report", inputs=["articles", "results", "shards"], outputs=["out"])
def main(params: ReportParams, articles: Path, results: Path, shards: Path, out: Path) -> None:
    report.run(params, articles, sorted(results.glob("*.parquet")), shards, out)


if __name__ == "__main__":
    sys.exit(main())
