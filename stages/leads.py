"""leads stage: NewsImages CSV + page cache -> articles.parquet with each article's lead.

``--html`` is the page cache; dvc.yaml passes ``${leads.pages_dir}``. It must exist unless
``leads.download`` is true, in which case the stage creates and fills it first.
"""

import sys
from pathlib import Path

from newsimg import leads
from newsimg.params import LeadsParams
from newsimg.stage import stage


@stage("leads", inputs=["articles"], outputs=["out"], options=["html"])
def main(params: LeadsParams, articles: Path, html: str, out: Path) -> None:
    leads.run(params, articles, Path(html), out)


if __name__ == "__main__":
    sys.exit(main())
