"""Image embedding with Lightning predict: one output per unit of work, split across ranks,
incremental and resumable.

A *unit* is a fetch shard (``yfcc-00003.parquet``) or a chunk of the N24News image folder. Each
unit becomes ``NAME.npy`` (float16, L2-normalised, memory-mappable, one row per image) and
``NAME.keys.parquet`` (key, source; same order), plus ``NAME.skipped.parquet`` (key, source,
reason) when some images would not read or decode. The ``.npy`` is written last, atomically: its
presence marks the unit done. The keys parquet's footer records what the unit was made from (the
input's fingerprint and the model's), so a changed shard or another model re-embeds the unit,
while a re-run or a resumed run embeds only what is missing.

Unit ``i`` (in name order) belongs to rank ``i % world``: each rank writes whole units on its own,
nothing is gathered but the counts. Rank 0 writes ``summary.json`` (counts and timings).
"""

from __future__ import annotations

import bisect
import functools
import hashlib
import json
import logging
import time
import warnings
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytorch_lightning as pl
import torch
from pytorch_lightning.callbacks import BasePredictionWriter
from torch.utils.data import DataLoader, Dataset
from tqdm import tqdm

from newsimg import sources
from newsimg.clip import MEAN, STD, Clip, decode_uint8
from newsimg.errors import InputError, ParamsError, TooManyFailuresError
from newsimg.logs import quiet_lightning
from newsimg.params import EmbedParams
from newsimg.store import shards
from newsimg.store import units as unit_store
from newsimg.store.commit import write_text
from newsimg.store.names import N24NEWS
from newsimg.store.units import SUMMARY, done_units, load_embeddings

__all__ = ["done_units", "load_embeddings", "run"]  # the unit format: newsimg.store.units

log = logging.getLogger(__name__)
quiet_lightning()

FORMATS = ("shards", "n24news")  # embed --format: fetch shards, or the N24News image folder
PRECISION = {"float32": "32-true", "bfloat16": "bf16-mixed", "float16": "16-mixed"}


# --------------------------------------------------------------------------------------- units


@dataclass(frozen=True)
class Unit:
    """One output file's worth of images: a fetch shard, or a list of image files."""

    name: str
    size: int  # images
    shard: Path | None = None  # a fetch shard, read row group by row group
    files: tuple[Path, ...] = ()  # or plain image files (N24News), key = file stem

    def keys(self) -> pa.Table:
        """(key, source) of every image, in row order."""
        if self.shard is not None:
            return pq.read_table(self.shard, columns=["key", "source"])
        return pa.table({"key": [p.stem for p in self.files], "source": [N24NEWS] * self.size})

    def fingerprint(self) -> str:
        """What the unit's embeddings depend on: each image's key and content hash for a shard
        (the ``sha256`` column), key, size and modification time for plain files."""
        digest = hashlib.sha256()
        if self.shard is not None:
            table = pq.read_table(self.shard, columns=["key", "sha256"])
            for key, sha in zip(table["key"].to_pylist(), table["sha256"].to_pylist(), strict=True):
                digest.update(f"{key}\t{sha}\n".encode())
        else:
            for path in self.files:
                try:
                    st = path.stat()
                    digest.update(f"{path.stem}\t{st.st_size}\t{st.st_mtime_ns}\n".encode())
                except FileNotFoundError:
                    digest.update(f"{path.stem}\tmissing\n".encode())
        return digest.hexdigest()

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
    """One unit per complete fetch shard (row counts from the footers only)."""
    units = [
        Unit(p.stem, pq.read_metadata(p).num_rows, shard=p) for p in shards.list_shards(shard_dir)
    ]
    if not units:
        raise InputError(f"no fetch shards in {shard_dir}")
    return units


def n24news_units(root: Path, chunk: int) -> list[Unit]:
    """The images of every N24News split, deduplicated, in chunks of ``chunk``."""
    ids = sorted(
        {item["image_id"] for s in sources.N24NEWS_SPLITS for item in sources.read_n24news(root, s)}
    )
    return [
        Unit(
            f"n24news-{start // chunk:05d}",
            len(ids[start : start + chunk]),
            files=tuple(sources.n24news_image_path(root, i) for i in ids[start : start + chunk]),
        )
        for start in range(0, len(ids), chunk)
    ]


