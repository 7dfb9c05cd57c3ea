"""CLIP and Long-CLIP models as Hugging Face ``CLIPModel`` folders: tokenizer files,
preprocessing, the seeded ``tiny`` model, loading, and batched encoding in torch.

The tokenizer itself is :mod:`newsimg.tokens` and the NumPy text tower :mod:`newsimg.numpy_clip`
(both torch-free; their names stay importable from here).
"""

from __future__ import annotations

import functools
import gzip
import io
import json
import math
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from transformers import CLIPConfig, CLIPModel

from newsimg.devices import default_device
from newsimg.logs import quiet_transformers
from newsimg.numpy_clip import l2_normalize
from newsimg.params import ModelParams
from newsimg.store.commit import atomic_path
from newsimg.tokens import CONTEXT_LENGTH, EOT, SOT, VOCAB_SIZE, encode_in_windows, pooled_by_length
from newsimg.tokens import clean_text as clean_text  # the tokenizer, re-exported: it is torch-free
from newsimg.tokens import count_tokens as count_tokens
from newsimg.tokens import text_lengths as text_lengths
from newsimg.tokens import tokenize as tokenize

quiet_transformers()  # no "Loading weights" bar per model load


# --- tokenizer files ------------------------------------------------------------------------------

BPE_VOCAB = Path(__file__).parent / "assets" / "bpe_simple_vocab_16e6.txt.gz"


def _bytes_to_unicode() -> dict[int, str]:
    """CLIP's reversible byte -> printable-unicode table, in CLIP's order (printable bytes first,
    mapped to themselves; the rest to code points from 256 up). The order fixes the vocab ids."""
    keep = [*range(ord("!"), ord("~") + 1), *range(ord("¡"), ord("¬") + 1)]
    keep += range(ord("®"), ord("ÿ") + 1)
    rest = [b for b in range(256) if b not in keep]
    return {b: chr(b) for b in keep} | {b: chr(256 + i) for i, b in enumerate(rest)}


def write_tokenizer_files(folder: Path, context_length: int) -> None:
    """Write vocab.json, merges.txt and tokenizer_config.json for transformers' CLIPTokenizer.

    Built offline from the bundled CLIP BPE merges exactly as CLIP builds its vocabulary:
    256 byte symbols, the same with ``</w>``, one token per merge, then SOT and EOT.
    newsimg itself tokenizes with :func:`tokenize`; these files keep the folder usable on its own.
    """
    with gzip.open(BPE_VOCAB, "rt", encoding="utf-8") as f:
        lines = f.read().split("\n")
    merges = lines[1 : VOCAB_SIZE - 256 * 2 - 2 + 1]
    symbols = list(_bytes_to_unicode().values())
    vocab = [*symbols, *(s + "</w>" for s in symbols), *("".join(m.split()) for m in merges)]
    vocab += ["<|startoftext|>", "<|endoftext|>"]
    assert len(vocab) == VOCAB_SIZE
    (folder / "vocab.json").write_text(json.dumps({t: i for i, t in enumerate(vocab)}))
    (folder / "merges.txt").write_text("#version: 0.2\n" + "\n".join(merges) + "\n")
    config = {
        "tokenizer_class": "CLIPTokenizer",
        "model_max_length": context_length,
        "bos_token": "<|startoftext|>",
        "eos_token": "<|endoftext|>",
        "pad_token": "<|endoftext|>",
        "unk_token": "<|endoftext|>",
    }
    (folder / "tokenizer_config.json").write_text(json.dumps(config, indent=2))


# --- image preprocessing --------------------------------------------------------------------------

MEAN = np.array([0.48145466, 0.4578275, 0.40821073], dtype=np.float32)
STD = np.array([0.26862954, 0.26130258, 0.27577711], dtype=np.float32)


DRAFT_GAP = 2  # the fast path decodes JPEGs at a reduced scale, down to 2x the target side


def preprocess(image: Image.Image, size: int = 224, *, fast: bool = False) -> np.ndarray:
    """Long-CLIP's transform without torchvision: float32 array of shape (3, size, size).

    Bicubic resize of the shorter side to ``size`` (longer side truncated, as torchvision does),
    centre crop with offsets rounded half to even, then RGB, then CLIP's mean/std — in that
    order, so an RGBA image is resized with its alpha before the alpha is dropped.

    ``fast``: a JPEG not yet decoded is decoded at 1/2, 1/4 or 1/8 scale (Pillow's ``draft``),
    never below ``DRAFT_GAP`` x the target; measured to keep embeddings within cosine 0.999.
    """
    x = preprocess_uint8(image, size, fast=fast).astype(np.float32) / 255.0  # (H, W, 3)
    return ((x - MEAN) / STD).transpose(2, 0, 1)


