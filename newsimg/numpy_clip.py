"""CLIP's text tower and the LAM in NumPy: text queries on CPU without torch or transformers.

``import torch`` alone takes longer than a whole ``newsimg search`` may (1.7 s of a 2 s budget
on two cores), so a text query on CPU runs here instead. :class:`NumpyText` reads the same
model folder :class:`newsimg.clip.Clip` loads (``config.json`` + ``model.safetensors``, only the
text tower's tensors, memory-mapped) and computes what transformers' ``CLIPTextModel`` does:

- token + position embeddings (positions ``0..length-1``; a Long-CLIP folder already holds its
  final 248-row table, see :mod:`newsimg.longclip`);
- pre-LayerNorm blocks: ``x + attn(ln1(x))`` with causal multi-head attention, then
  ``x + fc2(act(fc1(ln2(x))))``, ``act`` the config's ``hidden_act``;
- the final LayerNorm, pooled at each row's first EOT (``argmax(ids)`` for configs with the
  legacy ``eos_token_id == 2``, as transformers does), then ``text_projection``.

Rows are encoded length-aware exactly as :func:`newsimg.clip.pooled_text` does (sorted, each
batch cut after its longest row's EOT). float32 throughout; features match the torch tower to
about 1e-6 (``tests/test_numpy_clip.py`` holds them to 1e-5). :class:`NumpyLam` is the LAM's
inference (:class:`newsimg.alignment.LAM`'s forward) on the same arrays.
"""

from __future__ import annotations

import contextlib
import functools
import json
import re
import threading
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path

import numpy as np

from newsimg.errors import InputError
from newsimg.store import lam_files
from newsimg.store.tensors import read_tensors
from newsimg.tokens import encode_in_windows, pooled_by_length

WEIGHTS = "model.safetensors"
TEXT = "text_model."
# transformers' CLIPTextConfig defaults, for keys a saved config.json leaves out
TEXT_DEFAULTS = {
    "num_attention_heads": 8,
    "hidden_act": "quick_gelu",
    "layer_norm_eps": 1e-5,
    "eos_token_id": 49407,
}


def l2_normalize(x: np.ndarray) -> np.ndarray:
    return x / np.maximum(np.linalg.norm(x, axis=-1, keepdims=True), 1e-12)


def _quick_gelu(x: np.ndarray) -> np.ndarray:
    # x * sigmoid(1.702 x), the sigmoid as (1 + tanh(z / 2)) / 2: no overflow for any x
    return x * (0.5 + 0.5 * np.tanh(0.851 * x))


def _gelu_tanh(x: np.ndarray) -> np.ndarray:
    return 0.5 * x * (1 + np.tanh(np.float32(0.7978845608028654) * (x + 0.044715 * x**3)))


ACTIVATIONS: dict[str, Callable[[np.ndarray], np.ndarray]] = {
    "quick_gelu": _quick_gelu,
    "gelu_new": _gelu_tanh,
    "gelu_pytorch_tanh": _gelu_tanh,
    "relu": lambda x: np.maximum(x, 0),
}


def text_config(folder: Path) -> dict:
    """The text tower's settings of a CLIPModel folder's config.json, defaults filled in."""
    path = Path(folder) / "config.json"
    try:
        config = json.loads(path.read_text())
    except OSError as err:
        raise InputError(f"cannot read {path}: {err}") from None
    except json.JSONDecodeError as err:
        raise InputError(f"{path} is not valid JSON: {err}") from None
    if config.get("model_type") != "clip":
        raise InputError(f"{path}: model_type {config.get('model_type')!r}, expected 'clip'")
    return TEXT_DEFAULTS | config.get("text_config", {})


def supports(folder: Path) -> bool:
    """Whether :class:`NumpyText` implements the text tower of the model in ``folder``."""
    return text_config(folder)["hidden_act"] in ACTIVATIONS


@functools.cache
def _blas_controller():  # finds the loaded BLAS libraries once (a ms or two)
    from threadpoolctl import ThreadpoolController

    return ThreadpoolController()


_limit_lock = threading.Lock()
_limit: list = []  # [the threadpoolctl limiter, how many callers are inside it]


@contextlib.contextmanager
def blas_threads(threads: int | None) -> Iterator[None]:
    """A context in which BLAS runs on ``threads`` threads (None: as it is).

    The limit is process-wide, so concurrent callers share one: the first one in sets it, the
    last one out restores what was there (a caller asking for another count meanwhile gets the
    first one's)."""
    if threads is None:
        yield
        return
    with _limit_lock:
        if not _limit:
            _limit[:] = [_blas_controller().limit(limits=threads, user_api="blas"), 0]
        _limit[1] += 1
    try:
        yield
    finally:
        with _limit_lock:
            _limit[1] -= 1
            if _limit[1] == 0:
                _limit.pop(0).restore_original_limits()
                _limit.clear()


