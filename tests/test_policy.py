"""The licence policy inside the search: results equal an exact search over the allowed rows.

Real FAISS indexes (flat in memory, streamed exact, IVF-PQ re-ranked) over clustered vectors;
the reference is a brute-force search over the allowed rows only.
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import numpy as np
import pytest

from newsimg import index
from newsimg.errors import ParamsError
from newsimg.params import IndexParams, RetrieveParams, SearchParams, parse_section
from newsimg.retrieve import negative_rows
from tests.test_index import assert_top_k, clustered, write_units

N, DIM, K = 3000, 32, 20


@pytest.fixture(scope="module")
def pool(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, np.ndarray, np.ndarray]:
    images, texts = clustered(N, DIM, 12, seed=5)
    folder = write_units(tmp_path_factory.mktemp("policy") / "emb", images, [1000, 1200, 800])
    return folder, images, texts[:40]


def _reference(images: np.ndarray, texts: np.ndarray, allowed: np.ndarray) -> np.ndarray:
    """Exact scores with the forbidden rows at -inf: its top k is the allowed rows' top k."""
    scores = texts @ images.T
    scores[:, ~allowed] = -np.inf
    return scores


def _mask(share: float, seed: int) -> np.ndarray:
    return np.random.default_rng(seed).random(N) < share


@pytest.mark.parametrize("memory_gb", [64.0, 1e-9])  # flat in memory, streamed from disk
def test_exact_search_filters_inside_the_search(pool, tmp_path: Path, memory_gb: float) -> None:
    folder, images, texts = pool
    index.build(IndexParams(kind="exact", memory_gb=memory_gb), embeddings=folder, out=tmp_path)
    found = index.load(tmp_path, settings=SearchParams(block_rows=500))
    for share in (0.3, 0.02):
        allowed = _mask(share, 1)
        scores, rows = found.search(texts, K, allowed=allowed)
        assert rows.shape == (len(texts), K)  # the full top k, of allowed rows only
        assert allowed[rows].all()
        assert_top_k(scores, rows, _reference(images, texts, allowed), K)


def test_ivfpq_with_reranking_equals_exact_over_the_allowed_rows(pool, tmp_path: Path) -> None:
    folder, images, texts = pool
    index.build(
        IndexParams(kind="ivfpq", nlist=16, train_size=3000), embeddings=folder, out=tmp_path
    )
    # re-ranking every candidate of all lists: the exact answer over the allowed rows
    found = index.load(tmp_path, settings=SearchParams(nprobe=16, rerank=N))
    allowed = _mask(0.3, 2)
    stats: Counter[str] = Counter()
    scores, rows = found.search(texts, K, allowed=allowed, stats=stats)
    assert allowed[rows].all()
    assert_top_k(scores, rows, _reference(images, texts, allowed), K)
    assert (stats["queries"], stats["widened"]) == (len(texts), 0)


def test_ivfpq_widens_its_lists_until_k_allowed_remain(pool, tmp_path: Path) -> None:
    folder, images, texts = pool
    index.build(
        IndexParams(kind="ivfpq", nlist=16, train_size=3000), embeddings=folder, out=tmp_path
    )
    found = index.load(tmp_path, settings=SearchParams(nprobe=1, rerank=N))
    allowed = np.zeros(N, bool)
    allowed[np.random.default_rng(3).choice(N, 2 * K, replace=False)] = True  # 40 rows in all
    stats: Counter[str] = Counter()
    scores, rows = found.search(texts, K, allowed=allowed, stats=stats)
    assert rows.shape == (len(texts), K)
    assert (rows >= 0).all()
    assert allowed[rows].all()
    assert stats["widened"] > 0  # one list of 16 seldom holds 20 of the 40 allowed rows
    assert stats["widen_rounds"] >= 1
    # the lists nearest the query hold most of its allowed neighbours
    reference = _reference(images, texts, allowed)
    exact = np.argsort(-reference, axis=1, kind="stable")[:, :K]
    recall = np.mean([len(set(a) & set(b)) / K for a, b in zip(rows, exact, strict=True)])
    assert recall > 0.6, recall
    np.testing.assert_allclose(np.take_along_axis(reference, rows, 1), scores, atol=1e-5)
    without: Counter[str] = Counter()
    found.search(texts, K, stats=without)
    assert without["widened"] == 0


def test_fewer_allowed_rows_than_k_gives_them_all(pool, tmp_path: Path) -> None:
    folder, _images, texts = pool
    index.build(IndexParams(kind="exact"), embeddings=folder, out=tmp_path)
    found = index.load(tmp_path)
    allowed = np.zeros(N, bool)
    allowed[[5, 17, 2999]] = True
    _, rows = found.search(texts[:3], K, allowed=allowed)
    assert sorted(rows[0].tolist()) == [5, 17, 2999]
    _scores, rows = found.search(texts[:3], K, allowed=np.zeros(N, bool))
    assert rows.shape == (3, 0)


def test_negatives_are_drawn_from_allowed_rows_only() -> None:
    allowed = _mask(0.1, 4)
    rows = negative_rows("42", N, {0, 1, 2}, 20, seed=0, allowed=allowed)
    assert len(set(rows.tolist())) == 20
    assert allowed[rows].all()
    assert not {0, 1, 2} & set(rows.tolist())
    # without a policy: the seeded negatives of before
    assert (
        negative_rows("42", N, {0, 1, 2}, 20, seed=0) == negative_rows("42", N, {0, 1, 2}, 20, 0)
    ).all()


def test_policy_params_are_validated() -> None:
    assert RetrieveParams().licences is None
    assert RetrieveParams(licences=["by", "by-sa"]).licences == ["by", "by-sa"]
    with pytest.raises(ParamsError, match=r"retrieve.licences.0 = 'cc0'"):
        parse_section("retrieve", {"licences": ["cc0"]})
    with pytest.raises(ParamsError, match="lists a licence twice"):
        parse_section("retrieve", {"licences": ["by", "by"]})
