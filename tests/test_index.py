"""The image index (exact in memory, exact streamed, IVF-PQ re-ranked, auto) and retrieval."""

from __future__ import annotations

import json
from pathlib import Path

import faiss
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import torch

from newsimg import index, recall, retrieve
from newsimg.errors import ParamsError
from newsimg.params import IndexParams, RecallParams, RetrieveParams, SearchParams, load_section
from newsimg.searcher import Searcher
from newsimg.store.names import NEWSIMAGES
from tests.conftest import ROOT


def write_units(folder: Path, vectors: np.ndarray, sizes: list[int]) -> Path:
    """``vectors`` as embed.py writes them: float16 units of ``sizes`` rows, keys beside."""
    folder.mkdir(parents=True)
    start = 0
    for u, size in enumerate(sizes):
        rows = range(start, start + size)
        keys = pa.table({"key": [f"k{r}" for r in rows], "source": ["yfcc"] * size})
        pq.write_table(keys, folder / f"unit-{u:03d}.keys.parquet")
        np.save(folder / f"unit-{u:03d}.npy", vectors[start : start + size].astype(np.float16))
        start += size
    assert start == len(vectors)
    return folder


def unit_rows(x: np.ndarray) -> np.ndarray:
    return (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32)


def clustered(n: int, dim: int, clusters: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Unit vectors around random centres, and text-like queries: the same centres shifted by
    one common offset (a modality gap), so their scores are lower and closer together."""
    rng = np.random.default_rng(seed)
    centres = unit_rows(rng.standard_normal((clusters, dim)))
    noise = rng.standard_normal((n, dim)) / np.sqrt(dim)
    images = unit_rows(centres[rng.integers(0, clusters, n)] + 1.2 * noise)
    gap = unit_rows(rng.standard_normal((1, dim)))
    labels = rng.integers(0, clusters, 200)
    texts = centres[labels] + 1.5 * rng.standard_normal((200, dim)) / np.sqrt(dim) + gap
    return images.astype(np.float16).astype(np.float32), unit_rows(texts)


def assert_top_k(scores: np.ndarray, rows: np.ndarray, reference: np.ndarray, k: int) -> None:
    """(scores, rows) is a top ``k`` of the exact scores ``reference`` (nq, n): the rows' true
    scores, best first, ties by row; any tied rows may fill the last places."""
    np.testing.assert_allclose(np.take_along_axis(reference, rows, 1), scores, rtol=0, atol=1e-5)
    kth = -np.sort(-reference, axis=1)[:, k - 1]
    np.testing.assert_allclose(scores[:, -1], kth, rtol=0, atol=1e-5)
    for q in range(len(reference)):
        assert len(set(rows[q])) == k
        assert set(np.flatnonzero(reference[q] > kth[q] + 1e-5)) <= set(rows[q])
        order = np.lexsort((rows[q], -scores[q]))
        assert order.tolist() == list(range(k))


@pytest.fixture(scope="module")
def tied(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, np.ndarray, np.ndarray]:
    """Vectors of quarter-integers (exact in float16, their dot products exact in float32) with
    duplicated rows, so many scores tie exactly; three units of uneven sizes."""
    rng = np.random.default_rng(0)
    x = rng.integers(-2, 3, (300, 16)) / 4
    x[150:] = x[rng.integers(0, 150, 150)]  # every later row repeats an earlier one
    queries = (rng.integers(-2, 3, (25, 16)) / 4).astype(np.float32)
    folder = write_units(tmp_path_factory.mktemp("tied") / "emb", x, [130, 70, 100])
    return folder, x.astype(np.float32), queries


@pytest.mark.parametrize("memory_gb", [1.0, 1e-9], ids=["in-memory", "streamed"])
def test_exact_search_equals_brute_force(tied, tmp_path: Path, memory_gb: float) -> None:
    folder, x, queries = tied
    params = IndexParams(kind="exact", memory_gb=memory_gb)
    index.build(params, embeddings=folder, out=tmp_path / "index")
    images = index.load(tmp_path / "index", settings=SearchParams(block_rows=32))
    assert (images.flat is not None) == (memory_gb == 1.0)
    scores, rows = images.search(queries, 10)
    assert_top_k(scores, rows, queries @ x.T, 10)
    assert images.keys["key"].take(rows[0]).to_pylist() == [f"k{r}" for r in rows[0]]


def test_streamed_search_equals_in_memory(tmp_path: Path) -> None:
    rng = np.random.default_rng(1)
    x = unit_rows(rng.standard_normal((500, 32))).astype(np.float16)
    queries = unit_rows(rng.standard_normal((40, 32)))
    folder = write_units(tmp_path / "emb", x, [200, 199, 101])
    index.build(IndexParams(kind="exact"), embeddings=folder, out=tmp_path / "a")
    index.build(IndexParams(kind="exact", memory_gb=1e-9), embeddings=folder, out=tmp_path / "b")
    memory = index.load(tmp_path / "a")
    streamed = index.load(tmp_path / "b", settings=SearchParams(block_rows=64))
    assert memory.flat is not None
    assert streamed.flat is None
    s1, r1 = memory.search(queries, 25)
    s2, r2 = streamed.search(queries, 25)
    np.testing.assert_array_equal(r1, r2)
    np.testing.assert_allclose(s1, s2, rtol=0, atol=1e-6)


def faiss_knn(queries: np.ndarray, block: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    return faiss.knn(queries, block.astype(np.float32), k, metric=faiss.METRIC_INNER_PRODUCT)


def exact(images: index.Index, queries: np.ndarray, rows: np.ndarray) -> np.ndarray:
    return np.einsum("qd,qkd->qk", queries, images.vectors.take(rows))


def test_torch_kernel_equals_faiss(tied) -> None:
    """The GPU path's matmul + top-k, run on CPU tensors, finds what FAISS finds."""
    _, x, queries = tied
    blocks = [(0, x[:170]), (170, x[170:])]
    ref = queries @ x.T
    for knn in (faiss_knn, index.torch_knn(torch.device("cpu"))):
        scores, rows = index.blocked_search(queries, iter(blocks), 12, knn)
        assert_top_k(scores, rows, ref, 12)


def test_ivfpq_recall_with_reranking(tmp_path: Path) -> None:
    """On clustered data, IVF-PQ re-ranked by exact dot products keeps recall@10 >= 0.95 for
    text-like and image queries, and re-ranking never loses recall."""
    x, texts = clustered(20_000, 64, 100, seed=2)
    folder = write_units(tmp_path / "emb", x, [8000, 8000, 4000])
    params = IndexParams(kind="ivfpq", train_size=10_000)
    index.build(params, embeddings=folder, out=tmp_path / "index")
    images = index.load(tmp_path / "index", settings=SearchParams(nprobe=16, rerank=500))
    assert images.plan.factory == "IVF128,PQ16x4fs"
    assert images.bytes_per_vector < 4 * 64 / 8  # well under 1/8 of the float32 flat index
    queries = {"text": texts, "image": x[::200] + 0}
    for name, q in queries.items():
        truth, _ = images.search_exact(q, 10)
        scores, found = images.search(q, 10)
        reranked = recall.ann_recall(exact(images, q, found), truth)
        assert reranked >= 0.95, name
        assert (np.diff(scores, axis=1) <= 0).all()
        assert scores[:, 0] == pytest.approx(truth[:, 0], abs=1e-5)  # exact dot products
        found = images.search(q, 10, rerank=0)[1]
        plain = recall.ann_recall(exact(images, q, found), truth)
        assert reranked >= plain, name


def test_auto_choice() -> None:
    """The sample's pool (tiny model, ~2,080 x 256) is searched exactly with the shipped params;
    a budget below the flat size picks IVF-PQ for a large corpus."""
    shipped = load_section("index", ROOT / "params.yaml")
    assert index.choose(shipped, 2080, 256).kind == "exact"
    flat_gb = index.flat_bytes(1_000_000, 768) / index.GB
    plan = index.choose(IndexParams(memory_gb=flat_gb / 8), 1_000_000, 768)
    assert (plan.kind, plan.nlist, plan.pq_bytes) == ("ivfpq", 1024, 96)
    assert "exceeds index.memory_gb" in plan.reason
    # too small to train, or a budget even IVF-PQ exceeds: exact search streamed from disk
    assert index.choose(IndexParams(memory_gb=1e-6), 5000, 768).kind == "exact"
    assert index.choose(IndexParams(memory_gb=1e-3), 1_000_000, 768).kind == "exact"
    with pytest.raises(ParamsError, match="pq_subdim"):
        index.choose(IndexParams(kind="ivfpq", pq_subdim=5), 1_000_000, 768)


@pytest.fixture(scope="module")
def pool(tmp_path_factory: pytest.TempPathFactory, tiny_model: Path) -> dict[str, Path]:
    """Random pool embeddings of the tiny model's size, with four articles' originals."""
    d = tmp_path_factory.mktemp("pool")
    rng = np.random.default_rng(3)
    x = unit_rows(rng.standard_normal((300, 256)))
    emb = write_units(d / "emb", x, [150, 150])
    # make rows 0-3 the originals of the articles (source "newsimages")
    keys = pq.read_table(emb / "unit-000.keys.parquet").to_pydict()
    keys["source"][:4] = [NEWSIMAGES] * 4
    pq.write_table(pa.table(keys), emb / "unit-000.keys.parquet")
    texts = ["a red kite over a field", "the election results", "a flooded street", "football"]
    articles = pa.table(
        {
            "article_id": ["1", "2", "3", "4"],
            "image_id": ["k0", "k1", "k2", "k3"],
            "headline": texts,
            "headline_lead": [t + ": more words" for t in texts],
        }
    )
    pq.write_table(articles, d / "articles.parquet")
    return {"emb": emb, "articles": d / "articles.parquet", "model": tiny_model, "dir": d}


def test_recall_stage_measures_recall(pool: dict[str, Path]) -> None:
    d = pool["dir"]
    index.build(IndexParams(), embeddings=pool["emb"], out=d / "idx")
    recall.run(
        RecallParams(queries=3),
        search=SearchParams(),
        index=d / "idx",
        articles=pool["articles"],
        model=pool["model"],
        out=d / "m.json",
    )
    metrics = json.loads((d / "m.json").read_text())
    assert metrics["kind"] == "exact"
    assert metrics["n"] == 300
    assert metrics["recall@10_text"] == metrics["recall@10_image"] == 1.0
    assert metrics["queries_text"] == metrics["queries_image"] == 3


def test_retrieve_ranks_top_k(pool: dict[str, Path]) -> None:
    """Exactly k rows per article, ranks 1..k, scores non-increasing and equal to the cosine
    similarity of the query with the image; per-article scores of originals and negatives."""
    d = pool["dir"]
    index.build(IndexParams(), embeddings=pool["emb"], out=d / "index")
    images = index.load(d / "index")
    params = RetrieveParams(k=7, negatives=5)
    out, extra = d / "res.parquet", d / "per_article.parquet"
    result = retrieve.run(
        params,
        search=SearchParams(),
        articles=pool["articles"],
        text="headline",
        model=pool["model"],
        encoder=pool["model"],
        index=d / "index",
        out=out,
        per_article_out=extra,
    ).to_pydict()
    assert pq.read_table(out).to_pydict() == result
    assert len(result["rank"]) == 4 * 7
    searcher = Searcher(model=pool["model"], index=d / "index")
    queries = searcher.encode_texts(["a red kite over a field"])
    for i, article in enumerate(["1", "2", "3", "4"]):
        rows = slice(7 * i, 7 * (i + 1))
        assert result["article_id"][rows] == [article] * 7
        assert result["rank"][rows] == list(range(1, 8))
        assert result["score"][rows] == sorted(result["score"][rows], reverse=True)
    first = images.vectors.take(np.array([int(k[1:]) for k in result["key"][:7]])) @ queries[0]
    np.testing.assert_allclose(result["score"][:7], first, atol=1e-5)
    per_article = pq.read_table(extra).to_pydict()
    assert [len(n) for n in per_article["negative_keys"]] == [5] * 4
    assert not {"k0", "k1", "k2", "k3"} & {k for ks in per_article["negative_keys"] for k in ks}
    assert per_article["original_score"][0] == pytest.approx(
        float(images.vectors.take(np.array(0)) @ queries[0]), abs=1e-5
    )


def test_recall_counts_ties_with_the_kth_as_hits() -> None:
    truth = np.array([[0.9, 0.8, 0.7], [0.5, 0.5, 0.5]], np.float32)
    found = np.array([[0.9, 0.7, 0.6], [0.5, 0.5, 0.5]], np.float32)  # a tie of the 3rd counts
    assert recall.ann_recall(found, truth) == pytest.approx(5 / 6)
