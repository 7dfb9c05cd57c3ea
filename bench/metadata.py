"""The metadata stage's throughput on a synthetic YFCC100M metadata file, both forms.

Writes ``--rows`` rows in the real 25-column format (the sample generator's encoder: URL-encoded
titles, descriptions and tags of realistic length), a manifest holding ``--share`` of them in
another order (51.5M of 100M in the real job), then times, in the same run:

- reading the lines alone (the floor any TSV pass pays), plain and bzip2;
- the stage's TSV pass (one stream, join, spill, shards), plain and bzip2;
- the stage on the SQLite form (ascending primary-key batches), and the lookups alone.

Prints a table (rows/s, ratio to the plain line read) and the time extrapolated to the real job:
100M TSV rows for the TSV form, 51.5M looked-up photos for SQLite; then one JSON line. The SQLite
file here fits the page cache; the real 65 GB one does not, so its figure is a lower bound of the
time (sorted batches turn the lookups into mostly forward reads; see README).

    .venv/bin/python bench/metadata.py                 # 300k rows, about a minute on 2 cores
    .venv/bin/python bench/metadata.py --rows 50000    # quick look
"""

from __future__ import annotations

import argparse
import bz2
import json
import random
import tempfile
import time
from pathlib import Path

from newsimg.metadata import build, readers
from newsimg.params import MetadataParams
from newsimg.sample.metadata import LICENCES, MetaRow, tsv_line

REAL_ROWS = 100_000_000
REAL_PHOTOS = 51_500_000
HOUR = 3600.0


def write_inputs(folder: Path, rows: int, share: float, seed: int) -> tuple[Path, Path, Path]:
    rng = random.Random(seed)
    ids = rng.sample(range(10**8, 10**10), rows)
    words = ["harbour", "red", "bus", "festival", "street", "night", "market", "river", "old"]
    plain = folder / "yfcc100m_dataset"
    with open(plain, "w", encoding="utf-8") as f:
        for n, pid in enumerate(ids):
            title = " ".join(rng.choices(words, k=rng.randrange(1, 6)))
            desc = " ".join(rng.choices(words, k=rng.randrange(0, 30)))
            tags = tuple(rng.choices(words, k=rng.randrange(0, 12)))
            row = MetaRow(pid, f"{pid:032x}", False, rng.choice(LICENCES)[0], "Some User", title,
                          desc, tags)  # fmt: skip
            f.write(tsv_line(n + 1, row, rng) + "\n")
    packed = folder / "yfcc100m_dataset.bz2"
    with open(plain, "rb") as src, bz2.open(packed, "wb", compresslevel=9) as dst:
        while chunk := src.read(1 << 20):
            dst.write(chunk)
    chosen = rng.sample(ids, int(rows * share))
    manifest = folder / "manifest.txt"
    manifest.write_text("".join(f"{pid}\t{pid:032x}\n" for pid in chosen))
    return plain, packed, manifest


def timed(fn) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--rows", type=int, default=300_000)
    ap.add_argument("--share", type=float, default=REAL_PHOTOS / REAL_ROWS)
    ap.add_argument("--shard-size", type=int, default=10_000)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    params = MetadataParams(max_missing_rate=1.0)
    layout = build.Layout(args.shard_size)
    with tempfile.TemporaryDirectory() as tmp:
        d = Path(tmp)
        plain, packed, manifest = write_inputs(d, args.rows, args.share, args.seed)
        db = d / "yfcc100m_dataset.sql"
        readers.tsv_to_sqlite(plain, db)
        photos = len(manifest.read_text().splitlines())
        mb = plain.stat().st_size / 1e6

        def stage(source: Path, name: str):
            return lambda: build.run(params, layout, manifest, source, d / name, d / f"{name}.v")

        def lookups():
            with readers.SqliteMetadata(db, params.batch_size) as meta:
                lines = manifest.read_text().splitlines()
                ids = [int(line.split("\t", 1)[0]) for line in lines]
                for start in range(0, len(ids), 10_000):
                    meta.lookup(ids[start : start + 10_000])

        runs = {
            "read lines, plain": (timed(lambda: sum(1 for _ in readers.iter_tsv_lines(plain))),
                                  args.rows),
            "read lines, bz2": (timed(lambda: sum(1 for _ in readers.iter_tsv_lines(packed))),
                                args.rows),
            "stage TSV, plain": (timed(stage(plain, "a")), args.rows),
            "stage TSV, bz2": (timed(stage(packed, "b")), args.rows),
            "SQLite lookups": (timed(lookups), photos),
            "stage SQLite": (timed(stage(db, "c")), photos),
        }  # fmt: skip
    floor = args.rows / runs["read lines, plain"][0]
    print(f"{args.rows} rows ({mb:.0f} MB of TSV), {photos} in the manifest\n")
    print(f"{'':<20}{'seconds':>9}{'rows/s':>11}{'vs read':>9}{'real job':>11}")
    summary: dict[str, object] = {"rows": args.rows, "photos": photos, "tsv_mb": round(mb, 1)}
    for name, (seconds, n) in runs.items():
        rate = n / seconds
        real = (REAL_PHOTOS if name.startswith(("SQLite", "stage SQLite")) else REAL_ROWS) / rate
        print(f"{name:<20}{seconds:>9.2f}{rate:>11.0f}{rate / floor:>9.2f}{real / HOUR:>10.2f}h")
        summary[name.replace(" ", "_").replace(",", "")] = {
            "rows_per_s": round(rate),
            "real_job_h": round(real / HOUR, 2),
        }
    print("\nreal job: 100M TSV rows (TSV forms) or 51.5M photos looked up (SQLite), one process")
    print(json.dumps(summary))


if __name__ == "__main__":
    main()