def preprocess_uint8(image: Image.Image, size: int = 224, *, fast: bool = False) -> np.ndarray:
    """:func:`preprocess` before the mean/std: the cropped RGB pixels, uint8 (size, size, 3).

    A quarter of the bytes to move from a loader worker to the GPU; ``(x / 255 - MEAN) / STD``
    in float32, channel last, gives :func:`preprocess`'s numbers exactly.
    """
    if fast and image.format == "JPEG":
        w, h = image.size
        scale = DRAFT_GAP * size / min(w, h)
        if scale < 1:
            image.draft(image.mode, (math.ceil(w * scale), math.ceil(h * scale)))
    if image.mode.startswith("I") or image.mode == "F":
        image = _to_8bit(image)  # 16/32-bit grey: Pillow's own conversion clips to white
    elif image.mode not in ("RGB", "RGBA", "L", "LA", "P", "CMYK"):
        image = image.convert("RGB")
    w, h = image.size
    if w <= h:
        new_w, new_h = size, int(size * h / w)
    else:
        new_w, new_h = int(size * w / h), size
    image = image.resize((new_w, new_h), Image.Resampling.BICUBIC)
    top, left = round((new_h - size) / 2.0), round((new_w - size) / 2.0)
    image = image.crop((left, top, left + size, top + size)).convert("RGB")
    return np.asarray(image, dtype=np.uint8)


def _to_8bit(image: Image.Image) -> Image.Image:
    x = np.asarray(image, dtype=np.float32)
    top = 1.0 if image.mode == "F" else 65535.0  # I and I;16 hold 16-bit samples in practice
    return Image.fromarray(np.clip(x / top * 255.0 + 0.5, 0, 255).astype(np.uint8), "L")


def decode_and_preprocess(data: bytes, size: int, *, fast: bool = False) -> np.ndarray:
    """Encoded image bytes -> :func:`preprocess` output."""
    with Image.open(io.BytesIO(data)) as image:
        return preprocess(image, size, fast=fast)


def decode_uint8(data: bytes, size: int, *, fast: bool = False) -> np.ndarray:
    """Encoded image bytes -> :func:`preprocess_uint8` output."""
    with Image.open(io.BytesIO(data)) as image:
        return preprocess_uint8(image, size, fast=fast)


# --- models ---------------------------------------------------------------------------------------

DTYPES = {"float32": torch.float32, "float16": torch.float16, "bfloat16": torch.bfloat16}


def random_clip(
    text: dict[str, int], vision: dict[str, int], projection_dim: int, seed: int = 0
) -> CLIPModel:
    """A seeded random CLIPModel of the given tower sizes, with Long-CLIP's 248 text positions
    and CLIP's vocabulary and special tokens. ``text``/``vision``: CLIPTextConfig and
    CLIPVisionConfig sizes (hidden_size, layers, heads, ...; the vision tower's image and patch
    size)."""
    config = CLIPConfig(
        text_config=dict(
            vocab_size=VOCAB_SIZE,
            max_position_embeddings=CONTEXT_LENGTH,
            bos_token_id=SOT,
            eos_token_id=EOT,
            pad_token_id=0,
            **text,
        ),
        vision_config=vision,
        projection_dim=projection_dim,
    )
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return CLIPModel(config).eval()


def make_tiny(seed: int = 0) -> CLIPModel:
    """A seeded random CLIPModel with Long-CLIP's 248 text positions, quick on two CPU cores.

    Width 256, 2 layers, 64 px images in 16 px patches: quick enough for the sample pipeline,
    wide enough that a trained text projection can align its random features with its images
    (at width 128 the sample's LAM recall@10 was a third of what it is at 256).
    """
    tower = dict(hidden_size=256, intermediate_size=512, num_hidden_layers=2, num_attention_heads=4)
    return random_clip(tower, {**tower, "image_size": 64, "patch_size": 16}, 256, seed)


def load_source(params: ModelParams) -> CLIPModel:
    """The model ``params.source`` names: ``tiny``, a Hugging Face id or CLIPModel folder, or a
    Long-CLIP ``.pt`` checkpoint (converted exactly); stretched to 248 positions if asked."""
    from newsimg import longclip

    if params.source == "tiny":
        model = make_tiny(params.seed)
    elif params.source.endswith((".pt", ".pth")):
        state = longclip.load_state_dict(Path(params.source))
        model = longclip.convert(state, original_rounding=params.original_rounding)
    else:
        model = CLIPModel.from_pretrained(params.source).eval()
    if params.stretch_positions:
        model = longclip.stretch(model, params.stretch_positions)
    return model


def save_model(model: CLIPModel, out: Path, dtype: str = "float32") -> None:
    """Write one self-contained folder: config, safetensors, tokenizer files, preprocessing.

    Written beside ``out`` and swapped in: a killed run leaves the old folder or the new one.
    """
    with atomic_path(out) as tmp:
        model.to(DTYPES[dtype]).save_pretrained(tmp)
        write_tokenizer_files(tmp, model.config.text_config.max_position_embeddings)
        _write_preprocessing(tmp, model.config.vision_config.image_size)


