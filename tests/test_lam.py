"""The LAM fine-tune: forward and losses against hand computations, the recipes and their
switches, and training on a generated N24News sample (learns, frozen tower, reproducible)."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
import pytorch_lightning as pl
import torch
import torch.nn.functional as F
import yaml
from torch.utils.data import DataLoader, TensorDataset

from newsimg import embed, lam, sample
from newsimg.alignment import LAM, LamConfig, load_lam, save_lam
from newsimg.clip import Clip
from newsimg.lam import LamModule, lam_losses, macro_f1, split_recall, warmup_cosine
from newsimg.params import RECIPES, EmbedParams, LossWeights, TrainParams, parse_section
from tests.conftest import load_stage


@pytest.fixture(autouse=True, scope="module")
def one_thread():
    """Small tensors: more threads only contend on the shared test machine."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def _batch(seed: int = 0, b: int = 6, d: int = 8):
    g = torch.Generator().manual_seed(seed)
    h = torch.randn(b, d, generator=g)
    image = F.normalize(torch.randn(b, d, generator=g), dim=-1)
    teacher = torch.randn(b, d, generator=g)
    logits = torch.randn(b, 24, generator=g)
    label = torch.randint(0, 24, (b,), generator=g)
    return h, logits, image, teacher, label


def test_forward_on_a_hand_computed_example() -> None:
    """width 2, dim 2, two classes; every number below worked out on paper."""
    lam_ = LAM(LamConfig(width=2, dim=2, classes=("a", "b")))
    with torch.no_grad():
        lam_.proj.weight.copy_(torch.tensor([[3.0, 0.0], [0.0, 4.0]]))
        lam_.proj.bias.zero_()
        lam_.classifier[0].weight.copy_(torch.eye(2))
        lam_.classifier[0].bias.zero_()
        lam_.classifier[2].weight.copy_(torch.tensor([[1.0, 0.0], [0.0, 0.0]]))
        lam_.classifier[2].bias.copy_(torch.tensor([0.0, 0.6 - math.log(3)]))
        lam_.class_vectors.copy_(torch.tensor([[2.0, 0.0], [0.0, 2.0]]))
        lam_.alpha.fill_(0.25)
    h, logits = lam_(torch.tensor([[1.0, 1.0]]))
    # t = normalize((3, 4)) = (0.6, 0.8); relu keeps it; logits = (0.6, 0.6 - ln 3)
    # softmax = (3/4, 1/4); c = (1.5, 0.5); h = 0.25 t + 0.75 c = (1.275, 0.575)
    torch.testing.assert_close(logits, torch.tensor([[0.6, 0.6 - math.log(3)]]))
    torch.testing.assert_close(h, torch.tensor([[1.275, 0.575]]))
    renorm = LAM(LamConfig(width=2, dim=2, classes=("a", "b"), renormalize=True))
    renorm.load_state_dict(lam_.state_dict())
    torch.testing.assert_close(renorm(torch.tensor([[1.0, 1.0]]))[0], F.normalize(h, dim=-1))


def _reference_kl(student: torch.Tensor, teacher: torch.Tensor, image: torch.Tensor) -> float:
    kl = 0.0
    rows = zip((student @ image.T).tolist(), (teacher @ image.T).tolist(), strict=True)
    for s_row, t_row in rows:
        p = torch.tensor(t_row).div(0.5).softmax(0)
        log_q = torch.tensor(s_row).div(0.5).log_softmax(0)
        kl += float((p * (p.log() - log_q)).sum())
    return kl / len(student) * 0.5**2


def _reference_contrastive(sim: list[list[float]], tau: float) -> float:
    """Mean over rows of -log softmax(row / tau)[i]: text i against every image."""
    total = 0.0
    for i, row in enumerate(sim):
        z = [v / tau for v in row]
        total += -(z[i] - math.log(sum(math.exp(v) for v in z)))
    return total / len(sim)


def test_das_ru_losses_match_the_recipe_by_hand() -> None:
    h, logits, image, teacher, label = _batch()
    params = TrainParams(loss_weights=LossWeights(contrastive=1.0, kl=0.3, ce=0.3))
    got = lam_losses(h, logits, image, teacher, label, params)
    con = _reference_contrastive((h @ image.T).tolist(), 0.07)
    kl = _reference_kl(h, teacher, image)  # the raw, unnormalised teacher
    ce = sum(-logits[i].log_softmax(0)[label[i]].item() for i in range(len(h))) / len(h)
    assert math.isclose(got["contrastive"].item(), con, rel_tol=1e-5)
    assert math.isclose(got["kl"].item(), kl, rel_tol=1e-4)
    assert math.isclose(got["ce"].item(), ce, rel_tol=1e-5)
    assert math.isclose(got["loss"].item(), con + 0.3 * kl + 0.3 * ce, rel_tol=1e-5)


