"""The image index over the pool's embeddings: exact, or approximate with exact re-ranking.

Kinds (``index.kind``):

- ``exact``: every query against every vector. When the float32 flat index fits
  ``index.memory_gb`` it is a FAISS ``IndexFlatIP`` held in memory; otherwise the search streams
  block by block over the memory-mapped float16 units of the embeddings folder.
- ``ivfpq``: FAISS ``IVF{nlist},PQ{m}x4fs`` (4-bit fast-scan PQ codes of m / 2 bytes; from
  65,536 lists up, an HNSW graph over the centroids) trained on a seeded sample, vectors added
  unit by unit. Its top ``index.rerank`` candidates are re-scored by exact dot products
  read from the memory-mapped float16 embeddings, which restores near-exact recall.
- ``auto``: one of the above from the corpus size, the dimension and ``index.memory_gb``.

Embeddings are L2-normalised, so inner product is cosine similarity, and for unit-norm database
vectors L2 distance ranks exactly like inner product: the IVF-PQ index is built with L2 (which
FAISS's k-means and fast-scan PQ handle best) and reports inner products.

Exact search in memory on CPU is FAISS's flat search; streamed blocks are searched by torch
matmul + top-k, on CUDA when present (faiss-gpu has no Hopper kernels), else on CPU, where it
measured faster than faiss.knn. Results are sorted by score, then row, so ties come out in one
order, and every path returns the same rows.

The folder written: ``index.json`` (the plan and the embeddings folder it searches),
``keys.parquet`` (key, source; row i is vector i), and ``index.faiss`` for ``ivfpq``.
"""

from __future__ import annotations

import json
import logging
import math
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass
from pathlib import Path

import faiss
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import torch

from newsimg.atomic import atomic_path, write_text
from newsimg.embed import done_units
from newsimg.errors import InputError, NewsimgError, ParamsError
from newsimg.params import IndexParams

log = logging.getLogger(__name__)

MANIFEST, KEYS, FAISS_FILE = "index.json", "keys.parquet", "index.faiss"
GB = 1024**3
MIN_IVFPQ_VECTORS = 10_000  # below this an approximate index is not worth training
HNSW_M = 32  # links per node of the coarse quantiser's graph
# Lists from which the centroids are searched through an HNSW graph, as FAISS's guidelines do
# for 10M-1B vectors. Below it a flat (batched matmul) quantiser is faster: on 1M x 768 with
# 1024 lists, the HNSW quantiser made the whole search 5-7x slower (bench/index.py).
HNSW_MIN_LISTS = 65_536
RECALL_K = 10  # recall@k of metrics/index.json
SCORE_BUDGET = 256 * 1024**2  # bytes of (queries, rows) scores held at once by a blocked search
# bytes of float32 candidate vectors re-scored at once: small enough to stay in the CPU's cache
# (1000 candidates of 768 dimensions, all queries at once: 2.5 ms per query; 8 MB: 1.2 ms)
RERANK_BUDGET = 8 * 1024**2
TIE_TOLERANCE = 1e-5  # scores closer than this are ties (float32 sums in another order differ)

# (queries (nq, d) float32, block (n, d), k) -> (scores (nq, k), rows (nq, k)) within the block
Knn = Callable[[np.ndarray, np.ndarray, int], tuple[np.ndarray, np.ndarray]]


@dataclass(frozen=True)
class Plan:
    """What :func:`build` makes, and why."""

    kind: str  # "exact" or "ivfpq"
    reason: str
    n: int
    dim: int
    nlist: int = 0  # ivfpq only
    pq_bytes: int = 0  # ivfpq only

    @property
    def factory(self) -> str:
        graph = f"_HNSW{HNSW_M}" if self.nlist >= HNSW_MIN_LISTS else ""
        return f"IVF{self.nlist}{graph},PQ{2 * self.pq_bytes}x4fs"


def flat_bytes(n: int, dim: int) -> int:
    """RAM of a float32 flat index."""
    return n * dim * 4


