"""The class-aware Learnable Alignment Module (LAM) fine-tune of the text side, with Lightning.

Every base-model weight stays frozen, as in DAS-RU's code, so the text encoder's pooled states
and the images' embeddings are computed once and cached: an epoch is then a pass over small
tensors, and large batches cost nothing. Trained: a new text projection and the LAM::

    t = normalize(proj(hidden))          # (B, dim)   new projection of the pooled text state
    logits = MLP(t)                      # (B, 24)    news section
    c = softmax(logits) @ E              # (B, dim)   class vector, E: (24, dim)
    h = a * t + (1 - a) * c              # (B, dim)   a: trainable scalar, 0.5 at start
    h = normalize(h)                     #            only with train.renormalize

Loss = w_con * CE(h @ img.T / tau) + w_kl * KL(teacher || student) * T^2 + w_ce * CE(logits).

``train.recipe: das_ru`` is the authors' code; ``improved`` switches on each candidate fix of
shared/REFERENCE.md, every one a key of params.yaml's ``train`` section (see newsimg.params).
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable
from dataclasses import asdict
from pathlib import Path

import numpy as np
import pytorch_lightning as pl
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from newsimg import sources
from newsimg.alignment import LAM, LamConfig, save_lam
from newsimg.clip import Clip, resolve_device
from newsimg.errors import InputError, ParamsError
from newsimg.logs import quiet_lightning
from newsimg.params import TrainParams
from newsimg.store.units import load_embeddings

log = logging.getLogger(__name__)
quiet_lightning()

SECTIONS = sources.N24NEWS_SECTIONS
SMALL_CLASS_NORM = 0.1  # class_init "small": E's rows, a tenth of a unit text vector
MAX_LOGIT_SCALE = 100.0  # CLIP's cap on a learnt 1 / temperature
METRICS = ("r@1", "r@5", "r@10", "accuracy", "f1")  # what fit returns per split


@torch.no_grad()
def initialise(
    lam: LAM,
    params: TrainParams,
    base_projection: torch.Tensor,
    class_names: torch.Tensor | None = None,
) -> None:
    """Apply ``projection_init`` and ``class_init`` to a freshly built LAM.

    base_projection (dim, width): the frozen model's text projection; class_names (classes, dim):
    the frozen model's text features of the section names, needed by ``class_init: names``.
    """
    if params.projection_init == "base":
        lam.proj.weight.copy_(base_projection)
        lam.proj.bias.zero_()
    if params.class_init == "small":
        lam.class_vectors.copy_(SMALL_CLASS_NORM * F.normalize(lam.class_vectors, dim=-1))
    elif params.class_init == "names":
        if class_names is None:
            raise ValueError("class_init 'names' needs the section names' text features")
        lam.class_vectors.copy_(F.normalize(class_names, dim=-1))


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
    temperature: torch.Tensor | float | None = None,
) -> dict[str, torch.Tensor]:
    """The three losses of the recipe and their weighted sum ("loss").

    h (B, dim) tuned text, image (B, dim) normalised image embeddings, teacher (B, dim) the frozen
    model's unnormalised text features, label (B,) section index. ``temperature``: the
    contrastive one when learnt (default ``params.temperature``).
    """
    tau = params.temperature if temperature is None else temperature
    sim = h @ image.T  # (B texts, B images)
    target = torch.arange(len(h), device=h.device)
    con = F.cross_entropy(sim / tau, target)
    if params.symmetric:
        con = (con + F.cross_entropy(sim.T / tau, target)) / 2
    if params.teacher == "normalized":
        teacher = F.normalize(teacher, dim=-1)
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


def split_recall(sim: torch.Tensor, ks: tuple[int, ...] = (1, 5, 10)) -> dict[str, float]:
    """Text->image recall within a split: row i's own image is column i."""
    own = sim.diagonal().unsqueeze(1)
    rank = (sim > own).sum(dim=1)  # 0 = first
    return {f"r@{k}": (rank < k).float().mean().item() for k in ks}


def macro_f1(pred: torch.Tensor, label: torch.Tensor) -> float:
    """F1 averaged over the classes that occur as a label or a prediction (as scikit-learn)."""
    classes = torch.cat([pred, label]).unique()
    tp = torch.stack([((pred == c) & (label == c)).sum() for c in classes]).float()
    predicted = torch.stack([(pred == c).sum() for c in classes]).float()
    actual = torch.stack([(label == c).sum() for c in classes]).float()
    return (2 * tp / (predicted + actual)).mean().item()