def _layer_norm(x: np.ndarray, weight: np.ndarray, bias: np.ndarray, eps: float) -> np.ndarray:
    mean = x.mean(axis=-1, keepdims=True)
    centred = x - mean
    var = (centred * centred).mean(axis=-1, keepdims=True)
    return centred / np.sqrt(var + np.float32(eps)) * weight + bias


def _softmax(x: np.ndarray) -> np.ndarray:
    e = np.exp(x - x.max(axis=-1, keepdims=True))
    return e / e.sum(axis=-1, keepdims=True)


class NumpyText:
    """The text tower of the CLIPModel folder ``folder``: :meth:`text_hidden`,
    :meth:`project_text` and :meth:`encode_text` as :class:`newsimg.clip.Clip` has them.

    ``threads``: BLAS threads for its matrix products (None: OpenBLAS's own choice). One by
    default: it serves a few queries at a time, whose products are small enough that more
    threads only add waiting (on 2 cores busy with other work, 11 x 256 @ 256 x 512 took 8-12 ms
    on OpenBLAS's threads against 0.07 ms on one).
    """

    def __init__(self, folder: Path, threads: int | None = 1) -> None:
        folder = Path(folder)
        self.threads = threads
        config = text_config(folder)
        act = config["hidden_act"]
        if act not in ACTIVATIONS:
            raise InputError(
                f"{folder}: the NumPy text tower has no {act!r} activation "
                f"(it has {sorted(ACTIVATIONS)}); encode with the torch tower"
            )
        self.act = ACTIVATIONS[act]
        self.eps = float(config["layer_norm_eps"])
        self.heads = int(config["num_attention_heads"])
        self.eos = int(config["eos_token_id"])
        self.w = w = read_tensors(folder / WEIGHTS, lambda n: n.startswith((TEXT, "text_proj")))
        try:
            self.tokens = w[f"{TEXT}embeddings.token_embedding.weight"]
            self.positions = w[f"{TEXT}embeddings.position_embedding.weight"]
            self.final = self._norm("final_layer_norm")
            self.projection = w["text_projection.weight"].T  # (width, dim)
            pattern = re.compile(rf"^{re.escape(TEXT)}encoder\.layers\.(\d+)\.")
            count = len({m.group(1) for n in w if (m := pattern.match(n))})
            self.layers = [self._layer(i) for i in range(count)]
        except KeyError as err:
            raise InputError(f"{folder / WEIGHTS} lacks the text tower's tensor {err}") from None
        self.width = self.tokens.shape[1]
        self.dim = self.projection.shape[1]
        self.context_length = self.positions.shape[0]
        if self.width % self.heads:
            raise InputError(f"{folder}: width {self.width} does not split in {self.heads} heads")

    def _norm(self, name: str) -> tuple[np.ndarray, np.ndarray]:
        return self.w[f"{TEXT}{name}.weight"], self.w[f"{TEXT}{name}.bias"]

    def _linear(self, name: str) -> tuple[np.ndarray, np.ndarray]:
        """(weight.T, bias) for ``x @ weight.T + bias``, as torch's Linear. The transpose stays
        a view of the memory-mapped file: copying it to C order made a query of a
        Long-CLIP-B-sized tower ~20% faster but its load 0.37 s slower (of a 2 s start-up), and
        on one BLAS thread (``threads``) the transposed product is not the slow path it is on
        OpenBLAS's threads."""
        weight, bias = self._norm(name)
        return weight.T, bias

    def _layer(self, i: int) -> dict[str, tuple[np.ndarray, np.ndarray]]:
        p = f"encoder.layers.{i}."
        names = ["self_attn.q_proj", "self_attn.k_proj", "self_attn.v_proj", "self_attn.out_proj"]
        names += ["mlp.fc1", "mlp.fc2"]
        layer = {n: self._linear(p + n) for n in names}
        return layer | {n: self._norm(p + n) for n in ("layer_norm1", "layer_norm2")}

    # ---------------------------------------------------------------------------- the tower

    def _attention(self, x: np.ndarray, b: int, n: int, layer: dict) -> np.ndarray:
        """Causal multi-head self-attention of ``x`` (b * n, width), rows grouped by text."""
        d = x.shape[1]
        h, hd = self.heads, d // self.heads

        def heads(name: str) -> np.ndarray:
            w, bias = layer[f"self_attn.{name}_proj"]
            return (x @ w + bias).reshape(b, n, h, hd).transpose(0, 2, 1, 3)  # (b, h, n, hd)

        q, k, v = heads("q"), heads("k"), heads("v")
        scores = (q @ k.transpose(0, 1, 3, 2)) * np.float32(hd**-0.5)  # (b, h, n, n)
        scores = np.where(np.tri(n, dtype=bool), scores, np.float32(-np.inf))  # causal
        out = (_softmax(scores) @ v).transpose(0, 2, 1, 3).reshape(b * n, d)
        w, bias = layer["self_attn.out_proj"]
        return out @ w + bias

    def pooled(self, ids: np.ndarray) -> np.ndarray:
        """Pooled final-layer states of one batch of token ids (B, positions): (B, width).

        Rows of all texts are stacked into one (B * positions, width) matrix, so every linear
        layer is one 2-D matrix product (a stacked 3-D product ran 15x slower in OpenBLAS)."""
        b, n = ids.shape
        x = (self.tokens[ids] + self.positions[:n]).reshape(b * n, self.width)
        for layer in self.layers:
            y = _layer_norm(x, *layer["layer_norm1"], self.eps)
            x = x + self._attention(y, b, n, layer)
            fc1, fc2 = layer["mlp.fc1"], layer["mlp.fc2"]
            y = _layer_norm(x, *layer["layer_norm2"], self.eps)
            x = x + (self.act(y @ fc1[0] + fc1[1]) @ fc2[0] + fc2[1])
        at = ids.argmax(axis=1) if self.eos == 2 else (ids == self.eos).argmax(axis=1)
        return _layer_norm(x.reshape(b, n, -1)[np.arange(b), at], *self.final, self.eps)

    def pooled_text(self, ids: np.ndarray, batch_size: int = 64) -> np.ndarray:
        """:func:`newsimg.clip.pooled_text` (length-aware) for token ids (N, positions)."""
        return pooled_by_length(ids, self.pooled, self.width, batch_size)

    def text_hidden(self, texts: Sequence[str], batch_size: int = 64) -> np.ndarray:
        """:meth:`newsimg.clip.Clip.text_hidden`: (N, width), before the projection."""
        encode = functools.partial(self.pooled_text, batch_size=batch_size)
        with self._blas_threads():
            return encode_in_windows(texts, encode, self.width, batch_size, self.context_length)

    def _blas_threads(self) -> contextlib.AbstractContextManager[None]:
        return blas_threads(self.threads)

    def project_text(self, hidden: np.ndarray) -> np.ndarray:
        """The text projection: (N, width) -> (N, dim), unnormalised."""
        with self._blas_threads():
            return hidden @ self.projection

    def encode_text(self, texts: Sequence[str], batch_size: int = 64) -> np.ndarray:
        """L2-normalised text embeddings, float32 (N, dim)."""
        return l2_normalize(self.project_text(self.text_hidden(texts, batch_size)))