def test_improved_losses_symmetric_normalised_teacher_given_temperature() -> None:
    h, logits, image, teacher, label = _batch(1)
    params = TrainParams(recipe="improved")
    got = lam_losses(h, logits, image, teacher, label, params, torch.tensor(0.05))
    sim = (h @ image.T).tolist()
    by_image = [list(col) for col in zip(*sim, strict=True)]
    con = (_reference_contrastive(sim, 0.05) + _reference_contrastive(by_image, 0.05)) / 2
    assert math.isclose(got["contrastive"].item(), con, rel_tol=1e-5)
    kl = _reference_kl(h, F.normalize(teacher, dim=-1), image)
    assert math.isclose(got["kl"].item(), kl, rel_tol=1e-4)


def test_split_recall() -> None:
    assert split_recall(torch.eye(5)) == {"r@1": 1.0, "r@5": 1.0, "r@10": 1.0}
    sim = torch.eye(4).roll(1, dims=1)  # every text prefers the next image
    assert split_recall(sim, (1, 2)) == {"r@1": 0.0, "r@2": 1.0}


def test_macro_f1_by_hand() -> None:
    label = torch.tensor([0, 0, 1, 1, 2])
    pred = torch.tensor([0, 1, 1, 1, 3])
    # class 0: P 1/1 R 1/2 -> 2/3; class 1: P 2/3 R 1 -> 4/5; classes 2 and 3: 0
    assert math.isclose(macro_f1(pred, label), (2 / 3 + 4 / 5) / 4, rel_tol=1e-6)
    assert macro_f1(label, label) == 1.0


def test_warmup_cosine() -> None:
    f = warmup_cosine(total_steps=100, warmup=0.1)
    assert [f(0), f(4), f(9)] == pytest.approx([0.1, 0.5, 1.0])
    assert f(10) == pytest.approx(1.0)
    assert f(55) == pytest.approx(0.5)
    assert f(100) == pytest.approx(0.0)
    steps = [f(s) for s in range(10, 101)]
    assert steps == sorted(steps, reverse=True)


def test_das_ru_recipe_is_the_authors_code() -> None:
    p = TrainParams()
    assert (p.epochs, p.batch_size, p.lr) == (6, 8, 1e-4)
    assert (p.temperature, p.kl_temperature) == (0.07, 0.5)
    assert (p.loss_weights.contrastive, p.loss_weights.kl, p.loss_weights.ce) == (1.0, 0.3, 0.3)
    assert (p.projection_init, p.class_init, p.teacher, p.schedule) == (
        "random",
        "randn",
        "raw",
        "constant",
    )
    assert [p.renormalize, p.symmetric, p.learn_temperature, p.patience] == [False, False, False, 0]
    assert (p.text, p.article_words) == ("headline_article", 100)
    assert p.overrides() == {}


def test_recipe_defaults_and_explicit_switches() -> None:
    improved = parse_section("train", {"recipe": "improved", "symmetric": None})
    assert {k: getattr(improved, k) for k in RECIPES["improved"]} == RECIPES["improved"]
    ablated = parse_section("train", {"recipe": "improved", "symmetric": False, "epochs": 3})
    assert ablated.overrides() == {"symmetric": False, "epochs": 3}
    assert [ablated.renormalize, ablated.learn_temperature] == [True, True]


def test_initialisations() -> None:
    base = torch.randn(8, 16)
    names = torch.randn(24, 8)
    params = TrainParams(projection_init="base", class_init="names")
    module = LamModule(LamConfig(width=16, dim=8), params, base, names)
    assert torch.equal(module.lam.proj.weight, base)
    assert not module.lam.proj.bias.any()
    torch.testing.assert_close(module.lam.class_vectors, F.normalize(names, dim=-1))
    small = LamModule(LamConfig(width=16, dim=8), TrainParams(class_init="small"), base)
    torch.testing.assert_close(small.lam.class_vectors.norm(dim=-1), torch.full((24,), 0.1))
    das_ru = LamModule(LamConfig(width=16, dim=8), TrainParams(), base)
    assert not das_ru.log_scale.requires_grad
    assert das_ru.temperature().item() == pytest.approx(0.07)
    with pytest.raises(ValueError, match="names"):
        LamModule(LamConfig(width=16, dim=8), params, base)


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
        before = split_recall(module.lam(hidden)[0] @ image.T)["r@1"]
    trainer = pl.Trainer(max_epochs=8, accelerator="cpu", logger=False,
                         enable_checkpointing=False, enable_progress_bar=False,
                         enable_model_summary=False)  # fmt: skip
    loader = DataLoader(data, batch_size=32, shuffle=True, generator=g)
    trainer.fit(module, loader)
    with torch.no_grad():
        after = split_recall(module.lam(hidden)[0] @ image.T)["r@1"]
    assert before < 0.05
    assert after > 0.5


