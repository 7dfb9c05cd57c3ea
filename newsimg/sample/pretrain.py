"""A base model that sees: a tiny CLIP trained contrastively on captioned pictures of the
sample's world, so that the untrained approaches (headline, headline + lead) find photos.

The corpus is drawn like the sample (:mod:`newsimg.sample.plan`'s attributes, :func:`render`,
:class:`_Writer`'s texts) from its own seed, so it shares no picture with the sample's pool,
articles or N24News split. Each picture gets one caption of every kind in :data:`KINDS`, from a
headline of ~15 tokens to an article text of up to 248, some naming the picture only after
token 77 (a 77-position CLIP would never see it): long text matters.

:func:`build` renders the corpus, trains the model (the ``tiny`` shapes: width 256, 2 layers,
64 px images, 248 text positions), writes it as a CLIPModel folder with ``pretrain.json``
(config, time, zero-shot R@10 on the held-back pictures), and returns those figures. The same
config and thread count give a byte-identical folder.
"""

from __future__ import annotations

import json
import logging
import math
import random
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from multiprocessing import get_context
from pathlib import Path

import numpy as np
import torch
from torch import nn
from tqdm import tqdm
from transformers import CLIPModel

from newsimg import clip
from newsimg.atomic import atomic_path
from newsimg.sample.draw import render
from newsimg.sample.model import Attributes, Picture
from newsimg.sample.plan import _picture, _random_attributes
from newsimg.sample.prose import GENERIC_FILLERS, SECTIONS
from newsimg.sample.texts import _Writer

log = logging.getLogger(__name__)

# Caption kinds, each picture has one of every kind. Training draws one per picture and step,
# with these weights; the held-back pictures are scored with every kind.
KINDS = {
    "headline": 3,  # "Three red kites fly in the snow at the season opener" (~15 tokens)
    "caption": 2,  # the photo caption
    "abstract": 2,  # one sentence naming every attribute
    "lead": 2,  # two sentences and a section tail (~55 tokens)
    "article": 1,  # a vague headline, the lead, then a paragraph of section filler (~105)
    "late": 1,  # section filler first, the lead after token 77 (~125)
}


DTYPE = "float16"  # of the shipped weights: half the bytes; the model stage writes float32


LATE_AFTER = 80  # a "late" caption names the picture only after this many tokens


@dataclass(frozen=True)
class PretrainConfig:
    seed: int = 20260  # the corpus and the initialisation; the sample uses 0 (articles) and up
    images: int = 6000  # pictures rendered, held-back ones included
    held_out: int = 1000  # pictures never trained on: the zero-shot R@10
    steps: int = 400
    batch_size: int = 128
    lr: float = 1e-3  # AdamW peak; linear warm-up, then cosine to 0
    warmup: int = 50
    weight_decay: float = 0.05
    threads: int = 1  # torch threads: the weights are bit-identical for the same count
    processes: int = 2  # rendering processes
    width: int = 256  # the tiny shapes (newsimg.clip.make_tiny)
    layers: int = 2
    heads: int = 4
    image_size: int = 64
    patch_size: int = 16


@dataclass(frozen=True)
class CorpusItem:
    picture: Picture
    captions: dict[str, str]


def plan_corpus(config: PretrainConfig) -> list[CorpusItem]:
    """Every picture and caption of the corpus, from ``config.seed`` (no pixels)."""
    rng = random.Random(f"pretrain-corpus-{config.seed}")
    writer = _Writer(rng)
    return [_item(rng, writer, _random_attributes(rng)) for _ in range(config.images)]


def _item(rng: random.Random, writer: _Writer, attrs: Attributes) -> CorpusItem:
    lead = writer.lead(attrs)
    fillers = writer.filler_paragraphs(attrs.section, 1)[0]
    article = f"{writer.vague_headline(attrs.section)}: {lead} {fillers}"
    style = SECTIONS[attrs.section]
    pool = rng.sample([*style.fillers, *GENERIC_FILLERS], k=len(style.fillers) + 8)
    opening: list[str] = []
    while clip.count_tokens([" ".join(opening)])[0] <= LATE_AFTER:  # SOT/EOT counted: >= 78
        opening.append(writer._fill(pool.pop()))
    late = " ".join(opening) + " " + lead
    captions = {
        "headline": writer.headline(attrs),
        "caption": writer.caption(attrs),
        "abstract": writer.sentence_a(attrs),
        "lead": lead,
        "article": article,
        "late": late,
    }
    return CorpusItem(_picture(rng, attrs), captions)


def _pixels(picture: Picture, size: int) -> np.ndarray:
    return clip.preprocess_uint8(render(picture), size)


def render_corpus(items: Sequence[CorpusItem], size: int, processes: int) -> np.ndarray:
    """Every picture rendered and cropped as the model sees it: uint8 (N, size, size, 3)."""
    pictures = [item.picture for item in items]
    out = np.empty((len(items), size, size, 3), np.uint8)
    args = [(p, size) for p in pictures]
    bar = tqdm(total=len(items), desc="render corpus", unit="img", leave=False)
    if processes > 1:
        with get_context("spawn").Pool(processes) as pool:
            for i, x in enumerate(pool.starmap(_pixels, args, chunksize=64)):
                out[i] = x
            bar.update(len(items))
    else:
        for i, a in enumerate(args):
            out[i] = _pixels(*a)
            bar.update(1)
    bar.close()
    return out


