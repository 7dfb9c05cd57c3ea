"""The image index over the pool's embeddings: exact, or approximate with exact re-ranking.

Kinds (``index.kind``):

- ``exact``: every query against every vector. When the float32 flat index fits
  ``index.memory_gb`` it is a FAISS ``IndexFlatIP`` held in memory; otherwise the search streams
  block by block over the memory-mapped float16 units of the embeddings folder.
- ``ivfpq``: FAISS ``IVF{nlist},PQ{m}x4fs`` (4-bit fast-scan PQ codes of m / 2 bytes; from
  65,536 lists up, an HNSW graph over the centroids) trained on a seeded sample, vectors added
  unit by unit. Its top ``search.rerank`` candidates are re-scored by exact dot products
  read from the memory-mapped float16 embeddings, which restores near-exact recall.
- ``auto``: one of the above from the corpus size, the dimension and ``index.memory_gb``.

Embeddings are L2-normalised, so inner product is cosine similarity, and for unit-norm database
vectors L2 distance ranks exactly like inner product: the IVF-PQ index is built with L2 (which
FAISS's k-means and fast-scan PQ handle best) and reports inner products.

Exact search in memory on CPU is FAISS's flat search; streamed blocks are searched by torch
matmul + top-k, on CUDA when present (faiss-gpu has no Hopper kernels), else on CPU, where it
measured faster than faiss.knn. torch is imported by the first streamed search, not on import or
load, so a search of an in-memory or IVF-PQ index on CPU never imports it. Results are sorted
by score, then row, so ties come out in one order, and every path returns the same rows.

The folder's format is :mod:`newsimg.store.index_files`; it records only what building decided.
Search-time settings (``search.nprobe``, ``search.rerank``, ``search.block_rows``) are given to
:class:`Index` when it is loaded and may be overridden per call, so changing them never rebuilds
the index. Searching is read-only: one loaded :class:`Index` serves concurrent threads (FAISS
settings go per call through ``SearchParametersIVF``, never set on the shared index).
"""

from __future__ import annotations

import logging
import math
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import faiss
import numpy as np

from newsimg.devices import cuda_available, default_device
from newsimg.errors import InputError, NewsimgError, ParamsError
from newsimg.params import IndexParams, SearchParams
from newsimg.store import index_files
from newsimg.store.units import Vectors, to_float32

if TYPE_CHECKING:
    import torch

log = logging.getLogger(__name__)

GB = 1024**3
MIN_IVFPQ_VECTORS = 10_000  # below this an approximate index is not worth training
HNSW_M = 32  # links per node of the coarse quantiser's graph
# Lists from which the centroids are searched through an HNSW graph, as FAISS's guidelines do
# for 10M-1B vectors. Below it a flat (batched matmul) quantiser is faster: on 1M x 768 with
# 1024 lists, the HNSW quantiser made the whole search 5-7x slower (bench/index.py).
HNSW_MIN_LISTS = 65_536
ADD_ROWS = 65_536  # rows per block added to an index while building it
SCORE_BUDGET = 256 * 1024**2  # bytes of (queries, rows) scores held at once by a blocked search
# bytes of float32 candidate vectors re-scored at once: small enough to stay in the CPU's cache
# (1000 candidates of 768 dimensions, all queries at once: 2.5 ms per query; 8 MB: 1.2 ms)
RERANK_BUDGET = 8 * 1024**2

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
    in_memory: bool = False  # exact: the float32 flat index fits index.memory_gb

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
    fits = flat <= budget
    if params.kind == "exact":
        return Plan("exact", "index.kind = exact", n, dim, in_memory=fits)
    if params.kind == "auto" and fits:
        reason = f"the flat index ({flat / GB:.3g} GB) fits index.memory_gb"
        return Plan("exact", reason, n, dim, in_memory=True)
    if params.kind == "auto" and n < MIN_IVFPQ_VECTORS:
        reason = f"{n} vectors are too few to train an approximate index"
        return Plan("exact", reason, n, dim, in_memory=fits)
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


def as_tensor(block: np.ndarray) -> torch.Tensor:
    """``block`` as a tensor without a copy, unless it is read-only (a memory-mapped block is:
    np.array reads it into a writable array, as torch wants)."""
    import torch

    return torch.from_numpy(block if block.flags.writeable else np.array(block))


