"""fetch stage: YFCC manifest + the articles' original images -> Parquet image shards."""

import sys
from pathlib import Path

from newsimg import fetch
from newsimg.params import FetchParams
from newsimg.stage import stage


@stage("fetch", inputs=["manifest", "newsimages"], outputs=["out"])
def main(params: FetchParams, manifest: Path, newsimages: Path, out: Path) -> None:
    fetch.run(params, manifest=manifest, newsimages=newsimages, out=out)


if __name__ == "__main__":
    sys.exit(main())
