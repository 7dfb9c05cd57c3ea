"""embed: normalised float16 units equal to the model's own features, unreadable images recorded,
DDP on 2 processes equal to 1, a killed run resumed equal to an uninterrupted one, and a re-run
that embeds only what changed."""

from __future__ import annotations

import io
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest
import yaml
from PIL import Image

from newsimg import clip, embed
from newsimg.errors import TooManyFailuresError
from newsimg.params import EmbedParams
from newsimg.sources import N24NEWS_FIELDS
from newsimg.store import shards
from tests.conftest import ROOT

PARAMS = EmbedParams(batch_size=4, num_workers=0, accelerator="cpu", devices=1)


def _image(rng: np.random.Generator, size: tuple[int, int] = (96, 72)) -> Image.Image:
    """Blocks of random colour, upscaled: content a JPEG keeps and a crop changes."""
    blocks = rng.integers(0, 256, (size[1] // 8, size[0] // 8, 3), np.uint8)
    return Image.fromarray(blocks).resize(size, Image.Resampling.BICUBIC)


def _jpeg(image: Image.Image) -> bytes:
    buf = io.BytesIO()
    image.save(buf, "JPEG", quality=90)
    return buf.getvalue()


def _write_shard(directory: Path, index: int, n: int, seed: int, broken: int = -1) -> None:
    """Fetch shard ``index`` of ``n`` seeded images; row ``broken`` holds bytes that are no JPEG."""
    rng = np.random.default_rng(seed)
    rows = [
        shards.ImageRow(
            key=f"k{index:02d}-{i:02d}",
            source="yfcc",
            photo_id=i,
            jpeg=b"<html>gone</html>" if i == broken else _jpeg(_image(rng)),
            width=96,
            height=72,
        )
        for i in range(n)
    ]
    shards.write_shard(directory, "yfcc", index, rows, [])


def _n24news(root: Path, n: int, broken: int = -1, fifo: int = -1) -> list[str]:
    """An N24News folder of ``n`` images; image ``broken`` is not an image and image ``fifo`` is a
    named pipe, whose read blocks until something writes to it."""
    (root / "news").mkdir(parents=True)
    (root / "imgs").mkdir()
    ids = [f"{i:04X}" for i in range(n)]
    rng = np.random.default_rng(7)
    for i, image_id in enumerate(ids):
        path = root / "imgs" / f"{image_id}.jpg"
        if i == broken:
            path.write_bytes(b"<html>not found</html>")
        elif i == fifo:
            os.mkfifo(path)
        else:
            _image(rng, (80 + 10 * (i % 5), 60)).save(path)
    for split in ("train", "dev", "test"):
        items = [
            {k: "x" for k in N24NEWS_FIELDS} | {"section": "Sports", "image_id": i} for i in ids
        ]
        (root / "news" / f"nytimes_{split}.json").write_text(json.dumps(items))
    return ids


def _outputs(out: Path) -> dict[str, np.ndarray]:
    """key -> embedding, over every unit of ``out``."""
    vectors, keys = embed.load_embeddings(out, mmap=False)
    return dict(zip(keys["key"].to_pylist(), vectors, strict=True))


def _stage(tmp: Path, params: dict, fmt: str, images: Path, model: Path, out: Path) -> list[str]:
    """The command line of the embed stage with its own params.yaml."""
    params_file = tmp / f"params-{out.name}.yaml"
    params_file.write_text(yaml.safe_dump({"embed": params}))
    script = ROOT / "stages" / "embed.py"
    paths = {"params": params_file, "images": images, "model": model, "out": out}
    return [sys.executable, str(script), "--format", fmt, *(f"--{k}={v}" for k, v in paths.items())]


def test_n24news_embeddings_are_the_models_features_and_unreadable_images_are_recorded(
    tmp_path: Path, tiny_model: Path
) -> None:
    ids = _n24news(tmp_path / "n24", 5, broken=2)
    out = tmp_path / "emb"
    params = PARAMS.model_copy(update={"max_skipped_rate": 0.2})
    summary = embed.run(params, "n24news", tmp_path / "n24", tiny_model, out)

    assert (summary["units"], summary["embedded"], summary["images"], summary["skipped"]) == (
        1,
        1,
        5,
        1,
    )
    assert json.loads((out / embed.SUMMARY).read_text()) == summary
    vectors, keys = embed.load_embeddings(out)
    assert keys["key"].to_pylist() == [i for k, i in enumerate(ids) if k != 2]
    assert vectors.dtype == np.float16
    np.testing.assert_allclose(np.linalg.norm(vectors.astype(np.float32), axis=1), 1, atol=2e-3)
    skipped = pq.read_table(out / "n24news-00000.skipped.parquet").to_pylist()
    assert [r["key"] for r in skipped] == [ids[2]]
    assert skipped[0]["reason"].startswith("UnidentifiedImageError")

    # the same images through the encoding API (exact preprocessing, float32): only the float16
    # rounding of the stored vectors differs
    model = clip.Clip(tiny_model)
    images = [Image.open(tmp_path / "n24" / "imgs" / f"{i}.jpg") for i in keys["key"].to_pylist()]
    np.testing.assert_allclose(vectors, model.encode_images(images), atol=1e-3)

    # a finished unit is not embedded again
    before = (out / "n24news-00000.npy").stat().st_mtime_ns
    summary = embed.run(params, "n24news", tmp_path / "n24", tiny_model, out)
    assert (summary["current"], summary["embedded"], summary["images"]) == (1, 0, 0)
    assert (out / "n24news-00000.npy").stat().st_mtime_ns == before

    # 1 of 5 unreadable is above a 10% threshold: the stage fails, after writing the unit
    with pytest.raises(TooManyFailuresError, match="1 of 5 images"):
        embed.run(PARAMS, "n24news", tmp_path / "n24", tiny_model, tmp_path / "strict")
    assert _outputs(tmp_path / "strict").keys() == _outputs(out).keys()


@pytest.fixture(scope="module")
def pool(tmp_path_factory: pytest.TempPathFactory, tiny_model: Path) -> tuple[Path, Path]:
    """Five small fetch shards (one image broken) and their embeddings by one process."""
    d = tmp_path_factory.mktemp("pool")
    for index in range(5):
        _write_shard(d / "shards", index, 6 + index, seed=index, broken=3 if index == 1 else -1)
    params = PARAMS.model_copy(update={"max_skipped_rate": 0.1})
    summary = embed.run(params, "shards", d / "shards", tiny_model, d / "one")
    assert (summary["embedded"], summary["images"], summary["skipped"]) == (5, 40, 1)
    return d / "shards", d / "one"


def test_two_ddp_processes_give_the_one_process_embeddings(
    tmp_path: Path, tiny_model: Path, pool: tuple[Path, Path]
) -> None:
    images, one = pool
    out = tmp_path / "two"
    params = {"accelerator": "cpu", "devices": 2, "batch_size": 4, "num_workers": 1}
    params |= {"max_skipped_rate": 0.1}
    cmd = _stage(tmp_path, params, "shards", images, tiny_model, out)
    subprocess.run(cmd, check=True, cwd=tmp_path, timeout=240)

    summary = json.loads((out / embed.SUMMARY).read_text())
    assert (summary["world"], summary["embedded"], summary["images"], summary["skipped"]) == (
        2,
        5,
        40,
        1,
    )
    expected, got = _outputs(one), _outputs(out)
    assert list(got) == list(expected)  # same keys, same order
    for key, vector in expected.items():
        np.testing.assert_array_equal(got[key], vector, err_msg=key)
    assert sorted(p.name for p in out.glob("*.skipped.parquet")) == ["yfcc-00001.skipped.parquet"]


def test_a_killed_run_resumes_to_the_uninterrupted_result(tmp_path: Path, tiny_model: Path) -> None:
    # 5 units of 3 images; the first image of unit 3 is a named pipe: the run blocks there, with
    # units 0-2 committed, and is killed
    root = tmp_path / "n24"
    ids = _n24news(root, 15, fifo=9)
    out = tmp_path / "resumed"
    params = {"accelerator": "cpu", "devices": 1, "batch_size": 2, "num_workers": 0}
    params |= {"unit_size": 3}
    proc = subprocess.Popen(_stage(tmp_path, params, "n24news", root, tiny_model, out))
    try:
        deadline = time.monotonic() + 120
        while len(embed.done_units(out)) < 3 and proc.poll() is None:
            assert time.monotonic() < deadline, "the run never reached the named pipe"
            time.sleep(0.05)
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    assert embed.done_units(out) == {f"n24news-{u:05d}" for u in range(3)}
    committed = {p.name: p.stat().st_mtime_ns for p in out.glob("*.npy")}

    pipe = root / "imgs" / f"{ids[9]}.jpg"
    pipe.unlink()
    _image(np.random.default_rng(9)).save(pipe)
    run_params = EmbedParams(**params)
    summary = embed.run(run_params, "n24news", root, tiny_model, out)
    assert (summary["current"], summary["embedded"], summary["images"]) == (3, 2, 6)
    after = {p.name: p.stat().st_mtime_ns for p in out.glob("*.npy")}
    assert after.items() >= committed.items()  # units 0-2 were not embedded again
    assert not list(out.glob(".*.tmp"))

    uninterrupted = embed.run(run_params, "n24news", root, tiny_model, tmp_path / "once")
    assert uninterrupted["embedded"] == 5
    expected, got = _outputs(tmp_path / "once"), _outputs(out)
    assert list(got) == list(expected) == ids
    for key, vector in expected.items():
        np.testing.assert_array_equal(got[key], vector, err_msg=key)


def test_a_rerun_embeds_only_new_or_changed_shards_and_all_for_a_new_model(
    tmp_path: Path, tiny_model: Path, pool: tuple[Path, Path]
) -> None:
    images, one = pool
    shard_dir, out = tmp_path / "shards", tmp_path / "emb"
    shutil.copytree(images, shard_dir)
    params = PARAMS.model_copy(update={"max_skipped_rate": 0.1})
    assert embed.run(params, "shards", shard_dir, tiny_model, out)["embedded"] == 5

    _write_shard(shard_dir, 5, 4, seed=5)  # a new shard
    summary = embed.run(params, "shards", shard_dir, tiny_model, out)
    assert (summary["units"], summary["current"], summary["embedded"], summary["images"]) == (
        6,
        5,
        1,
        4,
    )
    got = _outputs(out)
    for key, vector in _outputs(one).items():  # the old shards' vectors are those first written
        np.testing.assert_array_equal(got[key], vector, err_msg=key)
    before = {p.name: p.stat().st_mtime_ns for p in out.glob("*.npy")}

    _write_shard(shard_dir, 2, 8, seed=99)  # shard 2 refetched with other images
    (shard_dir / "yfcc-00004.parquet").unlink()  # shard 4 gone
    summary = embed.run(params, "shards", shard_dir, tiny_model, out)
    assert (summary["current"], summary["embedded"], summary["removed"]) == (4, 1, 1)
    after = {p.name: p.stat().st_mtime_ns for p in out.glob("*.npy")}
    assert sorted(after) == [f"yfcc-{i:05d}.npy" for i in (0, 1, 2, 3, 5)]
    assert [n for n in after if after[n] != before[n]] == ["yfcc-00002.npy"]
    assert not (out / "yfcc-00004.keys.parquet").exists()

    other = tmp_path / "other-model"
    clip.save_model(clip.make_tiny(1), other)
    summary = embed.run(params, "shards", shard_dir, other, out)
    assert (summary["current"], summary["embedded"]) == (0, 5)
    new = _outputs(out)
    old = _outputs(one)
    assert not np.allclose(new["k00-00"], old["k00-00"], atol=0.05)