def warmup_cosine(total_steps: int, warmup: float) -> Callable[[int], float]:
    """LR factor per step: linear warm-up over ``warmup`` of the steps, then cosine to 0."""
    ramp = max(1, round(warmup * total_steps))

    def factor(step: int) -> float:
        if step < ramp:
            return (step + 1) / ramp
        progress = (step - ramp) / max(1, total_steps - ramp)
        return 0.5 * (1 + math.cos(math.pi * min(1.0, progress)))

    return factor


class LamModule(pl.LightningModule):
    """Trains a LAM on cached (hidden, teacher, image, label) batches; logs losses and dev/test
    recall, section accuracy and macro-F1, learning rate and temperature."""

    def __init__(
        self,
        config: LamConfig,
        params: TrainParams,
        base_projection: torch.Tensor,
        class_names: torch.Tensor | None = None,
    ) -> None:
        super().__init__()
        self.save_hyperparameters({"lam": asdict(config), "train": params.model_dump()})
        self.params = params
        self.lam = LAM(config)
        initialise(self.lam, params, base_projection, class_names)
        # CLIP's logit scale, log(1 / temperature); trained only with learn_temperature
        scale = torch.tensor(math.log(1 / params.temperature))
        self.log_scale = nn.Parameter(scale, requires_grad=params.learn_temperature)
        self._seen: list[tuple[torch.Tensor, ...]] = []  # (h, image, logits, label) of an eval

    def temperature(self) -> torch.Tensor:
        return 1 / self.log_scale.clamp(max=math.log(MAX_LOGIT_SCALE)).exp()

    def _common_step(self, batch: list[torch.Tensor], stage: str) -> torch.Tensor:
        hidden, teacher, image, label = batch
        h, logits = self.lam(hidden)
        tau = self.temperature()
        losses = lam_losses(h, logits, image, teacher, label, self.params, tau)
        on_step = stage == "train"
        for name, value in losses.items():
            self.log(f"{stage}/{name}", value, on_step=on_step, on_epoch=True, batch_size=len(h))
        if stage == "train":
            self.log("train/lr", self.optimizers().param_groups[0]["lr"], on_step=True)
            self.log("train/temperature", tau, on_step=True)
        else:
            self._seen.append((h.detach(), image, logits.detach(), label))
        return losses["loss"]

    def training_step(self, batch: list[torch.Tensor], batch_idx: int) -> torch.Tensor:
        return self._common_step(batch, "train")

    def validation_step(self, batch: list[torch.Tensor], batch_idx: int) -> None:
        self._common_step(batch, "dev")

    def test_step(self, batch: list[torch.Tensor], batch_idx: int) -> None:
        self._common_step(batch, "test")

    def on_validation_epoch_start(self) -> None:
        self._seen = []

    on_test_epoch_start = on_validation_epoch_start

    def _log_split(self, stage: str) -> None:
        """Whole-split metrics: text->image recall (every image of the split a candidate for
        every text), section accuracy and macro-F1."""
        h, image, logits, label = (torch.cat(parts) for parts in zip(*self._seen, strict=True))
        pred = logits.argmax(dim=-1)
        metrics = split_recall(h @ image.T)
        metrics["accuracy"] = (pred == label).float().mean().item()
        metrics["f1"] = macro_f1(pred, label)
        for name, value in metrics.items():
            self.log(f"{stage}/{name}", value)

    def on_validation_epoch_end(self) -> None:
        self._log_split("dev")

    def on_test_epoch_end(self) -> None:
        self._log_split("test")

    def configure_optimizers(self) -> dict:
        trained = [p for p in self.parameters() if p.requires_grad]
        optimizer = torch.optim.Adam(trained, lr=self.params.lr)
        if self.params.schedule == "constant":
            return {"optimizer": optimizer}
        total = int(self.trainer.estimated_stepping_batches)
        schedule = torch.optim.lr_scheduler.LambdaLR(
            optimizer, warmup_cosine(total, self.params.warmup)
        )
        return {"optimizer": optimizer, "lr_scheduler": {"scheduler": schedule, "interval": "step"}}


class KeepBestOnDev(pl.Callback):
    """Early stopping on dev R@10 that also puts back the best evaluation's LAM weights.

    Every evaluation counts, the one before training included: if training never beats the
    starting point on dev, the starting point is what is kept.
    """

    monitor = "dev/r@10"

    def __init__(self, patience: int) -> None:
        self.patience = patience
        self.best = -math.inf
        self.best_state: dict[str, torch.Tensor] = {}
        self.waited = 0

    def on_validation_end(self, trainer: pl.Trainer, module: LamModule) -> None:
        score = float(trainer.callback_metrics[self.monitor])
        if score > self.best:
            self.best, self.waited = score, 0
            self.best_state = {k: v.detach().clone() for k, v in module.lam.state_dict().items()}
        else:
            self.waited += 1
            trainer.should_stop = trainer.should_stop or self.waited >= self.patience

    def on_fit_end(self, trainer: pl.Trainer, module: LamModule) -> None:
        log.info("keeping the weights of dev %s = %.4f", self.monitor, self.best)
        module.lam.load_state_dict(self.best_state)


