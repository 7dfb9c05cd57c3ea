"""train stage: the LAM fine-tune on N24News, logged with DVCLive."""

import sys
from pathlib import Path

from newsimg import lam
from newsimg.params import TrainParams
from newsimg.stage import stage


@stage("train", inputs=["n24news", "embeddings", "model"], outputs=["out", "live"])
def main(
    params: TrainParams, n24news: Path, embeddings: Path, model: Path, out: Path, live: Path
) -> None:
    lam.run(params, n24news=n24news, embeddings=embeddings, model=model, out=out, live=live)


if __name__ == "__main__":
    sys.exit(main())