def torch_knn(device: torch.device) -> Knn:
    """Matmul + top-k on ``device`` (CPU or CUDA tensors), float32."""
    import torch

    def knn(queries: np.ndarray, block: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        q = torch.from_numpy(queries).to(device)
        b = as_tensor(block).to(device).float()
        scores, rows = (q @ b.T).topk(k, dim=1)  # (nq, n) -> (nq, k)
        return scores.cpu().numpy(), rows.cpu().numpy()

    return knn


def default_knn() -> Knn:
    """torch on CUDA, and on CPU too: on a streamed search's blocks, torch matmul + top-k ran
    twice as fast as faiss.knn on 2 CPU cores. torch is imported on the first call."""
    chosen: list[Knn] = []

    def knn(queries: np.ndarray, block: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        if not chosen:
            import torch

            chosen.append(torch_knn(torch.device(default_device())))
        return chosen[0](queries, block, k)

    return knn


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


def filtered_search(
    queries: np.ndarray,
    blocks: Iterator[tuple[int, np.ndarray]],
    allowed: np.ndarray,
    k: int,
    knn: Knn,
) -> tuple[np.ndarray, np.ndarray]:
    """:func:`blocked_search` over the ``allowed`` rows of each block only."""

    def kept() -> Iterator[tuple[np.ndarray, np.ndarray]]:
        for start, block in blocks:
            rows = np.flatnonzero(allowed[start : start + len(block)])
            if len(rows):
                yield rows + start, np.asarray(block[rows])

    nq = len(queries)
    best = np.full((nq, 0), -np.inf, np.float32), np.zeros((nq, 0), np.int64)
    for row_ids, block in kept():
        scores, rows = knn(queries, block, min(k, len(block)))
        merged_scores = np.concatenate([best[0], scores], axis=1)
        merged_rows = np.concatenate([best[1], row_ids[rows]], axis=1)
        best = sort_results(merged_scores, merged_rows, k)
    return best


class Index:
    """A built index: ``search(queries, k) -> (scores, rows)``, rows into ``keys``.

    ``settings``: the search-time defaults (``search`` section); ``embeddings`` overrides the
    folder recorded at build time.
    """

    def __init__(
        self, folder: Path, *, settings: SearchParams, embeddings: Path | None = None
    ) -> None:
        self.manifest = index_files.read_manifest(folder)
        self.plan = Plan(**self.manifest["plan"])
        self.settings = settings
        self.vectors = Vectors(embeddings or Path(self.manifest["embeddings"]))
        if self.vectors.n != self.plan.n:
            raise InputError(
                f"{self.vectors.folder} holds {self.vectors.n} vectors, the index {self.plan.n}: "
                "rebuild the index"
            )
        self.keys = index_files.read_keys(folder)
        self.knn = default_knn()
        self.flat = None
        self.ann = None
        if self.plan.kind == "ivfpq":
            self.ann = index_files.read_ann(folder)
        elif not cuda_available() and self.plan.in_memory:
            self.flat = faiss.IndexFlatIP(self.plan.dim)
            for _, block in self.vectors.blocks(ADD_ROWS):
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
        return (4 if self.plan.in_memory else 2) * self.plan.dim

    def search(
        self,
        queries: np.ndarray,
        k: int,
        *,
        nprobe: int | None = None,
        rerank: int | None = None,
        allowed: np.ndarray | None = None,
        stats: Counter[str] | None = None,
    ) -> tuple[np.ndarray, np.ndarray]:
        """Top ``k`` (at most the pool size) rows per query: (scores float32, rows int64), by
        score descending then row. ``nprobe``/``rerank``: this call's IVF-PQ settings (default:
        ``settings``); exact indexes ignore them.

        ``allowed`` (bool per row, a licence policy): only those rows are returned, still ``k``
        of them (at most as many as are allowed). Exact search filters inside the search; IVF-PQ
        scans only allowed ids of the lists it probes and, for a query whose lists hold fewer
        than ``k`` allowed vectors, doubles ``nprobe`` until they do: ``stats["widened"]``
        counts those queries, ``stats["widen_rounds"]`` the extra searches.
        """
        queries = np.ascontiguousarray(queries, dtype=np.float32)
        if allowed is not None:
            allowed = np.asarray(allowed, dtype=bool)
            if allowed.shape != (self.ntotal,):
                raise InputError(f"allowed has shape {allowed.shape}, the pool {self.ntotal} rows")
            k = min(k, int(allowed.sum()))
            if k == 0:
                return np.zeros((len(queries), 0), np.float32), np.zeros(
                    (len(queries), 0), np.int64
                )
        k = min(k, self.ntotal)
        if self.ann is not None:
            nprobe = self.settings.nprobe if nprobe is None else nprobe
            rerank = self.settings.rerank if rerank is None else rerank
            if allowed is not None:
                return self._search_ann_allowed(queries, k, nprobe, rerank, allowed, stats)
            return self._search_ann(queries, k, nprobe, rerank)
        if self.flat is not None:
            params = None
            if allowed is not None:
                bitmap = np.packbits(allowed, bitorder="little")  # referenced by the selector
                selector = faiss.IDSelectorBitmap(len(allowed), faiss.swig_ptr(bitmap))
                params = faiss.SearchParameters(sel=selector)
            scores, rows = self.flat.search(queries, k, params=params)
            return sort_results(scores, rows, k)
        return self.search_exact(queries, k, allowed=allowed)

    def search_exact(
        self, queries: np.ndarray, k: int, *, allowed: np.ndarray | None = None
    ) -> tuple[np.ndarray, np.ndarray]:
        """Brute force over the memory-mapped embeddings, whatever the index kind; with
        ``allowed``, over the allowed rows only."""
        queries = np.ascontiguousarray(queries, dtype=np.float32)
        block = self.settings.block_rows
        rows = max(1, min(block, SCORE_BUDGET // (4 * max(1, len(queries)))))
        blocks = self.vectors.blocks(rows)
        if allowed is None:
            return blocked_search(queries, blocks, min(k, self.ntotal), self.knn)
        return filtered_search(queries, blocks, allowed, min(k, int(allowed.sum())), self.knn)

    def _search_ann(
        self,
        queries: np.ndarray,
        k: int,
        nprobe: int,
        rerank: int,
        selector: faiss.IDSelector | None = None,
    ) -> tuple[np.ndarray, np.ndarray]:
        wanted = max(k, min(rerank, self.ntotal))
        # per-call parameters: the shared index is never modified, so threads may search at once
        params = faiss.SearchParametersIVF(nprobe=nprobe)
        if selector is not None:
            params.sel = selector
        quantizer = None
        if self.plan.nlist >= HNSW_MIN_LISTS:
            quantizer = faiss.SearchParametersHNSW(efSearch=max(2 * nprobe, 64))
            params.quantizer_params = quantizer
        dist, rows = self.ann.search(queries, wanted, params=params)
        del quantizer  # referenced until the search is done (SWIG does not own it)
        if selector is None and (rows[:, :k] < 0).any():
            raise NewsimgError(
                f"the IVF lists probed hold fewer than {k} vectors for some queries: "
                f"raise search.nprobe ({nprobe})"
            )
        if rerank == 0:
            # unit-norm vectors: |q - x|^2 = |q|^2 + 1 - 2 q.x
            ip = ((queries**2).sum(1, keepdims=True) + 1 - dist) / 2
            ip[rows < 0] = -np.inf
            return sort_results(ip.astype(np.float32), rows, k)
        return self._rerank(queries, rows, k)

    def _search_ann_allowed(
        self,
        queries: np.ndarray,
        k: int,
        nprobe: int,
        rerank: int,
        allowed: np.ndarray,
        stats: Counter[str] | None,
    ) -> tuple[np.ndarray, np.ndarray]:
        bitmap = np.packbits(allowed, bitorder="little")  # referenced by the selector
        selector = faiss.IDSelectorBitmap(len(allowed), faiss.swig_ptr(bitmap))
        scores, rows = self._search_ann(queries, k, nprobe, rerank, selector)
        short = np.flatnonzero((rows < 0).any(axis=1))
        probe = nprobe
        if len(short) and stats is not None:
            stats["widened"] += len(short)
        while len(short) and probe < self.plan.nlist:
            probe = min(2 * probe, self.plan.nlist)
            s, r = self._search_ann(queries[short], k, probe, rerank, selector)
            scores[short], rows[short] = s, r
            if stats is not None:
                stats["widen_rounds"] += 1
            short = short[(r < 0).any(axis=1)]
        if stats is not None:
            stats["queries"] += len(queries)
        del bitmap
        return scores, rows

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
    for _, block in vectors.blocks(ADD_ROWS):
        index.add(to_float32(block))
    return index


def build(params: IndexParams, *, embeddings: Path, out: Path) -> Plan:
    """The index stage: plan the index for ``embeddings`` (see :func:`choose`), build it and
    commit ``out``. Returns the plan."""
    vectors = Vectors(embeddings)
    plan = choose(params, vectors.n, vectors.dim)
    log.info("index: %s for %d x %d, because %s", plan.kind, plan.n, plan.dim, plan.reason)
    ann = build_ivfpq(plan, params, vectors) if plan.kind == "ivfpq" else None
    trained_on = None
    if ann is not None:
        trained_on = {"size": min(params.train_size, vectors.n), "seed": params.seed}
    manifest = {"plan": asdict(plan), "trained_on": trained_on, "embeddings": str(embeddings)}
    index_files.write_index(out, manifest=manifest, keys=vectors.keys(), ann=ann)
    return plan


def load(
    folder: Path, *, settings: SearchParams | None = None, embeddings: Path | None = None
) -> Index:
    """A built index, searched with ``settings`` (default: the ``search`` section's defaults);
    ``embeddings`` overrides the folder recorded at build time."""
    return Index(folder, settings=settings or SearchParams(), embeddings=embeddings)
