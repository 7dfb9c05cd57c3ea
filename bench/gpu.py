"""The GPU check: one table of what newsimg's GPU paths do on this machine, in a few minutes.

    bench/gpu.sh            # CUDA: Long-CLIP-B and -L shapes, 1M x 768 search; < 8 minutes
    bench/gpu.sh --cpu      # the same checks at small sizes on the CPU (the test suite runs it)

Rows, each against a baseline measured in the same run:

- the dense matmul peak (bf16 on CUDA, float32 on the CPU), measured;
- embed, model alone (the embed stage's predict step on random pixels already on the device):
  images/s and MFU against that peak, for the B and L shapes (random weights; ``--cpu``: tiny);
- the input pipeline alone (the stage's DataLoader over fetch shards, ``--workers``) against
  the B model alone: can decoding feed the GPU?;
- exact search (``index.blocked_search`` with ``index.torch_knn``, float16 blocks streamed to
  the device as the streamed exact index does) on the device against the CPU, at 1M x 768
  (``--cpu``: 20k), with the share of the CPU's top 10 the device finds (must be 1);
- text encoding of the B text tower at headline (~20 tokens) and lead (~150) lengths,
  length-aware (``clip.pooled_text``) against full padding to 248;
- the embed stage as two DDP processes against one (stages/embed.py, Lightning): images/s and
  whether the embeddings and keys are equal (two GPUs when there are two; else two CPU
  processes over gloo, said in the row).

Ends with one JSON line; exits 1 if the device's search disagrees with the CPU's or the two
DDP processes' embeddings differ from one process's.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import embed as bench_embed  # bench/embed.py
import numpy as np
import torch
import yaml
from models import texts_of
from synthetic import random_clip
from timing import best_rate

from newsimg import clip, embed, index
from newsimg.embed import ImageEncoder
from newsimg.params import EmbedParams, SearchParams
from newsimg.recall import ann_recall

ROOT = Path(__file__).resolve().parents[1]

SIZES = {  # GPU, CPU
    "models": (("b", "l"), ("tiny",)),
    "batch": (256, 8),
    "repeat": (3, 2),
    "pipeline_images": (4096, 256),
    "search_n": (1_000_000, 20_000),
    "queries": (1000, 50),
    "texts": (1024, 8),
    "ddp_images": (2048, 32),
}


def embed_rows(args: argparse.Namespace, device: torch.device, peak: float, tmp: Path) -> dict:
    """Model alone per model shape, and the input pipeline alone."""
    out = {}
    for name in args.models:
        model = random_clip(name)
        size = model.config.vision_config.image_size
        clip.save_model(model, tmp / name)
        encoder = ImageEncoder(clip.Clip(tmp / name)).to(device)
        encoder.on_predict_start()
        rate, flops = bench_embed.model_alone(
            encoder, size, args.batch, args.precision, args.repeat
        )
        out[name] = {"img_s": rate, "gflop_per_image": flops / 1e9, "mfu": rate * flops / peak}
        del encoder, model
        if device.type == "cuda":
            torch.cuda.empty_cache()
    blobs = bench_embed.jpegs(256)
    blobs = [blobs[i % len(blobs)] for i in range(args.pipeline_images)]
    bench_embed.write_shards(tmp / "pipeline", blobs, per_shard=max(1, len(blobs) // 8))
    size = random_clip(args.models[0]).config.vision_config.image_size
    out["pipeline_img_s"] = bench_embed.pipeline_alone(
        tmp / "pipeline", args.batch, args.workers, size
    )
    return out


def search(x: np.ndarray, q: np.ndarray, device: torch.device) -> tuple[float, np.ndarray]:
    """(queries/s, top-10 scores) of the streamed exact search over ``x`` on ``device``."""
    rows = max(1, min(SearchParams().block_rows, index.SCORE_BUDGET // (4 * len(q))))
    knn = index.torch_knn(device)

    def run() -> tuple[np.ndarray, np.ndarray]:
        blocks = ((i, x[i : i + rows]) for i in range(0, len(x), rows))
        return index.blocked_search(q, blocks, 10, knn)

    index.blocked_search(q[:8], iter([(0, x[:rows])]), 10, knn)  # warm up (CUDA context, kernels)
    start = time.perf_counter()
    scores, _ = run()
    return len(q) / (time.perf_counter() - start), scores


def search_rows(args: argparse.Namespace, device: torch.device) -> dict:
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(args.search_n, 768, generator=gen)
    x = torch.nn.functional.normalize(x, dim=1).half().numpy()
    q = torch.nn.functional.normalize(torch.randn(args.queries, 768, generator=gen), dim=1)
    q = q.numpy()
    dev_qps, dev_scores = search(x, q, device)
    cpu_qps, cpu_scores = search(x, q, torch.device("cpu"))
    return {"device_qps": dev_qps, "cpu_qps": cpu_qps,
            "agreement": ann_recall(dev_scores, cpu_scores)}  # fmt: skip


def text_rows(args: argparse.Namespace, device: torch.device) -> dict:
    name = "tiny" if args.cpu else "b"
    tower = random_clip(name).text_model.to(device, clip.DTYPES[args.precision])
    out = {}
    for kind in ("headline", "lead"):
        ids = clip.tokenize(texts_of(kind, args.texts))
        batch = min(256, args.texts)

        def encode(cut: bool, ids: np.ndarray = ids, batch: int = batch) -> None:
            clip.pooled_text(tower, ids, batch, cut=cut)
            if device.type == "cuda":
                torch.cuda.synchronize()

        encode(True)  # warm up
        cut = best_rate(args.texts, lambda: encode(True), args.repeat)
        full = best_rate(args.texts, lambda: encode(False), args.repeat)
        diff = np.abs(
            clip.pooled_text(tower, ids, batch) - clip.pooled_text(tower, ids, batch, cut=False)
        ).max()
        tokens = float(clip.text_lengths(ids).mean())
        out[kind] = {"tokens": tokens, "cut": cut, "full": full, "max_diff": float(diff)}
    return out


def ddp_rows(args: argparse.Namespace, tmp: Path) -> dict:
    """The embed stage with 2 DDP processes against 1: images/s, and equal outputs?"""
    gpus = torch.cuda.device_count()
    accelerator = "gpu" if gpus >= 2 else "cpu"
    name = "b" if accelerator == "gpu" else "tiny"
    folder = tmp / f"ddp-{name}"
    clip.save_model(random_clip(name), folder)
    blobs = bench_embed.jpegs(64)
    blobs = [blobs[i % len(blobs)] for i in range(args.ddp_images)]
    bench_embed.write_shards(tmp / "ddp-shards", blobs, per_shard=max(1, len(blobs) // 8))
    params = {"accelerator": accelerator, "batch_size": min(args.batch, 64), "precision": "float32",
              "num_workers": 0 if args.cpu else 4}  # fmt: skip
    runs = {}
    for devices in (1, 2):
        out = tmp / f"ddp-{devices}"
        if devices == 1:  # in this process
            embed.run(
                EmbedParams(**params, devices=1),
                fmt="shards",
                images=tmp / "ddp-shards",
                model=folder,
                out=out,
            )
        else:  # Lightning starts the second process by running the stage script again
            params_file = tmp / "params-ddp.yaml"
            params_file.write_text(yaml.safe_dump({"embed": {**params, "devices": devices}}))
            cmd = [sys.executable, str(ROOT / "stages" / "embed.py"), "--format", "shards",
                   f"--params={params_file}", f"--images={tmp / 'ddp-shards'}",
                   f"--model={folder}", f"--out={out}"]  # fmt: skip
            subprocess.run(cmd, check=True, cwd=tmp, capture_output=True, timeout=600)
        summary = json.loads((out / embed.SUMMARY).read_text())
        vectors, keys = embed.load_embeddings(out, mmap=False)
        runs[devices] = (summary["images_per_s"], vectors, keys.column("key").to_pylist())
    (one_rate, one, one_keys), (two_rate, two, two_keys) = runs[1], runs[2]
    diff = float(np.abs(one.astype(np.float32) - two.astype(np.float32)).max())
    return {"accelerator": f"{accelerator} ({name})", "one_img_s": one_rate, "two_img_s": two_rate,
            "equal": one_keys == two_keys and diff == 0.0, "max_diff": diff}  # fmt: skip


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cpu", action="store_true", help="small sizes on the CPU (tests)")
    parser.add_argument("--workers", type=int, default=None, help="loader workers (GPU: 14)")
    args = parser.parse_args(argv)
    gpu = not args.cpu
    if gpu and not torch.cuda.is_available():
        parser.error("no CUDA device: run with --cpu for the small CPU check")
    for key, (on_gpu, on_cpu) in SIZES.items():
        setattr(args, key, on_gpu if gpu else on_cpu)
    args.workers = args.workers if args.workers is not None else (14 if gpu else 0)
    args.precision = "bfloat16" if gpu else "float32"
    device = torch.device("cuda" if gpu else "cpu")
    if args.cpu:
        torch.set_num_threads(1)
    started = time.perf_counter()
    peak_dtype = clip.DTYPES[args.precision]
    peak = bench_embed.matmul_peak(device, peak_dtype)
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        emb = embed_rows(args, device, peak, tmp)
        srch = search_rows(args, device)
        text = text_rows(args, device)
        ddp = ddp_rows(args, tmp)
    seconds = time.perf_counter() - started

    name = torch.cuda.get_device_name() if gpu else "CPU, 1 torch thread"
    print(f"{name}; {args.precision}; batch {args.batch}; {args.workers} loader workers; "
          f"{seconds:.0f} s")  # fmt: skip
    rows = [(f"{args.precision} matmul peak (TFLOP/s)", peak / 1e12, None, "measured")]
    first = args.models[0]
    for m in args.models:
        r = emb[m]
        rows.append((f"embed {m.upper()}, model alone (img/s)", r["img_s"], None,
                     f"MFU {r['mfu']:.2f} ({r['gflop_per_image']:.2f} GFLOP/img)"))  # fmt: skip
    rows.append((f"input pipeline, {args.workers} workers (img/s)", emb["pipeline_img_s"],
                 emb[first]["img_s"], f"vs {first.upper()} model alone"))  # fmt: skip
    agree = f"vs CPU; finds {srch['agreement']:.4f} of its top 10"
    rows.append((f"exact search {args.search_n:,} x 768, {device.type} (q/s)", srch["device_qps"],
                 srch["cpu_qps"], agree))  # fmt: skip
    for kind, r in text.items():
        rows.append((f"text {kind} ({r['tokens']:.0f} tok), length-aware (t/s)", r["cut"],
                     r["full"], f"vs padded to 248; max diff {r['max_diff']:.1e}"))  # fmt: skip
    rows.append((f"embed stage, 2 DDP processes (img/s), {ddp['accelerator']}", ddp["two_img_s"],
                 ddp["one_img_s"], f"vs 1 process; equal: {ddp['equal']}"))  # fmt: skip
    width = max(len(r[0]) for r in rows)
    print(f"{'check':<{width}}  {'measured':>10}  {'baseline':>10}  {'ratio':>7}  note")
    for what, measured, baseline, note in rows:
        base = f"{baseline:10.2f}" if baseline is not None else f"{'':10}"
        ratio = f"{measured / baseline:7.2f}" if baseline else f"{'':7}"
        print(f"{what:<{width}}  {measured:10.2f}  {base}  {ratio}  {note}")
    figures = {
        "device": name,
        "seconds": round(seconds, 1),
        "matmul_peak_tflops": round(peak / 1e12, 3),
        **{f"embed_{m}_img_s": round(emb[m]["img_s"], 2) for m in args.models},
        **{f"embed_{m}_mfu": round(emb[m]["mfu"], 4) for m in args.models},
        "pipeline_img_s": round(emb["pipeline_img_s"], 1),
        "search_device_qps": round(srch["device_qps"], 1),
        "search_cpu_qps": round(srch["cpu_qps"], 1),
        "search_agreement": srch["agreement"],
        **{f"text_{k}_speedup": round(r["cut"] / r["full"], 2) for k, r in text.items()},
        **{f"text_{k}_max_diff": r["max_diff"] for k, r in text.items()},
        "ddp_two_over_one": round(ddp["two_img_s"] / ddp["one_img_s"], 3),
        "ddp_equal": ddp["equal"],
        "ddp_max_diff": ddp["max_diff"],
    }
    print(json.dumps(figures))
    failed = [what for what, ok in (("search", srch["agreement"] == 1.0),
                                   ("ddp", ddp["equal"])) if not ok]  # fmt: skip
    if failed:
        print(f"FAIL: {', '.join(failed)}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
