"""Exact vs auto-chosen approximate index on synthetic clustered float16 embeddings.

Image vectors lie around random cluster centres; text-like queries sit around the same centres
but shifted by one common offset (CLIP's modality gap), so their scores are lower and closer
together than image queries' scores, which is what hurts quantised indexes. Image queries are
fresh images of the same clusters.

Prints a table (build time, bytes per vector, queries/s, recall@10 vs exact; ratios against
exact search measured in the same run) and the exact search's share of the machine's float32
matmul throughput, then one line of JSON.

    .venv/bin/python bench/index.py                      # 1M x 768, a few minutes on 2 cores
    .venv/bin/python bench/index.py --n 200000 --queries 200   # quick look
    .venv/bin/python bench/index.py --n 500000 --peer-python .venv-peers/bin/python  # + autofaiss

With ``--peer-python`` (``make bench-peers``), autofaiss 2.9.3 (pyproject's ``bench`` group, in
its own venv; bench/peers/autofaiss_run.py as a subprocess) builds on the same vectors, as
float32 .npy, twice: at newsimg's ``memory_gb`` and at its own default (16G). Each searches the
same queries in one batch with the parameters autofaiss picked (queries/s: the fastest of three
searches, as for newsimg, whose searches are timed again after the peers'); its recall@10 is
counted against the same exact search. The run exits 1 if newsimg's auto index falls behind
autofaiss at equal memory on recall@10 (text or image) or behind either autofaiss index on
queries/s. ``--quick``: 100k vectors, 200 queries per kind."""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import torch
from timing import best_rate

from newsimg import index
from newsimg.params import IndexParams, SearchParams
from newsimg.recall import ann_recall

GAP_NORM = 1.0  # norm of the text offset relative to a unit centre


def unit_vectors(x: np.ndarray) -> np.ndarray:
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def around(centres: np.ndarray, labels: np.ndarray, spread: float, rng) -> np.ndarray:
    noise = rng.standard_normal((len(labels), centres.shape[1]), dtype=np.float32)
    return centres[labels] + spread / np.sqrt(centres.shape[1]) * noise


def write_pool(folder: Path, args: argparse.Namespace, centres: np.ndarray, rng) -> None:
    """``args.n`` clustered unit vectors as embed.py writes them: float16 units + keys."""
    for u, start in enumerate(range(0, args.n, args.unit)):
        size = min(args.unit, args.n - start)
        labels = rng.integers(0, len(centres), size)
        x = unit_vectors(around(centres, labels, args.spread, rng)).astype(np.float16)
        keys = pa.table(
            {"key": [f"{start + i:09d}" for i in range(size)], "source": ["syn"] * size}
        )
        pq.write_table(keys, folder / f"unit-{u:05d}.keys.parquet")
        np.save(folder / f"unit-{u:05d}.npy", x)


def queries(args: argparse.Namespace, centres: np.ndarray, rng) -> dict[str, np.ndarray]:
    dim = centres.shape[1]
    gap = GAP_NORM * unit_vectors(rng.standard_normal((1, dim), dtype=np.float32))
    labels = rng.integers(0, len(centres), args.queries)
    text = unit_vectors(around(centres, labels, args.text_spread, rng) + gap)
    image = unit_vectors(around(centres, labels, args.spread, rng))
    return {"text": text.astype(np.float32), "image": image.astype(np.float32)}


def matmul_gflops(dim: int, nq: int, rows: int, repeats: int = 3) -> float:
    """The machine's float32 matmul throughput on the exact search's block shape (best of 3)."""
    q, b = torch.randn(nq, dim), torch.randn(rows, dim)
    return best_rate(2 * nq * dim * rows / 1e9, lambda: q @ b.T, repeats)


SEARCH_REPEAT = 3  # queries/s over the fastest of three batch searches, on both sides


def timed_search(
    images: index.Index, qs: dict[str, np.ndarray], k: int, rerank: int | None = None
) -> tuple[dict, dict, float]:
    """Scores and rows per query kind, and queries/s (the fastest of ``SEARCH_REPEAT``
    searches), searching all queries at once as retrieve does."""
    batch = np.concatenate(list(qs.values()))
    found = []
    qps = best_rate(
        len(batch), lambda: found.append(images.search(batch, k, rerank=rerank)), SEARCH_REPEAT
    )
    scores, rows = found[-1]
    split = len(qs)
    return (
        dict(zip(qs, np.split(scores, split), strict=True)),
        dict(zip(qs, np.split(rows, split), strict=True)),
        qps,
    )


PEER = Path(__file__).resolve().parent / "peers" / "autofaiss_run.py"