def ivfpq_bytes(n: int, dim: int, nlist: int, pq_bytes: int) -> int:
    """RAM of an IVF-PQ index: codes and ids per vector, the centroids (and their graph)."""
    graph = HNSW_M * 2 * 4 if nlist >= HNSW_MIN_LISTS else 0
    return n * (pq_bytes + 8) + nlist * (dim * 4 + graph)


def auto_nlist(n: int) -> int:
    """About sqrt(n) lists, rounded to a power of two (1M vectors -> 1024, 51.5M -> 8192)."""
    return 2 ** max(4, round(math.log2(math.sqrt(n))))


def choose(params: IndexParams, n: int, dim: int) -> Plan:
    """The index to build for ``n`` vectors of ``dim``, following ``params.kind``."""
    budget = params.memory_gb * GB
    flat = flat_bytes(n, dim)
    if params.kind == "exact":
        return Plan("exact", "index.kind = exact", n, dim)
    if params.kind == "auto" and flat <= budget:
        return Plan("exact", f"the flat index ({flat / GB:.3g} GB) fits index.memory_gb", n, dim)
    if params.kind == "auto" and n < MIN_IVFPQ_VECTORS:
        return Plan("exact", f"{n} vectors are too few to train an approximate index", n, dim)
    if dim % (2 * params.pq_subdim):
        raise ParamsError(
            f"index.pq_subdim = {params.pq_subdim}: dimension {dim} is not a multiple of "
            "2 x pq_subdim (4-bit codes are packed in pairs)"
        )
    nlist = params.nlist or auto_nlist(n)
    pq_bytes = dim // params.pq_subdim // 2
    size = ivfpq_bytes(n, dim, nlist, pq_bytes)
    if params.kind == "ivfpq":
        reason = "index.kind = ivfpq"
    elif size > budget:
        return Plan(
            "exact",
            f"neither the flat index ({flat / GB:.3g} GB) nor IVF-PQ ({size / GB:.3g} GB) fits "
            f"index.memory_gb = {params.memory_gb}: exact search streamed from disk",
            n,
            dim,
        )
    else:
        reason = (
            f"the flat index ({flat / GB:.3g} GB) exceeds index.memory_gb = {params.memory_gb}; "
            f"IVF-PQ takes {size / GB:.3g} GB"
        )
    return Plan("ivfpq", reason, n, dim, nlist, pq_bytes)


