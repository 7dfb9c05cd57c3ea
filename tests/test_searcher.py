"""The searcher: loaded once, per-call search settings, thread-safe, and no Lightning or DVC."""

from __future__ import annotations

import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import torch
from PIL import Image

from newsimg import index
from newsimg.alignment import LAM, LamConfig, save_lam
from newsimg.errors import InputError
from newsimg.params import IndexParams, SearchParams
from newsimg.searcher import Hit, Searcher
from tests.conftest import ROOT

HEAVY = ("pytorch_lightning", "lightning", "lightning_fabric", "dvc", "dvclive")
MODEL_LIBRARIES = ("torch", "transformers")


def test_the_search_path_imports_neither_lightning_nor_dvc() -> None:
    """In a fresh interpreter: the searcher, retrieval, the recall measurement and the CLI."""
    code = (
        "import sys\n"
        "import newsimg.searcher, newsimg.retrieve, newsimg.recall, newsimg.cli\n"
        f"print(sorted(m for m in sys.modules if m.split('.')[0] in {HEAVY!r}))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True
    )
    assert out.stdout.strip() == "[]"


def _run_fresh(code: str) -> str:
    out = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True
    )
    return out.stdout


def write_pool(folder: Path, x: np.ndarray) -> Path:
    """``x`` as embed writes it: float16 units (two), keys beside; row i has key ``k{i}``."""
    folder.mkdir(parents=True)
    half = len(x) // 2
    for u, (lo, hi) in enumerate([(0, half), (half, len(x))]):
        keys = pa.table({"key": [f"k{r}" for r in range(lo, hi)], "source": ["yfcc"] * (hi - lo)})
        pq.write_table(keys, folder / f"unit-{u}.keys.parquet")
        np.save(folder / f"unit-{u}.npy", x[lo:hi].astype(np.float16))
    return folder


def unit_rows(x: np.ndarray) -> np.ndarray:
    return (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32)


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory, tiny_model: Path) -> dict[str, Path]:
    """A 3,000-image pool of the tiny model's dimension, clustered; an exact and an IVF-PQ
    index over it, and a seeded LAM for the tiny model."""
    d = tmp_path_factory.mktemp("searcher")
    rng = np.random.default_rng(5)
    centres = unit_rows(rng.standard_normal((30, 256)))
    x = unit_rows(centres[rng.integers(0, 30, 3000)] + 0.8 * rng.standard_normal((3000, 256)) / 16)
    x = x.astype(np.float16).astype(np.float32)
    emb = write_pool(d / "emb", x)
    index.build(IndexParams(kind="exact"), embeddings=emb, out=d / "exact")
    index.build(
        IndexParams(kind="ivfpq", nlist=16, train_size=3000), embeddings=emb, out=d / "ivfpq"
    )
    torch.manual_seed(0)
    save_lam(LAM(LamConfig(width=256, dim=256, renormalize=True)).eval(), d / "lam")
    return {"dir": d, "emb": emb, "model": tiny_model, "lam": d / "lam"}


def test_exact_search_hits_and_pool_access(built: dict[str, Path]) -> None:
    s = Searcher(model=built["model"], index=built["dir"] / "exact")
    assert (s.ntotal, s.dim, s.has_lam) == (3000, 256, False)
    x = s.vectors(np.arange(3000))
    queries = s.encode_texts(["a red kite over a field", "the election results"])
    np.testing.assert_allclose(np.linalg.norm(queries, axis=1), 1, atol=1e-5)
    scores, rows = s.search(queries, 5)
    ref = queries @ x.T
    np.testing.assert_allclose(scores, np.take_along_axis(ref, rows, 1), atol=1e-5)
    np.testing.assert_array_equal(rows, np.argsort(-ref, axis=1, kind="stable")[:, :5])
    hits = s.hits(scores, rows, offset=10)
    assert [h.rank for h in hits[0]] == [11, 12, 13, 14, 15]
    first = hits[0][0]
    assert first == Hit(11, f"k{rows[0, 0]}", "yfcc", float(scores[0, 0]), int(rows[0, 0]))
    assert s.row_of("k1234") == 1234
    assert s.row_of("nope") is None
    # an image of the pool's own query vector finds itself first
    _, own = s.search(s.vectors(np.array([7, 2999])), 1)
    assert own[:, 0].tolist() == [7, 2999]