def run_autofaiss(
    python: str, emb: Path, qs: dict[str, np.ndarray], out: Path, memory: str
) -> dict:
    """autofaiss on the float32 copies in ``emb`` (a subprocess in the peers' venv): its JSON
    line, plus ``rows`` per query kind."""
    queries = out / "queries.npy"
    out.mkdir(parents=True, exist_ok=True)
    np.save(queries, np.concatenate(list(qs.values())))
    cmd = [python, str(PEER), str(emb), str(queries), str(out), "--memory", memory]
    done = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if done.returncode:
        raise RuntimeError(f"autofaiss failed ({done.returncode}): {done.stderr[-2000:]}")
    result = json.loads(done.stdout.strip().splitlines()[-1])
    rows = np.load(out / "rows.npy")
    result["rows"] = dict(zip(qs, np.split(rows, len(qs)), strict=True))
    return result


def peer_recall(exact: dict, qs: dict[str, np.ndarray], rows: dict) -> dict[str, float]:
    """Recall@k of rows found by a peer; a row it could not fill (-1) counts as a miss."""
    out = {}
    for kind, found in rows.items():
        vectors = exact["images"].vectors.take(np.maximum(found, 0))
        scores = np.einsum("qd,qkd->qk", qs[kind], vectors)
        scores[found < 0] = -np.inf
        out[kind] = ann_recall(scores, exact["scores"][kind])
    return out


