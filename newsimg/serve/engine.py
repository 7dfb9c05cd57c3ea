"""The desk's loaded state: models, index, shards, articles and stored results, loaded once.

Everything a request needs is read here at start-up or looked up lazily with bounded caches:
queries are encoded and searched by :class:`Desk`, photos are read from the shards by pool row
(a key is looked up in the index, never used as a path), and answers are folded and filtered
here so that the HTTP layer only validates and serialises.
"""

from __future__ import annotations

import bisect
import functools
import io
import logging
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Sequence
from concurrent.futures import Future
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
from PIL import Image

from newsimg import dedup, images, leads
from newsimg.errors import InputError, Rejected
from newsimg.params import FetchParams, LeadsParams, ReportParams, SearchParams, ServeParams
from newsimg.serve.paths import Artifacts
from newsimg.store.names import NEWSIMAGES

log = logging.getLogger(__name__)

ORIGINAL_SOURCE = NEWSIMAGES  # the articles' own photos
GROW = 4  # each refill of a filtered or folded answer searches this many times more candidates
# the most candidates one answer searches, as a multiple of offset + k (at least MIN_CANDIDATES):
# a page of a pool that is all near-duplicates comes back short rather than scanning the pool
MAX_CANDIDATES = 16
MIN_CANDIDATES = 256


class NotFound(InputError):
    """A key or an article that the loaded pipeline does not hold."""

    def __init__(self, field_name: str, message: str) -> None:
        super().__init__(message)
        self.field = field_name


class BadInput(InputError):
    """A request the desk cannot answer, with the field at fault."""

    def __init__(self, field_name: str, message: str, status: int = 422) -> None:
        super().__init__(message)
        self.field = field_name
        self.status = status


@dataclass
class Timings:
    encode_ms: float = 0.0
    search_ms: float = 0.0
    fetch_ms: float = 0.0  # a url query's page download and lead extraction

    def as_dict(self) -> dict[str, float]:
        return {k: round(v, 3) for k, v in self.__dict__.items()}


@dataclass
class Hit:
    rank: int
    row: int
    key: str
    source: str
    score: float
    folded: list[Hit] = field(default_factory=list)


class LRU:
    """A small thread-safe least-recently-used cache."""

    def __init__(self, size: int) -> None:
        self.size = size
        self.items: OrderedDict[Any, Any] = OrderedDict()
        self.lock = threading.Lock()

    def get(self, key: Any, make: Callable[[], Any]) -> Any:
        with self.lock:
            if key in self.items:
                self.items.move_to_end(key)
                return self.items[key]
        value = make()
        if self.size:
            with self.lock:
                self.items[key] = value
                while len(self.items) > self.size:
                    self.items.popitem(last=False)
        return value


class TextBatcher:
    """Encodes the texts of concurrent requests together: one thread takes every text queued
    while the previous batch ran (at most ``max_batch``) and encodes them in one forward pass
    per approach. One client waits for nothing; sixteen share the passes."""

    def __init__(self, encode: Callable[[list[str], str], np.ndarray], max_batch: int) -> None:
        import queue

        self.encode = encode
        self.max_batch = max_batch
        self.queue: queue.SimpleQueue = queue.SimpleQueue()
        self.batches = 0
        self.texts = 0
        threading.Thread(target=self._run, name="newsimg-encode", daemon=True).start()

    def submit(self, text: str, approach: str) -> Future:
        """A future of the text's query vector (1, dim)."""
        future: Future = Future()
        self.queue.put((text, approach, future))
        return future

    def _run(self) -> None:
        import queue

        while True:
            batch = [self.queue.get()]
            while len(batch) < self.max_batch:
                try:
                    batch.append(self.queue.get_nowait())
                except queue.Empty:
                    break
            # a request that timed out cancelled its future: skip its text
            batch = [b for b in batch if b[2].set_running_or_notify_cancel()]
            self.batches += 1
            self.texts += len(batch)
            for approach in dict.fromkeys(b[1] for b in batch):
                group = [b for b in batch if b[1] == approach]
                try:
                    vectors = self.encode([b[0] for b in group], approach)
                except Exception as err:  # handed to each waiting request; the thread lives on
                    for b in group:
                        b[2].set_exception(err)
                    continue
                for i, b in enumerate(group):
                    b[2].set_result(vectors[i : i + 1])