def model_fingerprint(folder: Path, precision: str) -> str:
    """SHA-256 of every file of the model folder (names and contents) and the compute precision."""
    digest = hashlib.sha256(precision.encode())
    for path in sorted(p for p in folder.rglob("*") if p.is_file()):
        with open(path, "rb") as f:
            file_digest = hashlib.file_digest(f, "sha256").hexdigest()
        digest.update(f"{path.relative_to(folder)}\t{file_digest}\n".encode())
    return digest.hexdigest()


def made_from(unit: Unit, model_fp: str) -> bytes:
    """The keys footer of ``unit`` embedded by the model ``model_fp``, taken before it is read."""
    return json.dumps({"input": unit.fingerprint(), "model": model_fp}).encode()


def is_current(out: Path, name: str, made: bytes) -> bool:
    """Whether unit ``name``'s outputs exist and their footer is ``made`` (same input, model)."""
    return unit_store.made_from_of(out, name) == made


# ------------------------------------------------------------------------------------ reading


class Batch(NamedTuple):
    """Rows [start, start + len) of unit ``unit``, cropped; a row that failed is zeros."""

    pixels: torch.Tensor  # uint8 (B, S, S, 3)
    unit: int
    start: int
    reasons: list[str]  # why each row was skipped, "" when it was not
    read_s: float
    decode_s: float


class ChunkDataset(Dataset):
    """Item ``i`` is a whole batch: at most ``batch_size`` consecutive rows of one unit, read and
    decoded in a loader worker (so a batch never mixes units and a unit's rows stay in order)."""

    def __init__(self, units: Sequence[Unit], batch_size: int, image_size: int) -> None:
        self.units = list(units)
        self.image_size = image_size
        self.chunks = [
            (u, start, min(start + batch_size, unit.size))
            for u, unit in enumerate(self.units)
            for start in range(0, unit.size, batch_size)
        ]

    def __len__(self) -> int:
        return len(self.chunks)

    def __getitem__(self, index: int) -> Batch:
        u, start, stop = self.chunks[index]
        unit, size = self.units[u], self.image_size
        t0 = time.perf_counter()
        blobs, reasons = [], []
        for row in range(start, stop):
            try:
                blobs.append(unit.read(row))
                reasons.append("")
            except OSError as err:  # a missing or unreadable file
                blobs.append(b"")
                reasons.append(_reason(err))
        t1 = time.perf_counter()
        pixels = np.zeros((stop - start, size, size, 3), np.uint8)
        for j, blob in enumerate(blobs):
            if not reasons[j]:
                try:
                    pixels[j] = decode_uint8(blob, size, fast=True)
                except (OSError, ValueError) as err:  # not an image, truncated, ...
                    reasons[j] = _reason(err)
        t2 = time.perf_counter()
        return Batch(torch.from_numpy(pixels), u, start, reasons, t1 - t0, t2 - t1)


def _reason(err: Exception) -> str:
    return f"{type(err).__name__}: {err}"


# ---------------------------------------------------------------------------------- embedding


class Embedded(NamedTuple):
    features: torch.Tensor  # float16 (B, dim), L2-normalised, on the CPU
    batch: Batch
    model_s: float


class ImageEncoder(pl.LightningModule):
    """predict_step: cropped uint8 pixels -> L2-normalised float16 embeddings.

    The mean/std is applied on the device, in float32, exactly as :func:`clip.preprocess` does;
    the model then runs under the Trainer's precision (bf16/fp16 autocast or float32), with
    channels-last images and weights on CUDA.
    """

    def __init__(self, clip: Clip) -> None:
        super().__init__()
        self.clip_model = clip.model
        self.register_buffer("mean", torch.from_numpy(MEAN).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.from_numpy(STD).view(1, 3, 1, 1), persistent=False)

    def on_predict_start(self) -> None:
        if self.device.type == "cuda":
            self.clip_model.to(memory_format=torch.channels_last)  # the patch convolution

    def predict_step(self, batch: Batch) -> Embedded:
        start = time.perf_counter()
        x = batch.pixels.permute(0, 3, 1, 2)  # (B, 3, S, S) view with channel-last strides
        x = (x.float() / 255.0 - self.mean) / self.std
        fmt = torch.channels_last if self.device.type == "cuda" else torch.contiguous_format
        x = x.contiguous(memory_format=fmt)
        feats = self.clip_model.get_image_features(pixel_values=x).pooler_output
        feats = torch.nn.functional.normalize(feats.float(), dim=-1).half().cpu()  # syncs
        return Embedded(feats, batch, time.perf_counter() - start)