class N24NewsFeatures(pl.LightningDataModule):
    """Cached (pooled text state, teacher text feature, image embedding, section) per split."""

    def __init__(self, root: Path, embeddings: Path, clip: Clip, params: TrainParams) -> None:
        super().__init__()
        self.root, self.embeddings, self.clip, self.params = root, embeddings, clip, params
        clip.model.requires_grad_(False)  # the frozen tower: computed once, never trained
        self.splits: dict[str, TensorDataset] = {}

    def setup(self, stage: str | None = None) -> None:
        if self.splits:
            return
        emb, keys = load_embeddings(self.embeddings, mmap=False)
        row_of = {k: i for i, k in enumerate(keys["key"].to_pylist())}
        items = {
            split: [i for i in sources.read_n24news(self.root, split) if i["image_id"] in row_of]
            for split in sources.N24NEWS_SPLITS
        }
        for split, found in items.items():
            if not found:
                raise InputError(f"N24News {split}: no item has an image embedding")
        if self.params.batch_size > len(items["train"]):
            raise ParamsError(
                f"train.batch_size = {self.params.batch_size} is more than the "
                f"{len(items['train'])} training items: no full batch to train on"
            )
        for split, found in items.items():
            texts = [article_text(i, self.params.text, self.params.article_words) for i in found]
            hidden = self.clip.text_hidden(texts)
            teacher = self.clip.project_text(hidden)
            image = emb[[row_of[i["image_id"]] for i in found]].astype(np.float32)
            label = [SECTIONS.index(i["section"]) for i in found]
            self.splits[split] = TensorDataset(
                torch.from_numpy(hidden),
                torch.from_numpy(teacher),
                torch.from_numpy(image),
                torch.tensor(label),
            )
            log.info("N24News %s: %d items", split, len(found))

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


def build_module(params: TrainParams, clip: Clip) -> LamModule:
    """A seeded LamModule on top of ``clip``, initialised as ``params`` says."""
    width, dim = clip.model.config.text_config.hidden_size, clip.dim
    config = LamConfig(width=width, dim=dim, renormalize=params.renormalize)
    base_projection = clip.model.text_projection.weight.detach().float().cpu()
    names = None
    if params.class_init == "names":
        names = torch.from_numpy(clip.encode_text(list(config.classes)))
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(params.seed)
        return LamModule(config, params, base_projection, names)


def fit(
    params: TrainParams,
    module: LamModule,
    data: N24NewsFeatures,
    logger: pl.loggers.Logger | bool = False,
) -> dict[str, float]:
    """Evaluate on dev, train, evaluate the kept weights on dev and test; returns those metrics.

    The first dev evaluation is the untrained starting point (step 0 of the logged curves).
    """
    callbacks = [KeepBestOnDev(params.patience)] if params.patience else []
    trainer = pl.Trainer(
        max_epochs=params.epochs,
        accelerator=params.accelerator,
        devices=1,
        logger=logger,
        callbacks=callbacks,
        enable_checkpointing=False,
        enable_model_summary=False,
        enable_progress_bar=False,
        num_sanity_val_steps=0,
        deterministic=True,
        log_every_n_steps=10,
    )
    trainer.validate(module, datamodule=data, verbose=False)
    trainer.fit(module, datamodule=data)
    results = trainer.validate(module, datamodule=data, verbose=False)[0]
    results |= trainer.test(module, datamodule=data, verbose=False)[0]
    return {k: v for k, v in results.items() if k.split("/")[1] in METRICS}


def run(
    params: TrainParams, n24news: Path, embeddings: Path, model: Path, out: Path, live: Path
) -> dict[str, float]:
    """Train the LAM on N24News, evaluate on dev and test, save it. Returns those metrics."""
    from dvclive.lightning import DVCLiveLogger

    log.info("recipe %s, overridden: %s", params.recipe, params.overrides() or "nothing")
    clip = Clip(model, device=resolve_device(params.accelerator))
    data = N24NewsFeatures(n24news, embeddings, clip, params)
    data.setup()
    module = build_module(params, clip)
    logger = DVCLiveLogger(dir=str(live), dvcyaml=False, save_dvc_exp=False, report=None)
    results = fit(params, module, data, logger)
    save_lam(module.lam, out)
    log.info("%s", {k: round(v, 4) for k, v in results.items()})
    return results
