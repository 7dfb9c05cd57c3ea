"""The LAM recipe: losses against hand-written formulas, init options, and that it learns."""

from __future__ import annotations

import math

import pytorch_lightning as pl
import torch
import torch.nn.functional as F
from torch.utils.data import DataLoader, TensorDataset

from newsimg.lam import LAM, LamConfig, LamModule, lam_losses, recall_at
from newsimg.params import LossWeights, TrainParams


def _batch(seed: int = 0, b: int = 6, d: int = 8):
    g = torch.Generator().manual_seed(seed)
    h = torch.randn(b, d, generator=g)
    image = F.normalize(torch.randn(b, d, generator=g), dim=-1)
    teacher = torch.randn(b, d, generator=g)
    logits = torch.randn(b, 24, generator=g)
    label = torch.randint(0, 24, (b,), generator=g)
    return h, logits, image, teacher, label


def test_losses_match_the_recipe_by_hand() -> None:
    h, logits, image, teacher, label = _batch()
    params = TrainParams(loss_weights=LossWeights(contrastive=1.0, kl=0.3, ce=0.3))
    got = lam_losses(h, logits, image, teacher, label, params)
    sim = (h @ image.T).tolist()
    con = 0.0
    for i, row in enumerate(sim):  # -log softmax(row / 0.07)[i], text -> image
        z = [v / 0.07 for v in row]
        con += -(z[i] - math.log(sum(math.exp(v) for v in z)))
    con /= len(sim)
    kl = 0.0
    t_sim = (teacher @ image.T).tolist()
    for s_row, t_row in zip(sim, t_sim, strict=True):
        p = torch.tensor(t_row).div(0.5).softmax(0)
        log_q = torch.tensor(s_row).div(0.5).log_softmax(0)
        kl += float((p * (p.log() - log_q)).sum())
    kl = kl / len(sim) * 0.5**2
    ce = float(F.cross_entropy(logits, label))
    assert math.isclose(got["contrastive"].item(), con, rel_tol=1e-5)
    assert math.isclose(got["kl"].item(), kl, rel_tol=1e-4)
    assert math.isclose(got["loss"].item(), con + 0.3 * kl + 0.3 * ce, rel_tol=1e-5)


def test_symmetric_adds_the_image_to_text_direction() -> None:
    h, logits, image, teacher, label = _batch(1)
    one = lam_losses(h, logits, image, teacher, label, TrainParams())["contrastive"]
    both = lam_losses(h, logits, image, teacher, label, TrainParams(symmetric=True))
    other = F.cross_entropy((h @ image.T).T / 0.07, torch.arange(len(h)))
    assert torch.isclose(both["contrastive"], (one + other) / 2)


def test_base_init_starts_at_the_frozen_projection() -> None:
    base = torch.randn(8, 16)
    module = LamModule(LamConfig(width=16, dim=8), TrainParams(projection_init="base"), base)
    assert torch.equal(module.lam.proj.weight, base)
    assert not module.lam.proj.bias.any()
    hidden = torch.randn(3, 16)
    h, logits = module.lam(hidden)
    t = F.normalize(hidden @ base.T, dim=-1)
    c = logits.softmax(-1) @ module.lam.class_vectors
    torch.testing.assert_close(h, 0.5 * t + 0.5 * c)
    renorm = LAM(LamConfig(width=16, dim=8, renormalize=True))
    torch.testing.assert_close(renorm(hidden)[0].norm(dim=-1), torch.ones(3))


def test_recall_at() -> None:
    assert recall_at(torch.eye(5)) == {"r@1": 1.0, "r@5": 1.0, "r@10": 1.0}
    sim = torch.eye(4).roll(1, dims=1)  # every text prefers the next image
    assert recall_at(sim, (1, 2)) == {"r@1": 0.0, "r@2": 1.0}


def test_it_learns_a_linear_alignment() -> None:
    """Texts are a hidden linear map of their images: training must find it (r@1 rises)."""
    g = torch.Generator().manual_seed(0)
    n, width, dim = 256, 32, 16
    image = F.normalize(torch.randn(n, dim, generator=g), dim=-1)
    hidden = image @ torch.randn(dim, width, generator=g) + 0.05 * torch.randn(
        n, width, generator=g
    )
    label = (image[:, 0] > 0).long()
    data = TensorDataset(hidden, torch.zeros(n, dim), image, label)
    params = TrainParams(lr=3e-3, batch_size=32, epochs=8, accelerator="cpu")
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        module = LamModule(LamConfig(width=width, dim=dim), params, torch.zeros(dim, width))
    with torch.no_grad():
        before = recall_at(module.lam(hidden)[0] @ image.T)["r@1"]
    trainer = pl.Trainer(max_epochs=8, accelerator="cpu", logger=False,
                         enable_checkpointing=False, enable_progress_bar=False,
                         enable_model_summary=False)  # fmt: skip
    loader = DataLoader(data, batch_size=32, shuffle=True, generator=g)
    trainer.fit(module, loader)
    with torch.no_grad():
        after = recall_at(module.lam(hidden)[0] @ image.T)["r@1"]
    assert before < 0.05
    assert after > 0.5