class Vectors:
    """The float16 units of an embeddings folder, memory-mapped; row i of the pool is the i-th
    row of the units in name order."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.names = sorted(done_units(folder))
        if not self.names:
            raise InputError(f"no embeddings in {folder}")
        self.units = [np.load(folder / f"{n}.npy", mmap_mode="r") for n in self.names]
        dims = {u.shape[1] for u in self.units}
        if len(dims) != 1:
            raise InputError(f"{folder}: units of different dimensions {sorted(dims)}")
        self.dim = dims.pop()
        self.starts = np.cumsum([0] + [len(u) for u in self.units])
        self.n = int(self.starts[-1])

    def keys(self) -> pa.Table:
        return pa.concat_tables(
            [pq.read_table(self.folder / f"{n}.keys.parquet") for n in self.names]
        )

    def blocks(self, rows: int) -> Iterator[tuple[int, np.ndarray]]:
        """(first row, float16 block of at most ``rows`` rows), unit by unit."""
        for start, unit in zip(self.starts, self.units, strict=False):
            for i in range(0, len(unit), rows):
                yield int(start) + i, unit[i : i + rows]

    def take(self, rows: np.ndarray) -> np.ndarray:
        """Rows (any shape of indices) as float32, read unit by unit in row order."""
        flat = rows.reshape(-1)
        order = np.argsort(flat, kind="stable")
        sorted_rows = flat[order]
        out = np.empty((len(flat), self.dim), np.float16)
        bounds = np.searchsorted(sorted_rows, self.starts)
        for u, unit in enumerate(self.units):
            lo, hi = bounds[u], bounds[u + 1]
            if hi > lo:
                out[order[lo:hi]] = unit[sorted_rows[lo:hi] - self.starts[u]]
        return to_float32(out).reshape(*rows.shape, self.dim)


def as_tensor(block: np.ndarray) -> torch.Tensor:
    """``block`` as a tensor without a copy, unless it is read-only (a memory-mapped block is:
    np.array reads it into a writable array, as torch wants)."""
    return torch.from_numpy(block if block.flags.writeable else np.array(block))


def to_float32(block: np.ndarray) -> np.ndarray:
    # torch converts float16 several times faster than numpy's astype
    return as_tensor(block).float().numpy()


def torch_knn(device: torch.device) -> Knn:
    """Matmul + top-k on ``device`` (CPU or CUDA tensors), float32."""

    def knn(queries: np.ndarray, block: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        q = torch.from_numpy(queries).to(device)
        b = as_tensor(block).to(device).float()
        scores, rows = (q @ b.T).topk(k, dim=1)  # (nq, n) -> (nq, k)
        return scores.cpu().numpy(), rows.cpu().numpy()

    return knn


def default_knn() -> Knn:
    """torch on CUDA, and on CPU too: on a streamed search's blocks, torch matmul + top-k ran
    twice as fast as faiss.knn on 2 CPU cores."""
    return torch_knn(torch.device("cuda" if torch.cuda.is_available() else "cpu"))


def sort_results(scores: np.ndarray, rows: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """The best ``k`` per query, by score descending then row ascending."""
    order = np.lexsort((rows, -scores), axis=1)[:, :k]
    return np.take_along_axis(scores, order, 1), np.take_along_axis(rows, order, 1)


def blocked_search(
    queries: np.ndarray,
    blocks: Iterator[tuple[int, np.ndarray]],
    k: int,
    knn: Knn,
) -> tuple[np.ndarray, np.ndarray]:
    """Exact top ``k`` of ``queries`` (nq, d) over blocks of rows, merged as they stream."""
    nq = len(queries)
    best = np.full((nq, 0), -np.inf, np.float32), np.zeros((nq, 0), np.int64)
    for start, block in blocks:
        scores, rows = knn(queries, block, min(k, len(block)))
        merged_scores = np.concatenate([best[0], scores], axis=1)
        merged_rows = np.concatenate([best[1], rows.astype(np.int64) + start], axis=1)
        best = sort_results(merged_scores, merged_rows, k)
    return best


class Index:
    """A built index: ``search(queries, k) -> (scores, rows)``, rows into ``keys``."""

    def __init__(self, folder: Path, embeddings: Path | None = None) -> None:
        self.manifest = json.loads((folder / MANIFEST).read_text())
        self.plan = Plan(**self.manifest["plan"])
        self.vectors = Vectors(embeddings or Path(self.manifest["embeddings"]))
        if self.vectors.n != self.plan.n:
            raise InputError(
                f"{self.vectors.folder} holds {self.vectors.n} vectors, the index {self.plan.n}: "
                "rebuild the index"
            )
        self.keys = pq.read_table(folder / KEYS)
        self.params = IndexParams(**self.manifest["params"])
        self.knn = default_knn()
        self.flat = None
        self.ann = None
        if self.plan.kind == "ivfpq":
            self.ann = faiss.read_index(str(folder / FAISS_FILE))
            settings = f"nprobe={self.params.nprobe}"
            if self.plan.nlist >= HNSW_MIN_LISTS:
                settings += f",quantizer_efSearch={max(2 * self.params.nprobe, 64)}"
            faiss.ParameterSpace().set_index_parameters(self.ann, settings)
        elif not torch.cuda.is_available() and self.fits_memory:
            self.flat = faiss.IndexFlatIP(self.plan.dim)
            for _, block in self.vectors.blocks(self.params.block_rows):
                self.flat.add(to_float32(block))

    @property
    def ntotal(self) -> int:
        return self.plan.n

    @property
    def bytes_per_vector(self) -> float:
        """RAM per vector while searching: the float32 flat index in memory, the IVF-PQ index,
        or, streaming exactly, the float16 embeddings read from disk."""
        if self.ann is not None:
            return (
                ivfpq_bytes(self.plan.n, self.plan.dim, self.plan.nlist, self.plan.pq_bytes)
                / self.plan.n
            )
        return (4 if self.fits_memory else 2) * self.plan.dim

    @property
    def fits_memory(self) -> bool:
        return flat_bytes(self.plan.n, self.plan.dim) <= self.params.memory_gb * GB

    def search(self, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        """Top ``k`` (at most the pool size) rows per query: (scores float32, rows int64)."""
        queries = np.ascontiguousarray(queries, dtype=np.float32)
        k = min(k, self.ntotal)
        if self.ann is not None:
            return self._search_ann(queries, k)
        if self.flat is not None:
            scores, rows = self.flat.search(queries, k)
            return sort_results(scores, rows, k)
        return self.search_exact(queries, k)

    def search_exact(self, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        """Brute force over the memory-mapped embeddings, whatever the index kind."""
        queries = np.ascontiguousarray(queries, dtype=np.float32)
        rows = max(1, min(self.params.block_rows, SCORE_BUDGET // (4 * max(1, len(queries)))))
        return blocked_search(queries, self.vectors.blocks(rows), min(k, self.ntotal), self.knn)

    def _search_ann(self, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        wanted = max(k, min(self.params.rerank, self.ntotal))
        dist, rows = self.ann.search(queries, wanted)
        if (rows[:, :k] < 0).any():
            raise NewsimgError(
                f"the IVF lists probed hold fewer than {k} vectors for some queries: "
                f"raise index.nprobe ({self.params.nprobe})"
            )
        if self.params.rerank == 0:
            # unit-norm vectors: |q - x|^2 = |q|^2 + 1 - 2 q.x
            ip = ((queries**2).sum(1, keepdims=True) + 1 - dist) / 2
            return sort_results(ip.astype(np.float32), rows, k)
        return self._rerank(queries, rows, k)

    def _rerank(
        self, queries: np.ndarray, candidates: np.ndarray, k: int
    ) -> tuple[np.ndarray, np.ndarray]:
        """Exact dot products with each query's candidate rows (-1: none), best ``k`` kept."""
        out_scores = np.empty((len(queries), k), np.float32)
        out_rows = np.empty((len(queries), k), np.int64)
        step = max(1, RERANK_BUDGET // (4 * self.plan.dim * candidates.shape[1]))
        for i in range(0, len(queries), step):
            rows = candidates[i : i + step]
            vectors = self.vectors.take(np.maximum(rows, 0))  # (b, r, d)
            scores = np.einsum("bd,brd->br", queries[i : i + step], vectors)
            scores[rows < 0] = -np.inf
            out_scores[i : i + step], out_rows[i : i + step] = sort_results(scores, rows, k)
        return out_scores, out_rows


def _train_sample(vectors: Vectors, size: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    rows = np.sort(rng.choice(vectors.n, size=min(size, vectors.n), replace=False))
    return vectors.take(rows)


def build_ivfpq(plan: Plan, params: IndexParams, vectors: Vectors) -> faiss.Index:
    """Train on a seeded sample, then add the units one by one (memory: one unit at a time)."""
    index = faiss.index_factory(plan.dim, plan.factory, faiss.METRIC_L2)
    t0 = time.perf_counter()
    index.train(_train_sample(vectors, params.train_size, params.seed))
    log.info("trained %s in %.1f s", plan.factory, time.perf_counter() - t0)
    for _, block in vectors.blocks(params.block_rows):
        index.add(to_float32(block))
    return index


def build(params: IndexParams, embeddings: Path, out: Path) -> Index:
    """Plan the index for ``embeddings`` (see :func:`choose`), build it and write ``out``."""
    vectors = Vectors(embeddings)
    plan = choose(params, vectors.n, vectors.dim)
    log.info("index: %s for %d x %d, because %s", plan.kind, plan.n, plan.dim, plan.reason)
    manifest = {"plan": asdict(plan), "params": params.model_dump(), "embeddings": str(embeddings)}
    with atomic_path(out) as tmp:
        tmp.mkdir()
        if plan.kind == "ivfpq":
            faiss.write_index(build_ivfpq(plan, params, vectors), str(tmp / FAISS_FILE))
        pq.write_table(vectors.keys(), tmp / KEYS)
        (tmp / MANIFEST).write_text(json.dumps(manifest, indent=2))
    return load(out)


def load(folder: Path, embeddings: Path | None = None) -> Index:
    """A built index; ``embeddings`` overrides the folder recorded at build time."""
    if not (folder / MANIFEST).is_file():
        raise InputError(f"{folder} is not an index folder (no {MANIFEST})")
    return Index(folder, embeddings)


def recall_at(found_scores: np.ndarray, truth_scores: np.ndarray) -> float:
    """Recall@k from exact scores: the share of found results (nq, k) scoring at least the k-th
    exact score of their query (truth (nq, k), best first), as ann-benchmarks counts.

    Images tied with the k-th are equally right answers: counting rows instead would charge an
    exact search with float rounding's choice among near-duplicates.
    """
    return float(np.mean(found_scores >= truth_scores[:, -1:] - TIE_TOLERANCE))


def exact_scores(images: Index, queries: np.ndarray, rows: np.ndarray) -> np.ndarray:
    """Exact dot products of each query (nq, d) with its found rows (nq, k)."""
    return np.einsum("qd,qkd->qk", queries, images.vectors.take(rows))


def measure(
    images: Index, text_queries: np.ndarray, image_queries: np.ndarray, k: int = RECALL_K
) -> dict:
    """Recall@k of the index against exact search, for text and for image queries."""
    out: dict = {"kind": images.plan.kind, "reason": images.plan.reason, "n": images.ntotal}
    out["bytes_per_vector"] = images.bytes_per_vector
    for name, queries in (("text", text_queries), ("image", image_queries)):
        t0 = time.perf_counter()
        _, found = images.search(queries, k)
        elapsed = time.perf_counter() - t0
        truth, _ = images.search_exact(queries, k)
        recall = recall_at(exact_scores(images, queries, found), truth)
        out[f"recall@{k}_{name}"] = round(recall, 4)
        out[f"queries_{name}"] = len(queries)
        log.info(
            "%s queries: recall@%d %.4f, %.0f queries/s",
            name,
            k,
            out[f"recall@{k}_{name}"],
            len(queries) / max(elapsed, 1e-9),
        )
    return out


def run(
    params: IndexParams,
    embeddings: Path,
    articles: Path,
    model: Path,
    out: Path,
    metrics: Path,
) -> dict:
    """The index stage: build, then measure recall@10 against exact search on a seeded sample of
    the articles' texts (encoded by the base model) and of the pool's own images."""
    from newsimg.clip import Clip, resolve_device  # the text model is only needed here

    images = build(params, embeddings, out)
    table = pq.read_table(articles, columns=[params.recall_text])
    rng = np.random.default_rng(params.seed)
    picked = rng.choice(table.num_rows, min(params.recall_queries, table.num_rows), replace=False)
    texts = table[params.recall_text].take(np.sort(picked)).to_pylist()
    text_queries = Clip(model, device=resolve_device()).encode_text(texts)
    rows = np.sort(
        rng.choice(images.ntotal, min(params.recall_queries, images.ntotal), replace=False)
    )
    result = measure(images, text_queries, images.vectors.take(rows))
    write_text(metrics, json.dumps(result, indent=2) + "\n")
    return result
