"""The NumPy text tower and LAM against the torch ones, and the safetensors reader under them."""

from __future__ import annotations

import json
import struct
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import load_file, save_file

from newsimg import clip, numpy_clip
from newsimg.alignment import LAM, LamConfig, save_lam
from newsimg.errors import InputError
from newsimg.store.tensors import read_tensors
from newsimg.tokens import count_tokens

# mixed lengths: empty, short, HTML entities, several lengths in one batch, and two texts longer
# than the 248 positions (cut, last token forced to EOT)
TEXTS = [
    "",
    "a red kite",
    "Caf&amp;eacute;   DÉJÀ\n vu",
    "Three red kites fly over a snowy field " * 4,
    "the council met on tuesday to discuss the harbour",
    "word " * 300,
    "news " * 246 + "end",
    "a photo of a cat",
]


def test_texts_cover_short_long_and_truncated() -> None:
    tokens = count_tokens(TEXTS)
    assert min(tokens) == 2
    assert sum(t > clip.CONTEXT_LENGTH for t in tokens) == 2


@pytest.mark.parametrize("batch_size", [64, 3])
def test_tiny_tower_equals_torch(tiny_model: Path, batch_size: int) -> None:
    """The pooled states and the normalised features of the tiny model, batch by batch."""
    ours, torch_clip = numpy_clip.NumpyText(tiny_model), clip.Clip(tiny_model)
    assert (ours.width, ours.dim, ours.context_length) == (256, 256, 248)
    hidden = ours.text_hidden(TEXTS, batch_size)
    assert hidden.dtype == np.float32
    np.testing.assert_allclose(hidden, torch_clip.text_hidden(TEXTS, batch_size), atol=1e-5)
    np.testing.assert_allclose(
        ours.encode_text(TEXTS, batch_size), torch_clip.encode_text(TEXTS, batch_size), atol=1e-5
    )
    assert ours.text_hidden([]).shape == (0, 256)


def test_pooling_is_at_the_first_eot_of_a_full_width_row(tiny_model: Path) -> None:
    """Uncut rows (every batch at 248 positions) pool where transformers does."""
    ours, torch_clip = numpy_clip.NumpyText(tiny_model), clip.Clip(tiny_model)
    ids = clip.tokenize(TEXTS[:4])
    with torch.no_grad():
        want = torch_clip.model.text_model(input_ids=torch.from_numpy(ids)).pooler_output
    np.testing.assert_allclose(ours.pooled(ids), want.numpy(), atol=1e-5)


