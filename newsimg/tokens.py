"""CLIP's tokenizer as Long-CLIP uses it, without torch: cleaning, token ids, lengths.

:mod:`newsimg.clip` (the torch models) and :mod:`newsimg.numpy_clip` (the NumPy text tower)
both tokenize here, so a text query on CPU needs neither torch nor transformers.
"""

from __future__ import annotations

import functools
import html
import re
from collections.abc import Callable, Sequence

import numpy as np

CONTEXT_LENGTH = 248  # Long-CLIP's text positions (CLIP has 77)
SORT_WINDOW = 16  # batches of texts tokenized and sorted by length together
SOT, EOT = 49406, 49407
VOCAB_SIZE = 49408


def clean_text(text: str) -> str:
    """CLIP's text cleaning: ftfy, HTML entities unescaped (twice), whitespace collapsed, lower."""
    import ftfy

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


def text_lengths(ids: np.ndarray) -> np.ndarray:
    """Positions each row of :func:`tokenize` output uses: up to and including its first EOT.

    A row without an EOT (ids not made by :func:`tokenize`) counts as its full width.
    """
    has_eot = (ids == EOT).any(axis=1)
    return np.where(has_eot, (ids == EOT).argmax(axis=1) + 1, ids.shape[1])


def pooled_by_length(
    ids: np.ndarray,
    pool: Callable[[np.ndarray], np.ndarray],
    width: int,
    batch_size: int = 64,
    *,
    cut: bool = True,
) -> np.ndarray:
    """``pool`` (a batch of token ids -> its pooled states, (B, width)) over ``ids`` (N,
    positions), length-aware: rows sorted by :func:`text_lengths`, each batch cut after its
    longest row's EOT, the rows put back in order. ``cut=False``: every batch at full width, in
    order (the reference). Exact for CLIP's causal text tower pooled at the first EOT (see
    :func:`newsimg.clip.pooled_text`). float32 (N, width)."""
    lengths = text_lengths(ids)
    order = np.argsort(lengths, kind="stable") if cut else np.arange(len(ids))
    out = np.empty((len(ids), width), np.float32)
    for start in range(0, len(ids), batch_size):
        rows = order[start : start + batch_size]
        length = int(lengths[rows].max()) if cut else ids.shape[1]
        out[rows] = pool(np.ascontiguousarray(ids[rows, :length]))
    return out


def encode_in_windows(
    texts: Sequence[str],
    encode: Callable[[np.ndarray], np.ndarray],
    width: int,
    batch_size: int,
    context_length: int = CONTEXT_LENGTH,
) -> np.ndarray:
    """``encode`` (token ids -> (n, width)) over ``texts``, tokenized ``SORT_WINDOW`` batches at a
    time: memory bounded by the window, not the corpus. float32 (N, width)."""
    window = batch_size * SORT_WINDOW
    out = [
        encode(tokenize(texts[i : i + window], context_length))
        for i in range(0, len(texts), window)
    ]
    return np.concatenate(out) if out else np.zeros((0, width), np.float32)
