"""embed: one normalised float16 unit per chunk, unreadable images recorded, resume per unit."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
from PIL import Image

from newsimg import clip, embed
from newsimg.params import EmbedParams
from newsimg.sources import N24NEWS_FIELDS


def _n24news(root: Path, n: int = 5, broken: int = 2) -> list[str]:
    """A minimal N24News folder whose image ``broken`` is not an image."""
    (root / "news").mkdir(parents=True)
    (root / "imgs").mkdir()
    ids = [f"{i:04X}" for i in range(n)]
    for i, image_id in enumerate(ids):
        path = root / "imgs" / f"{image_id}.jpg"
        if i == broken:
            path.write_bytes(b"<html>not found</html>")
        else:
            Image.new("RGB", (80 + 10 * i, 60), (40 * i, 100, 200 - 30 * i)).save(path)
    for split in ("train", "dev", "test"):
        items = [
            {k: "x" for k in N24NEWS_FIELDS} | {"section": "Sports", "image_id": i} for i in ids
        ]
        (root / "news" / f"nytimes_{split}.json").write_text(json.dumps(items))
    return ids


def test_embed_records_unreadable_images_and_resumes(tmp_path: Path, tiny_model: Path) -> None:
    ids = _n24news(tmp_path / "n24")
    out = tmp_path / "emb"
    params = EmbedParams(batch_size=2, num_workers=0, accelerator="cpu", devices=1)
    embed.run(params, "n24news", tmp_path / "n24", tiny_model, out)

    vectors, keys = embed.load_embeddings(out)
    assert keys["key"].to_pylist() == [i for k, i in enumerate(ids) if k != 2]
    assert vectors.dtype == np.float16
    np.testing.assert_allclose(np.linalg.norm(vectors.astype(np.float32), axis=1), 1, atol=2e-3)
    skipped = pq.read_table(out / "n24news-00000.skipped.parquet").to_pylist()
    assert [r["key"] for r in skipped] == [ids[2]]
    assert skipped[0]["reason"].startswith("UnidentifiedImageError")

    # the same images through the encoding API give the same vectors
    model = clip.Clip(tiny_model)
    images = [Image.open(tmp_path / "n24" / "imgs" / f"{i}.jpg") for i in keys["key"].to_pylist()]
    np.testing.assert_allclose(vectors, model.encode_images(images), atol=2e-3)

    # a finished unit is not embedded again
    before = (out / "n24news-00000.npy").stat().st_mtime_ns
    embed.run(params, "n24news", tmp_path / "n24", tiny_model, out)
    assert (out / "n24news-00000.npy").stat().st_mtime_ns == before
