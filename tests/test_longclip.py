"""Long-CLIP conversion against an independent plain-PyTorch forward written from the formulas."""

from __future__ import annotations

import math
import os
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from transformers import CLIPConfig, CLIPModel

from newsimg import clip, longclip
from newsimg.errors import InputError
from newsimg.params import ModelParams

WIDTH, LAYERS, V_WIDTH, V_LAYERS, PATCH, GRID, EMBED = 128, 2, 64, 2, 8, 4, 48


def random_longclip(seed: int = 0, positions: int = 248) -> dict[str, torch.Tensor]:
    """A random state dict in Long-CLIP's key layout (OpenAI names + positional_embedding_res)."""
    g = torch.Generator().manual_seed(seed)

    def r(*shape: int, scale: float = 0.02) -> torch.Tensor:
        return torch.randn(*shape, generator=g) * scale

    def block(prefix: str, w: int) -> dict[str, torch.Tensor]:
        return {
            prefix + "attn.in_proj_weight": r(3 * w, w, scale=w**-0.5),
            prefix + "attn.in_proj_bias": r(3 * w),
            prefix + "attn.out_proj.weight": r(w, w, scale=w**-0.5),
            prefix + "attn.out_proj.bias": r(w),
            prefix + "ln_1.weight": 1 + r(w, scale=0.1),
            prefix + "ln_1.bias": r(w),
            prefix + "ln_2.weight": 1 + r(w, scale=0.1),
            prefix + "ln_2.bias": r(w),
            prefix + "mlp.c_fc.weight": r(4 * w, w, scale=w**-0.5),
            prefix + "mlp.c_fc.bias": r(4 * w),
            prefix + "mlp.c_proj.weight": r(w, 4 * w, scale=(4 * w) ** -0.5),
            prefix + "mlp.c_proj.bias": r(w),
        }

    sd = {
        "token_embedding.weight": r(clip.VOCAB_SIZE, WIDTH, scale=0.5),
        "positional_embedding": r(positions, WIDTH, scale=0.5),
        "positional_embedding_res": r(positions, WIDTH, scale=0.5),
        "ln_final.weight": 1 + r(WIDTH, scale=0.1),
        "ln_final.bias": r(WIDTH),
        "text_projection": r(WIDTH, EMBED, scale=WIDTH**-0.5),
        "logit_scale": torch.tensor(math.log(100.0)),
        "visual.conv1.weight": r(V_WIDTH, 3, PATCH, PATCH, scale=0.1),
        "visual.class_embedding": r(V_WIDTH, scale=0.5),
        "visual.positional_embedding": r(GRID * GRID + 1, V_WIDTH, scale=0.5),
        "visual.ln_pre.weight": 1 + r(V_WIDTH, scale=0.1),
        "visual.ln_pre.bias": r(V_WIDTH),
        "visual.ln_post.weight": 1 + r(V_WIDTH, scale=0.1),
        "visual.ln_post.bias": r(V_WIDTH),
        "visual.proj": r(V_WIDTH, EMBED, scale=V_WIDTH**-0.5),
    }
    for i in range(LAYERS):
        sd |= block(f"transformer.resblocks.{i}.", WIDTH)
    for i in range(V_LAYERS):
        sd |= block(f"visual.transformer.resblocks.{i}.", V_WIDTH)
    return sd


# --- the reference: Long-CLIP's forward from its formulas, in float64 ------------------------


def _ln(x: torch.Tensor, sd: dict, p: str) -> torch.Tensor:
    return F.layer_norm(x, x.shape[-1:], sd[p + ".weight"], sd[p + ".bias"], eps=1e-5)