def test_lam_encoding_is_the_lam_and_needs_one(built: dict[str, Path]) -> None:
    base = Searcher(model=built["model"], index=built["dir"] / "exact")
    with pytest.raises(InputError, match="without a LAM"):
        base.encode_texts(["a dog"], lam=True)
    s = Searcher(model=built["model"], index=built["dir"] / "exact", lam=built["lam"])
    assert s.has_lam
    texts = ["a dog in the park", "stock markets fall"]
    vectors, categories = s.encode_texts_with_categories(texts, lam=True)
    with torch.no_grad():
        h, logits = s.lam(torch.from_numpy(s.clip.text_hidden(texts)))
    np.testing.assert_allclose(vectors, torch.nn.functional.normalize(h).numpy(), atol=1e-6)
    assert categories == [s.lam.config.classes[i] for i in logits.argmax(-1).tolist()]
    # the base encoding of a LAM searcher is still the base model's
    np.testing.assert_allclose(s.encode_texts(texts), base.encode_texts(texts), atol=1e-6)
    assert s.encode_texts_with_categories(texts)[1] == [None, None]


def test_image_queries_use_the_base_image_tower(built: dict[str, Path]) -> None:
    s = Searcher(model=built["model"], index=built["dir"] / "exact")
    rng = np.random.default_rng(0)
    images = [Image.fromarray(rng.integers(0, 255, (80, 90, 3), dtype=np.uint8)) for _ in "ab"]
    q = s.encode_images(images)
    np.testing.assert_allclose(q, s.clip.encode_images(images), atol=1e-6)
    np.testing.assert_allclose(np.linalg.norm(q, axis=1), 1, atol=1e-5)


def test_per_call_settings_leave_the_index_alone_and_threads_agree(
    built: dict[str, Path],
) -> None:
    """nprobe and rerank per call change IVF-PQ results without changing the defaults, and
    concurrent searches with different settings each return what a serial search returns."""
    s = Searcher(
        model=built["model"], index=built["dir"] / "ivfpq", settings=SearchParams(rerank=0)
    )
    queries = unit_rows(np.random.default_rng(1).standard_normal((120, 256)))
    settings = [(1, 0), (16, 0), (1, 200), (16, 3000)]
    serial = {p: s.search(queries, 10, nprobe=p[0], rerank=p[1]) for p in settings}
    assert not np.array_equal(serial[(1, 0)][1], serial[(16, 0)][1])  # nprobe matters
    default = s.search(queries, 10, nprobe=1)
    np.testing.assert_array_equal(default[1], serial[(1, 0)][1])  # rerank=0 from the settings
    ref = queries @ s.vectors(np.arange(3000)).T
    exact_top = np.sort(-ref, axis=1)[:, :10]
    full = serial[(16, 3000)]  # every list probed, every vector re-ranked
    np.testing.assert_allclose(full[0], -exact_top, atol=1e-5)
    jobs = settings * 6
    with ThreadPoolExecutor(max_workers=4) as pool:
        results = list(pool.map(lambda p: s.search(queries, 10, nprobe=p[0], rerank=p[1]), jobs))
    for p, (scores, rows) in zip(jobs, results, strict=True):
        np.testing.assert_array_equal(rows, serial[p][1])
        np.testing.assert_array_equal(scores, serial[p][0])
    # the loaded index itself was never re-parametrised
    np.testing.assert_array_equal(s.search(queries, 10, nprobe=1)[1], serial[(1, 0)][1])


def test_bad_inputs_are_named(built: dict[str, Path], tmp_path: Path) -> None:
    s = Searcher(model=built["model"], index=built["dir"] / "exact")
    with pytest.raises(InputError, match=r"expected \(n, 256\)"):
        s.search(np.zeros((2, 8), np.float32), 3)
    with pytest.raises(InputError, match="is not an index folder"):
        Searcher(model=built["model"], index=tmp_path)
    with pytest.raises(InputError, match=r"lam\.json is missing"):
        Searcher(model=built["model"], index=built["dir"] / "exact", lam=built["model"])


# --- the NumPy text tower -------------------------------------------------------------------------


