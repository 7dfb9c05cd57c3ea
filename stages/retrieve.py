"""retrieve stage: one approach's top-k images for every article, and per article its predicted
category (LAM only) and the similarity of its original and of seeded random negatives."""

import sys
from pathlib import Path

from newsimg import retrieve
from newsimg.params import RetrieveParams
from newsimg.stage import stage


@stage(
    "retrieve",
    inputs=["articles", "model", "encoder", "index"],
    outputs=["out", "per_article"],
    options=["text"],
)
def main(
    params: RetrieveParams,
    articles: Path,
    model: Path,
    encoder: Path,
    index: Path,
    out: Path,
    per_article: Path,
    text: str,
) -> None:
    retrieve.run(params, articles, text, model, encoder, index, out, per_article)


if __name__ == "__main__":
    sys.exit(main())
