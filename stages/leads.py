"""leads stage: NewsImages CSV + saved pages -> articles.parquet with each article's lead."""

import sys
from pathlib import Path

from newsimg import leads
from newsimg.params import LeadsParams
from newsimg.stage import stage


@stage("leads", inputs=["articles", "html"], outputs=["out"])
def main(params: LeadsParams, articles: Path, html: Path, out: Path) -> None:
    leads.run(params, articles, html, out)


if __name__ == "__main__":
    sys.exit(main())