def _to_input(pixels: np.ndarray) -> torch.Tensor:
    """uint8 (N, S, S, 3) -> CLIP-normalised float32 (N, 3, S, S), as clip.preprocess does."""
    x = pixels.astype(np.float32) / 255.0
    return torch.from_numpy(((x - clip.MEAN) / clip.STD).transpose(0, 3, 1, 2).copy())


class _CompactEmbedding(nn.Module):
    """The token table trained only on the corpus's tokens: CLIP ids in, rows of a small table
    out (ids the corpus never used read a zero row). Saves Adam's pass over 49k x 256 rows."""

    def __init__(self, full: torch.Tensor, used: torch.Tensor) -> None:
        super().__init__()
        lookup = torch.full((full.shape[0],), len(used), dtype=torch.long)
        lookup[used] = torch.arange(len(used))
        self.register_buffer("lookup", lookup)
        self.rows = nn.Parameter(full[used].clone())
        self.used = used

    def forward(self, input_ids: torch.Tensor) -> torch.Tensor:
        rows = torch.cat([self.rows, self.rows.new_zeros(1, self.rows.shape[1])])
        return rows[self.lookup[input_ids]]

    def full_table(self) -> torch.Tensor:
        """The CLIP-sized table: trained rows where the corpus had tokens, zeros elsewhere
        (never trained, and zeros keep the shipped folder small once compressed)."""
        table = torch.zeros(self.lookup.shape[0], self.rows.shape[1])
        table[self.used] = self.rows.detach()
        return table


def _batches(lengths: np.ndarray, batch_size: int, rng: np.random.Generator) -> list[np.ndarray]:
    """One epoch of index batches, each of similar text length (sorted within windows of 16
    batches, then the batches shuffled), so cutting a batch at its longest text wastes little."""
    order = rng.permutation(len(lengths))
    window = batch_size * 16
    batches = []
    for start in range(0, len(order) - batch_size + 1, window):
        chunk = order[start : start + window]
        chunk = chunk[np.argsort(lengths[chunk], kind="stable")]
        batches += [
            chunk[i : i + batch_size] for i in range(0, len(chunk) - batch_size + 1, batch_size)
        ]
    return [batches[i] for i in rng.permutation(len(batches))]


def _lr(step: int, config: PretrainConfig) -> float:
    if step < config.warmup:
        return config.lr * (step + 1) / config.warmup
    progress = (step - config.warmup) / max(1, config.steps - config.warmup)
    return config.lr * 0.5 * (1 + math.cos(math.pi * progress))


def _model(config: PretrainConfig):
    tower = dict(
        hidden_size=config.width,
        intermediate_size=2 * config.width,
        num_hidden_layers=config.layers,
        num_attention_heads=config.heads,
    )
    vision = {**tower, "image_size": config.image_size, "patch_size": config.patch_size}
    return clip.random_clip(tower, vision, config.width, config.seed)


def train(
    config: PretrainConfig, items: Sequence[CorpusItem], pixels: np.ndarray
) -> tuple[object, dict]:
    """Contrastive training (CLIP's symmetric loss, learnt temperature) on the first
    ``len(items) - held_out`` pictures; returns the model and the training figures."""
    n_train = len(items) - config.held_out
    kinds, weights = list(KINDS), np.array(list(KINDS.values()), float)
    texts = [[item.captions[k] for k in kinds] for item in items[:n_train]]
    ids = np.stack([clip.tokenize(t) for t in texts])  # (N, kinds, 248)
    lengths = (ids != 0).sum(-1)  # SOT .. EOT (padding is 0; id 0 "!" never occurs here)
    used = torch.from_numpy(np.unique(ids))
    model = _model(config).train()
    embeddings = model.text_model.embeddings
    compact = _CompactEmbedding(embeddings.token_embedding.weight.detach().clone(), used)
    embeddings.token_embedding = compact
    images = _to_input(pixels[:n_train])
    decay = [p for n, p in model.named_parameters() if p.ndim >= 2 and "embedding" not in n]
    rest = [p for n, p in model.named_parameters() if not (p.ndim >= 2 and "embedding" not in n)]
    optimizer = torch.optim.AdamW(
        [
            {"params": decay, "weight_decay": config.weight_decay},
            {"params": rest, "weight_decay": 0},
        ],
        lr=config.lr,
    )
    rng = np.random.default_rng(config.seed)
    step, losses, tokens = 0, [], 0
    bar = tqdm(total=config.steps, desc="pretrain", unit="step", leave=False)
    while step < config.steps:
        choice = rng.choice(len(kinds), size=n_train, p=weights / weights.sum())
        for batch in _batches(lengths[np.arange(n_train), choice], config.batch_size, rng):
            if step >= config.steps:
                break
            rows = ids[batch, choice[batch]]
            cut = int(lengths[batch, choice[batch]].max())  # causal: later positions change nothing
            for group in optimizer.param_groups:
                group["lr"] = _lr(step, config)
            out = model(
                input_ids=torch.from_numpy(rows[:, :cut]),
                pixel_values=images[torch.from_numpy(batch)],
                return_loss=True,
            )
            optimizer.zero_grad(set_to_none=True)
            out.loss.backward()
            optimizer.step()
            with torch.no_grad():
                model.logit_scale.clamp_(0, math.log(100))
            losses.append(float(out.loss.detach()))
            tokens += cut * len(batch)
            step += 1
            bar.update(1)
            if step % 50 == 0:
                bar.set_postfix(loss=f"{np.mean(losses[-50:]):.3f}")
                log.info("step %d/%d: loss %.3f", step, config.steps, np.mean(losses[-50:]))
    bar.close()
    full = nn.Embedding(compact.lookup.shape[0], config.width)
    full.weight.data = compact.full_table()
    embeddings.token_embedding = full
    figures = {
        "train_pictures": n_train,
        "vocabulary": len(used),
        "loss_first": round(float(np.mean(losses[:20])), 4),
        "loss_last": round(float(np.mean(losses[-20:])), 4),
        "temperature": round(float(1 / model.logit_scale.detach().exp()), 4),
        "mean_tokens": round(tokens / max(1, step * config.batch_size), 1),
    }
    return model.eval(), figures


