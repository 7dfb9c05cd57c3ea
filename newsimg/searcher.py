"""The searcher: a model folder, an optional LAM and an index, loaded once, answering many queries.

retrieve, the recall stage, ``newsimg search`` and the service all search through
:class:`Searcher`. Nothing on this path imports Lightning or DVC (a test checks it in a fresh
interpreter), and nothing imports torch or transformers until a torch tower is needed.

Text queries go through the base model's text tower, then either its own projection or the LAM;
image queries through the base model's image tower; both come back as L2-normalised float32 rows
that :meth:`Searcher.search` ranks against the pool. Which text tower runs is decided in one
place, :func:`choose_text_tower` (the ``text_tower`` argument): the torch one
(:class:`newsimg.clip.Clip`, on CPU or CUDA, what the pipeline's stages and the service use) or,
on CPU, the NumPy one (:class:`newsimg.numpy_clip.NumpyText` and
:class:`~newsimg.numpy_clip.NumpyLam`, what ``newsimg search`` uses: it starts without
importing torch). The image tower is always torch's, loaded on the first image query.

Search-time settings (``nprobe``, ``rerank``) default to the ``search`` params section given at
construction and may be set per call. One Searcher may serve many threads at once: encoding
and searching are read-only, FAISS settings go per call, and the lazily built parts (the torch
model, :meth:`Searcher.row_of`'s table) are built under a lock.
"""

from __future__ import annotations

import logging
import threading
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Literal

import numpy as np
import pyarrow as pa

from newsimg import numpy_clip
from newsimg.errors import InputError
from newsimg.metadata.lookup import Credit, Metadata
from newsimg.metadata.policy import allowed_mask
from newsimg.params import SearchParams
from newsimg.store.names import NEWSIMAGES

if TYPE_CHECKING:
    import torch
    from PIL import Image

    from newsimg.clip import Clip

log = logging.getLogger(__name__)

TextTower = Literal["torch", "numpy", "auto"]


def choose_text_tower(wanted: TextTower, device: str, model: Path) -> Literal["torch", "numpy"]:
    """The text tower a searcher runs: ``wanted`` as given, or for ``auto`` the NumPy one on
    CPU when it implements ``model``'s text tower (:func:`newsimg.numpy_clip.supports`) and the
    torch one otherwise. The NumPy tower runs on CPU only: asking for it on another device is an
    error."""
    on_cpu = device.split(":")[0] == "cpu"
    if wanted == "auto":
        return "numpy" if on_cpu and numpy_clip.supports(model) else "torch"
    if wanted == "numpy" and not on_cpu:
        raise InputError(f"the NumPy text tower runs on CPU only, not on {device}")
    if wanted not in ("torch", "numpy"):
        raise InputError(f"text tower {wanted!r}: expected torch, numpy or auto")
    return wanted


@dataclass(frozen=True)
class Hit:
    """One ranked image: ``rank`` 1 is the best; ``row`` is its row in the index."""

    rank: int
    key: str
    source: str
    score: float
    row: int


