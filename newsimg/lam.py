"""The class-aware Learnable Alignment Module (LAM) fine-tune of the text side, with Lightning.

Every base-model weight stays frozen, as in DAS-RU's code, so the text encoder's pooled states
and the images' embeddings are computed once and cached: an epoch is then a pass over small
tensors, and large batches cost nothing. Trained: a new text projection and the LAM::

    t = normalize(proj(hidden))          # (B, dim)   new projection of the pooled text state
    logits = MLP(t)                      # (B, 24)    news section
    c = softmax(logits) @ E              # (B, dim)   class vector, E: (24, dim)
    h = a * t + (1 - a) * c              # (B, dim)   a: trainable scalar, 0.5 at start

Loss = w_con * CE(h @ img.T / tau) + w_kl * KL(teacher || student) * T^2 + w_ce * CE(logits).
"""

from __future__ import annotations

import json
import logging
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import pytorch_lightning as pl
import torch
import torch.nn.functional as F
from safetensors.torch import load_file, save_file
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from newsimg import sources
from newsimg.atomic import atomic_path
from newsimg.clip import Clip, resolve_device
from newsimg.embed import load_embeddings
from newsimg.errors import InputError
from newsimg.params import TrainParams

log = logging.getLogger(__name__)

SECTIONS = sources.N24NEWS_SECTIONS


@dataclass(frozen=True)
class LamConfig:
    width: int  # text encoder width (input of the projection)
    dim: int  # joint embedding size
    classes: tuple[str, ...] = SECTIONS
    renormalize: bool = False


