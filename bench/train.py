"""LAM training throughput: cached frozen text features against recomputing the tower each step.

    python bench/train.py [--tower tiny|longclip-b] [--batch-size 32] [--steps 20]

The text tower is frozen, so its pooled states can be computed once (what newsimg.lam does) or
per batch (what a plain training loop over texts does). Both paths then run the same LAM step:
forward, the three losses, backward, Adam. Texts are ~100 words (the paper's template), so
every text fills most of the 248 positions. One torch thread (per-core figures). Prints a table
and ends with one JSON line.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from synthetic import random_clip

from newsimg import clip
from newsimg.lam import LAM, LamConfig, lam_losses
from newsimg.params import TrainParams

WORDS = ["the", "council", "met", "on", "tuesday", "to", "discuss", "three", "red", "kites",
         "over", "the", "snowy", "harbour", "while", "markets", "fell", "sharply"]  # fmt: skip


def texts(n: int, words: int = 100) -> list[str]:
    rng = np.random.default_rng(0)
    return [" ".join(rng.choice(WORDS, words)) for _ in range(n)]


class Step:
    """One LAM training step on (hidden, teacher, image, label), as newsimg.lam trains it."""

    def __init__(self, tower: clip.Clip, params: TrainParams) -> None:
        width = tower.model.config.text_config.hidden_size
        self.lam = LAM(LamConfig(width=width, dim=tower.dim))
        self.optimizer = torch.optim.Adam(self.lam.parameters(), lr=params.lr)
        self.params = params

    def __call__(self, hidden: torch.Tensor, teacher: torch.Tensor, image: torch.Tensor) -> None:
        h, logits = self.lam(hidden)
        label = torch.zeros(len(h), dtype=torch.long)
        loss = lam_losses(h, logits, image, teacher, label, self.params)["loss"]
        self.optimizer.zero_grad()
        loss.backward()
        self.optimizer.step()


def features(tower: clip.Clip, batch: list[str]) -> tuple[torch.Tensor, torch.Tensor]:
    hidden = tower.text_hidden(batch, batch_size=len(batch))
    return torch.from_numpy(hidden), torch.from_numpy(tower.project_text(hidden))


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--tower", choices=["tiny", "longclip-b"], default="tiny")
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--steps", type=int, default=20, help="training steps timed per path")
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    model = clip.make_tiny(0) if args.tower == "tiny" else random_clip("b")
    with tempfile.TemporaryDirectory() as tmp:
        clip.save_model(model, Path(tmp) / "model")
        tower = clip.Clip(Path(tmp) / "model")
    params = TrainParams(batch_size=args.batch_size)
    b, n = args.batch_size, args.batch_size * args.steps
    all_texts = texts(n)
    g = torch.Generator().manual_seed(0)
    images = F.normalize(torch.randn(n, tower.dim, generator=g), dim=-1)

    start = time.perf_counter()
    hidden, teacher = features(tower, all_texts)  # the cache: once per run
    cache_s = time.perf_counter() - start
    step = Step(tower, params)
    start = time.perf_counter()
    for i in range(0, n, b):
        step(hidden[i : i + b], teacher[i : i + b], images[i : i + b])
    cached = n / (time.perf_counter() - start)

    step = Step(tower, params)
    start = time.perf_counter()
    for i in range(0, n, b):
        step(*features(tower, all_texts[i : i + b]), images[i : i + b])
    recompute = n / (time.perf_counter() - start)

    ratio = cached / recompute
    print(f"tower {args.tower}, batch {b}, {args.steps} steps, 1 thread, ~100-word texts")
    print(f"{'path':<34} {'samples/s':>12} {'ratio':>8}")
    print(f"{'recompute the tower every step':<34} {recompute:>12,.1f} {1.0:>8.1f}")
    print(f"{'cached frozen features':<34} {cached:>12,.1f} {ratio:>8.1f}")
    print(f"(the cache itself: {n} texts in {cache_s:.1f} s, once per run)")
    print(json.dumps({"tower": args.tower, "batch_size": b, "steps": args.steps,
                      "cached_samples_per_s": round(cached, 1),
                      "recompute_samples_per_s": round(recompute, 1),
                      "ratio": round(ratio, 1), "cache_s": round(cache_s, 2)}))  # fmt: skip


if __name__ == "__main__":
    main()
