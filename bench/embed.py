"""Embedding throughput: input pipeline alone, model alone, end to end, with model FLOP use.

    python bench/embed.py [--models tiny,b,l] [--device cpu|cuda] [--precision bfloat16]
                          [--batch 256] [--workers 8] [--scale 1.0]

Models with random weights (no download): ``tiny`` (the test model, 64 px), ``b`` (Long-CLIP-B
shape: ViT-B/16 at 224 px, text width 512, 248 positions) and ``l`` (Long-CLIP-L shape: ViT-L/14
at 224 px, text width 768). For each one:

- decode + preprocess alone: 384x288 JPEGs (what fetch stores) to uint8 crops, one process;
- input pipeline alone: the stage's DataLoader (parquet reads, decoding in ``--workers``);
- model alone: the stage's predict step on random pixels already on the device;
- end to end: the embed stage (``embed.run``) over fetch shards of those JPEGs.

Model FLOPs per image are counted by ``torch.utils.flop_counter`` on one forward; model FLOP
utilisation (MFU) is against a matmul peak measured in the same run (fp32 on CPU, bf16 or the
chosen precision on CUDA). On the CPU, one torch thread and no loader workers by default:
per-core figures. Prints a table with ratios and ends with one JSON line.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import sys
import tempfile
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from synthetic import jpeg, random_clip
from timing import best_rate
from torch.utils.data import DataLoader
from torch.utils.flop_counter import FlopCounterMode

from newsimg import clip, embed
from newsimg.embed import Batch, ChunkDataset, ImageEncoder
from newsimg.params import EmbedParams
from newsimg.store import shards

# (text width, text layers, text heads, vision width, layers, heads, mlp, patch, image, embedding)
# images per measurement on the CPU at --scale 1: enough for a stable rate, within ~3 minutes
IMAGES = {"tiny": 1024, "b": 8, "l": 4}
PIPELINE_IMAGES = 512  # images through decoding and the input pipeline alone, for every model


def jpegs(n: int, size: tuple[int, int] = (384, 288)) -> list[bytes]:
    """Seeded photo-like JPEGs at fetch's stored size (smooth colour fields plus noise)."""
    rng = np.random.default_rng(0)
    out = []
    for _ in range(n):
        base = rng.integers(0, 256, (size[1] // 16, size[0] // 16, 3), np.uint8)
        im = Image.fromarray(base).resize(size, Image.Resampling.BICUBIC)
        noisy = np.asarray(im, np.int16) + rng.integers(-12, 13, (size[1], size[0], 3))
        out.append(jpeg(Image.fromarray(np.clip(noisy, 0, 255).astype(np.uint8))))
    return out


def write_shards(directory: Path, blobs: list[bytes], per_shard: int) -> None:
    for index, start in enumerate(range(0, len(blobs), per_shard)):
        rows = [
            shards.ImageRow(f"{start + i:08d}", "yfcc", None, b, 384, 288)
            for i, b in enumerate(blobs[start : start + per_shard])
        ]
        shards.write_shard(directory, "yfcc", index, rows, [])


def matmul_peak(device: torch.device, dtype: torch.dtype) -> float:
    """Measured dense matmul FLOP/s (best of 3) at a size that saturates the device."""
    n = 8192 if device.type == "cuda" else 1024
    a = torch.randn(n, n, device=device, dtype=dtype)
    b = torch.randn(n, n, device=device, dtype=dtype)
    reps = 20 if device.type == "cuda" else 4

    def run() -> None:
        for _ in range(reps):
            a @ b
        if device.type == "cuda":
            torch.cuda.synchronize()

    run()  # warm up
    return best_rate(2 * n**3 * reps, run, 3)


def autocast(device: torch.device, precision: str) -> contextlib.AbstractContextManager:
    if precision == "float32":
        return contextlib.nullcontext()
    return torch.autocast(device.type, dtype=clip.DTYPES[precision])


def model_alone(encoder: ImageEncoder, size: int, batch: int, precision: str, repeat: int):
    """(images/s, FLOPs per image): the predict step on random uint8 pixels on the device."""
    device = encoder.device
    gen = torch.Generator().manual_seed(0)
    pixels = torch.randint(0, 256, (batch, size, size, 3), dtype=torch.uint8, generator=gen)
    step = Batch(pixels.to(device), 0, 0, [""] * batch, 0.0, 0.0)
    with torch.inference_mode(), autocast(device, precision):
        one = Batch(step.pixels[:1], 0, 0, [""], 0.0, 0.0)
        with FlopCounterMode(display=False) as counter:
            encoder.predict_step(one)
        if device.type == "cuda":
            encoder.predict_step(step)  # warm up (kernels, autotuning)
        rate = best_rate(batch, lambda: encoder.predict_step(step), repeat)
    return rate, counter.get_total_flops()


def pipeline_alone(directory: Path, batch: int, workers: int, size: int) -> float:
    """images/s of the stage's DataLoader alone: parquet reads and decoding in workers."""
    units = embed.shard_units(directory)
    loader = DataLoader(
        ChunkDataset(units, batch, size),
        batch_size=None,
        num_workers=workers,
        prefetch_factor=4 if workers else None,
    )
    return best_rate(sum(u.size for u in units), lambda: list(loader), 1)


def bench_model(name: str, args: argparse.Namespace, peak: float, tmp: Path) -> dict[str, float]:
    n = max(args.batch, int(IMAGES[name] * args.scale))
    batch = min(args.batch, n)
    model = random_clip(name)
    size = model.config.vision_config.image_size
    folder = tmp / name
    clip.save_model(model, folder)
    del model
    blobs = jpegs(max(n, PIPELINE_IMAGES))
    write_shards(tmp / f"{name}-input", blobs, per_shard=PIPELINE_IMAGES // 4)
    write_shards(tmp / f"{name}-shards", blobs[:n], per_shard=max(batch, n // 4))

    decode = best_rate(
        len(blobs), lambda: [clip.decode_uint8(b, size, fast=True) for b in blobs], 2
    )
    pipeline = pipeline_alone(tmp / f"{name}-input", args.batch, args.workers, size)
    device = torch.device(args.device)
    encoder = ImageEncoder(clip.Clip(folder)).to(device)
    encoder.on_predict_start()
    model_rate, flops = model_alone(encoder, size, batch, args.precision, args.repeat)
    del encoder

    params = EmbedParams(
        batch_size=batch,
        num_workers=args.workers,
        accelerator="gpu" if device.type == "cuda" else "cpu",
        devices=1,
        precision=args.precision,
    )
    summary = embed.run(params, "shards", tmp / f"{name}-shards", folder, tmp / f"{name}-out")
    return {
        "decode_per_process": decode,
        "pipeline": pipeline,
        "model": model_rate,
        "end_to_end": summary["images_per_s"],
        "gflops_per_image": flops / 1e9,
        "model_tflops": model_rate * flops / 1e12,
        "mfu": model_rate * flops / peak,
        "seconds": summary["seconds"],
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", default="tiny,b,l")
    parser.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    parser.add_argument("--precision", default="float32", choices=list(clip.DTYPES))
    parser.add_argument("--batch", type=int, default=8, help="images per batch (GPU: 256)")
    parser.add_argument(
        "--workers",
        type=int,
        default=0,
        help="decoding processes (CPU: 0, the model needs the cores)",
    )
    parser.add_argument("--scale", type=float, default=1.0, help="x images per measurement")
    parser.add_argument("--repeat", type=int, default=2)
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads (per-core)")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)  # a shared machine's busy cores stall multi-threaded ops
    device = torch.device(args.device)
    peak_dtype = torch.float32 if args.precision == "float32" else clip.DTYPES[args.precision]
    peak = matmul_peak(device, peak_dtype)
    print(f"{args.device}, {args.precision}, {torch.get_num_threads()} torch threads, "
          f"batch {args.batch}, {args.workers} loader workers; matmul peak {peak / 1e12:.2f} "
          "TFLOP/s (measured)")  # fmt: skip

    results = {}
    with tempfile.TemporaryDirectory() as tmp:
        for name in args.models.split(","):
            results[name] = bench_model(name, args, peak, Path(tmp))

    print(f"\n{'model':5} {'what':38} {'measured':>10} {'baseline':>10} {'ratio':>6}")
    for name, r in results.items():
        rows = [
            ("decode+preprocess, 1 process (img/s)", r["decode_per_process"], r["model"]),
            (f"input pipeline, {args.workers} workers (img/s)", r["pipeline"], r["model"]),
            ("model alone vs matmul peak (TFLOP/s)", r["model_tflops"], peak / 1e12),
            ("end to end vs model alone (img/s)", r["end_to_end"], r["model"]),
        ]
        for what, measured, baseline in rows:
            print(
                f"{name:5} {what:38} {measured:10.2f} {baseline:10.2f} {measured / baseline:6.2f}"
            )
        print(f"{name:5} model {r['gflops_per_image']:.2f} GFLOP/image; end-to-end seconds "
              f"{json.dumps(r['seconds'])}")  # fmt: skip
    figures = {
        "device": args.device,
        "precision": args.precision,
        "matmul_peak_tflops": round(peak / 1e12, 3),
        **{
            f"{name}_{k}": round(v, 4 if k == "mfu" else 2)
            for name, r in results.items()
            for k, v in r.items()
            if k != "seconds"
        },
    }
    print(json.dumps(figures))
    return 0


if __name__ == "__main__":
    sys.exit(main())