def _folder(
    tmp_path: Path, *, act: str, dtype: str = "float32", eos: int = clip.EOT, width: int = 128
) -> Path:
    """A seeded random CLIP of two text layers of ``width`` (heads of 64, MLP 4x), saved as the
    model stage saves; width 512 is Long-CLIP-B's text block (8 heads, MLP 2048)."""
    text = dict(hidden_size=width, intermediate_size=4 * width, num_hidden_layers=2)
    text |= dict(num_attention_heads=width // 64, hidden_act=act)
    vision = dict(hidden_size=64, intermediate_size=128, num_hidden_layers=1)
    vision |= dict(num_attention_heads=2, image_size=32, patch_size=16)
    model = clip.random_clip(text, vision, projection_dim=width, seed=3)
    model.config.text_config.eos_token_id = eos
    model.text_model.eos_token_id = eos
    out = tmp_path / f"{act}-{dtype}-{eos}"
    clip.save_model(model, out, dtype)
    return out


@pytest.mark.parametrize(("act", "width"), [("quick_gelu", 512), ("gelu_pytorch_tanh", 128)])
def test_long_clip_b_shaped_tower_equals_torch(tmp_path: Path, act: str, width: int) -> None:
    folder = _folder(tmp_path, act=act, width=width)
    ours, torch_clip = numpy_clip.NumpyText(folder), clip.Clip(folder)
    assert (ours.width, ours.heads, ours.dim) == (width, width // 64, width)
    np.testing.assert_allclose(ours.text_hidden(TEXTS), torch_clip.text_hidden(TEXTS), atol=1e-5)
    np.testing.assert_allclose(ours.encode_text(TEXTS), torch_clip.encode_text(TEXTS), atol=1e-5)


@pytest.mark.parametrize("dtype", ["float16", "bfloat16"])
def test_half_precision_folders_are_widened_as_torch_widens_them(
    tmp_path: Path, dtype: str
) -> None:
    """A folder saved in float16 or bfloat16 encodes as the torch tower loaded in float32."""
    folder = _folder(tmp_path, act="quick_gelu", dtype=dtype)
    ours, torch_clip = numpy_clip.NumpyText(folder), clip.Clip(folder, precision="float32")
    np.testing.assert_allclose(ours.text_hidden(TEXTS), torch_clip.text_hidden(TEXTS), atol=1e-5)


def test_legacy_eos_id_pools_at_the_largest_id(tmp_path: Path) -> None:
    """Configs from before transformers' PR #24773 say eos_token_id 2: pooling is at argmax(ids)."""
    folder = _folder(tmp_path, act="quick_gelu", eos=2)
    ours, torch_clip = numpy_clip.NumpyText(folder), clip.Clip(folder)
    assert ours.eos == 2
    ids = clip.tokenize(TEXTS[:3])
    with torch.no_grad():
        want = torch_clip.model.text_model(input_ids=torch.from_numpy(ids)).pooler_output
    np.testing.assert_allclose(ours.pooled(ids), want.numpy(), atol=1e-5)


def test_unsupported_activation_is_named(tmp_path: Path) -> None:
    folder = _folder(tmp_path, act="quick_gelu")
    config = json.loads((folder / "config.json").read_text())
    config["text_config"]["hidden_act"] = "gelu"
    (folder / "config.json").write_text(json.dumps(config))
    assert not numpy_clip.supports(folder)
    with pytest.raises(InputError, match="no 'gelu' activation"):
        numpy_clip.NumpyText(folder)


@pytest.mark.parametrize("renormalize", [False, True])
def test_lam_equals_torch(tmp_path: Path, renormalize: bool) -> None:
    torch.manual_seed(1)
    lam = LAM(LamConfig(width=48, dim=32, renormalize=renormalize)).eval()
    with torch.no_grad():
        lam.alpha.fill_(0.3)  # not the initial 0.5: the weights are read, not assumed
    save_lam(lam, tmp_path / "lam")
    ours = numpy_clip.NumpyLam(tmp_path / "lam")
    assert ours.config == lam.config
    hidden = np.random.default_rng(0).standard_normal((5, 48)).astype(np.float32)
    h, logits = ours.forward(hidden)
    with torch.no_grad():
        want_h, want_logits = lam(torch.from_numpy(hidden))
    np.testing.assert_allclose(h, want_h.numpy(), atol=1e-6)
    np.testing.assert_allclose(logits, want_logits.numpy(), atol=1e-5)


def test_lam_weights_that_do_not_fit_are_named(tmp_path: Path) -> None:
    save_lam(LAM(LamConfig(width=48, dim=32)), tmp_path / "lam")
    config = json.loads((tmp_path / "lam/lam.json").read_text())
    (tmp_path / "lam/lam.json").write_text(json.dumps({**config, "width": 40}))
    with pytest.raises(InputError, match=r"do not fit lam\.json: proj"):
        numpy_clip.NumpyLam(tmp_path / "lam")


# --- the safetensors reader -----------------------------------------------------------------------


def test_reader_gives_what_safetensors_gives(tmp_path: Path) -> None:
    g = torch.Generator().manual_seed(0)
    tensors = {
        "f32": torch.randn(3, 5, generator=g),
        "f16": torch.randn(7, generator=g).half(),  # 14 bytes: the next tensor is unaligned
        "bf16": torch.randn(2, 3, generator=g).bfloat16(),
        "i64": torch.arange(6).reshape(2, 3),
        "scalar": torch.tensor(0.25),
    }
    save_file(tensors, tmp_path / "t.safetensors", metadata={"format": "pt"})
    ours = read_tensors(tmp_path / "t.safetensors")
    theirs = load_file(tmp_path / "t.safetensors")
    assert set(ours) == set(theirs)
    for name, t in theirs.items():
        want = t.float().numpy() if t.is_floating_point() else t.numpy()
        assert ours[name].dtype == want.dtype, name
        np.testing.assert_array_equal(ours[name], want)  # float16/bfloat16 widened exactly
    raw = read_tensors(tmp_path / "t.safetensors", lambda n: n.startswith("bf"), float32=False)
    assert list(raw) == ["bf16"]
    assert raw["bf16"].dtype == np.uint16


def test_reader_names_a_broken_file(tmp_path: Path) -> None:
    save_file({"x": torch.ones(4)}, tmp_path / "ok.safetensors")
    data = (tmp_path / "ok.safetensors").read_bytes()
    (tmp_path / "short.safetensors").write_bytes(data[:-4])
    with pytest.raises(InputError, match=r"'x'.*does not fit its bytes"):
        read_tensors(tmp_path / "short.safetensors")
    (tmp_path / "head.safetensors").write_bytes(struct.pack("<Q", 10) + b"not json!!")
    with pytest.raises(InputError, match="not a safetensors file: its header"):
        read_tensors(tmp_path / "head.safetensors")
    (tmp_path / "tiny.safetensors").write_bytes(b"abc")
    with pytest.raises(InputError, match="shorter than its header"):
        read_tensors(tmp_path / "tiny.safetensors")
    with pytest.raises(InputError, match="cannot read"):
        read_tensors(tmp_path / "missing.safetensors")


def test_concurrent_queries_agree_and_leave_blas_as_it_was(tiny_model: Path) -> None:
    """Threads share the process-wide one-thread BLAS limit; the last one out restores it."""
    from concurrent.futures import ThreadPoolExecutor

    from threadpoolctl import threadpool_info

    def blas() -> list[int]:
        return [i["num_threads"] for i in threadpool_info() if i["user_api"] == "blas"]

    ours = numpy_clip.NumpyText(tiny_model)
    before = blas()
    with numpy_clip.blas_threads(1):
        assert set(blas()) == {1}
    assert blas() == before
    serial = ours.text_hidden(TEXTS)
    with ThreadPoolExecutor(max_workers=4) as pool:
        rows = list(pool.map(lambda t: ours.text_hidden([t])[0], TEXTS * 3))
    np.testing.assert_allclose(np.stack(rows), np.concatenate([serial] * 3), atol=1e-5)
    assert blas() == before