class NumpyLam:
    """The LAM folder ``folder`` (:func:`newsimg.alignment.load_lam`'s) for inference:
    ``forward(hidden) -> (h, logits)`` as :class:`newsimg.alignment.LAM` computes them, on
    ``threads`` BLAS threads (as :class:`NumpyText`)."""

    def __init__(self, folder: Path, threads: int | None = 1) -> None:
        self.threads = threads
        self.config, w = lam_files.read_lam_arrays(Path(folder))
        try:
            self.proj = w["proj.weight"].T, w["proj.bias"]
            self.hidden_layer = w["classifier.0.weight"].T, w["classifier.0.bias"]
            self.out_layer = w["classifier.2.weight"].T, w["classifier.2.bias"]
            self.class_vectors = w["class_vectors"]
            self.alpha = np.float32(w["alpha"])
        except KeyError as err:
            raise InputError(f"{folder}: the LAM weights lack {err}") from None
        d, k = self.config.dim, len(self.config.classes)
        shapes = {
            "proj": (self.proj[0].shape, (self.config.width, d)),
            "classifier.0": (self.hidden_layer[0].shape, (d, d)),
            "classifier.2": (self.out_layer[0].shape, (d, k)),
            "class_vectors": (self.class_vectors.shape, (k, d)),
        }
        for name, (got, want) in shapes.items():
            if got != want:
                raise InputError(f"{folder}: the weights do not fit lam.json: {name} {got} {want}")

    def forward(self, hidden: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(h: (B, dim), class logits: (B, classes)) of pooled text states (B, width)."""
        with blas_threads(self.threads):
            t = l2_normalize(hidden @ self.proj[0] + self.proj[1])
            logits = np.maximum(t @ self.hidden_layer[0] + self.hidden_layer[1], 0)
            logits = logits @ self.out_layer[0] + self.out_layer[1]
            c = _softmax(logits) @ self.class_vectors
        h = self.alpha * t + (1 - self.alpha) * c
        return (l2_normalize(h) if self.config.renormalize else h), logits