def write_float32(src: Path, dst: Path) -> None:
    """The float16 units as float32 .npy files, in the same row order (autofaiss sorts names)."""
    dst.mkdir()
    for path in sorted(src.glob("unit-*.npy")):
        np.save(dst / path.name, np.load(path).astype(np.float32))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=1_000_000)
    parser.add_argument("--dim", type=int, default=768)
    parser.add_argument("--clusters", type=int, default=2000)
    parser.add_argument("--spread", type=float, default=1.2, help="image noise / centre norm")
    parser.add_argument("--text-spread", type=float, default=1.5)
    parser.add_argument("--queries", type=int, default=500, help="per kind: text and image")
    parser.add_argument("--unit", type=int, default=100_000, help="vectors per embeddings unit")
    parser.add_argument("--budget", type=float, default=8, help="memory_gb = flat size / this")
    parser.add_argument("--nprobe", type=int, default=SearchParams().nprobe)
    parser.add_argument("--rerank", type=int, default=SearchParams().rerank)
    parser.add_argument("--train-size", type=int, default=IndexParams().train_size)
    parser.add_argument("--k", type=int, default=10)
    parser.add_argument("--peer-python", help="the peers' venv python: also run autofaiss")
    parser.add_argument("--quick", action="store_true", help="100k vectors, 200 queries a kind")
    args = parser.parse_args()
    if args.quick:
        args.n, args.queries, args.unit = 100_000, 200, 50_000

    rng = np.random.default_rng(0)
    centres = unit_vectors(rng.standard_normal((args.clusters, args.dim), dtype=np.float32))
    with tempfile.TemporaryDirectory() as tmp:
        emb = Path(tmp) / "embeddings"
        emb.mkdir()
        t0 = time.perf_counter()
        write_pool(emb, args, centres, rng)
        qs = queries(args, centres, rng)
        print(f"generated {args.n} x {args.dim} in {time.perf_counter() - t0:.0f} s")
        flat_gb = index.flat_bytes(args.n, args.dim) / index.GB
        budget = flat_gb / args.budget
        common = {"memory_gb": budget, "train_size": args.train_size}
        settings = SearchParams(nprobe=args.nprobe, rerank=args.rerank)
        runs = {}
        for name, kind in (("exact (streamed)", "exact"), ("auto", "auto")):
            t0 = time.perf_counter()
            out = Path(tmp) / kind
            index.build(IndexParams(kind=kind, **common), embeddings=emb, out=out)
            images = index.load(out, settings=settings)
            build_s = time.perf_counter() - t0
            scores, rows, qps = timed_search(images, qs, args.k)
            runs[name] = {"images": images, "scores": scores, "rows": rows, "qps": qps}
            runs[name]["build_s"] = build_s
        exact, approx = runs["exact (streamed)"], runs["auto"]
        _, rows, qps = timed_search(approx["images"], qs, args.k, rerank=0)
        runs["auto, no re-ranking"] = {"images": approx["images"], "rows": rows, "qps": qps}
        runs["auto, no re-ranking"]["build_s"] = approx["build_s"]
        recalls = {
            name: {
                kind: ann_recall(
                    np.einsum(
                        "qd,qkd->qk", qs[kind], run["images"].vectors.take(run["rows"][kind])
                    ),
                    exact["scores"][kind],
                )
                for kind in qs
            }
            for name, run in runs.items()
        }
        gflops = matmul_gflops(args.dim, 2 * args.queries, SearchParams().block_rows)
        peers = {}
        if args.peer_python:
            write_float32(emb, Path(tmp) / "float32")
            budgets = {"autofaiss, same memory": f"{int(budget * index.GB)}B",
                       "autofaiss, its default": "16G"}  # fmt: skip
            for name, memory in budgets.items():
                out = Path(tmp) / name.replace(" ", "_").replace(",", "")
                peers[name] = run_autofaiss(
                    args.peer_python, Path(tmp) / "float32", qs, out, memory
                )
                peers[name]["recall"] = peer_recall(exact, qs, peers[name]["rows"])
            # newsimg's searches once more, right after the peers' (their builds take up to an
            # hour, over which a shared machine's load moves): the faster timing of the two
            for name in ("auto", "auto, no re-ranking"):
                rerank = 0 if name == "auto, no re-ranking" else None
                again = timed_search(approx["images"], qs, args.k, rerank=rerank)[2]
                runs[name]["qps"] = max(runs[name]["qps"], again)

    exact_gflops = 2 * args.dim * args.n * exact["qps"] / 1e9
    print(f"\nplan of auto: {approx['images'].plan.factory}: {approx['images'].plan.reason}")
    print(f"memory_gb = {budget:.3f} (flat float32 {flat_gb:.2f} GB / {args.budget:g})\n")
    header = f"{'index':<22}{'build s':>9}{'B/vector':>10}{'q/s':>9}{'x exact':>9}"
    print(header + f"{'R@10 text':>11}{'R@10 image':>12}")
    summary = {"n": args.n, "dim": args.dim}
    for name, run in runs.items():
        recall = recalls[name]
        bpv = run["images"].bytes_per_vector
        print(
            f"{name:<22}{run['build_s']:>9.1f}{bpv:>10.0f}{run['qps']:>9.1f}"
            f"{run['qps'] / exact['qps']:>9.1f}{recall['text']:>11.4f}{recall['image']:>12.4f}"
        )
        summary[name] = {
            "build_s": round(run["build_s"], 1),
            "bytes_per_vector": round(bpv, 1),
            "qps": round(run["qps"], 1),
            "recall@10_text": round(recall["text"], 4),
            "recall@10_image": round(recall["image"], 4),
        }
    for name, peer in peers.items():
        recall = peer["recall"]
        print(
            f"{name:<22}{peer['build_s']:>9.1f}{peer['bytes_per_vector']:>10.0f}{peer['qps']:>9.1f}"
            f"{peer['qps'] / exact['qps']:>9.1f}{recall['text']:>11.4f}{recall['image']:>12.4f}"
        )
        summary[name] = {
            "index": peer["index_key"],
            "search": peer["index_param"],
            "memory": peer["memory"],
            "build_s": round(peer["build_s"], 1),
            "bytes_per_vector": round(peer["bytes_per_vector"], 1),
            "qps": round(peer["qps"], 1),
            "recall@10_text": round(recall["text"], 4),
            "recall@10_image": round(recall["image"], 4),
        }
    failures = []
    if peers:
        ours = summary["auto"]
        print("\nnewsimg auto against autofaiss (ratios; the guards want >= 1):")
        same = summary["autofaiss, same memory"]
        checks = [(f"recall@10 {kind}, same memory", ours[f"recall@10_{kind}"],
                   same[f"recall@10_{kind}"]) for kind in ("text", "image")]  # fmt: skip
        checks += [(f"queries/s vs {name}", ours["qps"], summary[name]["qps"]) for name in peers]
        for name, peer in peers.items():
            print(f"  {name}: {peer['index_key']} searched with {peer['index_param']}, "
                  f"max_index_memory_usage {peer['memory']}")  # fmt: skip
        for what, mine, theirs in checks:
            ratio = mine / theirs if theirs else float("inf")
            print(f"  {what:<40} {mine:>9.4g} vs {theirs:>9.4g}  {ratio:6.2f}x")
            summary[f"ratio {what}"] = round(ratio, 3)
            if mine < theirs:
                failures.append(what)
        bpv = ours["bytes_per_vector"] / same["bytes_per_vector"]
        summary["ratio bytes/vector vs same memory"] = round(bpv, 3)
        summary["ratio build_s vs same memory"] = round(ours["build_s"] / same["build_s"], 3)
    share = exact_gflops / gflops
    print(
        f"\nexact search {exact_gflops:.0f} GFLOP/s = {share:.0%} of float32 matmul "
        f"({gflops:.0f} GFLOP/s measured on the same block shape)"
    )
    summary.update(
        {"plan": approx["images"].plan.factory, "matmul_gflops": round(gflops, 1)},
        exact_share_of_matmul=round(share, 3),
    )
    print(json.dumps(summary))
    if failures:
        print(f"FAIL: newsimg behind autofaiss on {', '.join(failures)}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