class KeyLookup:
    """key -> pool row without a dict of every key: the keys' sort order (4 or 8 bytes per
    key) and a binary search over the index's own key column."""

    def __init__(self, keys: pa.Array) -> None:
        self.keys = keys
        order = pc.sort_indices(keys)
        self.order = np.asarray(order, dtype=np.uint32 if len(keys) < 2**32 else np.int64)

    def row_of(self, key: str) -> int | None:
        keys, order = self.keys, self.order
        lo = bisect.bisect_left(range(len(order)), key, key=lambda i: keys[int(order[i])].as_py())
        if lo < len(order) and keys[int(order[lo])].as_py() == key:
            return int(order[lo])
        return None


class Photos:
    """Stored JPEGs and their original sizes, by pool row: row -> embedding unit (a fetch
    shard) -> the shard's row of that key -> its row group. Per-shard key maps and row groups
    are cached."""

    def __init__(self, shard_dir: Path, unit_names: Sequence[str], unit_starts: np.ndarray) -> None:
        self.shard_dir = shard_dir
        self.unit_names = list(unit_names)
        self.unit_starts = np.asarray(unit_starts)
        self._shards = LRU(256)
        self._groups = LRU(8)

    def shard_of(self, row: int) -> Path:
        u = int(np.searchsorted(self.unit_starts, row, side="right")) - 1
        # the unit's name is a shard stem made by the embed stage (^[a-z]+-\d+$), never a request's
        return self.shard_dir / f"{self.unit_names[u]}.parquet"

    def _shard_table(self, path: Path) -> dict[str, Any]:
        def read() -> dict[str, Any]:
            table = pq.read_table(path, columns=["key", "width", "height", "photo_id"])
            meta = pq.read_metadata(path)
            starts = [0]
            for g in range(meta.num_row_groups):
                starts.append(starts[-1] + meta.row_group(g).num_rows)
            return {
                "row": {k: i for i, k in enumerate(table["key"].to_pylist())},
                "width": table["width"].to_pylist(),
                "height": table["height"].to_pylist(),
                "photo_id": table["photo_id"].to_pylist(),
                "starts": starts,
            }

        return self._shards.get(path, read)

    def info(self, row: int, key: str) -> dict[str, Any]:
        """What the shards know of a photo: its original size and YFCC photo id."""
        path = self.shard_of(row)
        if not path.is_file():
            return {}
        t = self._shard_table(path)
        i = t["row"].get(key)
        if i is None:
            return {}
        return {
            "width": t["width"][i],
            "height": t["height"][i],
            "photo_id": t["photo_id"][i],
            "shard": path.stem,
        }

    def jpeg(self, row: int, key: str) -> bytes | None:
        path = self.shard_of(row)
        if not path.is_file():
            return None
        t = self._shard_table(path)
        i = t["row"].get(key)
        if i is None:
            return None
        g = bisect.bisect_right(t["starts"], i) - 1
        column = self._groups.get(
            (path, g),
            lambda: pq.ParquetFile(path).read_row_group(g, columns=["jpeg"]).column("jpeg"),
        )
        return column[i - t["starts"][g]].as_py()


