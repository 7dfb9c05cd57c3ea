"""The tokenizer, preprocessing and the tiny model: values pinned against references."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from transformers import CLIPConfig, CLIPModel, CLIPTokenizer

from newsimg import clip


def test_known_token_ids() -> None:
    ids = clip.tokenize(["a photo of a cat"])
    assert ids.dtype == np.int64
    assert ids.shape == (1, 248)
    assert ids[0, :7].tolist() == [49406, 320, 1125, 539, 320, 2368, 49407]
    assert not ids[0, 7:].any()  # zero padding, as the original
    other = clip.tokenize(["Three RED kites over a snowy field, in Mr. Smith's town!"])[0]
    assert other[:17].tolist() == [
        49406, 2097, 736, 45829, 962, 320, 14191, 1570, 267, 530, 1982, 269, 2915, 568, 1605,
        256, 49407,
    ]  # fmt: skip


def test_cleaning_matches_clip() -> None:
    # entities unescaped (twice), mojibake fixed, whitespace collapsed, lower-cased
    a, b = clip.tokenize(["Caf&amp;eacute;   DÉJÀ\n vu", "café déjà vu"])
    assert a.tolist() == b.tolist()
    assert clip.clean_text("CafÃ©") == "café"


def test_truncation_ends_in_eot() -> None:
    ids = clip.tokenize(["word " * 400], context_length=248)[0]
    assert ids[0] == clip.SOT
    assert ids[-1] == clip.EOT
    assert (ids == clip.EOT).sum() == 1
    assert clip.count_tokens(["word " * 400]) == [402]


def test_written_tokenizer_files_agree_with_tokenize(tiny_model: Path) -> None:
    texts = [
        "Three red kites over a snowy field",
        "Mr. O'Brien's café &amp; bar — 日本 🎉",
        "x " * 300,
    ]
    ours = clip.tokenize(texts)
    hf = CLIPTokenizer.from_pretrained(tiny_model)
    theirs = hf(
        [clip.clean_text(t) for t in texts],
        padding="max_length",
        truncation=True,
        max_length=248,
        return_tensors="np",
    )["input_ids"]
    eot = np.argmax(theirs == clip.EOT, axis=1)
    theirs = np.where(np.arange(248)[None] > eot[:, None], 0, theirs)  # they pad with EOT
    assert (ours == theirs).all()


def test_preprocess_constant_image_and_crop_offsets() -> None:
    x = clip.preprocess(Image.new("RGB", (300, 200), (255, 0, 0)), size=64)
    assert x.shape == (3, 64, 64)
    assert x.dtype == np.float32
    expected = (np.array([1.0, 0.0, 0.0]) - clip.MEAN) / clip.STD
    np.testing.assert_allclose(x.mean(axis=(1, 2)), expected, atol=1e-3)
    # 300x200 -> 96x64, crop left = round(16.0) = 16: left stripe of 20 px is blue in the input
    im = Image.new("RGB", (300, 200), (255, 255, 255))
    im.paste((0, 0, 255), (0, 0, 60, 200))  # 60 px of 300 -> 19.2 px of 96
    y = clip.preprocess(im, size=64)
    assert y[0, 32, 0] < y[0, 32, 10]  # crop column 0 is still blue (no red), column 10 white


GREEN = (10, 200, 30)
GREY = round(0.299 * 10 + 0.587 * 200 + 0.114 * 30)  # ITU-R 601 luma, as Pillow's "L"


def _image(mode: str) -> Image.Image:
    if mode == "I;16":  # 16-bit grey, as a 16-bit PNG decodes
        return Image.fromarray(np.full((90, 120), GREY * 257, dtype=np.uint16))
    rgb = Image.new("RGB", (120, 90), GREEN)
    if mode == "P":  # an exact palette entry, not the dithered web palette
        return rgb.convert("P", palette=Image.Palette.ADAPTIVE)
    return rgb.convert(mode)


@pytest.mark.parametrize(
    ("mode", "rgb"),
    [
        ("RGB", GREEN),
        ("RGBA", GREEN),
        ("P", GREEN),
        ("CMYK", GREEN),
        ("L", (GREY,) * 3),
        ("LA", (GREY,) * 3),
        ("I;16", (GREY,) * 3),
    ],
)
def test_preprocess_modes_give_the_right_colour(mode: str, rgb: tuple[int, int, int]) -> None:
    x = clip.preprocess(_image(mode), size=224)
    assert x.shape == (3, 224, 224)
    expected = (np.array(rgb) / 255 - clip.MEAN) / clip.STD
    np.testing.assert_allclose(x.mean(axis=(1, 2)), expected, atol=0.02)
    assert x.std(axis=(1, 2)).max() < 0.02  # a flat colour stays flat


def _photo_like_jpeg(path: Path, size: tuple[int, int] = (1600, 1200)) -> None:
    rng = np.random.default_rng(0)
    w, h = size
    yy, xx = np.mgrid[0:h, 0:w] / max(w, h)
    base = np.stack([np.sin(6 * xx) * 80 + 120, np.cos(4 * yy) * 70 + 110, xx * yy * 200], -1)
    im = Image.fromarray(np.clip(base + rng.normal(0, 12, base.shape), 0, 255).astype(np.uint8))
    from PIL import ImageDraw

    draw = ImageDraw.Draw(im)
    for _ in range(25):
        x0, y0 = rng.integers(0, w - 200), rng.integers(0, h - 200)
        color = tuple(int(c) for c in rng.integers(0, 255, 3))
        draw.ellipse([x0, y0, x0 + rng.integers(40, 200), y0 + rng.integers(40, 200)], fill=color)
    im.save(path, quality=90)


def test_fast_jpeg_path_keeps_embeddings_within_cosine_0999(tmp_path: Path) -> None:
    config = clip.make_tiny(0).config.to_dict()
    config["vision_config"]["image_size"] = 224  # the real models' input size
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        model = CLIPModel(CLIPConfig.from_dict(config)).eval()
    cosines = []
    for i, size in enumerate([(1600, 1200), (1200, 1600), (2400, 1000)]):
        path = tmp_path / f"{i}.jpg"
        _photo_like_jpeg(path, size)
        with Image.open(path) as im:
            fast = clip.preprocess(im, 224, fast=True)
            assert min(im.size) < min(size)  # really decoded at a reduced scale
            assert min(im.size) >= 2 * 224
        with Image.open(path) as im:
            exact = clip.preprocess(im, 224)
        with torch.no_grad():
            e = model.get_image_features(pixel_values=torch.from_numpy(np.stack([exact, fast])))
        a, b = torch.nn.functional.normalize(e.pooler_output, dim=-1)
        cosines.append(float(a @ b))
    assert min(cosines) >= 0.999, cosines


def test_tiny_model_is_seeded_and_pinned(tiny_model: Path) -> None:
    a, b = clip.make_tiny(0), clip.make_tiny(0)
    for (name, p), q in zip(a.state_dict().items(), b.state_dict().values(), strict=True):
        assert torch.equal(p, q), name
    assert not torch.equal(a.text_projection.weight, clip.make_tiny(1).text_projection.weight)
    c = clip.Clip(tiny_model)
    assert c.context_length == 248
    text = c.encode_text(["a red ball on a beach"])[0]
    image = c.encode_images([Image.new("RGB", (96, 64), (200, 30, 30))])[0]
    np.testing.assert_allclose(np.linalg.norm(text), 1.0, rtol=1e-5)
    # pinned: a refactor that changes the model's outputs fails here
    np.testing.assert_allclose(text[:4], [0.02208, -0.03621, 0.07095, 0.00940], atol=1e-4)
    np.testing.assert_allclose(image[:4], [-0.00682, 0.11833, 0.03448, 0.11524], atol=1e-4)


def test_eot_pooling_is_right_for_padded_and_batched_texts(tiny_model: Path) -> None:
    c = clip.Clip(tiny_model)
    texts = ["a short one", "a much longer text about three red kites flying over snow"]
    together = c.text_hidden(texts)
    alone = np.concatenate([c.text_hidden([t]) for t in texts])
    np.testing.assert_allclose(together, alone, atol=1e-5)
    ids = torch.from_numpy(clip.tokenize(texts[:1]))
    states = c.model.text_model(input_ids=ids).last_hidden_state[0]
    eot = int((ids[0] == clip.EOT).nonzero()[0])
    np.testing.assert_allclose(together[0], states[eot].detach().numpy(), atol=1e-5)


@pytest.mark.parametrize("precision", ["bfloat16", "float16"])
def test_lower_precision_encodes_close_to_float32(tiny_model: Path, precision: str) -> None:
    texts = ["a red ball on a beach", "two green tents in the snow at night"]
    images = [Image.new("RGB", (96, 64), (200, 30, 30)), Image.new("RGB", (64, 90), (20, 90, 200))]
    full, low = clip.Clip(tiny_model), clip.Clip(tiny_model, precision=precision)
    assert low.model.dtype == clip.DTYPES[precision]
    for a, b in [
        (full.encode_text(texts), low.encode_text(texts)),
        (full.encode_images(images), low.encode_images(images)),
    ]:
        assert (a * b).sum(axis=1).min() > 0.99  # cosine of each pair


# --- length-aware text encoding -------------------------------------------------------------------

VOCAB = ["the", "council", "met", "on", "tuesday", "to", "discuss", "three", "red", "kites",
         "over", "snowy", "harbour", "a", "photo", "of", "cat", "news"]  # fmt: skip


def _texts_of_lengths(words: list[int], seed: int = 0) -> list[str]:
    """Texts of the given word counts (each of these words is one BPE token: length + 2)."""
    rng = np.random.default_rng(seed)
    return [" ".join(rng.choice(VOCAB, n)) for n in words]


def _widths(text_model: torch.nn.Module) -> tuple[list[int], object]:
    """Record the width of every batch the text tower runs on."""
    widths: list[int] = []
    handle = text_model.register_forward_pre_hook(
        lambda _m, _a, kw: widths.append(kw["input_ids"].shape[1]), with_kwargs=True
    )
    return widths, handle


def test_text_lengths_count_up_to_the_first_eot() -> None:
    ids = clip.tokenize(["a photo of a cat", "word " * 400, ""])
    assert clip.text_lengths(ids).tolist() == [7, 248, 2]
    no_eot = np.full((1, 248), 320, np.int64)
    assert clip.text_lengths(no_eot).tolist() == [248]


def test_length_aware_text_hidden_equals_full_padding_and_keeps_order(tiny_model: Path) -> None:
    c = clip.Clip(tiny_model)
    rng = np.random.default_rng(1)
    words = [1, 246, 300, *rng.integers(1, 247, 33).tolist(), 2, 500, 18, 150]  # 40 texts
    texts = _texts_of_lengths(words)
    assert set(clip.count_tokens(texts)) >= {3, 248, 302, 502}  # 3..248, two truncated
    full = clip.pooled_text(c.model.text_model, clip.tokenize(texts), 4, cut=False)
    widths, handle = _widths(c.model.text_model)
    try:
        ours = c.text_hidden(texts, batch_size=4)  # windows of 64 texts: one window
        by_two = c.text_hidden(texts, batch_size=2)  # windows of 32: two windows
    finally:
        handle.remove()
    np.testing.assert_allclose(ours, full, atol=1e-5, rtol=0)
    np.testing.assert_allclose(by_two, full, atol=1e-5, rtol=0)
    # each batch of 4 sorted texts ran at its longest text's length, truncated texts at 248
    lengths = sorted(min(n, 248) for n in clip.count_tokens(texts))
    assert widths[:10] == [lengths[i + 3] for i in range(0, 40, 4)]
    assert sum(widths[:10]) < 0.6 * 10 * 248
    # order: every row is its own text's state, whatever else is in the call
    alone = np.concatenate([c.text_hidden([texts[i]]) for i in (0, 1, 17, 39)])
    np.testing.assert_allclose(ours[[0, 1, 17, 39]], alone, atol=1e-5, rtol=0)
    np.testing.assert_allclose(c.text_hidden(texts[::-1], 4), full[::-1], atol=1e-5, rtol=0)


def test_length_aware_encoding_is_exact_on_a_long_clip_b_sized_tower() -> None:
    tower = dict(hidden_size=512, intermediate_size=2048, num_hidden_layers=12,
                 num_attention_heads=8)  # fmt: skip
    vision = dict(hidden_size=64, intermediate_size=128, num_hidden_layers=1,
                  num_attention_heads=2, image_size=32, patch_size=16)  # fmt: skip
    model = clip.random_clip(tower, vision, 512, seed=3)
    texts = _texts_of_lengths([1, 246, 400, 20, 150, 60, 2, 120, 245, 9, 33, 80], seed=2)
    ids = clip.tokenize(texts)
    full = clip.pooled_text(model.text_model, ids, 4, cut=False)
    cut = clip.pooled_text(model.text_model, ids, 4)
    assert np.abs(full).max() > 0.5  # real features, not zeros
    np.testing.assert_allclose(cut, full, atol=1e-5, rtol=0)