class LAM(nn.Module):
    """New text projection + class-aware alignment: pooled text state (B, width) -> (B, dim)."""

    def __init__(self, config: LamConfig) -> None:
        super().__init__()
        self.config = config
        d, k = config.dim, len(config.classes)
        self.proj = nn.Linear(config.width, d)
        self.classifier = nn.Sequential(nn.Linear(d, d), nn.ReLU(), nn.Linear(d, k))
        self.class_vectors = nn.Parameter(torch.randn(k, d))  # E
        self.alpha = nn.Parameter(torch.tensor(0.5))  # a

    def forward(self, hidden: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Returns (h: (B, dim), class logits: (B, classes))."""
        t = F.normalize(self.proj(hidden), dim=-1)
        logits = self.classifier(t)
        c = logits.softmax(dim=-1) @ self.class_vectors
        h = self.alpha * t + (1 - self.alpha) * c
        if self.config.renormalize:
            h = F.normalize(h, dim=-1)
        return h, logits


def article_text(item: dict[str, str], template: str, words: int) -> str:
    """The training text of an N24News item, built as ``params.train.text`` says."""
    if template == "headline":
        return item["headline"]
    if template == "headline_abstract":
        return f"{item['headline']}: {item['abstract']}"
    return f"{item['headline']}: {' '.join(item['article'].split()[:words])}"


def lam_losses(
    h: torch.Tensor,
    logits: torch.Tensor,
    image: torch.Tensor,
    teacher: torch.Tensor,
    label: torch.Tensor,
    params: TrainParams,
) -> dict[str, torch.Tensor]:
    """The three losses of the recipe and their weighted sum ("loss").

    h (B, dim) tuned text, image (B, dim) normalised image embeddings, teacher (B, dim) the frozen
    model's unnormalised text features, label (B,) section index.
    """
    sim = h @ image.T  # (B texts, B images)
    target = torch.arange(len(h), device=h.device)
    con = F.cross_entropy(sim / params.temperature, target)
    if params.symmetric:
        con = (con + F.cross_entropy(sim.T / params.temperature, target)) / 2
    kt = params.kl_temperature
    student = F.log_softmax(sim / kt, dim=-1)
    teacher_p = F.softmax(teacher @ image.T / kt, dim=-1)
    kl = F.kl_div(student, teacher_p, reduction="batchmean") * kt**2
    ce = F.cross_entropy(logits, label)
    w = params.loss_weights
    return {
        "loss": w.contrastive * con + w.kl * kl + w.ce * ce,
        "contrastive": con,
        "kl": kl,
        "ce": ce,
    }


def recall_at(sim: torch.Tensor, ks: tuple[int, ...] = (1, 5, 10)) -> dict[str, float]:
    """Text->image recall within a split: row i's own image is column i."""
    own = sim.diagonal().unsqueeze(1)
    rank = (sim > own).sum(dim=1)  # 0 = first
    return {f"r@{k}": (rank < k).float().mean().item() for k in ks}


class LamModule(pl.LightningModule):
    def __init__(self, config: LamConfig, params: TrainParams, base_projection: torch.Tensor):
        super().__init__()
        self.save_hyperparameters({"lam": asdict(config), "train": params.model_dump()})
        self.params = params
        self.lam = LAM(config)
        self._seen: list[tuple[torch.Tensor, torch.Tensor]] = []  # (h, image) of an eval epoch
        if params.projection_init == "base":
            with torch.no_grad():
                self.lam.proj.weight.copy_(base_projection)
                self.lam.proj.bias.zero_()

    def _common_step(self, batch: list[torch.Tensor], stage: str) -> torch.Tensor:
        hidden, teacher, image, label = batch
        h, logits = self.lam(hidden)
        losses = lam_losses(h, logits, image, teacher, label, self.params)
        on_step = stage == "train"
        for name, value in losses.items():
            self.log(f"{stage}/{name}", value, on_step=on_step, on_epoch=True, batch_size=len(h))
        if stage != "train":
            acc = (logits.argmax(-1) == label).float().mean()
            self.log(f"{stage}/accuracy", acc, on_epoch=True, batch_size=len(h))
            self._seen.append((h.detach(), image))
        return losses["loss"]

    def training_step(self, batch: list[torch.Tensor], batch_idx: int) -> torch.Tensor:
        return self._common_step(batch, "train")

    def validation_step(self, batch: list[torch.Tensor], batch_idx: int) -> None:
        self._common_step(batch, "val")

    def test_step(self, batch: list[torch.Tensor], batch_idx: int) -> None:
        self._common_step(batch, "test")

    def on_validation_epoch_start(self) -> None:
        self._seen = []

    on_test_epoch_start = on_validation_epoch_start

    def _log_recall(self, stage: str) -> None:
        """Text->image recall over the whole split (every image a candidate for every text)."""
        h = torch.cat([x for x, _ in self._seen])
        image = torch.cat([y for _, y in self._seen])
        for name, value in recall_at(h @ image.T).items():
            self.log(f"{stage}/{name}", value)

    def on_validation_epoch_end(self) -> None:
        self._log_recall("val")

    def on_test_epoch_end(self) -> None:
        self._log_recall("test")

    def configure_optimizers(self) -> torch.optim.Optimizer:
        return torch.optim.Adam(self.lam.parameters(), lr=self.params.lr)


class N24NewsFeatures(pl.LightningDataModule):
    """Cached (pooled text state, teacher text feature, image embedding, section) per split."""

    def __init__(self, root: Path, embeddings: Path, clip: Clip, params: TrainParams) -> None:
        super().__init__()
        self.root, self.embeddings, self.clip, self.params = root, embeddings, clip, params
        self.splits: dict[str, TensorDataset] = {}

    def setup(self, stage: str | None = None) -> None:
        if self.splits:
            return
        emb, keys = load_embeddings(self.embeddings, mmap=False)
        row_of = {k: i for i, k in enumerate(keys["key"].to_pylist())}
        for split in sources.N24NEWS_SPLITS:
            items = [i for i in sources.read_n24news(self.root, split) if i["image_id"] in row_of]
            if not items:
                raise InputError(f"N24News {split}: no item has an image embedding")
            texts = [article_text(i, self.params.text, self.params.article_words) for i in items]
            hidden = self.clip.text_hidden(texts)
            teacher = self.clip.project_text(hidden)
            image = emb[[row_of[i["image_id"]] for i in items]].astype(np.float32)
            label = [SECTIONS.index(i["section"]) for i in items]
            self.splits[split] = TensorDataset(
                torch.from_numpy(hidden),
                torch.from_numpy(teacher),
                torch.from_numpy(image),
                torch.tensor(label),
            )
            log.info("N24News %s: %d items", split, len(items))

    def train_dataloader(self) -> DataLoader:
        g = torch.Generator().manual_seed(self.params.seed)
        return DataLoader(
            self.splits["train"],
            batch_size=self.params.batch_size,
            shuffle=True,
            generator=g,
            drop_last=True,
        )

    def _eval_loader(self, split: str) -> DataLoader:
        return DataLoader(self.splits[split], batch_size=self.params.batch_size)

    def val_dataloader(self) -> DataLoader:
        return self._eval_loader("dev")

    def test_dataloader(self) -> DataLoader:
        return self._eval_loader("test")


def save_lam(lam: LAM, out: Path) -> None:
    """``lam.safetensors`` + ``lam.json``, swapped in whole."""
    weights = {k: v.detach().cpu().contiguous() for k, v in lam.state_dict().items()}
    with atomic_path(out) as tmp:
        tmp.mkdir()
        save_file(weights, tmp / "lam.safetensors")
        (tmp / "lam.json").write_text(json.dumps(asdict(lam.config), indent=2))


def load_lam(folder: Path) -> LAM:
    config = json.loads((folder / "lam.json").read_text())
    lam = LAM(LamConfig(**{**config, "classes": tuple(config["classes"])}))
    lam.load_state_dict(load_file(folder / "lam.safetensors"))
    return lam.eval()


def is_lam(folder: Path) -> bool:
    return (folder / "lam.json").exists()


def run(
    params: TrainParams, n24news: Path, embeddings: Path, model: Path, out: Path, live: Path
) -> dict[str, float]:
    """Train the LAM on N24News, evaluate on its test split, save it. Returns test metrics."""
    from dvclive.lightning import DVCLiveLogger

    clip = Clip(model, device=resolve_device(params.accelerator))
    data = N24NewsFeatures(n24news, embeddings, clip, params)
    data.setup()
    width, dim = clip.model.config.text_config.hidden_size, clip.dim
    config = LamConfig(width=width, dim=dim, renormalize=params.renormalize)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(params.seed)
        module = LamModule(config, params, clip.model.text_projection.weight.detach().float())
    logger = DVCLiveLogger(dir=str(live), dvcyaml=False, save_dvc_exp=False, report=None)
    trainer = pl.Trainer(
        max_epochs=params.epochs,
        accelerator=params.accelerator,
        devices=1,
        logger=logger,
        enable_checkpointing=False,
        enable_model_summary=False,
        deterministic=True,
        log_every_n_steps=10,
    )
    trainer.fit(module, datamodule=data)
    results = trainer.test(module, datamodule=data, verbose=False)[0]
    save_lam(module.lam, out)
    log.info("test: %s", {k: round(v, 4) for k, v in results.items()})
    return results