def test_a_text_search_on_cpu_imports_neither_torch_nor_transformers(
    built: dict[str, Path],
) -> None:
    """In a fresh interpreter: `newsimg search` (LAM or not) loads, encodes, searches and prints
    on the NumPy tower; the modules it leaves out are named."""
    exact, model, lam = built["dir"] / "exact", built["model"], built["lam"]
    argv = ["search", "a red kite over a field", "--model", str(model), "--index", str(exact)]
    argv += ["--params", str(ROOT / "params.yaml"), "--metadata", str(built["dir"] / "none")]
    code = (
        "import sys\n"
        "from newsimg.cli import main\n"
        f"assert main({argv!r}) == 0\n"
        f"assert main({[*argv, '--lam', str(lam)]!r}) == 0\n"
        f"print(sorted(m for m in sys.modules if m.split('.')[0] in {MODEL_LIBRARIES + HEAVY!r}))\n"
    )
    lines = _run_fresh(code).splitlines()
    assert lines[-1] == "[]"
    assert lines[0] == "a red kite over a field"
    assert len([line for line in lines if line[:4].strip().isdigit()]) == 20  # 10 hits each


def test_numpy_tower_searches_as_the_torch_tower(built: dict[str, Path]) -> None:
    """The same query vectors (1e-5), LAM categories, hits and scores from either tower; `auto`
    picks NumPy on CPU; image queries still work (the torch image tower, loaded on demand)."""
    kw = dict(model=built["model"], index=built["dir"] / "exact", lam=built["lam"])
    ours = Searcher(**kw, text_tower="auto", device="cpu")
    theirs = Searcher(**kw, text_tower="torch", device="cpu")
    assert (ours.text_tower, theirs.text_tower) == ("numpy", "torch")
    assert ours._clip is None  # nothing in torch loaded yet
    texts = ["a red kite over a field", "stock markets fall " * 60, "", "the election results"]
    for lam in (False, True):
        q, categories = ours.encode_texts_with_categories(texts, lam=lam, batch_size=3)
        want_q, want_categories = theirs.encode_texts_with_categories(texts, lam=lam)
        np.testing.assert_allclose(q, want_q, atol=1e-5)
        assert categories == want_categories
        scores, rows = ours.search(q, 10)
        want_scores, want_rows = theirs.search(want_q, 10)
        np.testing.assert_array_equal(rows, want_rows)
        np.testing.assert_allclose(scores, want_scores, atol=1e-5)
    image = Image.fromarray(np.random.default_rng(0).integers(0, 255, (64, 64, 3), np.uint8))
    np.testing.assert_allclose(ours.encode_images([image]), theirs.encode_images([image]))


def test_cli_search_prints_the_torch_towers_hits(
    built: dict[str, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    """`newsimg search` (the NumPy tower on CPU) prints the torch tower's hits, key for key, and
    its scores to the 4 decimals printed."""
    from newsimg.cli import main

    text = "three red kites over a snowy harbour"
    torch_searcher = Searcher(model=built["model"], index=built["dir"] / "exact", device="cpu")
    scores, rows = torch_searcher.search(torch_searcher.encode_texts([text]), 5)
    want = torch_searcher.hits(scores, rows)[0]
    argv = ["search", text, "--model", str(built["model"]), "--index", str(built["dir"] / "exact")]
    argv += ["--params", str(ROOT / "params.yaml"), "--metadata", str(built["dir"] / "none")]
    capsys.readouterr()
    assert main([*argv, "-k", "5"]) == 0
    printed = [line.split() for line in capsys.readouterr().out.splitlines()[1:]]
    assert [p[3] for p in printed] == [h.key for h in want]
    np.testing.assert_allclose([float(p[1]) for p in printed], [h.score for h in want], atol=6e-5)


def test_text_tower_choice_is_named() -> None:
    from newsimg.searcher import choose_text_tower

    assert choose_text_tower("auto", "cuda:0", ROOT) == "torch"
    assert choose_text_tower("torch", "cpu", ROOT) == "torch"
    with pytest.raises(InputError, match=r"cannot read .*none/config\.json"):
        choose_text_tower("auto", "cpu", ROOT / "none")
    with pytest.raises(InputError, match="NumPy text tower runs on CPU only, not on cuda"):
        choose_text_tower("numpy", "cuda", ROOT)
    with pytest.raises(InputError, match="text tower 'jax'"):
        choose_text_tower("jax", "cpu", ROOT)  # type: ignore[arg-type]