@dataclass
class Tally:
    """What one rank did in this run; summed over ranks for the summary."""

    units: int = 0
    images: int = 0
    skipped: int = 0
    read_s: float = 0.0  # worker-seconds reading bytes
    decode_s: float = 0.0  # worker-seconds decoding and cropping
    model_s: float = 0.0  # normalisation, model, L2 norm, copy back
    write_s: float = 0.0

    def add(self, other: Tally) -> None:
        for name, value in asdict(other).items():
            setattr(self, name, getattr(self, name) + value)


@dataclass
class _Buffer:
    emb: np.ndarray
    reasons: list[str]
    filled: int = 0


class UnitWriter(BasePredictionWriter):
    """Collects each unit's rows and commits the unit as soon as its last row arrives, so memory
    holds only the units in flight (one or two) however many there are."""

    def __init__(
        self, units: Sequence[Unit], made: Sequence[bytes], out: Path, dim: int, bar: tqdm
    ) -> None:
        super().__init__(write_interval="batch")
        self.units, self.made, self.out, self.dim, self.bar = units, made, out, dim, bar
        self.buffers: dict[int, _Buffer] = {}
        self.tally = Tally()

    def write_on_batch_end(self, trainer, pl_module, prediction: Embedded, *args, **kwargs):
        batch = prediction.batch
        unit = self.units[batch.unit]
        buf = self.buffers.setdefault(
            batch.unit, _Buffer(np.zeros((unit.size, self.dim), np.float16), [""] * unit.size)
        )
        n = len(batch.reasons)
        buf.emb[batch.start : batch.start + n] = prediction.features.numpy()
        buf.reasons[batch.start : batch.start + n] = batch.reasons
        buf.filled += n
        t = self.tally
        t.images += n
        t.skipped += sum(1 for r in batch.reasons if r)
        t.read_s += batch.read_s
        t.decode_s += batch.decode_s
        t.model_s += prediction.model_s
        if buf.filled == unit.size:
            start = time.perf_counter()
            write_unit(self.out, unit, buf.emb, buf.reasons, self.made[batch.unit])
            t.write_s += time.perf_counter() - start
            t.units += 1
            del self.buffers[batch.unit]
        self.bar.update(n)
        self.bar.set_postfix(units=t.units, skipped=t.skipped, refresh=False)


def write_unit(
    out: Path, unit: Unit, emb: np.ndarray, reasons: Sequence[str], footer: bytes
) -> None:
    """Commit one unit (:func:`newsimg.store.units.write_unit`), logging its skipped images."""
    skipped = unit_store.write_unit(out, unit.name, unit.keys(), emb, reasons, footer)
    if skipped:
        log.warning("%s: skipped %d unreadable images", unit.name, skipped)


# -------------------------------------------------------------------------------------- stage


def run(params: EmbedParams, fmt: str, images: Path, model: Path, out: Path) -> dict[str, Any]:
    """Embed every unit of ``images`` (``fmt`` "shards" or "n24news") not current in ``out``.

    Runs on every rank of a Lightning DDP job (processes Lightning starts itself, or SLURM
    tasks); unit ``i`` goes to rank ``i % world``. Returns the summary (also written to
    ``out/summary.json`` by rank 0): ``units`` in the input, ``current`` (already up to date),
    ``embedded`` (units written now), ``removed`` (outputs of units gone from the input),
    ``images`` and ``skipped`` (unreadable) in this run, ``seconds`` (read, decode: summed over
    loader workers; model, write: summed over ranks; wall: the slowest rank), ``images_per_s``.

    Raises :class:`TooManyFailuresError` when ``skipped / images`` passes
    ``params.max_skipped_rate``, after every unit has been written.
    """
    if fmt == "shards":
        units_in = shard_units(images)
    elif fmt == "n24news":
        units_in = n24news_units(images, params.unit_size)
    else:
        raise ParamsError(f"embed --format {fmt!r}: expected one of {', '.join(FORMATS)}")
    out.mkdir(parents=True, exist_ok=True)
    trainer = pl.Trainer(
        accelerator=params.accelerator,
        devices=params.devices,
        num_nodes=params.num_nodes,
        precision=PRECISION[params.precision],
        logger=False,
        enable_checkpointing=False,
        enable_model_summary=False,
        enable_progress_bar=False,  # ours counts images, not batches
        use_distributed_sampler=False,  # ranks own whole units
    )
    rank, world = trainer.global_rank, trainer.world_size
    model_fp = model_fingerprint(model, params.precision)
    removed = unit_store.remove_orphans(out, {u.name for u in units_in}) if rank == 0 else 0
    mine = units_in[rank::world]
    made = {u.name: made_from(u, model_fp) for u in mine}  # once per unit, before reading it
    pending = [u for u in mine if not is_current(out, u.name, made[u.name])]
    log.info(
        "rank %d of %d: %d of %d units, %d to embed",
        rank,
        world,
        len(mine),
        len(units_in),
        len(pending),
    )
    tally, wall = Tally(), 0.0
    if pending or world > 1:  # every rank of a job joins its collectives, work or not
        for unit in pending:
            unit_store.remove_unit_temps(out, unit.name)
        start = time.perf_counter()
        tally = _predict(trainer, params, pending, [made[u.name] for u in pending], model, out)
        wall = time.perf_counter() - start
    summary = _summary(units_in, pending, removed, tally, wall, world)
    log.info("%s", summary_line(summary))
    if rank == 0:
        write_text(out / SUMMARY, json.dumps(summary, indent=1))
    if summary["skipped"] > params.max_skipped_rate * summary["images"]:
        raise TooManyFailuresError(
            f"{summary['skipped']} of {summary['images']} images could not be read, above "
            f"embed.max_skipped_rate = {params.max_skipped_rate}; see {out}/*.skipped.parquet"
        )
    return summary