# --- on a generated N24News sample ----------------------------------------------------------------

SAMPLE_TRAIN = {"recipe": "improved", "epochs": 8, "batch_size": 32, "lr": 0.003,
                "accelerator": "cpu"}  # fmt: skip


@pytest.fixture(scope="module")
def n24news(tmp_path_factory: pytest.TempPathFactory, tiny_model: Path) -> dict[str, Path]:
    """24 sections x 12/4/4 items, their images embedded by the tiny model."""
    d = tmp_path_factory.mktemp("n24news")
    sample.generate(d / "data", seed=0, n_articles=4, pool_size=30, n24news_per_section=(12, 4, 4))
    params = EmbedParams(accelerator="cpu", devices=1, num_workers=0)
    embed.run(params, "n24news", d / "data/n24news", tiny_model, d / "embeddings")
    return {"n24news": d / "data/n24news", "embeddings": d / "embeddings", "model": tiny_model}


@pytest.fixture(scope="module")
def features(n24news: dict[str, Path]) -> lam.N24NewsFeatures:
    params = TrainParams(**SAMPLE_TRAIN)
    clip = Clip(n24news["model"])
    data = lam.N24NewsFeatures(n24news["n24news"], n24news["embeddings"], clip, params)
    data.setup()
    return data


def test_training_leaves_the_tower_bit_identical_and_is_reproducible(
    features: lam.N24NewsFeatures, tmp_path: Path
) -> None:
    params = features.params
    tower = {k: v.clone() for k, v in features.clip.model.state_dict().items()}
    module = lam.build_module(params, features.clip)
    first = lam.fit(params, module, features)
    second = lam.fit(params, lam.build_module(params, features.clip), features)
    assert first == second
    save_lam(module.lam, tmp_path / "lam")
    hidden = features.splits["test"].tensors[0]
    with torch.no_grad():
        reloaded, trained = load_lam(tmp_path / "lam")(hidden), module.lam(hidden)
    for got, want in zip(reloaded, trained, strict=True):  # (h, logits)
        assert torch.equal(got, want)
    after = features.clip.model.state_dict()
    assert all(torch.equal(after[k], v) for k, v in tower.items())
    assert not any(p.requires_grad for p in features.clip.model.parameters())


def test_stage_learns_the_sample(n24news: dict[str, Path], tmp_path: Path) -> None:
    """The train stage end to end: the section head beats 3x chance on test, dev R@10 rises
    from the untrained start, the tracked metrics are written and the saved LAM reloads."""
    params = tmp_path / "params.yaml"
    params.write_text(yaml.safe_dump({"train": SAMPLE_TRAIN}))
    out, live = tmp_path / "lam", tmp_path / "dvclive"
    argv = ["--params", str(params), "--out", str(out), "--live", str(live)]
    argv += [f"--{k}={v}" for k, v in n24news.items()]
    assert load_stage("train").main(argv) == 0
    metrics = json.loads((live / "metrics.json").read_text())
    assert metrics["test"]["accuracy"] > 3 / 24
    assert metrics["test"]["f1"] > 3 / 24
    curve = (live / "plots/metrics/dev/r@10.tsv").read_text().split("\n")[1:-1]
    start, best = float(curve[0].split()[1]), max(float(r.split()[1]) for r in curve)
    assert metrics["dev"]["r@10"] == best > start + 0.1
    assert (live / "plots/metrics/train/lr.tsv").exists()
    saved = load_lam(out)
    assert sorted(p.name for p in out.iterdir()) == ["lam.json", "lam.safetensors"]
    assert saved.config.classes == lam.SECTIONS
    assert saved.config.renormalize


def test_stage_rejects_a_batch_larger_than_the_training_set(
    n24news: dict[str, Path], tmp_path: Path
) -> None:
    params = tmp_path / "params.yaml"
    params.write_text(yaml.safe_dump({"train": {**SAMPLE_TRAIN, "batch_size": 5000}}))
    out = tmp_path / "lam"
    argv = ["--params", str(params), "--out", str(out), "--live", str(tmp_path / "live")]
    argv += [f"--{k}={v}" for k, v in n24news.items()]
    assert load_stage("train").main(argv) == 2
    assert not out.exists()
