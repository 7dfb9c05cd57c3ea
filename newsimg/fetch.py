"""The fetch stage: YFCC100M photos (S3 or any fsspec URL) and the articles' own images into shards.

reader -> mapper -> writer, one shard at a time, as img2dataset and clip-retrieval do:

- reader: the NewsImages folder (sorted by name) and the YFCC manifest (streamed), each cut into
  shards of ``shard_size`` items; shard ``i`` of a source holds items ``i*shard_size`` to
  ``(i+1)*shard_size - 1``, so the layout depends on the inputs only, never on rank or timing;
- mapper: per image, ``workers`` in flight on an event loop: read the bytes with retries
  (:mod:`newsimg.download`), then check and normalise them to an RGB JPEG of at most
  ``max_side`` pixels in a decode thread (:mod:`newsimg.images`);
- writer: :func:`newsimg.store.shards.write_shard`, atomic per shard.

Rank ``r`` of ``w`` (``RANK``/``WORLD_SIZE``, else ``SLURM_PROCID``/``SLURM_NTASKS``) takes the
shards with ``i % w == r`` and shares them out among ``processes`` worker processes, whole
shards each. A shard already committed from the same items and image params is skipped, so a
killed run re-run finishes the rest; no two processes ever write the same file.
"""

from __future__ import annotations

import asyncio
import ctypes
import hashlib
import json
import logging
import multiprocessing as mp
import os
import random
import signal
import sys
import time
from collections import Counter, deque
from collections.abc import Callable, Iterable, Iterator, Mapping
from concurrent.futures import (
    FIRST_COMPLETED,
    Executor,
    Future,
    ProcessPoolExecutor,
    ThreadPoolExecutor,
    wait,
)
from concurrent.futures.process import BrokenProcessPool
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from functools import partial
from itertools import count, islice
from multiprocessing.context import BaseContext
from pathlib import Path
from typing import Any

import pyarrow as pa
from fsspec import filesystem
from tqdm import tqdm

from newsimg.download import FileSystemReader, Reader, open_source, read_bytes
from newsimg.errors import InputError, Rejected, TooManyFailuresError, WorkerDiedError
from newsimg.images import ignore_bomb_warnings, normalise, quiet_bomb_warnings
from newsimg.logs import setup_logging
from newsimg.metadata.build import read_videos as read_video_list
from newsimg.params import FetchParams
from newsimg.sources import read_yfcc_manifest
from newsimg.store import shards
from newsimg.store.shards import Failure, ImageRow

log = logging.getLogger(__name__)

YFCC = "yfcc"
NEWSIMAGES = "newsimages"
PROGRESS_INTERVAL_S = 0.25  # how often the bar reads the processes' shared counts
# Threads per process that check and convert images. Pillow lets go of the GIL while decoding and
# resizing, not while encoding: two keep a core busy.
DECODE_THREADS = 2
# A shard whose process dies this many times while it runs alone holds a poison image: it is
# searched for and recorded as CRASHED, at most MAX_POISONED times per shard before giving up.
MAX_SOLO_DEATHS = 2
MAX_POISONED = 8
CRASHED = "crashed"  # the failure reason of an image whose conversion killed its process


@dataclass(frozen=True)
class Item:
    """One image to fetch: its key in the shards and its path in the source's filesystem."""

    key: str
    source: str
    photo_id: int | None
    path: str


@dataclass(frozen=True)
class Outcome:
    row: ImageRow | None
    failure: Failure | None
    read_s: float
    decode_s: float


