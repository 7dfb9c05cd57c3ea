"""retrieve stage: one approach's top-k images for every article."""

import sys
from pathlib import Path

from newsimg import retrieve
from newsimg.params import RetrieveParams
from newsimg.stage import stage


@stage(
    "retrieve",
    inputs=["articles", "model", "encoder", "index"],
    outputs=["out"],
    options=["text"],
)
def main(
    params: RetrieveParams,
    articles: Path,
    model: Path,
    encoder: Path,
    index: Path,
    out: Path,
    text: str,
) -> None:
    retrieve.run(params, articles, text, model, encoder, index, out)


if __name__ == "__main__":
    sys.exit(main())
