"""retrieve stage: one approach's top-k images for every article, and per article its predicted
category (LAM only) and the similarity of its original and of seeded random negatives.
``--encoder`` is the base ``--model`` folder itself or a LAM folder."""

import sys
from pathlib import Path

from newsimg import retrieve
from newsimg.params import RetrieveParams, SearchParams
from newsimg.stage import stage


@stage(
    "retrieve",
    inputs=["articles", "model", "encoder", "index", "metadata"],
    outputs=["out", "per_article"],
    options=["text"],
    sections=["search"],
)
def main(
    params: RetrieveParams,
    articles: Path,
    model: Path,
    encoder: Path,
    index: Path,
    metadata: Path,
    out: Path,
    per_article: Path,
    text: str,
    search: SearchParams,
) -> None:
    retrieve.run(
        params,
        search=search,
        articles=articles,
        text=text,
        model=model,
        encoder=encoder,
        index=index,
        out=out,
        per_article_out=per_article,
        metadata=metadata,
    )


if __name__ == "__main__":
    sys.exit(main())
