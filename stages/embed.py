"""embed stage: fetch shards or N24News images -> per-unit float16 embeddings + keys."""

import sys
from pathlib import Path

from newsimg import embed
from newsimg.params import EmbedParams
from newsimg.stage import stage


@stage("embed", inputs=["images", "model"], outputs=["out"], options=["format"])
def main(params: EmbedParams, images: Path, model: Path, out: Path, format: str) -> None:
    embed.run(params, fmt=format, images=images, model=model, out=out)


if __name__ == "__main__":
    sys.exit(main())
