"""metadata stage: YFCC manifest + metadata -> per-shard licences, credits and descriptions."""

import sys
from pathlib import Path

from newsimg.metadata import build
from newsimg.params import FetchParams, MetadataParams
from newsimg.stage import stage


@stage(
    "metadata",
    inputs=["manifest"],
    outputs=["out", "videos", "metrics"],
    options=["metadata"],
    sections=["fetch"],
)
def main(
    params: MetadataParams,
    manifest: Path,
    out: Path,
    videos: Path,
    metrics: Path,
    metadata: str,
    fetch: FetchParams,
) -> None:
    layout = build.Layout(fetch.shard_size, fetch.limit, fetch.skip_videos)
    build.run(params, layout, manifest, Path(metadata), out, videos, metrics)


if __name__ == "__main__":
    sys.exit(main())
