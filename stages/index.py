"""index stage: the pool's embeddings -> the image index and its keys (build decisions only;
how it is searched is the `search` section, its recall the recall stage)."""

import sys
from pathlib import Path

from newsimg import index
from newsimg.params import IndexParams
from newsimg.stage import stage


@stage("index", inputs=["embeddings"], outputs=["out"])
def main(params: IndexParams, embeddings: Path, out: Path) -> None:
    index.build(params, embeddings=embeddings, out=out)


if __name__ == "__main__":
    sys.exit(main())
