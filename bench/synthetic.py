"""Synthetic inputs for the benchmarks, so that they need no download.

Random-weight CLIP models of Long-CLIP's shapes:

``random_clip("b")`` is Long-CLIP-B (ViT-B/16 at 224 px, a 12-layer text tower of width 512 with
248 positions, 512-d projection); ``random_clip("l")`` is Long-CLIP-L (ViT-L/14, text width 768,
768-d projection); ``random_clip("tiny")`` is the sample's tiny model.
"""

from __future__ import annotations

import io
from typing import TYPE_CHECKING

from PIL import Image

if TYPE_CHECKING:
    from transformers import CLIPModel

# text width, layers, heads; vision width, layers, heads, MLP width, patch, image size; projection
SHAPES = {
    "b": (512, 12, 8, 768, 12, 12, 3072, 16, 224, 512),
    "l": (768, 12, 12, 1024, 24, 16, 4096, 14, 224, 768),
}


def random_clip(name: str, seed: int = 0) -> CLIPModel:
    """A seeded random model of ``name``'s shape ("tiny", "b" or "l"), in eval mode."""
    from newsimg import clip  # torch: not for the benches that only need jpeg()

    if name == "tiny":
        return clip.make_tiny(seed)
    tw, tl, th, vw, vl, vh, mlp, patch, size, dim = SHAPES[name]
    text = dict(
        hidden_size=tw, intermediate_size=4 * tw, num_hidden_layers=tl, num_attention_heads=th
    )
    vision = dict(hidden_size=vw, intermediate_size=mlp, num_hidden_layers=vl,
                  num_attention_heads=vh, patch_size=patch, image_size=size)  # fmt: skip
    return clip.random_clip(text, vision, dim, seed)


def jpeg(im: Image.Image, quality: int = 90) -> bytes:
    buf = io.BytesIO()
    im.save(buf, "JPEG", quality=quality)
    return buf.getvalue()