def _predict(
    trainer: pl.Trainer,
    params: EmbedParams,
    pending: Sequence[Unit],
    made: Sequence[bytes],
    model: Path,
    out: Path,
) -> Tally:
    clip = Clip(model)  # float32 weights; the Trainer's precision sets the compute dtype
    cuda = trainer.strategy.root_device.type == "cuda"
    dataset = ChunkDataset(pending, params.batch_size, clip.image_size)
    loader = DataLoader(
        dataset,
        batch_size=None,  # items are batches already
        num_workers=params.num_workers,
        pin_memory=cuda,
        prefetch_factor=params.prefetch_batches if params.num_workers else None,
    )
    bar = tqdm(
        total=sum(u.size for u in pending),
        desc=f"embed rank {trainer.global_rank}",
        unit="img",
        dynamic_ncols=True,
        disable=None if trainer.global_rank == 0 else True,
    )
    writer = UnitWriter(pending, made, out, clip.dim, bar)
    trainer.callbacks.append(writer)
    with bar, warnings.catch_warnings():
        # batches come whole from the dataset: there are no sampler indices, and none needed
        warnings.filterwarnings("ignore", "Couldn't infer the batch indices")
        trainer.predict(ImageEncoder(clip), loader, return_predictions=False)
    return writer.tally


def _summary(
    units: Sequence[Unit],
    pending: Sequence[Unit],
    removed: int,
    tally: Tally,
    wall: float,
    world: int,
) -> dict[str, Any]:
    """This rank's counts summed over every rank of the job (the wall time: the slowest)."""
    mine = {"pending": len(pending), "removed": removed, "wall": wall, "tally": asdict(tally)}
    ranks = [mine]
    if torch.distributed.is_available() and torch.distributed.is_initialized():
        ranks = [None] * torch.distributed.get_world_size()
        torch.distributed.all_gather_object(ranks, mine)
    total = Tally()
    for r in ranks:
        total.add(Tally(**r["tally"]))
    wall = max(r["wall"] for r in ranks)
    pending_all = sum(r["pending"] for r in ranks)
    return {
        "world": world,
        "units": len(units),
        "current": len(units) - pending_all,
        "embedded": total.units,
        "removed": sum(r["removed"] for r in ranks),
        "images": total.images,
        "skipped": total.skipped,
        "seconds": {
            "read": round(total.read_s, 3),
            "decode": round(total.decode_s, 3),
            "model": round(total.model_s, 3),
            "write": round(total.write_s, 3),
            "wall": round(wall, 3),
        },
        "images_per_s": round(total.images / wall, 1) if wall else 0.0,
    }


def summary_line(s: dict[str, Any]) -> str:
    sec = s["seconds"]
    return (
        f"embed: {s['units']} units, {s['current']} current, {s['embedded']} embedded, "
        f"{s['removed']} removed; {s['images']} images ({s['skipped']} skipped) in "
        f"{sec['wall']:.1f} s on {s['world']} rank(s), {s['images_per_s']:.1f} images/s; "
        f"read {sec['read']:.1f} s + decode {sec['decode']:.1f} s (loader workers), "
        f"model {sec['model']:.1f} s, write {sec['write']:.1f} s"
    )
