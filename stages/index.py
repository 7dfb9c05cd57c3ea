"""index stage: the pool's embeddings -> the image index and its keys, plus metrics/index.json
(recall@10 against exact search for the articles' texts and for the pool's images)."""

import sys
from pathlib import Path

from newsimg import index
from newsimg.params import IndexParams
from newsimg.stage import stage


@stage("index", inputs=["embeddings", "articles", "model"], outputs=["out", "metrics"])
def main(
    params: IndexParams, embeddings: Path, articles: Path, model: Path, out: Path, metrics: Path
) -> None:
    index.run(params, embeddings, articles, model, out, metrics)


if __name__ == "__main__":
    sys.exit(main())
