"""Image embedding with Lightning predict, one output per unit of work, resumable.

A *unit* is a fetch shard (``yfcc-00003.parquet``) or a chunk of the N24News image folder. Each
unit becomes ``NAME.npy`` (float16, L2-normalised, memory-mappable, one row per image) and
``NAME.keys.parquet`` (key, source; same order). The ``.npy`` is written last, atomically: its
presence marks the unit done, so a re-run embeds only the units that are missing.
"""

from __future__ import annotations

import bisect
import functools
import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytorch_lightning as pl
import torch
from pytorch_lightning.callbacks import BasePredictionWriter
from torch.utils.data import DataLoader, Dataset

from newsimg import shards, sources
from newsimg.atomic import atomic_path
from newsimg.clip import Clip, decode_and_preprocess
from newsimg.errors import InputError
from newsimg.params import EmbedParams

log = logging.getLogger(__name__)

N24NEWS_CHUNK = 10_000  # images per N24News unit


@dataclass
class Unit:
    """One output file's worth of images, readable row by row from a worker process."""

    name: str
    keys: list[str]
    sources: list[str]
    shard: Path | None = None  # a fetch shard, read row group by row group
    files: list[Path] = field(default_factory=list)  # or plain image files

    def __len__(self) -> int:
        return len(self.keys)

    def read(self, row: int) -> bytes:
        if self.shard is None:
            return self.files[row].read_bytes()
        group, offset = _row_group_of(self.shard, row)
        return _read_group(self.shard, group)[offset].as_py()


_row_group_starts = functools.cache(shards.row_group_starts)  # per worker, per shard


def _row_group_of(path: Path, row: int) -> tuple[int, int]:
    starts = _row_group_starts(path)
    group = bisect.bisect_right(starts, row) - 1
    return group, row - starts[group]


@functools.lru_cache(maxsize=2)  # per worker process: the group being read and the next
def _read_group(path: Path, group: int) -> pa.ChunkedArray:
    return pq.ParquetFile(path).read_row_group(group, columns=["jpeg"]).column("jpeg")


def shard_units(shard_dir: Path) -> list[Unit]:
    """One unit per complete fetch shard."""
    units = []
    for path in shards.list_shards(shard_dir):
        table = pq.read_table(path, columns=["key", "source"])
        units.append(
            Unit(path.stem, table["key"].to_pylist(), table["source"].to_pylist(), shard=path)
        )
    if not units:
        raise InputError(f"no fetch shards in {shard_dir}")
    return units


def n24news_units(root: Path, chunk: int = N24NEWS_CHUNK) -> list[Unit]:
    """The images of every N24News split, deduplicated, in chunks of ``chunk``."""
    ids = sorted(
        {item["image_id"] for s in sources.N24NEWS_SPLITS for item in sources.read_n24news(root, s)}
    )
    units = []
    for start in range(0, len(ids), chunk):
        part = ids[start : start + chunk]
        units.append(
            Unit(
                f"n24news-{start // chunk:05d}",
                part,
                ["n24news"] * len(part),
                files=[sources.n24news_image_path(root, i) for i in part],
            )
        )
    return units


class UnitDataset(Dataset):
    """Rows of all pending units in order; yields (pixels, global row, why it was skipped or "")."""

    def __init__(self, units: Sequence[Unit], image_size: int) -> None:
        self.units = list(units)
        self.starts = np.cumsum([0] + [len(u) for u in self.units])
        self.image_size = image_size

    def __len__(self) -> int:
        return int(self.starts[-1])

    def locate(self, index: int) -> tuple[int, int]:
        u = int(np.searchsorted(self.starts, index, side="right") - 1)
        return u, index - int(self.starts[u])

    def __getitem__(self, index: int) -> tuple[torch.Tensor, int, str]:
        u, row = self.locate(index)
        try:
            pixels = decode_and_preprocess(self.units[u].read(row), self.image_size, fast=True)
            return torch.from_numpy(pixels), index, ""
        except (OSError, ValueError) as err:  # unreadable image: the writer records it
            reason = f"{type(err).__name__}: {err}"
            return torch.zeros(3, self.image_size, self.image_size), index, reason