def _write_preprocessing(folder: Path, size: int) -> None:
    """preprocessor_config.json for transformers' CLIPImageProcessor, as :func:`preprocess` does."""
    preprocessing = {
        "image_processor_type": "CLIPImageProcessor",
        "do_resize": True,
        "size": {"shortest_edge": size},
        "resample": 3,  # bicubic
        "do_center_crop": True,
        "crop_size": {"height": size, "width": size},
        "do_rescale": True,
        "rescale_factor": 1 / 255,
        "do_normalize": True,
        "image_mean": MEAN.tolist(),
        "image_std": STD.tolist(),
        "do_convert_rgb": True,
    }
    (folder / "preprocessor_config.json").write_text(json.dumps(preprocessing, indent=2))


# --- text encoding -------------------------------------------------------------------------------


@torch.inference_mode()
def pooled_text(
    text_model: torch.nn.Module, ids: np.ndarray, batch_size: int = 64, *, cut: bool = True
) -> np.ndarray:
    """Pooled final-layer states at each row's EOT for token ids (N, positions): (N, width).

    ``cut``: rows are sorted by length and each batch is cut after its longest row's EOT, then
    the rows are put back in order. This is exact, not an approximation: CLIP's text transformer
    attends causally (position i sees positions <= i; transformers' CLIPTextModel builds only a
    causal mask when no attention mask is given), position ids are ``arange(length)`` either
    way, LayerNorm and the MLPs work per position, and pooling takes the first EOT, so positions
    after a row's EOT change nothing it returns. ``cut=False`` runs every batch at full width
    (the reference, and the benchmarks' baseline). float32 (N, width) whatever the model dtype.
    """
    device = next(text_model.parameters()).device

    def pool(batch: np.ndarray) -> np.ndarray:
        out = text_model(input_ids=torch.from_numpy(batch).to(device)).pooler_output
        return out.float().cpu().numpy()

    return pooled_by_length(ids, pool, text_model.config.hidden_size, batch_size, cut=cut)


def resolve_device(accelerator: str = "auto") -> torch.device:
    return torch.device(default_device(accelerator))


class Clip:
    """A loaded CLIP folder with batched, L2-normalised text and image encoding.

    ``text_hidden`` gives the pooled text state before the projection (what the LAM trains on);
    ``text_features``/``image_features`` give the projected, unnormalised features.
    """

    def __init__(
        self, folder: Path, device: str | torch.device = "cpu", precision: str = "float32"
    ) -> None:
        self.model = CLIPModel.from_pretrained(folder, dtype=DTYPES[precision]).eval()
        self.device = torch.device(device)
        self.model.to(self.device)
        self.context_length = self.model.config.text_config.max_position_embeddings
        self.width = self.model.config.text_config.hidden_size
        self.image_size = self.model.config.vision_config.image_size
        self.dim = self.model.config.projection_dim

    def text_hidden(self, texts: Sequence[str], batch_size: int = 64) -> np.ndarray:
        """Pooled final-layer state at each text's EOT, before the projection: (N, width).

        Texts are tokenized ``tokens.SORT_WINDOW`` batches at a time (memory bounded by the
        window, not the corpus), and each window is encoded length-aware by :func:`pooled_text`.
        """
        encode = functools.partial(pooled_text, self.model.text_model, batch_size=batch_size)
        return encode_in_windows(texts, encode, self.width, batch_size, self.context_length)

    def project_text(self, hidden: np.ndarray) -> np.ndarray:
        """The base model's text projection applied to :meth:`text_hidden` output: (N, dim)."""
        w = self.model.text_projection.weight.detach().float().cpu().numpy()  # (dim, width)
        return hidden @ w.T

    def encode_text(self, texts: Sequence[str], batch_size: int = 64) -> np.ndarray:
        """L2-normalised text embeddings, float32 (N, dim)."""
        return l2_normalize(self.project_text(self.text_hidden(texts, batch_size)))

    @torch.inference_mode()
    def image_features(self, pixels: torch.Tensor) -> torch.Tensor:
        """Projected, unnormalised features of preprocessed pixels: (B, 3, S, S) -> (B, dim)."""
        pixels = pixels.to(self.device, self.model.dtype)
        return self.model.get_image_features(pixel_values=pixels).pooler_output

    def encode_images(self, images: Sequence[Image.Image], batch_size: int = 64) -> np.ndarray:
        """L2-normalised image embeddings, float32 (N, dim)."""
        out = []
        for i in range(0, len(images), batch_size):
            batch = np.stack([preprocess(im, self.image_size) for im in images[i : i + batch_size]])
            out.append(self.image_features(torch.from_numpy(batch)).float().cpu().numpy())
        return l2_normalize(np.concatenate(out)) if out else np.zeros((0, self.dim), np.float32)


def build(params: ModelParams, out: Path) -> None:
    """The model stage: resolve ``params.source`` and write it as one self-contained folder."""
    save_model(load_source(params), out, params.dtype)