def _block(x: torch.Tensor, sd: dict, p: str, causal: bool) -> torch.Tensor:
    b, t, w = x.shape
    heads = w // 64
    h = _ln(x, sd, p + "ln_1")
    q, k, v = (h @ sd[p + "attn.in_proj_weight"].T + sd[p + "attn.in_proj_bias"]).chunk(3, -1)
    q, k, v = (z.reshape(b, t, heads, -1).transpose(1, 2) for z in (q, k, v))  # (B, nh, T, hs)
    att = q @ k.transpose(-1, -2) / math.sqrt(w // heads)
    if causal:
        att = att.masked_fill(torch.ones(t, t, dtype=torch.bool).triu(1), float("-inf"))
    o = (att.softmax(-1) @ v).transpose(1, 2).reshape(b, t, w)
    x = x + o @ sd[p + "attn.out_proj.weight"].T + sd[p + "attn.out_proj.bias"]
    h = _ln(x, sd, p + "ln_2") @ sd[p + "mlp.c_fc.weight"].T + sd[p + "mlp.c_fc.bias"]
    h = h * torch.sigmoid(1.702 * h)  # QuickGELU
    return x + h @ sd[p + "mlp.c_proj.weight"].T + sd[p + "mlp.c_proj.bias"]


def reference_text(sd: dict, ids: torch.Tensor) -> torch.Tensor:
    sd = {k: v.double() for k, v in sd.items()}
    rows = torch.arange(ids.shape[1])[:, None]
    mask1, mask2 = (rows < 20).double(), (rows >= 20).double()
    x = sd["token_embedding.weight"][ids]
    x = x + sd["positional_embedding"] * mask1 + sd["positional_embedding_res"] * mask2
    for i in range(LAYERS):
        x = _block(x, sd, f"transformer.resblocks.{i}.", causal=True)
    x = _ln(x, sd, "ln_final")
    return x[torch.arange(len(ids)), ids.argmax(-1)] @ sd["text_projection"]


def reference_image(sd: dict, pixels: torch.Tensor) -> torch.Tensor:
    sd = {k: v.double() for k, v in sd.items()}
    x = F.conv2d(pixels.double(), sd["visual.conv1.weight"], stride=PATCH)  # (B, w, g, g)
    x = x.flatten(2).transpose(1, 2)  # (B, g*g, w)
    cls = sd["visual.class_embedding"].expand(len(x), 1, -1)
    x = torch.cat([cls, x], dim=1) + sd["visual.positional_embedding"]
    x = _ln(x, sd, "visual.ln_pre")
    for i in range(V_LAYERS):
        x = _block(x, sd, f"visual.transformer.resblocks.{i}.", causal=False)
    return _ln(x[:, 0], sd, "visual.ln_post") @ sd["visual.proj"]


def rel_err(a: torch.Tensor, b: torch.Tensor) -> float:
    return float((a.double() - b.double()).norm() / b.double().norm())


TEXTS = [
    "a red kite",
    "Three red kites fly over a snowy field while a crowd of onlookers gathers on the hill to "
    "watch the annual festival, which this year drew more visitors than ever before in its "
    "long history, organisers said on Sunday afternoon.",  # > 20 tokens: reads the _res rows
]


@pytest.fixture(scope="module")
def state() -> dict[str, torch.Tensor]:
    sd = random_longclip()
    assert not torch.equal(sd["positional_embedding"][20:], sd["positional_embedding_res"][20:])
    return sd


def test_converted_features_match_the_reference(state: dict) -> None:
    model = longclip.convert(state)
    ids = torch.from_numpy(clip.tokenize(TEXTS))
    assert (ids[1] > 0).sum() > 30
    pixels = torch.randn(
        3, 3, PATCH * GRID, PATCH * GRID, generator=torch.Generator().manual_seed(1)
    )
    with torch.no_grad():
        text = model.get_text_features(input_ids=ids).pooler_output
        image = model.get_image_features(pixel_values=pixels).pooler_output
    assert rel_err(text, reference_text(state, ids)) < 1e-5
    assert rel_err(image, reference_image(state, pixels)) < 1e-5
    assert model.logit_scale.item() == pytest.approx(math.log(100.0))
    assert model.config.text_config.max_position_embeddings == 248
    assert model.config.vision_config.image_size == PATCH * GRID


def test_original_rounding_rounds_what_the_original_loader_rounds(state: dict) -> None:
    model = longclip.convert(state, original_rounding=True)
    layer = model.text_model.encoder.layers[0]
    q = state["transformer.resblocks.0.attn.in_proj_weight"][:WIDTH]
    assert torch.equal(layer.self_attn.q_proj.weight, q.half().float())
    assert torch.equal(model.text_projection.weight, state["text_projection"].T.half().float())
    # LayerNorms and embeddings stay in float32, as in the original
    assert torch.equal(layer.layer_norm1.weight, state["transformer.resblocks.0.ln_1.weight"])
    emb = model.text_model.embeddings.token_embedding.weight
    assert torch.equal(emb, state["token_embedding.weight"])


def test_missing_key_and_bad_shape_are_named(state: dict) -> None:
    broken = {k: v for k, v in state.items() if k != "visual.ln_post.bias"}
    with pytest.raises(InputError, match=r"visual\.ln_post\.bias"):
        longclip.convert(broken)
    bad = dict(state)
    bad["positional_embedding_res"] = bad["positional_embedding_res"][:100]
    with pytest.raises(InputError, match="positional_embedding_res"):
        longclip.convert(bad)
    bad = dict(state)
    bad["transformer.resblocks.1.mlp.c_proj.weight"] = torch.zeros(WIDTH, 7)
    with pytest.raises(InputError, match=r"layers\.1\.mlp\.fc2\.weight"):
        longclip.convert(bad)


class Payload:
    """Unpickling this would run a shell command."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def test_a_pickle_that_would_run_code_is_refused(tmp_path: Path) -> None:
    marker = tmp_path / "pwned"
    path = tmp_path / "evil.pt"
    torch.save({"weights": torch.zeros(2), "payload": Payload(marker)}, path)
    with pytest.raises(InputError, match="could run code"):
        longclip.load_state_dict(path)
    assert not marker.exists()


def test_model_stage_converts_a_checkpoint_file(state: dict, tmp_path: Path) -> None:
    ckpt = tmp_path / "longclip-T.pt"
    torch.save({k: v.half() for k, v in state.items()}, ckpt)  # released weights are float16
    out = tmp_path / "base"
    clip.build(ModelParams(source=str(ckpt)), out)
    loaded = clip.Clip(out)
    ids = torch.from_numpy(clip.tokenize(TEXTS))
    half = {k: v.half().float() for k, v in state.items()}
    ref = reference_text(half, ids)
    ours = torch.from_numpy(loaded.project_text(loaded.text_hidden(TEXTS)))
    assert rel_err(ours, ref) < 1e-5


def test_missing_checkpoint_is_a_params_error() -> None:
    from newsimg.errors import ParamsError
    from newsimg.params import parse_section

    with pytest.raises(ParamsError, match=r"model\.source = 'nope/longclip-B\.pt'"):
        parse_section("model", {"source": "nope/longclip-B.pt"})


def test_stretch_rows_follow_the_formula() -> None:
    p = torch.randn(77, 8, generator=torch.Generator().manual_seed(0))
    new = longclip.stretch_table(p)
    assert new.shape == (248, 8)
    assert torch.equal(new[:20], p[:20])
    for i in range(56):
        for j in range(4):
            expected = (4 - j) / 4 * p[20 + i] + j / 4 * p[21 + i]
            torch.testing.assert_close(new[20 + 4 * i + j], expected)
    for k in range(1, 5):
        torch.testing.assert_close(new[243 + k], p[76] + k / 4 * (p[76] - p[75]))


def test_stretched_model_keeps_short_texts(tmp_path: Path) -> None:
    config = clip.make_tiny(0).config.to_dict()
    config["text_config"]["max_position_embeddings"] = 77
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        short = CLIPModel(CLIPConfig.from_dict(config)).eval()
    long = longclip.stretch(short)
    assert long.config.text_config.max_position_embeddings == 248
    texts = ["a red kite", "two boats at night in the harbour"]  # under 20 tokens
    with torch.no_grad():
        a = short.get_text_features(input_ids=torch.from_numpy(clip.tokenize(texts, 77)))
        b = long.get_text_features(input_ids=torch.from_numpy(clip.tokenize(texts, 248)))
    np.testing.assert_allclose(a.pooler_output.numpy(), b.pooler_output.numpy(), atol=1e-6)


def test_convert_longclip_command(state: dict, tmp_path: Path) -> None:
    from newsimg.cli import main

    ckpt = tmp_path / "longclip-T.pt"
    torch.save(state, ckpt)
    assert main(["convert-longclip", str(ckpt), str(tmp_path / "out"), "--original-rounding"]) == 0
    model = CLIPModel.from_pretrained(tmp_path / "out")
    w = state["visual.proj"].T.half().float()
    assert torch.equal(model.visual_projection.weight, w)
    assert main(["convert-longclip", str(tmp_path / "missing.pt"), str(tmp_path / "x")]) == 2
