"""CLIP and Long-CLIP models as Hugging Face ``CLIPModel`` folders: tokenizer, preprocessing,
the seeded ``tiny`` model, loading, and batched encoding.
"""

from __future__ import annotations

import functools
import html
import re
from collections.abc import Sequence

import ftfy
import numpy as np

CONTEXT_LENGTH = 248  # Long-CLIP's text positions (CLIP has 77)
SOT, EOT = 49406, 49407
VOCAB_SIZE = 49408


def clean_text(text: str) -> str:
    """CLIP's text cleaning: ftfy, HTML entities unescaped (twice), whitespace collapsed, lower."""
    text = ftfy.fix_text(text)
    text = html.unescape(html.unescape(text))
    return re.sub(r"\s+", " ", text).strip().lower()


@functools.cache
def _bpe():
    from instant_clip_tokenizer import Tokenizer

    return Tokenizer()  # the original CLIP BPE vocabulary, bundled in the wheel


def tokenize(texts: Sequence[str], context_length: int = CONTEXT_LENGTH) -> np.ndarray:
    """Token ids as Long-CLIP makes them: ``[SOT] + bpe(clean(text)) + [EOT]``, zero-padded.

    Longer texts are cut to ``context_length`` with the last token forced to EOT, so pooling at
    the EOT position (the first EOT, also the largest id) is right for every row.
    Returns int64 of shape (len(texts), context_length).
    """
    cleaned = [clean_text(t) for t in texts]
    ids = _bpe().tokenize_batch(cleaned, context_length=context_length)
    return np.asarray(ids, dtype=np.int64)


def count_tokens(texts: Sequence[str]) -> list[int]:
    """Tokens each text takes in the encoder, SOT and EOT included, before any truncation."""
    bpe = _bpe()
    return [len(bpe.encode(clean_text(t))) + 2 for t in texts]