class Searcher:
    """Loads the base CLIP folder ``model``, the LAM folder ``lam`` (optional) and the index
    folder ``index`` once; ``embeddings`` overrides the embeddings folder the index recorded.

    ``settings``: the search-time defaults (the ``search`` params section; default: its
    defaults). ``device``: where the text and image towers run (default: CUDA when present).
    ``text_tower``: ``torch``, ``numpy`` (CPU only) or ``auto`` (see :func:`choose_text_tower`).
    """

    def __init__(
        self,
        *,
        model: Path,
        index: Path,
        lam: Path | None = None,
        embeddings: Path | None = None,
        device: str | torch.device | None = None,
        settings: SearchParams | None = None,
        metadata: Path | None = None,
        text_tower: TextTower = "torch",
    ) -> None:
        from newsimg import index as image_index
        from newsimg.devices import default_device

        self.model_folder = Path(model)
        self.settings = settings or SearchParams()
        self.index = image_index.load(Path(index), settings=self.settings, embeddings=embeddings)
        self.device = default_device() if device is None else device
        self.text_tower = choose_text_tower(text_tower, str(self.device), self.model_folder)
        self._clip: Clip | None = None
        self._lock = threading.Lock()
        # the text side: .text_hidden, .project_text, .width, .dim
        self.text = numpy_clip.NumpyText(model) if self.text_tower == "numpy" else self.clip
        if self.text.dim != self.index.plan.dim:
            raise InputError(
                f"{model} embeds in {self.text.dim} dimensions, the index {index} holds "
                f"{self.index.plan.dim}: not the model the pool was embedded with"
            )
        self.lam = None
        if lam is not None:
            if self.text_tower == "numpy":
                self.lam = numpy_clip.NumpyLam(Path(lam))
            else:
                from newsimg.alignment import load_lam

                self.lam = load_lam(Path(lam)).to(self.clip.device)
            if (self.lam.config.width, self.lam.config.dim) != (self.text.width, self.text.dim):
                raise InputError(
                    f"the LAM {lam} maps {self.lam.config.width} -> {self.lam.config.dim}, the "
                    f"model {model} needs {self.text.width} -> {self.text.dim}"
                )
        self.keys: pa.Table = self.index.keys  # (key, source); row i is vector i
        self._row_of: dict[str, int] | None = None
        # licences and credits of the pool's photos (the metadata stage's folder; None: unknown)
        self.metadata = Metadata.open(metadata)
        self._masks: dict[tuple[str, ...], np.ndarray] = {}

    # ------------------------------------------------------------------------------- the pool

    @property
    def clip(self) -> Clip:
        """The base model in torch (:class:`newsimg.clip.Clip`) on :attr:`device`: the image
        tower, and the text tower unless :attr:`text_tower` is ``numpy``. Loaded on first use,
        which is when torch and transformers are imported."""
        if self._clip is None:
            with self._lock:
                if self._clip is None:
                    from newsimg.clip import Clip

                    self._clip = Clip(self.model_folder, device=self.device)
        return self._clip

    @property
    def ntotal(self) -> int:
        return self.index.ntotal

    @property
    def dim(self) -> int:
        return self.index.plan.dim

    @property
    def has_lam(self) -> bool:
        return self.lam is not None

    def row_of(self, key: str) -> int | None:
        """The index row of image ``key`` (its first row if it is stored twice), or None.
        The table is built on first use (one pass over the keys), then each lookup is O(1)."""
        if self._row_of is None:
            with self._lock:
                if self._row_of is None:
                    table: dict[str, int] = {}
                    for row, k in enumerate(self.keys["key"].to_pylist()):
                        table.setdefault(k, row)
                    self._row_of = table
        return self._row_of.get(key)

    def allowed(self, licences: Sequence[str] | None) -> np.ndarray | None:
        """The rows a licence policy lets :meth:`search` return (None: every row), built once
        per policy."""
        if licences is None:
            return None
        policy = tuple(sorted(licences))
        with self._lock:
            if policy not in self._masks:
                self._masks[policy] = allowed_mask(self.keys, self.metadata, policy)  # type: ignore[assignment]
            return self._masks[policy]

    def credits(self, hits: Sequence[Hit]) -> dict[str, Credit]:
        """key -> :class:`~newsimg.metadata.lookup.Credit` of each hit (the credit line, licence
        and page links, title and tags)."""
        own = [h.key for h in hits if h.source == NEWSIMAGES]
        return self.metadata.credits([h.key for h in hits], own=own)

    def vectors(self, rows: np.ndarray) -> np.ndarray:
        """The stored pool embeddings of ``rows`` (any shape) as float32 (..., dim)."""
        return self.index.vectors.take(np.asarray(rows, dtype=np.int64))

    # ------------------------------------------------------------------------------- encoding

    def encode_texts(
        self, texts: Sequence[str], *, lam: bool = False, batch_size: int = 64
    ) -> np.ndarray:
        """Query vectors (n, dim), float32 unit rows: the base model's, or with ``lam`` the
        LAM's (an error when none was loaded)."""
        return self.encode_texts_with_categories(texts, lam=lam, batch_size=batch_size)[0]

    def encode_texts_with_categories(
        self, texts: Sequence[str], *, lam: bool = False, batch_size: int = 64
    ) -> tuple[np.ndarray, list[str | None]]:
        """:meth:`encode_texts` and, with ``lam``, the LAM head's predicted section per text
        (None per text without)."""
        if lam and self.lam is None:
            raise InputError("LAM encoding asked for, but this searcher was loaded without a LAM")
        texts = list(texts)
        hidden = self.text.text_hidden(texts, batch_size)
        if not lam:
            return numpy_clip.l2_normalize(self.text.project_text(hidden)), [None] * len(texts)
        h, logits = self._lam_forward(hidden)
        classes = self.lam.config.classes
        categories = [classes[i] for i in logits.argmax(axis=-1).tolist()]
        return numpy_clip.l2_normalize(h), categories

    def _lam_forward(self, hidden: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(h, logits) of the LAM, as float32 arrays, in NumPy or torch as it was loaded."""
        if isinstance(self.lam, numpy_clip.NumpyLam):
            return self.lam.forward(hidden)
        import torch

        with torch.inference_mode():
            h, logits = self.lam(torch.from_numpy(hidden).to(self.clip.device))
        return h.float().cpu().numpy(), logits.float().cpu().numpy()

    def encode_images(self, images: Sequence[Image.Image], batch_size: int = 64) -> np.ndarray:
        """Image query vectors (n, dim) from the base model's image tower, float32 unit rows."""
        return self.clip.encode_images(list(images), batch_size)

    # ------------------------------------------------------------------------------ searching

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
        """The top ``k`` (at most :attr:`ntotal`) per query row: (scores float32 (n, k), rows
        int64 (n, k)), by score descending then row. ``nprobe``/``rerank``: this call's IVF-PQ
        settings (default: :attr:`settings`); exact indexes ignore them. ``allowed``: a licence
        policy's rows (:meth:`allowed`), still ``k`` of them per query; ``stats`` counts the
        IVF-PQ queries that had to widen their search (see :meth:`newsimg.index.Index.search`)."""
        queries = np.asarray(queries, dtype=np.float32)
        if queries.ndim != 2 or queries.shape[1] != self.dim:
            raise InputError(f"queries of shape {queries.shape}: expected (n, {self.dim})")
        if k < 1:
            raise InputError(f"k = {k}: at least 1 result per query")
        return self.index.search(
            queries, k, nprobe=nprobe, rerank=rerank, allowed=allowed, stats=stats
        )

    def hits(self, scores: np.ndarray, rows: np.ndarray, offset: int = 0) -> list[list[Hit]]:
        """Per query, :class:`Hit` records of :meth:`search`'s output; ranks start at
        ``offset + 1`` (a page of results further down)."""
        out = []
        for row_scores, row_ids in zip(scores, rows, strict=True):
            found = self.keys.take(pa.array(row_ids, pa.int64())).to_pydict()
            out.append(
                [
                    Hit(offset + j + 1, key, source, float(score), int(row))
                    for j, (key, source, score, row) in enumerate(
                        zip(found["key"], found["source"], row_scores, row_ids, strict=True)
                    )
                ]
            )
        return out