@torch.inference_mode()
def encode_texts(model, texts: Sequence[str], batch_size: int = 128) -> np.ndarray:
    """L2-normalised text features, batches sorted by length and cut at their longest text
    (CLIP's text tower is causal and pools at EOT, so the cut changes nothing): (N, dim)."""
    ids = clip.tokenize(texts, model.config.text_config.max_position_embeddings)
    lengths = (ids != 0).sum(1)
    order = np.argsort(lengths, kind="stable")
    out = np.empty((len(texts), model.config.projection_dim), np.float32)
    for i in range(0, len(order), batch_size):
        sel = order[i : i + batch_size]
        cut = int(lengths[sel].max())
        feats = model.get_text_features(input_ids=torch.from_numpy(ids[sel, :cut]))
        out[sel] = getattr(feats, "pooler_output", feats).float().numpy()
    return clip.l2_normalize(out)


@torch.inference_mode()
def encode_pixels(model, pixels: np.ndarray, batch_size: int = 256) -> np.ndarray:
    out = []
    for i in range(0, len(pixels), batch_size):
        feats = model.get_image_features(pixel_values=_to_input(pixels[i : i + batch_size]))
        out.append(getattr(feats, "pooler_output", feats).float().numpy())
    return clip.l2_normalize(np.concatenate(out))


def recall_at_10(text: np.ndarray, image: np.ndarray) -> float:
    """Share of texts whose own picture (same row) is among the 10 most similar pictures."""
    sims = text @ image.T
    own = np.diagonal(sims)
    rank = (sims > own[:, None]).sum(1)  # pictures strictly better than its own
    return float(np.mean(rank < 10))


def zero_shot(model, items: Sequence[CorpusItem], pixels: np.ndarray) -> dict[str, float]:
    """Text->image R@10 of each caption kind against all held-back pictures, and over all
    kinds; chance is 10 / pictures."""
    images = encode_pixels(model, pixels)
    out = {}
    for kind in KINDS:
        out[kind] = round(
            recall_at_10(encode_texts(model, [i.captions[kind] for i in items]), images), 4
        )
    out["all"] = round(float(np.mean([out[k] for k in KINDS])), 4)
    out["chance"] = round(min(1.0, 10 / len(items)), 4)
    return out


def build(out: Path, config: PretrainConfig = PretrainConfig()) -> dict:
    """Render the corpus, train, write the CLIPModel folder (float16 weights) with
    ``pretrain.json``, and score the held-back pictures with the folder as written (what the
    model stage will load). Returns what ``pretrain.json`` holds."""
    if not 0 < config.held_out < config.images:
        raise ValueError(f"held_out must be within 1..images-1, got {config.held_out}")
    start = time.perf_counter()
    torch.set_num_threads(config.threads)
    items = plan_corpus(config)
    pixels = render_corpus(items, config.image_size, config.processes)
    rendered = time.perf_counter() - start
    log.info("corpus: %d pictures rendered in %.1f s", len(items), rendered)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(config.seed)
        model, figures = train(config, items, pixels)
    trained = time.perf_counter() - start - rendered
    held = slice(len(items) - config.held_out, len(items))
    with atomic_path(Path(out)) as tmp:
        clip.save_model(model, tmp, DTYPE)
        saved = CLIPModel.from_pretrained(tmp, dtype=torch.float32).eval()
        recall = zero_shot(saved, items[held], pixels[held])
        report = {
            "config": asdict(config),
            "dtype": DTYPE,
            "training": figures,
            "zero_shot_r@10": recall,
            "seconds": {"render": round(rendered, 1), "train": round(trained, 1)},
        }
        (tmp / "pretrain.json").write_text(json.dumps(report, indent=2) + "\n")
    log.info("zero-shot R@10 on %d held-back pictures: %s", config.held_out, recall)
    return report
