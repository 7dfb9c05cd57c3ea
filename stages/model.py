"""model stage: params.model -> one self-contained Hugging Face CLIP folder."""

import sys
from pathlib import Path

from newsimg import clip
from newsimg.params import ModelParams
from newsimg.stage import stage


@stage("model", outputs=["out"])
def main(params: ModelParams, out: Path) -> None:
    clip.build(params, out)


if __name__ == "__main__":
    sys.exit(main())