class ImageEncoder(pl.LightningModule):
    """predict_step: preprocessed pixels -> L2-normalised float16 embeddings."""

    def __init__(self, clip: Clip) -> None:
        super().__init__()
        self.clip_model = clip.model

    def predict_step(self, batch: tuple[torch.Tensor, torch.Tensor, list[str]], batch_idx: int):
        pixels, index, skipped = batch
        pixels = pixels.to(self.device, self.clip_model.dtype)
        feats = self.clip_model.get_image_features(pixel_values=pixels).pooler_output
        feats = torch.nn.functional.normalize(feats.float(), dim=-1)
        return feats.half().cpu(), index.cpu(), skipped


class UnitWriter(BasePredictionWriter):
    """Collects each unit's rows and commits the unit as soon as its last row arrives."""

    def __init__(self, dataset: UnitDataset, out: Path, dim: int) -> None:
        super().__init__(write_interval="batch")
        self.dataset, self.out, self.dim = dataset, out, dim
        self.buffers: dict[int, tuple[np.ndarray, list[str], list[int]]] = {}

    def write_on_batch_end(self, trainer, pl_module, prediction, *args, **kwargs) -> None:
        feats, index, skipped = prediction
        for f, i, reason in zip(feats.numpy(), index.tolist(), skipped, strict=True):
            u, row = self.dataset.locate(i)
            n = len(self.dataset.units[u])
            emb, reasons, filled = self.buffers.setdefault(
                u, (np.zeros((n, self.dim), np.float16), [""] * n, [0])
            )
            emb[row], reasons[row] = f, reason
            filled[0] += 1
            if filled[0] == n:
                write_unit(self.out, self.dataset.units[u], emb, reasons)
                del self.buffers[u]


def write_unit(out: Path, unit: Unit, emb: np.ndarray, reasons: Sequence[str]) -> None:
    """Commit one unit: its skipped images (if any), its keys, then the .npy, which marks the
    unit done. Each file is atomic."""
    ok = np.array([not r for r in reasons], dtype=bool)
    keys = pa.table({"key": unit.keys, "source": unit.sources}).filter(pa.array(ok))
    if not ok.all():
        skipped = pa.table({"key": unit.keys, "source": unit.sources, "reason": list(reasons)})
        skipped = skipped.filter(pa.array(~ok))
        log.warning("%s: skipped %d unreadable images", unit.name, skipped.num_rows)
        with atomic_path(out / f"{unit.name}.skipped.parquet") as tmp:
            pq.write_table(skipped, tmp)
    with atomic_path(out / f"{unit.name}.keys.parquet") as tmp:
        pq.write_table(keys, tmp)
    with atomic_path(out / f"{unit.name}.npy") as tmp, open(tmp, "wb") as f:
        np.save(f, emb[ok])  # a file object: np.save would add ".npy" to a bare name


def done_units(out: Path) -> set[str]:
    return {p.name.removesuffix(".npy") for p in out.glob("*.npy")}


def run(params: EmbedParams, fmt: str, images: Path, model: Path, out: Path) -> None:
    """Embed every unit of ``images`` (``fmt`` "shards" or "n24news") not yet in ``out``."""
    units = shard_units(images) if fmt == "shards" else n24news_units(images)
    out.mkdir(parents=True, exist_ok=True)
    done = done_units(out)
    pending = [u for u in units if u.name not in done]
    log.info("%d units (%d done), %d to embed", len(units), len(done), len(pending))
    if not pending:
        return
    clip = Clip(model, precision=params.precision)
    dataset = UnitDataset(pending, clip.image_size)
    loader = DataLoader(
        dataset,
        batch_size=params.batch_size,
        num_workers=params.num_workers,
        persistent_workers=False,
    )
    trainer = pl.Trainer(
        accelerator=params.accelerator,
        devices=params.devices,
        logger=False,
        enable_checkpointing=False,
        enable_model_summary=False,
        use_distributed_sampler=False,  # units are written whole, in order
        callbacks=[UnitWriter(dataset, out, clip.dim)],
    )
    trainer.predict(ImageEncoder(clip), loader, return_predictions=False)


def load_embeddings(directory: Path, mmap: bool = True) -> tuple[np.ndarray, pa.Table]:
    """All units of an embeddings folder, in name order: (float16 (N, dim), keys table)."""
    names = sorted(done_units(directory))
    if not names:
        raise InputError(f"no embeddings in {directory}")
    arrays = [np.load(directory / f"{n}.npy", mmap_mode="r" if mmap else None) for n in names]
    keys = pa.concat_tables([pq.read_table(directory / f"{n}.keys.parquet") for n in names])
    return (arrays[0] if len(arrays) == 1 else np.concatenate(arrays)), keys