class Desk:
    """Everything the service answers from, loaded once."""

    def __init__(
        self,
        artifacts: Artifacts,
        params: ServeParams,
        leads_params: LeadsParams,
        fetch_params: FetchParams,
        report_params: ReportParams,
        search_params: SearchParams,
        licences: list[str] | None = None,
    ) -> None:
        from newsimg.searcher import Searcher

        t0 = time.perf_counter()
        missing = artifacts.missing()
        if missing:
            raise InputError(
                f"not built: {', '.join(map(str, missing))} (run `make repro` or `dvc repro`)"
            )
        self.artifacts = artifacts
        self.params = params
        self.leads_params = leads_params
        self.fetch_params = fetch_params
        self.report_params = report_params
        lams = {a.encoder for a in artifacts.approaches.values() if a.uses_lam(artifacts.model)}
        if len(lams) > 1:
            raise InputError(
                f"approaches use {len(lams)} different LAMs ({sorted(lams)}): one only"
            )
        self.searcher = Searcher(
            model=artifacts.model,
            index=artifacts.index,
            lam=lams.pop() if lams else None,
            settings=search_params,
            metadata=artifacts.metadata,
        )
        # the batch's licence policy (retrieve.licences): the photos the service may return
        self.licences = licences
        self.allowed = self.searcher.allowed(licences)
        self.lam_approaches = {
            n for n, a in artifacts.approaches.items() if a.uses_lam(artifacts.model)
        }
        self.index = self.searcher.index
        self.keys = self.index.keys["key"].combine_chunks()
        self.sources = self.index.keys["source"].combine_chunks()
        self.lookup = KeyLookup(self.keys)
        vectors = self.index.vectors
        self.photos = Photos(artifacts.shards, vectors.names, vectors.starts)
        self.articles = pq.read_table(artifacts.articles)
        self.article_row = {a: i for i, a in enumerate(self.articles["article_id"].to_pylist())}
        self.originals = set(self.articles["image_id"].to_pylist())
        self.stored = {
            name: pq.read_table(a.results)
            for name, a in artifacts.approaches.items()
            if a.results.is_file()
        }
        self.batcher = TextBatcher(lambda t, a: self.encode_texts(t, a), params.max_batch)
        self.load_s = time.perf_counter() - t0
        log.info(
            "desk loaded in %.1f s: %d images (%s index), %d articles, approaches %s",
            self.load_s,
            self.index.ntotal,
            self.index.plan.kind,
            self.articles.num_rows,
            ", ".join(artifacts.approaches),
        )

    # --- queries -> vectors ---------------------------------------------------------------

    @property
    def approaches(self) -> list[str]:
        return list(self.artifacts.approaches)

    def check_approach(self, approach: str) -> None:
        if approach not in self.artifacts.approaches:
            raise BadInput(
                "approach", f"unknown approach {approach!r}; known: {', '.join(self.approaches)}"
            )

    def encode_texts(self, texts: list[str], approach: str) -> np.ndarray:
        """Query vectors as the retrieve stage makes them for ``approach``."""
        self.check_approach(approach)
        return self.searcher.encode_texts(texts, lam=approach in self.lam_approaches)

    def approach_text(self, approach: str, headline: str, lead: str) -> str:
        """The text an approach searches by for an article, as the leads stage writes it (a
        lead longer than the token budget is cut as the stage cuts it)."""
        self.check_approach(approach)
        column = self.artifacts.approaches[approach].text
        if column == "headline":
            return headline
        return leads.approach_text(headline, lead, self.leads_params)

    def row_of(self, key: str) -> int:
        row = self.lookup.row_of(key)
        if row is None:
            raise NotFound("key", f"no image with key {key!r} in the index")
        return row

    def key_vector(self, key: str) -> np.ndarray:
        return self.searcher.vectors(np.array([self.row_of(key)]))

    def check_upload(self, data: bytes) -> Image.Image:
        """An uploaded photo, checked as fetch checks a downloaded one (format, size,
        decompression bomb), normalised the same way."""
        if len(data) > self.params.max_upload_bytes:
            raise BadInput(
                "image",
                f"upload of {len(data)} bytes is above serve.max_upload_bytes "
                f"({self.params.max_upload_bytes})",
                413,
            )
        checks = self.fetch_params.model_copy(
            update={"max_pixels": min(self.params.max_pixels, self.fetch_params.max_pixels)}
        )
        try:
            with images.quiet_bomb_warnings():
                jpeg, _, _ = images.normalise(data, checks)
        except Rejected as err:
            explain = {
                "empty": "the upload is empty",
                "not_an_image": "not an image (JPEG, PNG, GIF, WEBP, BMP or TIFF)",
                "too_large": f"more pixels than serve.max_pixels ({checks.max_pixels})",
                "too_small": f"shorter side below fetch.min_side ({checks.min_side} px)",
                "truncated": "the image is truncated",
                "corrupt": "the image is corrupt",
            }
            message = f"{err.reason}: {explain.get(err.reason, err.reason)}"
            raise BadInput("image", message, 422) from None
        return Image.open(io.BytesIO(jpeg)).convert("RGB")

    def encode_image(self, image: Image.Image) -> np.ndarray:
        return self.searcher.encode_images([image])

    # --- vectors -> answers ---------------------------------------------------------------

    def search(
        self,
        query: np.ndarray,
        *,
        k: int,
        offset: int,
        dedup_on: bool,
        min_score: float | None,
        include_originals: bool,
        timings: Timings,
    ) -> tuple[list[Hit], int]:
        """The answer's page ``offset .. offset + k`` after filtering and folding, and the
        number of near-duplicates folded into it. Searches more candidates while filters or
        folding leave too few, up to the pool."""
        want = offset + k
        cap = min(self.index.ntotal, max(MAX_CANDIDATES * want, MIN_CANDIDATES))
        n = min(cap, want)
        t0 = time.perf_counter()
        while True:
            scores, rows = self.searcher.search(query, n, allowed=self.allowed)
            hits = self._filter(scores[0], rows[0], min_score, include_originals)
            groups = self._fold(hits) if dedup_on else hits
            exhausted = n >= cap or (
                min_score is not None and len(scores[0]) and scores[0][-1] < min_score
            )
            if len(groups) >= want or exhausted:
                break
            n = min(cap, n * GROW)
        timings.search_ms += 1000 * (time.perf_counter() - t0)
        page = groups[offset:want]
        for rank, hit in enumerate(page, start=offset + 1):
            hit.rank = rank
        return page, sum(len(h.folded) for h in page)

    def _filter(
        self,
        scores: np.ndarray,
        rows: np.ndarray,
        min_score: float | None,
        include_originals: bool,
    ) -> list[Hit]:
        keep = rows >= 0
        if min_score is not None:
            keep &= scores >= min_score
        scores, rows = scores[keep], rows[keep]
        keys = self.keys.take(pa.array(rows)).to_pylist()
        sources = self.sources.take(pa.array(rows)).to_pylist()
        out = []
        for s, r, key, source in zip(scores.tolist(), rows.tolist(), keys, sources, strict=True):
            if not include_originals and (source == ORIGINAL_SOURCE or key in self.originals):
                continue
            out.append(Hit(0, r, key, source, s))
        return out

    def _fold(self, hits: list[Hit]) -> list[Hit]:
        if not hits:
            return []
        vectors = self.searcher.vectors(np.array([h.row for h in hits]))
        groups = dedup.fold(vectors, self.params.dedup_threshold)
        out = []
        for g in groups:
            lead = hits[g.lead]
            lead.folded = [hits[i] for i in g.folded]
            out.append(lead)
        return out

    # --- stored batch results ---------------------------------------------------------------

    def article(self, article_id: str) -> dict[str, Any]:
        i = self.article_row.get(article_id)
        if i is None:
            raise NotFound("article_id", f"no article {article_id!r} in the pipeline's articles")
        return self.articles.slice(i, 1).to_pylist()[0]

    def stored_top(self, approach: str, article_id: str, k: int) -> list[Hit]:
        table = self.stored.get(approach)
        if table is None:
            return []
        rows = table.filter(pc.equal(table["article_id"], article_id)).to_pylist()
        rows = sorted(rows, key=lambda r: r["rank"])[:k]
        out = []
        for r in rows:
            row = self.lookup.row_of(r["key"])
            out.append(
                Hit(r["rank"], -1 if row is None else row, r["key"], r["source"], r["score"])
            )
        return out

    # --- photos ---------------------------------------------------------------------------

    @functools.cached_property
    def _images(self) -> LRU:
        return LRU(self.params.image_cache)

    def thumbnail(self, key: str) -> bytes:
        row = self.row_of(key)

        def make() -> bytes:
            jpeg = self._jpeg(row, key)
            with Image.open(io.BytesIO(jpeg)) as im:
                im.thumbnail((self.params.thumb_px, self.params.thumb_px))
                buf = io.BytesIO()
                im.convert("RGB").save(buf, "JPEG", quality=80)
            return buf.getvalue()

        return self._images.get(("thumb", key), make)

    def crop(self, key: str) -> bytes:
        """The PNG the MediaEval export makes of this photo (submission.to_png, report's size)."""
        from newsimg.submission import to_png

        row = self.row_of(key)
        p = self.report_params
        return self._images.get(
            ("crop", key), lambda: to_png(self._jpeg(row, key), p.width, p.height)
        )

    def original(self, key: str) -> bytes:
        return self._jpeg(self.row_of(key), key)

    def _jpeg(self, row: int, key: str) -> bytes:
        jpeg = self.photos.jpeg(row, key)
        if jpeg is None:
            raise NotFound("key", f"image {key!r} is indexed but not in the shards")
        return jpeg

    def describe(self, hits: Sequence[Hit]) -> dict[str, dict[str, Any]]:
        """key -> what is known of each photo: source, original size, YFCC photo id and shard
        (from the shards), licence and credit (from the metadata stage's file for that shard;
        ``unknown`` without one, ``own`` for the articles' images)."""
        from newsimg.metadata.build import SOURCE, shard_file
        from newsimg.metadata.lookup import Metadata, unknown_credit

        out: dict[str, dict[str, Any]] = {}
        by_shard: dict[str, list[str]] = {}
        for hit in hits:
            info = self.photos.info(hit.row, hit.key) if hit.row >= 0 else {}
            out[hit.key] = {"source": hit.source, **info}
            if hit.source == ORIGINAL_SOURCE or hit.key in self.originals:
                out[hit.key] |= _credit(unknown_credit(hit.key, own=True))
            else:
                by_shard.setdefault(info.get("shard", ""), []).append(hit.key)
        meta_dir = self.artifacts.metadata
        for shard, keys in by_shard.items():
            source, _, number = shard.rpartition("-")
            path = None
            if meta_dir is not None and source == SOURCE and number.isdigit():
                path = shard_file(meta_dir, int(number))
            if path is None or not path.is_file():
                for key in keys:
                    out[key] |= _credit(unknown_credit(key))
                continue
            found = self._credits.get(path, lambda p=path: _shard_credits(p, Metadata))
            for key in keys:
                credit = found.get(key)
                out[key] |= _credit(credit if credit is not None else unknown_credit(key))
        return out

    @functools.cached_property
    def _credits(self) -> LRU:
        return LRU(64)


def _shard_credits(path: Path, metadata: type) -> dict[str, Any]:
    """Every credit of one metadata file (one fetch shard's photos: ~10k rows, read once)."""
    import pyarrow.parquet as pq

    keys = pq.read_table(path, columns=["key"])["key"].to_pylist()
    return metadata([path]).credits(keys)


def _credit(credit: Any) -> dict[str, Any]:
    c = credit.as_dict()
    return {
        "licence": c["licence"],
        "licence_label": c["licence_label"],
        "licence_link": c["licence_link"],
        "credit": c["credit"],
        "page_url": c["page_url"],
        "title": c["title"],
        "tags": c["tags"],
    }
