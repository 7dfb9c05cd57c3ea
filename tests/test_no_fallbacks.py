"""Each former silent fallback is now an error that names the problem.

- an encoder folder without a LAM meant the base model (a broken LAM output was scored as
  headline_lead): now retrieve and the searcher name the missing or invalid file;
- any ``embed --format`` other than ``shards`` meant N24News: now exit code 2 naming it.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import torch
import yaml

from newsimg import index, retrieve
from newsimg.alignment import LAM, LamConfig, load_lam, save_lam
from newsimg.errors import InputError
from newsimg.params import IndexParams, RetrieveParams, SearchParams
from tests.conftest import load_stage


@pytest.fixture(scope="module")
def pool(tmp_path_factory: pytest.TempPathFactory, tiny_model: Path) -> dict[str, Path]:
    d = tmp_path_factory.mktemp("fallbacks")
    emb = d / "emb"
    emb.mkdir()
    x = np.random.default_rng(0).standard_normal((40, 256)).astype(np.float32)
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    np.save(emb / "u.npy", x.astype(np.float16))
    pq.write_table(pa.table({"key": [f"k{i}" for i in range(40)], "source": ["yfcc"] * 40}),
                   emb / "u.keys.parquet")  # fmt: skip
    index.build(IndexParams(), embeddings=emb, out=d / "index")
    articles = pa.table({"article_id": ["1"], "image_id": ["k0"], "headline": ["a kite"]})
    pq.write_table(articles, d / "articles.parquet")
    torch.manual_seed(0)
    save_lam(LAM(LamConfig(width=256, dim=256)), d / "lam")
    return {"dir": d, "model": tiny_model, "index": d / "index", "lam": d / "lam"}


def retrieve_with(pool: dict[str, Path], encoder: Path) -> None:
    d = pool["dir"]
    retrieve.run(
        RetrieveParams(k=3, negatives=2),
        search=SearchParams(),
        articles=d / "articles.parquet",
        text="headline",
        model=pool["model"],
        encoder=encoder,
        index=pool["index"],
        out=d / "out.parquet",
        per_article_out=d / "per.parquet",
    )


def test_a_folder_without_a_lam_is_not_the_base_model(pool: dict[str, Path]) -> None:
    empty = pool["dir"] / "not-a-lam"
    empty.mkdir()
    with pytest.raises(InputError, match=r"not-a-lam is not a LAM folder: .*lam\.json is missing"):
        retrieve_with(pool, empty)
    assert not (pool["dir"] / "out.parquet").exists()
    retrieve_with(pool, pool["lam"])  # the real LAM works, and the base model folder itself
    retrieve_with(pool, pool["model"])


def test_an_invalid_lam_is_an_error_naming_the_file(pool: dict[str, Path], tmp_path: Path) -> None:
    broken = tmp_path / "lam"
    shutil.copytree(pool["lam"], broken)
    (broken / "lam.safetensors").unlink()
    with pytest.raises(InputError, match=r"lam\.safetensors is missing"):
        load_lam(broken)
    shutil.copy(pool["lam"] / "lam.safetensors", broken)
    (broken / "lam.json").write_text("{not json")
    with pytest.raises(InputError, match=r"lam\.json is not valid JSON"):
        load_lam(broken)
    (broken / "lam.json").write_text(json.dumps({"width": 256}))
    with pytest.raises(InputError, match="expected the keys"):
        load_lam(broken)
    config = json.loads((pool["lam"] / "lam.json").read_text())
    (broken / "lam.json").write_text(json.dumps({**config, "width": 128}))
    with pytest.raises(InputError, match=r"the weights do not fit lam\.json"):
        load_lam(broken)
    (broken / "lam.json").write_text(json.dumps(config))
    (broken / "lam.safetensors").write_bytes(b"\0" * 16)
    with pytest.raises(InputError, match="not a readable safetensors file"):
        load_lam(broken)


def test_an_unknown_embed_format_is_exit_code_2(
    pool: dict[str, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    params = tmp_path / "params.yaml"
    params.write_text(yaml.safe_dump({"embed": {"accelerator": "cpu", "devices": 1}}))
    out = tmp_path / "out"
    argv = ["--params", str(params), "--format", "n24", "--images", str(tmp_path)]
    argv += ["--model", str(pool["model"]), "--out", str(out)]
    assert load_stage("embed").main(argv) == 2
    assert "embed --format 'n24': expected one of shards, n24news" in capsys.readouterr().err
    assert not out.exists()