def run(params: FetchParams, manifest: Path, newsimages: Path, out: Path) -> dict[str, Any]:
    """Fetch this rank's shards of both sources into ``out`` and return a summary.

    ``manifest`` is a ``photo_id<TAB>hash`` file or a plain hash list (``params.limit`` keeps its
    first rows); each row is read from ``{params.source}/{h[0:3]}/{h[3:6]}/{h}.jpg``.
    ``newsimages`` is a folder of ``*.jpg`` (key = file stem, sorted by name). Shards are
    ``{source}-{index:05d}.parquet`` (see :mod:`newsimg.store.shards`). The rank's shards are shared
    out among ``params.processes`` processes, each with ``params.workers`` requests in flight.

    The summary holds ``rank``, ``world``, ``processes``, shard counts (``shards_total`` over all
    ranks, ``shards_written``, ``shards_skipped`` already complete, ``shards_other_ranks``,
    ``shards_given_up`` by name), image counts of the shards written in this run (``attempted``,
    ``ok``, ``failed``, ``status`` by reason, ``bytes``), ``failure_rate``, ``seconds`` and
    ``images_per_s``.

    Raises :class:`InputError` for missing inputs or a malformed manifest line; after every
    other shard has been written, :class:`WorkerDiedError` when shards were given up because
    their processes kept dying (see :class:`PooledShards`), and :class:`TooManyFailuresError`
    when ``failed / attempted > params.max_failure_rate`` over the shards written in this run.
    """
    manifest, newsimages, out = Path(manifest), Path(newsimages), Path(out)
    if not manifest.is_file():
        raise InputError(f"YFCC manifest {manifest} does not exist")
    if not newsimages.is_dir():
        raise InputError(f"NewsImages folder {newsimages} does not exist")
    rank, world = rank_world()
    _, root = open_source(params)  # a malformed source fails here, before any process starts
    videos = read_videos(params)
    skipped = Counter[str]()  # videos left out of the YFCC items, counted as they stream by
    sources = {
        NEWSIMAGES: newsimages_items(newsimages),
        YFCC: yfcc_items(manifest, root, params.limit, videos, skipped),
    }
    out.mkdir(parents=True, exist_ok=True)
    # The bar's total is this rank's items, counted once by streaming (seconds for the full
    # manifest, against days of fetching); skipped shards are taken off it so that the rate and
    # the ETA are those of the images still to fetch.
    n_items = [
        sum(1 for _ in newsimages_items(newsimages)),
        count_manifest_rows(manifest, params.limit),
    ]
    total = sum(rank_items(n, params.shard_size, rank, world) for n in n_items)
    rank_shards = sum(len(range(rank, -(-n // params.shard_size), world)) for n in n_items)
    processes = max(1, min(params.processes or usable_cores(), rank_shards))
    log.info(
        "fetch rank %d of %d from %s into %s: %d processes x %d requests in flight",
        rank,
        world,
        params.source,
        out,
        processes,
        params.workers,
    )
    tally = Tally(rank=rank, world=world, processes=processes)
    with (
        progress_bar(total, rank) as bar,
        shard_executor(params, out, processes, bar) as executor,
    ):
        jobs = pending_shards(sources, params, out, rank, world, tally, bar)
        for stats in executor.run(jobs):
            tally.add(stats)
            log.info("%s", shard_line(stats))
        tally.given_up = executor.given_up
    summary = {**tally.summary(), "videos_skipped": skipped["video"]}
    log.info("%s", summary_line(summary))
    log.info("fetch summary: %s", json.dumps(summary))
    if tally.given_up:
        raise WorkerDiedError(
            f"fetch processes kept dying on {', '.join(tally.given_up)}, and no single image "
            "was to blame (out of memory?): given up. "
            f"Every other shard is written in {out}; run again to retry them"
        )
    _check_failure_rate(summary, params.max_failure_rate, out)
    return summary


# ---------------------------------------------------------------------------------------- reader


def rank_world(environ: Mapping[str, str] | None = None) -> tuple[int, int]:
    """``(rank, world)`` of this process: ``RANK``/``WORLD_SIZE``, else ``SLURM_PROCID``/
    ``SLURM_NTASKS``, else ``(0, 1)``.

    ``RANK`` wins because a launcher that sets it (torchrun, Lightning) knows the global rank even
    inside a SLURM step that runs one launcher per node. Raises :class:`InputError` when only one
    of a pair is set, a value is not an integer, or ``rank`` is not in ``[0, world)``.
    """
    env = os.environ if environ is None else environ
    for rank_var, world_var in (("RANK", "WORLD_SIZE"), ("SLURM_PROCID", "SLURM_NTASKS")):
        if rank_var not in env and world_var not in env:
            continue
        try:
            rank, world = int(env[rank_var]), int(env[world_var])
        except (KeyError, ValueError):
            raise InputError(
                f"{rank_var}={env.get(rank_var)!r}, {world_var}={env.get(world_var)!r}: "
                "set both to integers, or neither"
            ) from None
        if not 0 <= rank < world:
            raise InputError(f"{rank_var}={rank} is not in [0, {world_var}={world})")
        return rank, world
    return 0, 1


def yfcc_items(
    manifest: Path,
    root: str,
    limit: int | None = None,
    videos: frozenset[int] = frozenset(),
    skipped: Counter[str] | None = None,
) -> Iterator[Item]:
    """Stream the manifest as items under ``root``; ``limit`` keeps the first rows.

    Rows whose photo id is in ``videos`` are left out (never fetched) and counted in
    ``skipped["video"]``; the metadata stage cuts its shards the same way.
    """
    rows = read_yfcc_manifest(manifest)
    if limit is not None:
        rows = islice(rows, limit)
    for row in rows:
        if row.photo_id in videos:
            if skipped is not None:
                skipped["video"] += 1
            continue
        yield Item(key=row.hash, source=YFCC, photo_id=row.photo_id, path=f"{root}/{row.key}")


def read_videos(params: FetchParams) -> frozenset[int]:
    """The photo ids never to fetch: ``params.videos`` when ``params.skip_videos``, else none."""
    if params.videos is None or not params.skip_videos:
        return frozenset()
    if not Path(params.videos).is_file():
        raise InputError(
            f"fetch.videos {params.videos} does not exist (the metadata stage writes it)"
        )
    return read_video_list(Path(params.videos))


def newsimages_items(folder: Path) -> Iterator[Item]:
    """The articles' original images ``folder/*.jpg`` sorted by name; key = file stem."""
    for path in sorted(Path(folder).glob("*.jpg"), key=lambda p: p.name):
        yield Item(key=path.stem, source=NEWSIMAGES, photo_id=None, path=str(path.resolve()))


def count_manifest_rows(manifest: Path, limit: int | None = None) -> int:
    """Rows of the manifest (non-blank lines), at most ``limit``: one streaming pass, no parsing."""
    n = 0
    with open(manifest, "rb") as f:
        for line in f:
            if line.strip():
                n += 1
                if limit is not None and n >= limit:
                    break
    return n


def rank_items(n: int, shard_size: int, rank: int, world: int) -> int:
    """How many of ``n`` items fall in the shards ``i % world == rank`` of ``shard_size`` each."""
    n_shards = -(-n // shard_size)
    return sum(min(shard_size, n - i * shard_size) for i in range(rank, n_shards, world))


@contextmanager
def progress_bar(total: int, rank: int) -> Iterator[tqdm]:
    """A tqdm bar of images with images/s, failures so far and ETA (off when not a terminal)."""
    bar = tqdm(
        total=total,
        desc=f"fetch rank {rank}",
        unit="img",
        dynamic_ncols=True,
        smoothing=0.05,  # the rate over the last minutes rather than the last few images
        disable=None,
    )
    bar.set_postfix(failed=0, refresh=False)
    with bar:
        yield bar


def shard_chunks(items: Iterable[Item], size: int) -> Iterator[tuple[int, list[Item]]]:
    """``(index, items)`` of consecutive shards; only one shard's items are held at a time."""
    it = iter(items)
    for index in count():
        chunk = list(islice(it, size))
        if not chunk:
            return
        yield index, chunk


def shard_metadata(items: list[Item], params: FetchParams) -> dict[str, str]:
    """What a shard's content depends on; a committed shard with other metadata is rebuilt.

    The items (key and photo id, not the path: S3 and a local copy give the same shard) and the
    image params. This catches a longer ``limit``, an edited manifest or a new ``max_side``.
    """
    digest = hashlib.sha256()
    for item in items:
        digest.update(f"{item.key}\t{item.photo_id}\n".encode())
    return {
        "items": str(len(items)),
        "items_sha256": digest.hexdigest(),
        "max_side": str(params.max_side),
        "min_side": str(params.min_side),
        "max_pixels": str(params.max_pixels),
        "quality": str(params.quality),
    }


def _already_done(out: Path, source: str, index: int, metadata: dict[str, str]) -> bool:
    path = shards.shard_path(out, source, index)
    if not path.is_file():
        return False
    try:
        if shards.read_metadata(path) == metadata:
            return True
    except (OSError, pa.ArrowException):
        pass
    log.warning("%s was built from other items or params: rebuilding it", path.name)
    return False


# ---------------------------------------------------------------------------------------- mapper


async def process(
    item: Item, read: Reader, params: FetchParams, rng: random.Random, decoder: Executor
) -> Outcome:
    """Read one image, then check and normalise it in ``decoder``; never raises for a bad image."""
    start = time.perf_counter()
    try:
        data = await read_bytes(read, item.path, params, rng)
    except Rejected as rej:
        return Outcome(None, Failure(item.key, item.source, rej.reason), _since(start), 0.0)
    read_s = _since(start)
    loop = asyncio.get_running_loop()
    return await loop.run_in_executor(decoder, convert, item, data, params, read_s)


def convert(item: Item, data: bytes, params: FetchParams, read_s: float = 0.0) -> Outcome:
    """The outcome of :func:`normalise` on ``item``'s bytes; never raises for a bad image."""
    start = time.perf_counter()
    try:
        jpeg, width, height = normalise(data, params)
    except Rejected as rej:
        return Outcome(None, Failure(item.key, item.source, rej.reason), read_s, _since(start))
    except Exception as exc:  # a Pillow bug or an exotic file must cost one image, not the run
        log.debug("%s: %r", item.path, exc)
        failure = Failure(item.key, item.source, f"error: {type(exc).__name__}")
        return Outcome(None, failure, read_s, _since(start))
    row = ImageRow(item.key, item.source, item.photo_id, jpeg, width, height)
    return Outcome(row, None, read_s, _since(start))


def _since(start: float) -> float:
    return time.perf_counter() - start


# ---------------------------------------------------------------------------------------- writer


@dataclass(frozen=True)
class ShardJob:
    """One shard to fetch: its source, index and items, and the metadata that marks it complete.

    ``poisoned`` keys are recorded as ``crashed`` without being read (their conversion killed
    the process); a ``probe`` only fetches and converts its items, commits nothing, and returns
    how many it did (see :meth:`PooledShards._find_poison`).
    """

    source: str
    index: int
    items: list[Item]
    metadata: dict[str, str]
    poisoned: frozenset[str] = frozenset()
    probe: bool = False


def pending_shards(
    sources: Mapping[str, Iterable[Item]],
    params: FetchParams,
    out: Path,
    rank: int,
    world: int,
    tally: Tally,
    bar: tqdm,
) -> Iterator[ShardJob]:
    """This rank's shards of ``sources`` (name: items) that ``out`` lacks complete, in order.

    Streams: one shard's items are read at a time. Shards of other ranks and complete ones are
    counted in ``tally``; complete ones are also taken off ``bar``'s total.
    """
    for source, items_of_source in sources.items():
        for index, items in shard_chunks(items_of_source, params.shard_size):
            tally.shards_total += 1
            if index % world != rank:
                tally.shards_other_ranks += 1
                continue
            shards.remove_temp_files(out, source, index)
            metadata = shard_metadata(items, params)
            if _already_done(out, source, index, metadata):
                tally.shards_skipped += 1
                bar.total = max(bar.n, (bar.total or 0) - len(items))
                bar.refresh()
                continue
            yield ShardJob(source, index, items, metadata)


class SharedProgress:
    """Images done and failed of the shards in flight, counted by all processes in shared memory."""

    def __init__(self, ctx: BaseContext) -> None:
        self._counts = ctx.Array("q", 2)  # images, failures; with a lock

    def reset(self) -> None:
        with self._counts.get_lock():
            self._counts[0] = self._counts[1] = 0

    def add(self, failed: bool) -> None:
        with self._counts.get_lock():
            self._counts[0] += 1
            self._counts[1] += failed

    def read(self) -> tuple[int, int]:
        with self._counts.get_lock():
            return self._counts[0], self._counts[1]


class BarProgress:
    """Images done and failed, straight onto the bar (one process)."""

    def __init__(self, bar: tqdm) -> None:
        self.bar = bar
        self.failed = 0

    def add(self, failed: bool) -> None:
        if failed:
            self.failed += 1
            self.bar.set_postfix(failed=self.failed, refresh=False)
        self.bar.update(1)


class ShardFetcher:
    """Fetches and commits whole shards; one per process.

    An event loop keeps ``params.workers`` images in flight (reading or being converted); the
    reads are asynchronous, the conversions run in ``DECODE_THREADS`` threads (Pillow lets go
    of the GIL while it decodes and resizes). Against a thread per request this took CPU per
    image from 5.4 to 4.2 ms (bench/fetch.py).
    """

    def __init__(self, params: FetchParams, out: Path, progress: SharedProgress | BarProgress):
        self.params = params
        self.out = out
        self.progress = progress
        self.readers = {
            NEWSIMAGES: FileSystemReader(filesystem("file"), params.workers),
            YFCC: open_source(params)[0],
        }
        self.decoder = ThreadPoolExecutor(DECODE_THREADS, thread_name_prefix="decode")
        self.rng = random.Random()  # backoff jitter only; each process seeds its own from the OS
        # In the main thread, the runner turns Ctrl-C into cancelling the shard's requests.
        self.runner = asyncio.Runner()

    def __call__(self, job: ShardJob) -> dict[str, Any]:
        """Fetch the shard's items, commit the shard (rows in item order), return its stats."""
        start = time.perf_counter()
        outcomes = self.runner.run(self._fetch(job, self.readers[job.source]))
        if job.probe:
            return {"probed": len(outcomes)}
        rows = [o.row for o in outcomes if o.row is not None]
        failures = [o.failure for o in outcomes if o.failure is not None]
        durations = {
            "read_s": sum(o.read_s for o in outcomes),
            "decode_s": sum(o.decode_s for o in outcomes),
            "fetch_s": _since(start),
        }
        return shards.write_shard(
            self.out,
            job.source,
            job.index,
            rows,
            failures,
            durations=durations,
            metadata=job.metadata,
        )

    async def _fetch(self, job: ShardJob, reader: Reader) -> list[Outcome]:
        in_flight = asyncio.Semaphore(self.params.workers)

        async def one(item: Item) -> Outcome:
            try:
                if item.key in job.poisoned:
                    outcome = Outcome(None, Failure(item.key, item.source, CRASHED), 0.0, 0.0)
                else:
                    outcome = await process(item, read, self.params, self.rng, self.decoder)
            finally:
                in_flight.release()
            self.progress.add(failed=outcome.failure is not None)
            return outcome

        async with reader as read, asyncio.TaskGroup() as group:
            tasks = []
            for item in job.items:  # a task per image in flight, not per image of the shard
                await in_flight.acquire()
                tasks.append(group.create_task(one(item)))
        return [task.result() for task in tasks]

    def close(self) -> None:
        self.runner.close()
        self.decoder.shutdown(wait=True, cancel_futures=True)


class PooledShards:
    """Runs :class:`ShardJob` s in a pool of worker processes, one per process at a time.

    A worker that dies (a crash in an image decoder, the OOM killer) breaks the pool, and every
    shard in flight with it. The pool is then started again and those shards run again, one at a
    time, so that a death can be pinned on one shard. A shard whose process dies
    ``MAX_SOLO_DEATHS`` times while it runs alone holds a poison image: :meth:`_find_poison`
    bisects the shard for it, and the shard runs again with that image recorded as ``crashed``.
    A shard where no single image is to blame is given up (:attr:`given_up`); the others go on.
    Nothing of a shard is committed before it is complete, so nothing is lost or doubled.
    """

    def __init__(
        self,
        start_pool: Callable[[], ProcessPoolExecutor],
        processes: int,
        progress: SharedProgress,
        bar: tqdm,
    ) -> None:
        self.start_pool = start_pool
        self.pool = start_pool()
        self.depth = processes
        self.progress = progress  # counts since the pool was (re)started
        self.bar = bar
        self.given_up: list[str] = []  # shard names
        self._committed = [0, 0]  # images and failures of the shards committed so far
        self._base = [0, 0]  # the same, when the pool was last restarted

    def run(self, jobs: Iterable[ShardJob]) -> Iterator[dict[str, Any]]:
        """Each job's stats as it completes; the bar follows the images of all processes."""
        fresh = iter(jobs)
        suspects: deque[ShardJob] = deque()  # in flight when a process died: run alone
        solo_deaths: Counter[str] = Counter()
        pending: dict[Future[dict[str, Any]], ShardJob] = {}
        solo = False  # a suspect is running: nothing else starts beside it
        while True:
            if not pending:
                solo = False
                if suspects:
                    job = suspects.popleft()
                    pending[self.pool.submit(_fetch_in_worker, job)] = job
                    solo = True
            if not solo:
                while len(pending) < self.depth and (job := next(fresh, None)) is not None:
                    pending[self.pool.submit(_fetch_in_worker, job)] = job
            if not pending:
                return
            alone = len(pending) == 1
            done, _ = wait(pending, timeout=PROGRESS_INTERVAL_S, return_when=FIRST_COMPLETED)
            broken = False
            for future in done:
                job = pending.pop(future)
                try:
                    stats = future.result()
                except BrokenProcessPool:
                    pending[future] = job
                    broken = True
                    continue
                self._committed[0] += stats["attempted"]
                self._committed[1] += stats["failed"]
                yield stats
            if broken:
                lost = list(pending.values())
                pending.clear()
                self._restart()
                if alone:
                    self._died_alone(lost[0], solo_deaths, suspects)
                else:
                    log.warning(
                        "a fetch process died with %s in flight; running them again, one by one",
                        ", ".join(shards.shard_name(j.source, j.index) for j in lost),
                    )
                    suspects.extend(lost)
            self._show_progress()

    def _died_alone(
        self, job: ShardJob, solo_deaths: Counter[str], suspects: deque[ShardJob]
    ) -> None:
        name = shards.shard_name(job.source, job.index)
        solo_deaths[name] += 1
        if solo_deaths[name] < MAX_SOLO_DEATHS:
            log.warning("a fetch process died fetching %s alone; trying it again", name)
            suspects.appendleft(job)
            return
        log.warning(
            "fetch processes died %d times on %s: looking for the image", solo_deaths[name], name
        )
        poison = self._find_poison(job) if len(job.poisoned) < MAX_POISONED else None
        if poison is None:
            log.error("%s: no single image kills its process; giving the shard up", name)
            self.given_up.append(name)
            return
        log.error(
            "%s: image %s kills the process that converts it: recorded as %s", name, poison, CRASHED
        )
        solo_deaths[name] = 0
        suspects.appendleft(replace(job, poisoned=job.poisoned | {poison}))

    def _find_poison(self, job: ShardJob) -> str | None:
        """The key of the image whose fetch kills a process, found by bisecting the shard's items
        with probes (about log2(shard_size) of them, fetching about one shard's worth in all);
        ``None`` when no single image does (a crash that needs company, or memory)."""
        items = [item for item in job.items if item.key not in job.poisoned]
        while len(items) > 1:
            half = len(items) // 2
            items = items[:half] if self._probe_dies(job, items[:half]) else items[half:]
        found = items[0].key if items and self._probe_dies(job, items) else None
        self._rebase()  # the probes' images are not the shard's progress
        return found

    def _probe_dies(self, job: ShardJob, items: list[Item]) -> bool:
        probe = replace(job, items=items, probe=True)
        try:
            self.pool.submit(_fetch_in_worker, probe).result()
        except BrokenProcessPool:
            self._restart()
            return True
        return False

    def _restart(self) -> None:
        self.pool.shutdown(wait=True, cancel_futures=True)
        self._rebase()
        self.pool = self.start_pool()

    def _rebase(self) -> None:
        # Only with nothing in flight: the bar restarts from the shards committed so far.
        self.progress.reset()
        self._base = list(self._committed)

    def _show_progress(self) -> None:
        images, failed = self.progress.read()
        self.bar.set_postfix(failed=self._base[1] + failed, refresh=False)
        self.bar.update(self._base[0] + images - self.bar.n)

    def close(self) -> None:
        self.pool.shutdown(wait=True, cancel_futures=True)


@dataclass
class InlineShards:
    """Runs :class:`ShardJob` s one after the other in this process."""

    fetcher: ShardFetcher
    given_up: list[str] = field(default_factory=list)  # never: a crash here ends the run

    def run(self, jobs: Iterable[ShardJob]) -> Iterator[dict[str, Any]]:
        for job in jobs:
            yield self.fetcher(job)


@contextmanager
def shard_executor(
    params: FetchParams, out: Path, processes: int, bar: tqdm
) -> Iterator[PooledShards | InlineShards]:
    """Where the shards are fetched: ``processes`` worker processes, or this one if 1.

    Processes are spawned, not forked (this process may already run threads: fsspec's event
    loop, tqdm's monitor), and die with this one (see :func:`_die_with_parent`), so a killed run
    leaves none behind still writing shards.
    """
    if processes == 1:
        fetcher = ShardFetcher(params, out, BarProgress(bar))
        try:
            with quiet_bomb_warnings():
                yield InlineShards(fetcher)
        finally:
            fetcher.close()
        return
    ctx = mp.get_context("spawn")
    progress = SharedProgress(ctx)
    level = logging.getLogger("newsimg").getEffectiveLevel()
    start_pool = partial(
        ProcessPoolExecutor,
        processes,
        mp_context=ctx,
        initializer=_start_worker,
        initargs=(params, out, progress, os.getpid(), level),
    )
    pooled = PooledShards(start_pool, processes, progress, bar)
    try:
        yield pooled
    finally:
        pooled.close()


_fetcher: ShardFetcher | None = None  # a worker process's own


def _start_worker(
    params: FetchParams, out: Path, progress: SharedProgress, parent: int, log_level: int
) -> None:
    _die_with_parent(parent)
    setup_logging(log_level)
    ignore_bomb_warnings()  # this process does nothing else: for its whole lifetime
    global _fetcher
    _fetcher = ShardFetcher(params, out, progress)


def _fetch_in_worker(job: ShardJob) -> dict[str, Any]:
    assert _fetcher is not None, "not a fetch worker process"
    return _fetcher(job)


def _die_with_parent(parent: int) -> None:
    """Have the kernel SIGKILL this process when its parent dies (Linux's PR_SET_PDEATHSIG).

    Elsewhere a worker outliving a killed run finishes its shard, which is harmless (writes are
    atomic, and a re-run writes the same bytes), but keeps the CPU busy.
    """
    if sys.platform.startswith("linux"):
        pr_set_pdeathsig = 1
        ctypes.CDLL(None, use_errno=True).prctl(pr_set_pdeathsig, signal.SIGKILL)
    if os.getppid() != parent:  # it died before prctl
        os._exit(1)


def usable_cores() -> int:
    """CPU cores this process may run on (its affinity mask: SLURM's allocation, taskset)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


def failure_reasons(status: Mapping[str, int]) -> str:
    """``"not_found 3, timeout 1"``: the counts by status, less ``ok``."""
    return ", ".join(f"{k} {v}" for k, v in status.items() if k != "ok")


def shard_line(stats: Mapping[str, Any]) -> str:
    """One readable log line of a committed shard's stats."""
    seconds = stats["durations"]["fetch_s"] + stats["durations"]["write_s"]
    reasons = failure_reasons(stats["status"])
    return (
        f"{stats['shard']}: {stats['ok']} ok, {stats['failed']} failed"
        f"{f' ({reasons})' if reasons else ''} in {seconds:.1f} s "
        f"({stats['attempted'] / seconds if seconds > 0 else 0.0:.0f} images/s, "
        f"{stats['bytes'] / 1e6:.1f} MB)"
    )


@dataclass
class Tally:
    """Counts over one run of :func:`run`."""

    rank: int
    world: int
    processes: int = 1
    shards_total: int = 0
    shards_written: int = 0
    shards_skipped: int = 0
    shards_other_ranks: int = 0
    given_up: list[str] = field(default_factory=list)
    attempted: int = 0
    ok: int = 0
    failed: int = 0
    bytes: int = 0
    status: Counter[str] = field(default_factory=Counter)
    start: float = field(default_factory=time.perf_counter)

    def add(self, stats: Mapping[str, Any]) -> None:
        self.shards_written += 1
        self.attempted += stats["attempted"]
        self.ok += stats["ok"]
        self.failed += stats["failed"]
        self.bytes += stats["bytes"]
        self.status.update(stats["status"])

    def summary(self) -> dict[str, Any]:
        seconds = _since(self.start)
        return {
            "rank": self.rank,
            "world": self.world,
            "processes": self.processes,
            "shards_total": self.shards_total,
            "shards_written": self.shards_written,
            "shards_skipped": self.shards_skipped,
            "shards_other_ranks": self.shards_other_ranks,
            "shards_given_up": self.given_up,
            "attempted": self.attempted,
            "ok": self.ok,
            "failed": self.failed,
            "status": dict(sorted(self.status.items())),
            "bytes": self.bytes,
            "failure_rate": self.failed / self.attempted if self.attempted else 0.0,
            "seconds": seconds,
            "images_per_s": self.attempted / seconds if seconds > 0 else 0.0,
        }


def summary_line(summary: Mapping[str, Any]) -> str:
    """One readable line of a :func:`run` summary, for the end of the log."""
    reasons = failure_reasons(summary["status"])
    return (
        f"fetch rank {summary['rank']} of {summary['world']} done: "
        f"{summary['shards_written']} shards written, {summary['shards_skipped']} already done, "
        f"{summary['shards_other_ranks']} left to other ranks"
        f"{f', {len(given_up)} given up' if (given_up := summary['shards_given_up']) else ''}; "
        f"{summary['attempted']} images, "
        f"{summary['ok']} ok, {summary['failed']} failed ({summary['failure_rate']:.2%}"
        f"{': ' + reasons if reasons else ''}), {summary['bytes'] / 1e6:.1f} MB "
        f"in {summary['seconds']:.1f} s ({summary['images_per_s']:.1f} images/s)"
    )


def _check_failure_rate(summary: Mapping[str, Any], max_rate: float, out: Path) -> None:
    if summary["failure_rate"] <= max_rate:
        return
    reasons = failure_reasons(summary["status"])
    raise TooManyFailuresError(
        f"{summary['failed']} of {summary['attempted']} images failed "
        f"({summary['failure_rate']:.1%} > fetch.max_failure_rate {max_rate:.1%}): {reasons}. "
        f"The {summary['shards_written']} shards are written in {out}; "
        f"the failures are listed in its *_failures.parquet files"
    )
