"""index stage: the pool's embeddings -> a FAISS index and its keys."""

import sys
from pathlib import Path

from newsimg import index
from newsimg.params import IndexParams
from newsimg.stage import stage


@stage("index", inputs=["embeddings"], outputs=["out"])
def main(params: IndexParams, embeddings: Path, out: Path) -> None:
    index.build(params, embeddings, out)


if __name__ == "__main__":
    sys.exit(main())
