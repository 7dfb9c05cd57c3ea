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
    also=["fetch"],
)
def main(
    params: MetadataParams,
    manifest: Path,
    out: Path,
    videos: Path,
    metrics: Path,
    metadata: str,
    fetch_params: FetchParams,
) -> None:
    layout = build.Layout(fetch_params.shard_size, fetch_params.limit, fetch_params.skip_videos)
    build.run(params, layout, manifest, Path(metadata), out, videos, metrics)


if __name__ == "__main__":
    sys.exit(main())
