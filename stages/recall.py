"""recall stage: metrics/index.json, the index's recall@k against exact search for a seeded
sample of the articles' texts (base model) and of the pool's own images, searched with the
`search` section's settings."""

import sys
from pathlib import Path

from newsimg import recall
from newsimg.params import RecallParams, SearchParams
from newsimg.stage import stage


@stage("recall", inputs=["index", "articles", "model"], outputs=["metrics"], sections=["search"])
def main(
    params: RecallParams,
    index: Path,
    articles: Path,
    model: Path,
    metrics: Path,
    search: SearchParams,
) -> None:
    recall.run(params, search=search, index=index, articles=articles, model=model, out=metrics)


if __name__ == "__main__":
    sys.exit(main())
